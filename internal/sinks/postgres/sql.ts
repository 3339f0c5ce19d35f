import type { OrderEvent, UserEvent } from '../../model/index.js'

/** A parameterised statement for node-postgres; `name` makes it a prepared statement reused per connection. */
export interface Statement {
  name: string
  text: string
  values: unknown[]
}

/** The columns each table must have (checked at start by PostgresSink.checkSchema). */
export const EXPECTED_COLUMNS = {
  users: ['id', 'name', 'dob', 'created_at', 'modified_at', 'is_deleted', 'version', 'last_event_id'],
  orders: [
    'id',
    'status',
    'user_id',
    'quantity',
    'total_amount',
    'placed_at',
    'modified_at',
    'is_deleted',
    'version',
    'last_event_id',
  ],
} as const

/**
 * How far an event's version may be ahead of the row's stored version (0 when there is no row): a version beyond it
 * is rejected (VALIDATION_ERROR), never written. Versions grow by 1 per event of an entity, so only a hostile or
 * corrupt event jumps a million ahead; written, a version of 2^53 - 1 would freeze its row forever, as every later
 * event would look stale.
 */
export const MAX_VERSION_JUMP = 1_000_000

/** Whether `version` is more than MAX_VERSION_JUMP ahead of the stored one (undefined: no row, counts as 0). */
export function exceedsVersionJump(version: number, stored: number | undefined): boolean {
  return version - (stored ?? 0) > MAX_VERSION_JUMP
}

/** The trigger that marks a deleted user's orders (table-creation.sql). */
export const SOFT_DELETE_TRIGGER = 'users_soft_delete_cascade'

function later(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a
}

/**
 * Keeps one user event per id, the highest version: one INSERT ... ON CONFLICT cannot touch a row twice. Sorted by
 * id so concurrent batches lock rows in the same order (fewer deadlocks).
 */
export function reduceUsers(events: readonly UserEvent[]): UserEvent[] {
  const byId = new Map<string, UserEvent>()
  for (const e of events) {
    const kept = byId.get(e.user_id)
    if (kept === undefined || e.version > kept.version) byId.set(e.user_id, e)
  }
  return [...byId.values()].sort((a, b) => (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0))
}

/**
 * Keeps one order event per id, the highest version, carrying what applying them one by one would have kept:
 * is_deleted is sticky (OR of the batch's events) and modified_at is their maximum. Sorted by id.
 */
export function reduceOrders(events: readonly OrderEvent[]): OrderEvent[] {
  const byId = new Map<string, OrderEvent>()
  for (const e of events) {
    const kept = byId.get(e.order_id)
    if (kept === undefined) {
      byId.set(e.order_id, e)
      continue
    }
    const winner = e.version > kept.version ? e : kept
    const isDeleted = kept.is_deleted || e.is_deleted
    const modifiedAt = later(kept.modified_at, e.modified_at)
    byId.set(
      e.order_id,
      isDeleted === winner.is_deleted && modifiedAt === winner.modified_at
        ? winner
        : { ...winner, is_deleted: isDeleted, modified_at: modifiedAt },
    )
  }
  return [...byId.values()].sort((a, b) => (a.order_id < b.order_id ? -1 : a.order_id > b.order_id ? 1 : 0))
}

// Array parameters are sent as PostgreSQL array literals built here, one string each, rather than as JavaScript arrays
// that node-postgres escapes element by element (a tenth of the consumer's CPU profile). Every value but the free
// text is validated to a form that needs no quoting in an array literal (uuids, ISO dates and timestamps, integers,
// decimals, enum words): those are joined as they are; free text is quoted, with " and \ escaped.

/** An array literal of values that need no quoting (validated uuids, timestamps, numbers, enum words). */
export function plainArray(values: readonly (string | number)[]): string {
  return `{${values.join(',')}}`
}

/** An array literal of free text: every element quoted, with " and \ escaped (the only two that need it). */
export function textArray(values: readonly string[]): string {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    const safe = v.indexOf('"') === -1 && v.indexOf('\\') === -1 ? v : v.replace(/["\\]/g, '\\$&')
    out += i === 0 ? `"${safe}"` : `,"${safe}"`
  }
  return `${out}}`
}

/** An array literal of booleans. */
export function booleanArray(values: readonly boolean[]): string {
  return `{${values.map((b) => (b ? 't' : 'f')).join(',')}}`
}

// unnest() of typed arrays: a constant statement text (prepared once) and 8 parameters instead of 8 per row.
// MAX_VERSION_JUMP: a new row takes a version up to the jump, an existing row moves at most the jump ahead (the
// EXISTS is evaluated only for a version beyond the jump, i.e. practically never).
const USER_UPSERT = `INSERT INTO users (id, name, dob, created_at, modified_at, is_deleted, version, last_event_id)
SELECT v.* FROM unnest($1::uuid[], $2::text[], $3::date[], $4::timestamptz[], $5::timestamptz[], $6::boolean[],
                       $7::bigint[], $8::uuid[])
     AS v (id, name, dob, created_at, modified_at, is_deleted, version, last_event_id)
WHERE v.version <= ${MAX_VERSION_JUMP} OR EXISTS (SELECT 1 FROM users x WHERE x.id = v.id)
ON CONFLICT (id) DO UPDATE SET
  name = EXCLUDED.name,
  dob = EXCLUDED.dob,
  created_at = EXCLUDED.created_at,
  modified_at = EXCLUDED.modified_at,
  is_deleted = EXCLUDED.is_deleted,
  version = EXCLUDED.version,
  last_event_id = EXCLUDED.last_event_id
WHERE users.version < EXCLUDED.version AND EXCLUDED.version <= users.version + ${MAX_VERSION_JUMP}
RETURNING id`

/**
 * One upsert for a batch of user events (reduce them first: ids must be unique). Only moves a row forward
 * (stored version < event version <= stored + MAX_VERSION_JUMP); RETURNING lists the ids actually written, the rest
 * were stale or too far ahead (buildExistingUsersQuery tells which).
 */
export function buildUserUpsert(events: readonly UserEvent[]): Statement {
  return {
    name: 'cdc_upsert_users_v1',
    text: USER_UPSERT,
    values: [
      plainArray(events.map((e) => e.user_id)),
      textArray(events.map((e) => e.name)),
      plainArray(events.map((e) => e.dob)),
      plainArray(events.map((e) => e.created_at)),
      plainArray(events.map((e) => e.modified_at)),
      booleanArray(events.map((e) => e.is_deleted)),
      plainArray(events.map((e) => e.version)),
      plainArray(events.map((e) => e.event_id)),
    ],
  }
}

// The JOIN skips orders whose user is not there yet instead of failing the whole transaction on the foreign key;
// the writer finds them afterwards. An order of an already deleted user is born deleted, stamped with the user's
// modified_at as the soft-delete trigger would have done, so the outcome does not depend on which topic came first.
const ORDER_UPSERT = `INSERT INTO orders (id, status, user_id, quantity, total_amount, placed_at, modified_at, is_deleted,
                    version, last_event_id)
SELECT v.id, v.status, v.user_id, v.quantity, v.total_amount, v.placed_at,
       GREATEST(v.modified_at, CASE WHEN u.is_deleted THEN u.modified_at END),
       v.is_deleted OR u.is_deleted, v.version, v.last_event_id
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::int[], $5::numeric[], $6::timestamptz[], $7::timestamptz[],
            $8::boolean[], $9::bigint[], $10::uuid[])
     AS v (id, status, user_id, quantity, total_amount, placed_at, modified_at, is_deleted, version, last_event_id)
JOIN users u ON u.id = v.user_id
WHERE v.version <= ${MAX_VERSION_JUMP} OR EXISTS (SELECT 1 FROM orders x WHERE x.id = v.id)
ON CONFLICT (id) DO UPDATE SET
  status = EXCLUDED.status,
  user_id = EXCLUDED.user_id,
  quantity = EXCLUDED.quantity,
  total_amount = EXCLUDED.total_amount,
  placed_at = EXCLUDED.placed_at,
  modified_at = GREATEST(orders.modified_at, EXCLUDED.modified_at),
  is_deleted = orders.is_deleted OR EXCLUDED.is_deleted,
  version = EXCLUDED.version,
  last_event_id = EXCLUDED.last_event_id
WHERE orders.version < EXCLUDED.version AND EXCLUDED.version <= orders.version + ${MAX_VERSION_JUMP}
RETURNING id`

/**
 * One upsert for a batch of order events (reduce them first). Orders whose user row is missing are skipped, not
 * failed: see {@link buildExistingOrdersQuery}. is_deleted is sticky and modified_at never goes back.
 */
export function buildOrderUpsert(events: readonly OrderEvent[]): Statement {
  return {
    name: 'cdc_upsert_orders_v1',
    text: ORDER_UPSERT,
    values: [
      plainArray(events.map((e) => e.order_id)),
      plainArray(events.map((e) => e.order_status)),
      plainArray(events.map((e) => e.user_id)),
      plainArray(events.map((e) => e.quantity)),
      // As text: the numeric column gets exactly the decimal that was validated, no float formatting surprises.
      plainArray(events.map((e) => String(e.order_total))),
      plainArray(events.map((e) => e.placed_at)),
      plainArray(events.map((e) => e.modified_at)),
      booleanArray(events.map((e) => e.is_deleted)),
      plainArray(events.map((e) => e.version)),
      plainArray(events.map((e) => e.event_id)),
    ],
  }
}

/**
 * Share-locks the users an orders batch refers to, in id order, before the order upsert. Without it an order inserted
 * while its user's soft delete commits is missed by both sides: the upsert's JOIN still sees the user live, and the
 * trigger's UPDATE of that user's orders cannot see the uncommitted order. FOR SHARE conflicts with the user upsert's
 * row lock, so one transaction waits for the other and its next statement (a new snapshot under READ COMMITTED) sees
 * the other's result. Users are upserted in id order too (reduceUsers), so the two cannot deadlock over users.
 */
export function buildLockUsersQuery(userIds: readonly string[]): Statement {
  return {
    name: 'cdc_lock_users_v1',
    text: 'SELECT 1 FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE',
    values: [plainArray([...new Set(userIds)].sort())],
  }
}

/** Versions of the given users, to tell stale events from those too far ahead (MAX_VERSION_JUMP). */
export function buildExistingUsersQuery(ids: readonly string[]): Statement {
  return {
    name: 'cdc_existing_users_v1',
    text: 'SELECT id, version FROM users WHERE id = ANY($1::uuid[])',
    values: [plainArray(ids)],
  }
}

/**
 * Versions of the given orders, to tell stale events (row at a version >= the event's) from missing users and
 * versions too far ahead.
 */
export function buildExistingOrdersQuery(ids: readonly string[]): Statement {
  return {
    name: 'cdc_existing_orders_v1',
    text: 'SELECT id, version FROM orders WHERE id = ANY($1::uuid[])',
    values: [plainArray(ids)],
  }
}

/** Columns of the tables, for checkSchema. */
export const SCHEMA_QUERY = `SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name IN ('users', 'orders')`

/** Whether the soft-delete trigger exists on users. */
export const TRIGGER_QUERY = `SELECT 1 FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.oid = to_regclass('users') AND t.tgname = $1 AND NOT t.tgisinternal`

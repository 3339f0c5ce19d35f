import {
  ENTITIES,
  LAST_EVENT_COLUMN,
  VERSION_COLUMN,
  columnsOfEntity,
  pgTypeOf,
  reduceEvents,
  specOf,
  type AnyEvent,
  type EntitySpec,
  type FieldSpec,
} from '../../model/index.js'

/** A parameterised statement for node-postgres; `name` makes it a prepared statement reused per connection. */
export interface Statement {
  name: string
  text: string
  values: unknown[]
}

/** The columns each entity table must have (checked at start by PostgresSink.checkSchema), from the definitions. */
export const EXPECTED_COLUMNS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  ENTITIES.map((spec) => [spec.table, columnsOfEntity(spec)]),
)

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

/**
 * Keeps one event per id, the highest version (one INSERT ... ON CONFLICT cannot touch a row twice), its 'sticky'
 * and 'greatest' fields merged as applying them one by one would have; sorted by id (see reduceEvents).
 */
export function reduceBatch<E extends AnyEvent>(spec: EntitySpec, events: readonly E[]): E[] {
  return reduceEvents(spec, events)
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

// unnest() of typed arrays: a constant statement text per entity (prepared once) and one parameter per column instead
// of one per column and row. MAX_VERSION_JUMP: a new row takes a version up to the jump, an existing row moves at
// most the jump ahead (the EXISTS is evaluated only for a version beyond the jump, i.e. practically never).
//
// With a reference (orders.user_id -> users), the JOIN skips rows whose parent is not there yet instead of failing
// the whole transaction on the foreign key; the writer finds them afterwards. A row of an already deleted parent
// is born deleted, its 'greatest' columns stamped with the parent's as the soft-delete trigger would have done, so
// the outcome does not depend on which topic came first.
function upsertText(spec: EntitySpec): string {
  const t = spec.table
  const columns = columnsOfEntity(spec)
  const types = ['uuid', ...spec.fields.map((f) => pgTypeOf(f.rule)), 'bigint', 'uuid']
  const params = types.map((type, i) => `$${i + 1}::${type}[]`).join(', ')
  const ref = spec.reference
  const parent = ref && specOf(ref.entity)
  const alias = parent?.table[0]
  const deleted = parent?.fields.find((f) => f.rule.kind === 'boolean' && f.rule.deletedFlag === true)?.column
  const selected = (c: string, f: FieldSpec | undefined): string => {
    if (ref?.cascadeDelete !== true || deleted === undefined || f?.merge === undefined) return `v.${c}`
    return f.merge === 'sticky'
      ? `v.${c} OR ${alias}.${deleted}`
      : `GREATEST(v.${c}, CASE WHEN ${alias}.${deleted} THEN ${alias}.${c} END)`
  }
  const select =
    parent === undefined
      ? 'v.*'
      : [
          'v.id',
          ...spec.fields.map((f) => selected(f.column, f)),
          `v.${VERSION_COLUMN}`,
          `v.${LAST_EVENT_COLUMN}`,
        ].join(', ')
  const join =
    parent === undefined
      ? ''
      : `\nJOIN ${parent.table} ${alias} ON ${alias}.id = v.${spec.fields.find((f) => f.field === ref!.field)!.column}`
  const set = columns
    .slice(1)
    .map((c) => {
      const f = spec.fields.find((x) => x.column === c)
      if (f?.merge === 'sticky') return `  ${c} = ${t}.${c} OR EXCLUDED.${c}`
      if (f?.merge === 'greatest') return `  ${c} = GREATEST(${t}.${c}, EXCLUDED.${c})`
      return `  ${c} = EXCLUDED.${c}`
    })
    .join(',\n')
  return `INSERT INTO ${t} (${columns.join(', ')})
SELECT ${select}
FROM unnest(${params})
     AS v (${columns.join(', ')})${join}
WHERE v.version <= ${MAX_VERSION_JUMP} OR EXISTS (SELECT 1 FROM ${t} x WHERE x.id = v.id)
ON CONFLICT (id) DO UPDATE SET
${set}
WHERE ${t}.version < EXCLUDED.version AND EXCLUDED.version <= ${t}.version + ${MAX_VERSION_JUMP}
RETURNING id`
}

const UPSERTS = new Map(ENTITIES.map((spec) => [spec.entity, upsertText(spec)]))

// One array literal of a field's values, by its rule: free text quoted, booleans as t/f, decimals as their text (the
// numeric column gets exactly the decimal that was validated, no float formatting surprises), the rest as they are.
function fieldArray(f: FieldSpec, events: readonly AnyEvent[]): string {
  const values = events.map((e) => (e as unknown as Record<string, unknown>)[f.field])
  switch (f.rule.kind) {
    case 'text':
      return textArray(values as string[])
    case 'boolean':
      return booleanArray(values as boolean[])
    case 'money':
      return plainArray(values.map((v) => String(v)))
    default:
      return plainArray(values as (string | number)[])
  }
}

/**
 * One upsert for a batch of events of `spec` (reduce them first: ids must be unique). Only moves a row forward
 * (stored version < event version <= stored + MAX_VERSION_JUMP); 'sticky' columns stay set, 'greatest' ones never
 * go back; with a reference, rows whose parent is missing are skipped, not failed. RETURNING lists the ids actually
 * written, the rest were stale, too far ahead or without their parent (buildExistingQuery tells which).
 */
export function buildUpsert(spec: EntitySpec, events: readonly AnyEvent[]): Statement {
  const ids = events.map((e) => (e as unknown as Record<string, string>)[spec.keyField])
  return {
    name: `cdc_upsert_${spec.table}_v1`,
    text: UPSERTS.get(spec.entity) ?? upsertText(spec),
    values: [
      plainArray(ids),
      ...spec.fields.map((f) => fieldArray(f, events)),
      plainArray(events.map((e) => e.version)),
      plainArray(events.map((e) => e.event_id)),
    ],
  }
}

/**
 * Share-locks the parent rows a batch refers to, in id order, before its upsert. Without it a child inserted while
 * its parent's soft delete commits is missed by both sides: the upsert's JOIN still sees the parent live, and the
 * trigger's UPDATE of that parent's children cannot see the uncommitted child. FOR SHARE conflicts with the parent
 * upsert's row lock, so one transaction waits for the other and its next statement (a new snapshot under READ
 * COMMITTED) sees the other's result. Parents are upserted in id order too (reduceBatch), so the two cannot
 * deadlock over them.
 */
export function buildLockParentsQuery(parent: EntitySpec, parentIds: readonly string[]): Statement {
  return {
    name: `cdc_lock_${parent.table}_v1`,
    text: `SELECT 1 FROM ${parent.table} WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE`,
    values: [plainArray([...new Set(parentIds)].sort())],
  }
}

/**
 * Versions of the given rows, to tell stale events (row at a version >= the event's) from versions too far ahead
 * and (with a reference) missing parents.
 */
export function buildExistingQuery(spec: EntitySpec, ids: readonly string[]): Statement {
  return {
    name: `cdc_existing_${spec.table}_v1`,
    text: `SELECT id, version FROM ${spec.table} WHERE id = ANY($1::uuid[])`,
    values: [plainArray(ids)],
  }
}

/** Columns of the tables, for checkSchema. */
export const SCHEMA_QUERY = `SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name IN (${ENTITIES.map((s) => `'${s.table}'`).join(', ')})`

/** Whether the soft-delete trigger exists on users. */
export const TRIGGER_QUERY = `SELECT 1 FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.oid = to_regclass('users') AND t.tgname = $1 AND NOT t.tgisinternal`

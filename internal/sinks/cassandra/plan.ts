// Plans the Cassandra writes of a batch of row changes of one source table. Pure: no I/O.
//
// Per primary key, only the change with the highest write timestamp is written (the batch is reduced): Cassandra
// would keep only its effect anyway, since every change writes every column (or deletes the row) with its own
// timestamp. orders_by_user needs one more thing: each user_id the order had in the batch (before- and after-images)
// gets a write at the winning change's timestamp, an upsert for the user the order belongs to in the end and a
// delete for every other one, so an order moved to another user (or deleted) leaves no row behind under the old
// user. The before-image carries the old user_id (REPLICA IDENTITY FULL).
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { CdcRow, RowChange } from '../../model/index.js'
import { coerceRow, coerceValue, type BoundValue } from './coerce.js'
import { TABLES, type SourceTable, type TargetTable } from './tables.js'
import { writeTimestampOf } from './write-timestamp.js'

/** A row change ready to plan: its message's index in the batch, the change and its write timestamp. */
export interface PlannedChange {
  index: number
  change: RowChange
  timestamp: bigint
  /** The primary key (id) of the source row. */
  id: string
  /** The after-image converted for the source table's Cassandra table (null for a delete). */
  values: Record<string, BoundValue> | null
}

/** One write: an upsert of every column, or a delete of a row, at a timestamp. */
export type Write =
  | { kind: 'upsert'; table: TargetTable; timestamp: bigint; values: Record<string, BoundValue> }
  | { kind: 'delete'; table: TargetTable; timestamp: bigint; key: Record<string, BoundValue> }

/** The writes of one primary key and the messages they settle. */
export interface KeyPlan {
  id: string
  /** Indexes (in the batch) of every change of this key: the winner and those it supersedes. */
  indexes: number[]
  winner: PlannedChange
  writes: Write[]
  /** Set when an orders_by_user row might be left behind: an update or delete without a before-image. */
  warning?: string
}

const imageOf = (c: RowChange): CdcRow | null => (c.op === 'd' ? c.before : c.after)

/**
 * Checks one change and computes its write timestamp and primary key. Throws VALIDATION_ERROR for a change that
 * cannot be written (no LSN, no id, a value that does not fit its column): that message alone is dead-lettered.
 */
export function prepareChange(table: SourceTable, index: number, change: RowChange): PlannedChange {
  const timestamp = writeTimestampOf(change)
  const rawId = imageOf(change)?.id ?? change.before?.id ?? change.key?.id
  const id = coerceValue('id', 'uuid', rawId ?? null)
  if (typeof id !== 'string') throw new PipelineError(ErrorCodes.VALIDATION_ERROR, 'the change has no primary key id')
  // The Kafka key must name the same row (as the PostgreSQL sink checks): Debezium partitions by key, so a change
  // under another row's key is ordered against the wrong row's changes.
  const keyId = change.key?.id
  if (keyId === undefined || keyId === null) {
    throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `the change has no key; the key must be the row's id (${id})`)
  }
  if (typeof keyId !== 'string' || keyId.toLowerCase() !== id) {
    throw new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      `the key's id ${JSON.stringify(keyId).slice(0, 60)} is not the row's id (${id})`,
    )
  }
  // Convert now what the writes will use, so that a value that does not fit fails this message, not the batch:
  // the whole after-image, and the before-image's user_id (orders_by_user).
  const values = change.after ? coerceRow(TABLES[table], change.after) : null
  if (table === 'orders') userIdOf(change.before)
  return { index, change, timestamp, id, values }
}

// The user_id of an image, or undefined when the image does not say (no image, or a key-only before-image).
function userIdOf(image: CdcRow | null): string | undefined {
  const v = image?.user_id
  return v === undefined || v === null ? undefined : (coerceValue('user_id', 'uuid', v) as string)
}

/** Groups changes by primary key (in batch order) and plans the writes of each key. */
export function planWrites(table: SourceTable, changes: readonly PlannedChange[]): KeyPlan[] {
  const byId = new Map<string, PlannedChange[]>()
  for (const c of changes) {
    const list = byId.get(c.id)
    if (list) list.push(c)
    else byId.set(c.id, [c])
  }
  const plans: KeyPlan[] = []
  for (const [id, list] of byId) {
    // The highest timestamp wins; on a tie (a redelivered duplicate) the later message.
    const winner = list.reduce((best, c) => (c.timestamp >= best.timestamp ? c : best))
    const plan: KeyPlan = { id, indexes: list.map((c) => c.index), winner, writes: [] }
    const { change, timestamp, values } = winner
    if (change.op === 'd') plan.writes.push({ kind: 'delete', table, timestamp, key: { id } })
    else plan.writes.push({ kind: 'upsert', table, timestamp, values: values! })

    if (table === 'orders') {
      const finalUser = change.op === 'd' ? undefined : userIdOf(change.after)
      const users = new Set<string>()
      for (const c of list) {
        for (const image of [c.change.before, c.change.after]) {
          const u = userIdOf(image)
          if (u !== undefined) users.add(u)
        }
        if (c.change.op !== 'c' && c.change.op !== 'r' && userIdOf(c.change.before) === undefined) {
          plan.warning =
            `order ${id}: ${c.change.op === 'd' ? 'delete' : 'update'} without a before-image (is REPLICA IDENTITY ` +
            'FULL set on orders?): orders_by_user may keep a row under the old user'
        }
      }
      for (const u of users) {
        if (u === finalUser) {
          plan.writes.push({
            kind: 'upsert',
            table: 'orders_by_user',
            timestamp,
            // orders_by_user has the same columns as orders.
            values: values!,
          })
        } else {
          plan.writes.push({ kind: 'delete', table: 'orders_by_user', timestamp, key: { user_id: u, id } })
        }
      }
    }
    plans.push(plan)
  }
  return plans
}

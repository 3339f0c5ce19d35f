// Plans the Cassandra writes of a batch of row changes of one source table. Pure: no I/O.
//
// Per primary key, only the change with the highest write timestamp is written (the batch is reduced): Cassandra
// would keep only its effect anyway, since every change writes every column (or deletes the row) with its own
// timestamp. A query table (orders_by_user, keyed by another column of the row) needs one more thing: each key the
// row had in the batch (before- and after-images) gets a write at the winning change's timestamp, an upsert for the
// key the row has in the end and a delete for every other one, so an order moved to another user (or deleted)
// leaves no row behind under the old user. The before-image carries the old key (REPLICA IDENTITY FULL).
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { CdcRow, RowChange } from '../../model/index.js'
import { coerceRow, coerceValue, type BoundValue } from './coerce.js'
import { coerceDerivedValue } from './derived.js'
import type { MappedType } from './type-map.js'
import { reducePerKey, specOfTable } from '../../model/index.js'
import { TARGETS_OF, primaryKeyOf, type SourceTable, type TableSpec, type TargetTable } from './tables.js'
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
  /** Set when a query table's row might be left behind: an update or delete without a before-image. */
  warning?: string
}

const imageOf = (c: RowChange): CdcRow | null => (c.op === 'd' ? c.before : c.after)

/**
 * Checks one change and computes its write timestamp and primary key. Throws VALIDATION_ERROR for a change that
 * cannot be written (no LSN, no id, a value that does not fit its column): that message alone is dead-lettered.
 * `added`: the columns added at run time (not in the entity definition), with their mapping.
 */
export function prepareChange(
  table: SourceTable,
  index: number,
  change: RowChange,
  added: ReadonlyMap<string, MappedType> = new Map(),
): PlannedChange {
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
  // the whole after-image, and the before-image's query-table keys (orders_by_user's user_id).
  const [own, ...queryTables] = targetsOf(table)
  const values = change.after ? coerceRow(own, change.after) : null
  // Columns added in PostgreSQL after the entity was defined (schema-evolve.ts added them to every target table):
  // written when the after-image has them, left alone when it does not (a change from before the ADD COLUMN).
  if (values !== null) {
    for (const [column, mapped] of added) {
      if (Object.prototype.hasOwnProperty.call(change.after, column)) {
        values[column] = coerceDerivedValue(column, mapped, change.after![column]) as BoundValue
      }
    }
  }
  for (const q of queryTables) keyOf(q, change.before)
  return { index, change, timestamp, id, values }
}

function targetsOf(table: SourceTable): readonly TableSpec[] {
  const targets = TARGETS_OF[table]
  if (targets === undefined) throw new PipelineError(ErrorCodes.CONFIG_ERROR, `table '${table}' is not replicated`)
  return targets
}

// The primary key of a query table's row in an image, or undefined when the image does not say (no image, or a
// key-only before-image).
function keyOf(q: TableSpec, image: CdcRow | null): Record<string, BoundValue> | undefined {
  if (image === null) return undefined
  const key: Record<string, BoundValue> = {}
  for (const c of primaryKeyOf(q)) {
    const v = image[c]
    if (v === undefined || v === null) return undefined
    key[c] = coerceValue(c, q.columns[c], v, q.numeric?.[c])
  }
  return key
}

const keyText = (key: Record<string, BoundValue>): string => JSON.stringify(Object.values(key).map(String))

/** Groups changes by primary key (in batch order) and plans the writes of each key. */
export function planWrites(table: SourceTable, changes: readonly PlannedChange[]): KeyPlan[] {
  const [own, ...queryTables] = targetsOf(table)
  const entity = specOfTable(table)?.entity ?? table
  const byId = reducePerKey(
    changes.map((c) => [c]),
    ([c]) => c.id,
    (kept, next) => kept.concat(next),
  )
  const plans: KeyPlan[] = []
  for (const [id, list] of byId) {
    // The highest timestamp wins; on a tie (a redelivered duplicate) the later message.
    const winner = list.reduce((best, c) => (c.timestamp >= best.timestamp ? c : best))
    const plan: KeyPlan = { id, indexes: list.map((c) => c.index), winner, writes: [] }
    const { change, timestamp, values } = winner
    if (change.op === 'd') plan.writes.push({ kind: 'delete', table: own.name, timestamp, key: { id } })
    else plan.writes.push({ kind: 'upsert', table: own.name, timestamp, values: values! })

    for (const q of queryTables) {
      const finalKey = change.op === 'd' ? undefined : keyOf(q, change.after)
      const keys = new Map<string, Record<string, BoundValue>>()
      for (const c of list) {
        for (const image of [c.change.before, c.change.after]) {
          const k = keyOf(q, image)
          if (k !== undefined) keys.set(keyText(k), k)
        }
        if (c.change.op !== 'c' && c.change.op !== 'r' && keyOf(q, c.change.before) === undefined) {
          const owner = q.partitionKey.map((p) => p.replace(/_id$/, '')).join(', ')
          plan.warning =
            `${entity} ${id}: ${c.change.op === 'd' ? 'delete' : 'update'} without a before-image (is REPLICA ` +
            `IDENTITY FULL set on ${table}?): ${q.name} may keep a row under the old ${owner}`
        }
      }
      const finalText = finalKey === undefined ? undefined : keyText(finalKey)
      for (const [text, key] of keys) {
        // A query table has the same columns as the entity's own.
        if (text === finalText) plan.writes.push({ kind: 'upsert', table: q.name, timestamp, values: values! })
        else plan.writes.push({ kind: 'delete', table: q.name, timestamp, key })
      }
    }
    plans.push(plan)
  }
  return plans
}

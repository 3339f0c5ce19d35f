// Which Redis keys a row change touches, and at which version. Pure: no I/O.
//
// Key layout (README: The cache):
//   cdc:<table>:<id>                 one row of an entity's table (cdc:users:<id>, cdc:orders:<id>, cdc:products:<id>)
//   cdc:<parent>-<table>:<parent id> the list of a parent's rows, for an entity that references another
//                                    (orders.user_id -> users: cdc:user-orders:<user_id>)
//   cdc:~truncated:<table>           a string: the version of the table's last TRUNCATE (older changes refused)
// Every key is a hash: `v` the version of the change that last wrote it (20 decimal digits, so that comparing the
// strings compares the numbers), `row` the row as JSON (--mode refresh, or a fill by a reader), `deleted` 1 for a
// tombstone, `ref` the row's parent id (so that a later change without a before-image still finds the old list).
//
// The version is the Cassandra sink's write timestamp of the change (write-timestamp.ts): the LSN for a snapshot
// row, 2^62 + the LSN for a streamed change, so a snapshot row never overwrites a streamed change of the same row.
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { CdcRow, CdcValue, RowChange, TruncateChange } from '../../model/index.js'
import { specOfTable, type EntitySpec } from '../../model/index.js'
import { writeTimestampOf } from '../cassandra/write-timestamp.js'

/** The two modes: delete the cached row (readers fill it again from PostgreSQL), or write the new row. */
export const CACHE_MODES = ['invalidate', 'refresh'] as const
export type CacheMode = (typeof CACHE_MODES)[number]

/** The prefix of every key the sink writes. */
export const KEY_PREFIX = 'cdc:'

/** The pub/sub channel every applied change is announced on: {"table","id","version"} JSON. */
export const INVALIDATION_CHANNEL = 'cdc:invalidations'

/** Digits of a version string: 2^63 has 19; one more keeps the comparison by string right with room to spare. */
export const VERSION_DIGITS = 20

/** The key of one row. */
export const rowKey = (table: string, id: string): string => `${KEY_PREFIX}${table}:${id}`

/** The name of the list of a parent's rows of an entity that references it (orders -> 'user-orders'), or undefined. */
export function listNameOf(spec: EntitySpec): string | undefined {
  return spec.reference === undefined ? undefined : `${spec.reference.entity}-${spec.table}`
}

/**
 * The key of a table's truncate mark: the version of the last TRUNCATE applied (cdc:~truncated:<table>; '~' is in no
 * table or list name the definitions give).
 */
export const truncatedKey = (table: string): string => `${KEY_PREFIX}~truncated:${table}`

/** The key of a parent's list (cdc:user-orders:<user_id>). */
export const listKey = (list: string, parentId: string): string => `${KEY_PREFIX}${list}:${parentId}`

/** The version of a change as stored and compared in Redis: its write timestamp, zero-padded to 20 digits. */
export function versionOf(change: Pick<RowChange | TruncateChange, 'op' | 'source'>): string {
  return writeTimestampOf(change).toString().padStart(VERSION_DIGITS, '0')
}

/** What the script does with the row's key. */
export type CacheAction = 'set' | 'invalidate' | 'delete'

/** One guarded write: the script's arguments, and what a message says of it. */
export interface CachePlan {
  table: string
  id: string
  key: string
  version: string
  action: CacheAction
  /** The row as JSON (set only). */
  row?: string
  /** The row's parent id after the change ('' when it has none or was deleted). */
  ref: string
  /** The list the entity's rows are in (user-orders), or undefined. */
  list?: string
  /** Parent ids whose lists the change touches as its images say (the old and the new user of an order). */
  listIds: string[]
  /** Set when an update or delete has no before-image to tell the old parent. */
  warning?: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function idText(value: CdcValue | undefined, what: string): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string' && UUID.test(value)) return value.toLowerCase()
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  if (typeof value === 'bigint') return value.toString()
  throw new PipelineError(
    ErrorCodes.VALIDATION_ERROR,
    `${what} ${JSON.stringify(String(value)).slice(0, 60)} is not an id`,
  )
}

/** A row image as JSON: bigints as decimal strings, bytes as base64, everything else as Debezium gave it. */
export function rowJson(row: CdcRow): string {
  return JSON.stringify(row, (_k, v: unknown) =>
    typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
  )
}

/**
 * The guarded write of one row change of `table` (a table with an entity definition). Throws VALIDATION_ERROR for
 * a change that cannot be written (no LSN, no id, the Kafka key naming another row): that message alone is
 * dead-lettered.
 */
export function planChange(table: string, change: RowChange, mode: CacheMode): CachePlan {
  const spec = specOfTable(table)
  if (spec === undefined) throw new PipelineError(ErrorCodes.CONFIG_ERROR, `table '${table}' has no entity definition`)
  const version = versionOf(change)
  const image = change.op === 'd' ? change.before : change.after
  const id = idText(image?.id ?? change.before?.id ?? change.key?.id, 'the id')
  if (id === undefined) throw new PipelineError(ErrorCodes.VALIDATION_ERROR, 'the change has no primary key id')
  const keyId = idText(change.key?.id, "the key's id")
  if (keyId !== id) {
    throw new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      keyId === undefined
        ? `the change has no key; the key must be the row's id (${id})`
        : `the key's id ${keyId} is not the row's id (${id})`,
    )
  }
  const plan: CachePlan = {
    table,
    id,
    key: rowKey(table, id),
    version,
    action: change.op === 'd' ? 'delete' : mode === 'refresh' ? 'set' : 'invalidate',
    ref: '',
    listIds: [],
  }
  if (plan.action === 'set') plan.row = rowJson(change.after!)
  const list = listNameOf(spec)
  if (list !== undefined) {
    const field = spec.fields.find((f) => f.field === spec.reference!.field)?.column ?? spec.reference!.field
    plan.list = list
    const before = idText(change.before?.[field], `${field}`)
    const after = change.op === 'd' ? undefined : idText(change.after?.[field], `${field}`)
    plan.ref = after ?? ''
    plan.listIds = [
      ...new Set([before, idText(change.after?.[field], field)].filter((x): x is string => x !== undefined)),
    ].sort()
    if ((change.op === 'u' || change.op === 'd') && before === undefined) {
      plan.warning =
        `${spec.entity} ${id}: ${change.op === 'd' ? 'delete' : 'update'} without a before-image (is REPLICA IDENTITY ` +
        `FULL set on ${table}?): the old ${list} list is found only through the parent id the cache stored`
    }
  }
  return plan
}

// The pure parts of npm run resnapshot (cmd/resnapshot): which tables, the execute-snapshot signal, Debezium's
// notifications about it, and the reconcile pass's choice of Cassandra rows to delete.
import { configError } from '../config/index.js'
import { ErrorCodes, PipelineError } from '../errors/index.js'
import { parseQualifiedName, SIGNAL_TABLE, type QualifiedName } from '../sinks/cassandra/catalog.js'

/** The data column of public.debezium_signal is varchar(2048). */
export const SIGNAL_DATA_MAX = 2048

/** --table entries (users, orders, products, public.NAME; comma lists already split), each once, in order. */
export function parseTables(entries: readonly string[]): QualifiedName[] {
  const out: QualifiedName[] = []
  for (const e of entries) {
    const name = parseQualifiedName(e, '--table entry')
    if (name.schema === SIGNAL_TABLE.schema && name.table === SIGNAL_TABLE.table) {
      throw configError(`--table ${e}: the signal table is not replicated`)
    }
    if (!out.some((o) => o.schema === name.schema && o.table === name.table)) out.push(name)
  }
  if (out.length === 0) throw configError('give at least one --table (users, orders, products or public.NAME)')
  return out
}

export const qualified = (n: QualifiedName): string => `${n.schema}.${n.table}`

/**
 * The data of an execute-snapshot signal (type incremental) for the tables, with --where as each table's
 * additional condition. Throws CONFIG_ERROR when it does not fit the signal table's data column.
 */
export function signalData(tables: readonly QualifiedName[], where: string | undefined): string {
  const collections = tables.map(qualified)
  const data: Record<string, unknown> = { 'data-collections': collections, type: 'incremental' }
  if (where !== undefined && where.trim() !== '') {
    data['additional-conditions'] = collections.map((c) => ({ 'data-collection': c, filter: where }))
  }
  const text = JSON.stringify(data)
  if (text.length > SIGNAL_DATA_MAX) {
    throw configError(
      `the signal is ${text.length} characters, over the signal table's ${SIGNAL_DATA_MAX}: shorten --where or signal fewer tables at once`,
    )
  }
  return text
}

/** What one of Debezium's notifications (the topic cdc.notifications) says about our snapshot. */
export type SnapshotProgress =
  | { kind: 'other' }
  | { kind: 'progress'; line: string }
  | { kind: 'scanned'; table: string; status: string; rows: string; line: string }
  | { kind: 'completed'; line: string }
  | { kind: 'aborted'; line: string }

const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '?')

/** Reads a notification's JSON value; anything not about the signal `signalId` is 'other'. */
export function snapshotProgress(value: string | null | undefined, signalId: string): SnapshotProgress {
  if (value === null || value === undefined) return { kind: 'other' }
  let n: unknown
  try {
    n = JSON.parse(value)
  } catch {
    return { kind: 'other' }
  }
  if (typeof n !== 'object' || n === null) return { kind: 'other' }
  const { id, type, aggregate_type: aggregate, additional_data: extra } = n as Record<string, unknown>
  if (id !== signalId || aggregate !== 'Incremental Snapshot') return { kind: 'other' }
  const data = (typeof extra === 'object' && extra !== null ? extra : {}) as Record<string, unknown>
  switch (type) {
    case 'IN_PROGRESS':
      return {
        kind: 'progress',
        line: `${text(data.current_collection_in_progress)}: chunk ${text(data.chunk_index)} of ${text(data.total_chunks)}`,
      }
    case 'TABLE_SCAN_COMPLETED': {
      const table = text(data.scanned_collection)
      const status = text(data.status)
      const rows = text(data.total_rows_scanned)
      return { kind: 'scanned', table, status, rows, line: `${table}: ${rows} rows read, ${status}` }
    }
    case 'COMPLETED':
      return { kind: 'completed', line: 'snapshot completed' }
    case 'ABORTED':
      return { kind: 'aborted', line: 'snapshot aborted (a stop-snapshot signal)' }
    default:
      return { kind: 'other' }
  }
}

/** One Cassandra row as the reconcile pass reads it: its key and the highest WRITETIME of its cells. */
export interface StoredRow {
  /** The key columns' values as text (id; user_id and id for orders_by_user). */
  key: string[]
  /** The highest WRITETIME of the row's regular cells, or null when all are null (a row of its primary key only). */
  writeTime: bigint | null
}

/**
 * The rows to delete: those whose key `exists` says PostgreSQL does not have, each at its own write time (a delete
 * wins a tie, and any newer write wins over it). A row without a cell write time gets `fallback` (wall-clock
 * microseconds: below both write-timestamp bands, so any write of the pipeline wins over the delete).
 */
export function staleRows(
  rows: readonly StoredRow[],
  exists: (key: readonly string[]) => boolean,
  fallback: bigint,
): { key: string[]; timestamp: bigint }[] {
  return rows.filter((r) => !exists(r.key)).map((r) => ({ key: r.key, timestamp: r.writeTime ?? fallback }))
}

/** The highest of a row's WRITETIME values (null cells have none). */
export function highestWriteTime(values: readonly (bigint | null | undefined)[]): bigint | null {
  let max: bigint | null = null
  for (const v of values) if (v !== null && v !== undefined && (max === null || v > max)) max = v
  return max
}

/** The connector's status (Connect's GET /connectors/NAME/status): throws UNREACHABLE unless it and its tasks run. */
export function checkConnectorStatus(name: string, status: unknown): void {
  const s = (typeof status === 'object' && status !== null ? status : {}) as {
    connector?: { state?: unknown }
    tasks?: { state?: unknown }[]
  }
  const connector = String(s.connector?.state ?? 'unknown')
  const tasks = Array.isArray(s.tasks) ? s.tasks.map((t) => String(t?.state ?? 'unknown')) : []
  if (connector !== 'RUNNING' || tasks.length === 0 || tasks.some((t) => t !== 'RUNNING')) {
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `connector ${name} is not RUNNING (connector ${connector}, tasks ${tasks.join(',') || 'none'}): no snapshot signalled`,
    )
  }
}

/** The tables of --table that the publication lacks: CONFIG_ERROR naming them. */
export function checkPublished(
  tables: readonly QualifiedName[],
  published: ReadonlySet<string>,
  publication: string,
): void {
  const missing = tables.map(qualified).filter((t) => !published.has(t))
  if (missing.length > 0) {
    throw configError(
      `${missing.join(', ')} not in the publication ${publication} (npm run cdc:add-table adds a table): no snapshot signalled`,
    )
  }
}

/** A Cassandra table to reconcile: its key columns, and the PostgreSQL query of the keys that exist (as text). */
export interface ReconcileTarget {
  table: string
  keys: string[]
  pgKeysSql: string
}

/**
 * The Cassandra tables a PostgreSQL table's rows are in: users and orders (orders_by_user too, by user and order)
 * from their entity definitions; any other from its derived definition (`derived`: its Cassandra name and key).
 */
export function reconcileTargets(
  t: QualifiedName,
  derived?: { target: string; primaryKey: readonly string[] },
): ReconcileTarget[] {
  const full = qualified(t)
  if (full === 'public.users') return [{ table: 'users', keys: ['id'], pgKeysSql: 'SELECT id::text FROM public.users' }]
  if (full === 'public.orders') {
    return [
      { table: 'orders', keys: ['id'], pgKeysSql: 'SELECT id::text FROM public.orders' },
      {
        table: 'orders_by_user',
        keys: ['user_id', 'id'],
        pgKeysSql: 'SELECT user_id::text, id::text FROM public.orders WHERE user_id IS NOT NULL',
      },
    ]
  }
  if (derived === undefined) throw configError(`${full}: no definition to reconcile its Cassandra table by`)
  const cols = derived.primaryKey.map((k) => `"${k}"::text AS "${k}"`).join(', ')
  return [{ table: derived.target, keys: [...derived.primaryKey], pgKeysSql: `SELECT ${cols} FROM ${full}` }]
}

/** system_schema.columns rows -> the regular columns WRITETIME can read (not non-frozen collections). */
export function writeTimeColumns(rows: readonly { column_name: unknown; kind: unknown; type: unknown }[]): string[] {
  return rows
    .filter((r) => r.kind === 'regular' && !/^(list|set|map)</.test(String(r.type)))
    .map((r) => String(r.column_name))
}

const cqlName = (c: string): string => `"${c}"`

/** The reconcile pass's scan (keys and each column's WRITETIME as wt0, wt1, ...) and its delete. */
export function reconcileCql(
  keyspace: string,
  target: ReconcileTarget,
  columns: readonly string[],
): { select: string; del: string } {
  const from = `${cqlName(keyspace)}.${cqlName(target.table)}`
  return {
    select:
      `SELECT ${target.keys.map(cqlName).join(', ')}` +
      columns.map((c, i) => `, WRITETIME(${cqlName(c)}) AS wt${i}`).join('') +
      ` FROM ${from}`,
    del: `DELETE FROM ${from} USING TIMESTAMP ? WHERE ${target.keys.map((k) => `${cqlName(k)} = ?`).join(' AND ')}`,
  }
}

/** A key as one string (the columns' text joined by NUL), to compare Cassandra's with PostgreSQL's. */
export const keyText = (values: readonly unknown[]): string => values.map((v) => String(v)).join('\u0000')

/** What the reconcile pass needs of the two stores. */
export interface ReconcileStores {
  /** Calls onRow with each Cassandra row's column getter (every page). */
  scan(select: string, onRow: (get: (column: string) => unknown) => void): Promise<void>
  /** The rows of a PostgreSQL query, each as its column values in order. */
  pgRows(sql: string): Promise<unknown[][]>
  execute(cql: string, params: unknown[]): Promise<void>
}

/**
 * Deletes the Cassandra rows of `target` whose key PostgreSQL does not have, each at its own write time. Cassandra is
 * read first and PostgreSQL after: a row PostgreSQL lacks after the scan is gone there (or never was), so a row
 * inserted meanwhile is never deleted.
 */
export async function reconcileTable(
  stores: ReconcileStores,
  keyspace: string,
  target: ReconcileTarget,
  columns: readonly string[],
  nowMicros: bigint,
): Promise<{ scanned: number; deleted: number }> {
  const { select, del } = reconcileCql(keyspace, target, columns)
  const rows: (StoredRow & { values: unknown[] })[] = []
  await stores.scan(select, (get) => {
    const values = target.keys.map((k) => get(k))
    const wts = columns.map((_, i) => {
      const v = get(`wt${i}`)
      return v === null || v === undefined ? null : BigInt(String(v))
    })
    rows.push({ key: values.map((v) => String(v)), values, writeTime: highestWriteTime(wts) })
  })
  const existing = new Set((await stores.pgRows(target.pgKeysSql)).map((r) => keyText(r)))
  const values = new Map(rows.map((r) => [keyText(r.key), r.values]))
  const stale = staleRows(rows, (k) => existing.has(keyText(k)), nowMicros)
  for (const s of stale) await stores.execute(del, [s.timestamp, ...values.get(keyText(s.key))!])
  return { scanned: rows.length, deleted: stale.length }
}

/** Follows the notifications of one signal: prints progress (at most every 5 s), scans and the end. */
export class SnapshotWatch {
  readonly failedScans: string[] = []
  #lastProgress = -Infinity

  constructor(
    private readonly signalId: string,
    private readonly say: (line: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Feeds one notification's value; 'completed' or 'aborted' once the snapshot ended, else undefined. */
  feed(value: string | null | undefined): 'completed' | 'aborted' | undefined {
    const p = snapshotProgress(value, this.signalId)
    if (p.kind === 'progress') {
      if (this.now() - this.#lastProgress >= 5_000) {
        this.say(p.line)
        this.#lastProgress = this.now()
      }
    } else if (p.kind === 'scanned') {
      this.say(p.line)
      if (p.status !== 'SUCCEEDED') this.failedScans.push(p.line)
    } else if (p.kind === 'completed' || p.kind === 'aborted') {
      this.say(p.line)
      return p.kind
    }
    return undefined
  }
}

const listOf = (v: unknown): string[] =>
  String(v ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')

/**
 * The connector's config (Connect's GET /connectors/NAME/config) must read signals from public.debezium_signal and,
 * for --wait, send its notifications to `notificationTopic`: a connector registered by an older checkout does
 * neither, and the signal would be ignored. CONFIG_ERROR naming the fix otherwise.
 */
export function checkConnectorConfig(name: string, config: unknown, notificationTopic: string | undefined): void {
  const c = (typeof config === 'object' && config !== null ? config : {}) as Record<string, unknown>
  const signal = `${SIGNAL_TABLE.schema}.${SIGNAL_TABLE.table}`
  const fix = 'register it again (npm run stack:up, or configure-debezium.sh)'
  if (!listOf(c['signal.data.collection']).includes(signal)) {
    throw configError(`connector ${name} does not read signals from ${signal}: ${fix}; no snapshot signalled`)
  }
  if (notificationTopic === undefined) return
  if (
    !listOf(c['notification.enabled.channels']).includes('sink') ||
    c['notification.sink.topic.name'] !== notificationTopic
  ) {
    throw configError(
      `connector ${name} does not send its notifications to ${notificationTopic} (--wait reads them): ${fix}, or --no-wait; no snapshot signalled`,
    )
  }
}

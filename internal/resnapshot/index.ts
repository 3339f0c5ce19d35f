// The pure parts of npm run resnapshot (cmd/resnapshot): which tables, the execute-snapshot signal, Debezium's
// notifications about it, and the reconcile pass's choice of Cassandra rows to delete.
import { configError } from '../config/index.js'
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

// A TRUNCATE replicated into Cassandra: every partition of each Cassandra table the PostgreSQL table is written to
// (its own table and its query tables: orders and orders_by_user) is deleted USING TIMESTAMP of the truncate
// (write-timestamp.ts: 2^62 + the truncate's LSN, like any streamed change).
//
// A delete at timestamp T removes only what was written at or below T: every row written by a change from before the
// truncate (a smaller LSN, or a snapshot row in the band below) goes, and every change after it (a larger LSN) wins
// over the tombstone whatever the order in which the two reach Cassandra. Deleting again at the same timestamp (a
// redelivered truncate, a retried batch) changes nothing. Cassandra has no "delete the whole table at timestamp T"
// (TRUNCATE in CQL ignores timestamps and would remove later rows too), so the partitions are found by a scan:
// SELECT DISTINCT of the partition key over token ranges, each range paged, each page's partitions deleted with
// bounded concurrency before the next page is read (memory: one page per range in flight). A partition delete is
// exact here: each of these tables holds only the truncated table's rows (orders_by_user: a user's orders).
//
// The scan sees what Cassandra holds when it runs: the sink applies every change of the batch queued before the
// truncate first (batch-sink.ts makes the truncate a barrier), and drops a change from before the truncate that the
// same sink meets afterwards. A change from before the truncate that another worker writes after the scan passed
// (Debezium's truncate event has no key, so it can land on any partition of the topic) is not deleted: docs/design.md.
import { quoteCql, type DerivedTable } from './derived.js'
import type { TableSpec } from './tables.js'

/** A Cassandra table to empty: its name and partition key columns, as they go into CQL (quoted when derived). */
export interface TruncateTarget {
  table: string
  partitionKey: string[]
  /** The column names in result rows (unquoted). */
  partitionColumns: string[]
}

/** How to run CQL (the sink's client); `pageState` pages a SELECT. */
export interface TruncateExecutor {
  execute(
    query: string,
    params: unknown[],
    options: { prepare: boolean; fetchSize?: number; pageState?: string },
  ): Promise<unknown>
}

export const targetOfSpec = (t: TableSpec): TruncateTarget => ({
  table: t.name,
  partitionKey: [...t.partitionKey],
  partitionColumns: [...t.partitionKey],
})

export const targetOfDerived = (t: DerivedTable): TruncateTarget => ({
  table: quoteCql(t.target),
  partitionKey: t.primaryKey.map(quoteCql),
  partitionColumns: [...t.primaryKey],
})

/** The token ranges a scan is split into (as internal/verify scans: a range passes over few tombstones). */
export const TRUNCATE_RANGES = 512
const FETCH_SIZE = 1_000

/** The token bounds: range i is [bounds[i], bounds[i + 1]), the last one up to the maximum token included. */
export function tokenBounds(parts = TRUNCATE_RANGES): bigint[] {
  const min = -(1n << 63n)
  const step = (1n << 64n) / BigInt(parts)
  return Array.from({ length: parts }, (_, i) => min + step * BigInt(i))
}

/** SELECT DISTINCT of the partition key in one token range (last: no upper bound). */
export function scanCql(keyspace: string, t: TruncateTarget, last: boolean): string {
  const token = `token(${t.partitionKey.join(', ')})`
  return (
    `SELECT DISTINCT ${t.partitionKey.join(', ')} FROM ${keyspace}.${t.table} WHERE ${token} >= ?` +
    (last ? '' : ` AND ${token} < ?`)
  )
}

/** DELETE of a whole partition with a write timestamp (the first bound value), then the partition key. */
export function deletePartitionCql(keyspace: string, t: TruncateTarget): string {
  return (
    `DELETE FROM ${keyspace}.${t.table} USING TIMESTAMP ? WHERE ` + t.partitionKey.map((c) => `${c} = ?`).join(' AND ')
  )
}

interface Page {
  rows?: readonly Record<string, unknown>[]
  pageState?: string | null
}

/**
 * Deletes every partition of every target at `timestamp`. `concurrency` deletes in flight at most (ranges are
 * scanned by a few workers, each deleting its page's partitions in slices). Returns the partitions deleted per
 * table. A failing statement rejects (after the running ones settle): the caller retries the whole truncate.
 */
export async function applyTruncate(
  client: TruncateExecutor,
  keyspace: string,
  targets: readonly TruncateTarget[],
  timestamp: bigint,
  concurrency: number,
  { parts = TRUNCATE_RANGES, fetchSize = FETCH_SIZE }: { parts?: number; fetchSize?: number } = {},
): Promise<Record<string, number>> {
  const deleted: Record<string, number> = {}
  const bounds = tokenBounds(parts)
  const jobs = targets.flatMap((t) => bounds.map((_, i) => ({ t, i })))
  const scanners = Math.max(1, Math.min(4, concurrency, jobs.length))
  const perScanner = Math.max(1, Math.floor(concurrency / scanners))
  let next = 0
  let failure: unknown
  const scanner = async (): Promise<void> => {
    while (failure === undefined && next < jobs.length) {
      const { t, i } = jobs[next++]
      const last = i === bounds.length - 1
      const select = scanCql(keyspace, t, last)
      const del = deletePartitionCql(keyspace, t)
      const params = last ? [bounds[i]] : [bounds[i], bounds[i + 1]]
      let pageState: string | undefined
      try {
        do {
          const page = (await client.execute(select, params, {
            prepare: true,
            fetchSize,
            ...(pageState !== undefined ? { pageState } : {}),
          })) as Page
          const rows = page.rows ?? []
          for (let k = 0; k < rows.length && failure === undefined; k += perScanner) {
            const settled = await Promise.allSettled(
              rows
                .slice(k, k + perScanner)
                .map((r) =>
                  client.execute(del, [timestamp, ...t.partitionColumns.map((c) => r[c])], { prepare: true }),
                ),
            )
            const rejected = settled.find((s) => s.status === 'rejected')
            if (rejected) throw rejected.reason
          }
          deleted[t.table] = (deleted[t.table] ?? 0) + rows.length
          pageState = page.pageState ?? undefined
        } while (pageState !== undefined && failure === undefined)
      } catch (err) {
        failure ??= err
      }
    }
  }
  await Promise.all(Array.from({ length: scanners }, scanner))
  if (failure !== undefined) throw failure
  return deleted
}

// A whole-table compare in bounded memory. Both sides are streamed once and summarised per bucket of keys (a row
// count and a digest of every row's key and columns); only the buckets whose summaries differ are read again, a
// group of buckets at a time within a row budget, and compared row by row. Equal tables hold no rows at all; a few
// differences hold the rows of a few buckets. Like a Merkle-tree repair, without the tree: one level of buckets.
import { createHash } from 'node:crypto'
import { diffRows, emptyComparison, summarise, type Row, type TableComparison } from './diff.js'

/** Streams every row of one side of a table to onRow, normalised (columns as text). */
export type Scan = (onRow: (r: Row) => void) => Promise<void>

export interface BucketedTable {
  /** The table's name, as the report shows it. */
  name: string
  /** The columns compared, in a fixed order (the expected side's columns). */
  columns: readonly string[]
  /** A row's key in the table (its primary key values). */
  key: (r: Row) => string
  /** PostgreSQL's side: what the table must hold. */
  expected: Scan
  /** Cassandra's side: what it holds. */
  actual: Scan
}

export interface BucketedOptions {
  /** Buckets of keys (default 4096): more buckets, fewer rows read again per difference. */
  buckets?: number
  /** Rows (both sides together) held at once while comparing differing buckets row by row (default 200,000). */
  rowBudget?: number
  /** Row-by-row passes at most (each reads both sides again, default 8); buckets left over are reported as such. */
  maxPasses?: number
}

export interface BucketedComparison extends TableComparison {
  /** Buckets whose counts or digests differed. */
  differingBuckets: number
  /** Of those, buckets not compared row by row (maxPasses reached): the counts above are then lower bounds. */
  unexamined: number
  /** Row-by-row passes made. */
  passes: number
  /** The most rows held in memory at once. */
  rowsHeld: number
}

interface Summary {
  count: Uint32Array
  lo: Uint32Array
  hi: Uint32Array
}

// FNV-1a over the key's UTF-16 code units: a cheap, stable bucket for any key.
function bucketOf(key: string, buckets: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % buckets
}

const ABSENT = '\u0000absent'

async function summariseSide(scan: Scan, t: BucketedTable, buckets: number): Promise<Summary> {
  const s: Summary = { count: new Uint32Array(buckets), lo: new Uint32Array(buckets), hi: new Uint32Array(buckets) }
  await scan((r) => {
    const key = t.key(r)
    const b = bucketOf(key, buckets)
    const content = JSON.stringify([key, ...t.columns.map((c) => (c in r ? r[c] : ABSENT))])
    const d = createHash('md5').update(content).digest()
    s.count[b]++
    // Sums (mod 2^32) of two words of each row's digest: independent of the order rows arrive in.
    s.lo[b] = (s.lo[b] + d.readUInt32LE(0)) >>> 0
    s.hi[b] = (s.hi[b] + d.readUInt32LE(4)) >>> 0
  })
  return s
}

/** Compares one table whole, holding at most about `rowBudget` rows (plus one bucket's) at any time. */
export async function compareBucketed(t: BucketedTable, o: BucketedOptions = {}): Promise<BucketedComparison> {
  const buckets = o.buckets ?? 4096
  const budget = o.rowBudget ?? 200_000
  const maxPasses = o.maxPasses ?? 8
  const [want, have] = await Promise.all([summariseSide(t.expected, t, buckets), summariseSide(t.actual, t, buckets)])
  const sum = (a: Uint32Array) => a.reduce((n, v) => n + v, 0)
  const out: BucketedComparison = {
    ...emptyComparison(t.name),
    expected: sum(want.count),
    actual: sum(have.count),
    differingBuckets: 0,
    unexamined: 0,
    passes: 0,
    rowsHeld: 0,
  }
  const pending: number[] = []
  for (let b = 0; b < buckets; b++) {
    if (want.count[b] !== have.count[b] || want.lo[b] !== have.lo[b] || want.hi[b] !== have.hi[b]) pending.push(b)
  }
  out.differingBuckets = pending.length
  while (pending.length > 0 && out.passes < maxPasses) {
    // As many differing buckets as fit in the budget (at least one).
    const group = new Set<number>()
    let size = 0
    while (pending.length > 0) {
      const b = pending[0]
      const n = want.count[b] + have.count[b]
      if (group.size > 0 && size + n > budget) break
      group.add(b)
      size += n
      pending.shift()
    }
    const keep = (into: Map<string, Row>) => (r: Row) => {
      const key = t.key(r)
      if (group.has(bucketOf(key, buckets))) into.set(key, r)
    }
    const expected = new Map<string, Row>()
    const actual = new Map<string, Row>()
    await Promise.all([t.expected(keep(expected)), t.actual(keep(actual))])
    out.passes++
    out.rowsHeld = Math.max(out.rowsHeld, expected.size + actual.size)
    diffRows(out, expected, actual)
  }
  out.unexamined = pending.length
  if (pending.length > 0) {
    const rows = (s: Summary) => pending.reduce((n, b) => n + s.count[b], 0)
    out.problems.push(
      `${t.name}: ${pending.length} more buckets differ (${rows(want)} rows in PostgreSQL, ${rows(have)} in Cassandra), ` +
        `not compared row by row after ${out.passes} passes: the counts are lower bounds`,
    )
  }
  summarise(out)
  return out
}

import { describe, expect, it } from 'vitest'
import { compareBucketed, type BucketedTable, type Scan } from './bucketed.js'
import type { Row } from './diff.js'

const row = (i: number, name = `user ${i}`): Row => ({ id: `id-${String(i).padStart(6, '0')}`, name, n: String(i) })

/** A side that streams the given rows and counts its passes. */
function side(rows: Row[]): Scan & { scans: number } {
  const scan = Object.assign(
    async (onRow: (r: Row) => void) => {
      scan.scans++
      for (const r of rows) onRow(r)
    },
    { scans: 0 },
  )
  return scan
}

const table = (expected: Row[], actual: Row[]): BucketedTable & { expected: ReturnType<typeof side> } => ({
  name: 'users',
  columns: ['id', 'name', 'n'],
  key: (r) => r.id!,
  expected: side(expected),
  actual: side(actual),
})

const ROWS = Array.from({ length: 20_000 }, (_, i) => row(i))

describe('compareBucketed', () => {
  it('equal tables: one pass over each side, no row held, no problem', async () => {
    const t = table(ROWS, [...ROWS].reverse())
    const c = await compareBucketed(t, { rowBudget: 100 })
    expect(c).toMatchObject({ expected: 20_000, actual: 20_000, missing: 0, extra: 0, differing: 0, rowsHeld: 0 })
    expect(c.problems).toEqual([])
    expect(t.expected.scans).toBe(1)
  })

  it('finds every missing, extra and differing row exactly while holding at most the budget and one bucket', async () => {
    const missing = new Set([3, 4_000, 19_999])
    const differing = new Set([10, 11, 7_777, 15_000])
    const actual = ROWS.filter((_, i) => !missing.has(i)).map((r) =>
      differing.has(Number(r.n)) ? { ...r, name: 'hand edited' } : r,
    )
    actual.push(row(50_000), row(50_001))
    const c = await compareBucketed(table(ROWS, actual), { buckets: 4096, rowBudget: 40 })
    expect(c).toMatchObject({ expected: 20_000, actual: 19_999, missing: 3, extra: 2, differing: 4, unexamined: 0 })
    expect(c.differingBuckets).toBeLessThanOrEqual(9)
    // 20,000 rows in 4,096 buckets: about 5 per bucket per side; the budget is the cap plus at most one bucket.
    expect(c.rowsHeld).toBeLessThanOrEqual(40 + 40)
    expect(c.rowsHeld).toBeGreaterThan(0)
    expect(c.problems).toContain(`users id-007777: name PostgreSQL user 7777 Cassandra hand edited`)
    expect(c.problems.at(-1)).toBe('users: 3 missing, 2 extra, 4 differing (of 20000 expected)')
  })

  it('a column absent on one side differs from a null one', async () => {
    const withoutN: Row = { id: row(1).id, name: row(1).name }
    const c = await compareBucketed(table([{ ...row(1), n: null }], [withoutN]))
    expect(c.differing).toBe(1)
  })

  it('stops after maxPasses and says the counts are lower bounds, never that the tables are equal', async () => {
    // Cassandra empty: every bucket differs; a budget of 10 rows and 2 passes cannot examine them all.
    const c = await compareBucketed(table(ROWS, []), { buckets: 1024, rowBudget: 10, maxPasses: 2 })
    expect(c.passes).toBe(2)
    expect(c.unexamined).toBeGreaterThan(0)
    expect(c.unexamined).toBeLessThanOrEqual(c.differingBuckets - 2)
    expect(c.missing).toBeGreaterThan(0)
    expect(c.missing).toBeLessThan(20_000)
    expect(c.problems.some((p) => /more buckets differ .* the counts are lower bounds/.test(p))).toBe(true)
  })

  it('a whole-table loss within the budget is counted exactly in one pass', async () => {
    const c = await compareBucketed(table(ROWS, []), { rowBudget: 200_000 })
    expect(c).toMatchObject({ missing: 20_000, extra: 0, passes: 1, unexamined: 0, rowsHeld: 20_000 })
  })
})

// Row-level differences between what a table must hold (PostgreSQL) and what it holds (Cassandra).

/** A normalised row: every column as text (null as null) so that both stores compare with toEqual. */
export type Row = Record<string, string | null>

/** How one Cassandra table compares to what PostgreSQL says it must hold. */
export interface TableComparison {
  table: string
  expected: number
  actual: number
  missing: number
  extra: number
  differing: number
  /** The first few differences, readable. */
  problems: string[]
}

/** The first differences of each kind a comparison lists. */
const EXAMPLES = 5

export const emptyComparison = (table: string): TableComparison => ({
  table,
  expected: 0,
  actual: 0,
  missing: 0,
  extra: 0,
  differing: 0,
  problems: [],
})

/** Adds the differences between rows expected and rows found (keyed alike) to `t`'s counts and examples. */
export function diffRows(t: TableComparison, expected: Map<string, Row>, actual: Map<string, Row>): void {
  const name = t.table
  for (const [k, e] of expected) {
    const a = actual.get(k)
    if (!a) {
      if (t.missing++ < EXAMPLES)
        t.problems.push(`${name} ${k}: missing in Cassandra (PostgreSQL: ${JSON.stringify(e)})`)
    } else {
      const cols = Object.keys(e).filter((c) => e[c] !== a[c])
      if (cols.length > 0 && t.differing++ < EXAMPLES) {
        t.problems.push(`${name} ${k}: ${cols.map((c) => `${c} PostgreSQL ${e[c]} Cassandra ${a[c]}`).join(', ')}`)
      }
    }
  }
  for (const [k, a] of actual) {
    if (!expected.has(k) && t.extra++ < EXAMPLES) {
      t.problems.push(`${name} ${k}: in Cassandra only: ${JSON.stringify(a)}`)
    }
  }
}

/** Closes a comparison: one line with the totals when anything differs. */
export function summarise(t: TableComparison): void {
  if (t.missing + t.extra + t.differing > 0) {
    t.problems.push(
      `${t.table}: ${t.missing} missing, ${t.extra} extra, ${t.differing} differing (of ${t.expected} expected)`,
    )
  }
}

/** The comparison of two row sets held whole. */
export function diff(name: string, expected: Map<string, Row>, actual: Map<string, Row>): TableComparison {
  const t = { ...emptyComparison(name), expected: expected.size, actual: actual.size }
  diffRows(t, expected, actual)
  summarise(t)
  return t
}

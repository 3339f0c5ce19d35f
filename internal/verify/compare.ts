import type cassandra from 'cassandra-driver'
import type pg from 'pg'

/** Columns compared, per table, in PostgreSQL's names (Cassandra uses the same). */
const USER_COLUMNS = ['id', 'name', 'dob', 'created_at', 'modified_at', 'is_deleted', 'version', 'last_event_id']
const ORDER_COLUMNS = [
  'id',
  'status',
  'user_id',
  'quantity',
  'total_amount',
  'placed_at',
  'modified_at',
  'is_deleted',
  'version',
  'last_event_id',
]

type Row = Record<string, string | null>

/** How one table of Cassandra compares to its PostgreSQL source. */
export interface TableComparison {
  table: string
  postgresRows: number
  cassandraRows: number
  missing: number
  extra: number
  different: number
  /** The first few differences, readable. */
  examples: string[]
}

/** The whole comparison: `matches` only when every table has the same rows with the same values. */
export interface Comparison {
  matches: boolean
  tables: TableComparison[]
}

// One canonical text per value, so PostgreSQL's and Cassandra's driver types compare equal: timestamps at
// Cassandra's millisecond precision, decimals at numeric(10,2)'s scale, dates as YYYY-MM-DD.
function canonical(value: unknown, column: string): string | null {
  if (value === null || value === undefined) return null
  if (value instanceof Date) return String(value.getTime())
  if (column === 'total_amount') return Number(value.toString()).toFixed(2)
  if (column === 'dob' && typeof value === 'object') return value.toString()
  return value.toString().toLowerCase()
}

function toRow(source: Record<string, unknown>, columns: string[]): Row {
  const row: Row = {}
  for (const c of columns) row[c] = canonical(source[c], c)
  return row
}

async function pgRows(pool: pg.Pool, table: string, columns: string[]): Promise<Row[]> {
  // dob as text: node-postgres would turn a date into a local-midnight Date.
  const select = columns.map((c) => (c === 'dob' ? 'dob::text AS dob' : c)).join(', ')
  const { rows } = await pool.query(`SELECT ${select} FROM ${table}`)
  return rows.map((r: Record<string, unknown>) => toRow(r, columns))
}

async function cassandraRows(
  client: cassandra.Client,
  keyspace: string,
  table: string,
  columns: string[],
): Promise<Row[]> {
  const rows: Row[] = []
  const query = `SELECT ${columns.join(', ')} FROM ${keyspace}.${table}`
  let pageState: string | undefined
  do {
    const page = await client.execute(query, [], { prepare: true, fetchSize: 5_000, pageState })
    for (const r of page.rows) rows.push(toRow(r as unknown as Record<string, unknown>, columns))
    pageState = page.pageState ?? undefined
  } while (pageState)
  return rows
}

function compareTable(table: string, expected: Row[], actual: Row[], key: (r: Row) => string): TableComparison {
  const want = new Map(expected.map((r) => [key(r), r]))
  const got = new Map(actual.map((r) => [key(r), r]))
  const result: TableComparison = {
    table,
    postgresRows: want.size,
    cassandraRows: got.size,
    missing: 0,
    extra: 0,
    different: 0,
    examples: [],
  }
  const note = (text: string) => result.examples.length < 5 && result.examples.push(text)
  for (const [k, w] of want) {
    const g = got.get(k)
    if (!g) {
      result.missing++
      note(`${table} ${k}: in PostgreSQL, not in Cassandra`)
      continue
    }
    const diff = Object.keys(w).filter((c) => w[c] !== g[c])
    if (diff.length > 0) {
      result.different++
      note(`${table} ${k}: ${diff.map((c) => `${c} ${w[c]} != ${g[c]}`).join(', ')}`)
    }
  }
  for (const k of got.keys()) {
    if (!want.has(k)) {
      result.extra++
      note(`${table} ${k}: in Cassandra, not in PostgreSQL`)
    }
  }
  return result
}

/**
 * Compares every row and column of Cassandra's users, orders and orders_by_user with PostgreSQL's users and orders
 * (orders_by_user must hold exactly the orders, keyed by (user_id, id)).
 */
export async function comparePostgresWithCassandra(
  pool: pg.Pool,
  client: cassandra.Client,
  keyspace: string,
): Promise<Comparison> {
  const [pgUsers, pgOrders, cUsers, cOrders, cByUser] = await Promise.all([
    pgRows(pool, 'users', USER_COLUMNS),
    pgRows(pool, 'orders', ORDER_COLUMNS),
    cassandraRows(client, keyspace, 'users', USER_COLUMNS),
    cassandraRows(client, keyspace, 'orders', ORDER_COLUMNS),
    cassandraRows(client, keyspace, 'orders_by_user', ORDER_COLUMNS),
  ])
  const byId = (r: Row) => r.id ?? ''
  const tables = [
    compareTable('users', pgUsers, cUsers, byId),
    compareTable('orders', pgOrders, cOrders, byId),
    compareTable('orders_by_user', pgOrders, cByUser, (r) => `(${r.user_id}, ${r.id})`),
  ]
  return { matches: tables.every((t) => t.missing + t.extra + t.different === 0), tables }
}

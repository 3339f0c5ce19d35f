// Row-for-row comparison of Cassandra (users, orders, orders_by_user) with PostgreSQL (users, orders), used by the
// integration tests and by the demo.
import type cassandra from 'cassandra-driver'
import pg from 'pg'
import { EXPECTED_COLUMNS } from '../sinks/postgres/index.js'

/** A normalised row: every column as text (null as null) so that both stores compare with toEqual. */
export type Row = Record<string, string | null>

const text = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))
const cassTimestamp = (v: unknown): string | null => (v instanceof Date ? String(v.getTime()) : null)

// The columns compared are the ones the PostgreSQL sink requires; Cassandra's tables carry the same.
export const USER_COLUMNS: string[] = [...EXPECTED_COLUMNS.users]
export const ORDER_COLUMNS: string[] = [...EXPECTED_COLUMNS.orders]
const TIMESTAMPS = new Set(['created_at', 'modified_at', 'placed_at'])

// Cassandra timestamps hold milliseconds: PostgreSQL's are truncated the same way (towards the past) for the compare.
const pgColumn = (c: string): string =>
  TIMESTAMPS.has(c)
    ? `(floor(extract(epoch from ${c}) * 1000))::bigint::text AS ${c}`
    : c === 'dob'
      ? `to_char(dob, 'YYYY-MM-DD') AS dob`
      : `${c}::text AS ${c}`

/** users and orders from PostgreSQL, optionally only some ids, keyed by id. */
export async function pgRows(
  pgUrl: string,
  where: { users?: string[]; orders?: string[] } = {},
): Promise<{ users: Map<string, Row>; orders: Map<string, Row> }> {
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  try {
    const read = async (table: string, columns: string[], ids?: string[]) => {
      const filter = ids ? ` WHERE id = ANY($1::uuid[])` : ''
      const res = await client.query<Row>(
        `SELECT ${columns.map(pgColumn).join(', ')} FROM ${table}${filter}`,
        ids ? [ids] : [],
      )
      return new Map(res.rows.map((r) => [r.id!, r]))
    }
    return {
      users: await read('users', USER_COLUMNS, where.users),
      orders: await read('orders', ORDER_COLUMNS, where.orders),
    }
  } finally {
    await client.end()
  }
}

function cassRow(row: cassandra.types.Row, columns: string[]): Row {
  const out: Row = {}
  for (const c of columns) {
    const v: unknown = row.get(c)
    out[c] = TIMESTAMPS.has(c) ? cassTimestamp(v) : text(v)
  }
  return out
}

async function readAll(
  client: cassandra.Client,
  query: string,
  params: unknown[],
  columns: string[],
  key: (r: Row) => string,
  out = new Map<string, Row>(),
): Promise<Map<string, Row>> {
  await new Promise<void>((resolve, reject) => {
    client.eachRow(
      query,
      params,
      { prepare: true, fetchSize: 5_000, autoPage: true },
      (_n, row: cassandra.types.Row) => {
        const r = cassRow(row, columns)
        out.set(key(r), r)
      },
      (err) => (err ? reject(err) : resolve()),
    )
  })
  return out
}

// A whole table, read as 512 token ranges. Deleted rows stay as tombstones for gc_grace_seconds (10 days), and one
// read that passes over more than tombstone_failure_threshold (100,000) of them fails; a range holds a 512th.
async function scanTable(
  client: cassandra.Client,
  keyspace: string,
  table: string,
  partitionKey: string,
  columns: string[],
  key: (r: Row) => string,
): Promise<Map<string, Row>> {
  const out = new Map<string, Row>()
  const parts = 512
  const min = -(1n << 63n)
  const step = (1n << 64n) / BigInt(parts)
  const bounds = Array.from({ length: parts }, (_, i) => min + step * BigInt(i))
  const select = `SELECT ${columns.join(', ')} FROM ${keyspace}.${table}`
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < parts) {
      const i = next++
      // [bound i, bound i+1), the last one up to and including the maximum token.
      if (i === parts - 1) {
        await readAll(client, `${select} WHERE token(${partitionKey}) >= ?`, [bounds[i]], columns, key, out)
      } else {
        const where = `WHERE token(${partitionKey}) >= ? AND token(${partitionKey}) < ?`
        await readAll(client, `${select} ${where}`, [bounds[i], bounds[i + 1]], columns, key, out)
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  return out
}

const IN_CHUNK = 200

/** users, orders and orders_by_user from Cassandra (all rows, or the given ids), normalised like {@link pgRows}. */
export async function cassandraRows(
  client: cassandra.Client,
  keyspace: string,
  where: { users?: string[]; orders?: string[] } = {},
): Promise<{ users: Map<string, Row>; orders: Map<string, Row>; ordersByUser: Map<string, Row> }> {
  const ks = keyspace
  const obuColumns = ['user_id', ...ORDER_COLUMNS.filter((c) => c !== 'user_id')]
  const obuKey = (r: Row) => `${r.user_id}/${r.id}`
  const byIds = async (table: string, columns: string[], ids: string[] | undefined) => {
    if (!ids) return scanTable(client, keyspace, table, 'id', columns, (r) => r.id!)
    return readIn(`SELECT ${columns.join(', ')} FROM ${ks}.${table} WHERE id IN ?`, ids, columns, (r) => r.id!)
  }
  // A partition-key IN list makes the coordinator fan out to every partition at once: a few hundred at a time.
  const readIn = async (query: string, keys: string[], columns: string[], key: (r: Row) => string) => {
    const out = new Map<string, Row>()
    for (let i = 0; i < keys.length; i += IN_CHUNK) {
      await readAll(client, query, [keys.slice(i, i + IN_CHUNK)], columns, key, out)
    }
    return out
  }
  const users = await byIds('users', USER_COLUMNS, where.users)
  const orders = await byIds('orders', ORDER_COLUMNS, where.orders)
  let ordersByUser: Map<string, Row>
  if (!where.orders) {
    ordersByUser = await scanTable(client, keyspace, 'orders_by_user', 'user_id', obuColumns, obuKey)
  } else {
    // Only the partitions of the users those orders belong to (in either store), filtered to those orders.
    const wanted = new Set(where.orders)
    const owners = [...new Set([...orders.values()].map((r) => r.user_id!).concat(where.users ?? []))]
    ordersByUser = new Map()
    const rows = await readIn(
      `SELECT ${obuColumns.join(', ')} FROM ${ks}.orders_by_user WHERE user_id IN ?`,
      owners,
      obuColumns,
      obuKey,
    )
    for (const [k, r] of rows) if (wanted.has(r.id!)) ordersByUser.set(k, r)
  }
  return { users, orders, ordersByUser }
}

/** orders_by_user as it must be: one row per order, under its user, with the order's columns. */
export function expectedOrdersByUser(orders: Map<string, Row>): Map<string, Row> {
  const out = new Map<string, Row>()
  for (const o of orders.values()) out.set(`${o.user_id}/${o.id}`, { ...o })
  return out
}

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

function diff(name: string, expected: Map<string, Row>, actual: Map<string, Row>, limit = 5): TableComparison {
  const t: TableComparison = {
    table: name,
    expected: expected.size,
    actual: actual.size,
    missing: 0,
    extra: 0,
    differing: 0,
    problems: [],
  }
  for (const [k, e] of expected) {
    const a = actual.get(k)
    if (!a) {
      if (t.missing++ < limit) t.problems.push(`${name} ${k}: missing in Cassandra (PostgreSQL: ${JSON.stringify(e)})`)
    } else {
      const cols = Object.keys(e).filter((c) => e[c] !== a[c])
      if (cols.length > 0 && t.differing++ < limit) {
        t.problems.push(`${name} ${k}: ${cols.map((c) => `${c} PostgreSQL ${e[c]} Cassandra ${a[c]}`).join(', ')}`)
      }
    }
  }
  for (const [k, a] of actual) {
    if (!expected.has(k) && t.extra++ < limit) t.problems.push(`${name} ${k}: in Cassandra only: ${JSON.stringify(a)}`)
  }
  if (t.missing + t.extra + t.differing > 0) {
    t.problems.push(
      `${name}: ${t.missing} missing, ${t.extra} extra, ${t.differing} differing (of ${expected.size} expected)`,
    )
  }
  return t
}

/** Differences between Cassandra and PostgreSQL (every column of every row, or of the given ids); [] when equal. */
export async function compareStores(
  client: cassandra.Client,
  pgUrl: string,
  keyspace: string,
  where: { users?: string[]; orders?: string[] } = {},
): Promise<{ problems: string[]; tables: TableComparison[]; rows: { users: number; orders: number } }> {
  const pgState = await pgRows(pgUrl, where)
  const cs = await cassandraRows(client, keyspace, where)
  const tables = [
    diff('users', pgState.users, cs.users),
    diff('orders', pgState.orders, cs.orders),
    diff('orders_by_user', expectedOrdersByUser(pgState.orders), cs.ordersByUser),
  ]
  return {
    problems: tables.flatMap((t) => t.problems),
    tables,
    rows: { users: pgState.users.size, orders: pgState.orders.size },
  }
}

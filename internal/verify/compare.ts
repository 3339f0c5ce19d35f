// Row-for-row comparison of Cassandra (every entity's table and its query tables: users, orders, orders_by_user...)
// with PostgreSQL (the entity tables), used by the integration tests and by the demo. Driven by the entity
// definitions: which tables, which columns, which are timestamps and dates.
import type cassandra from 'cassandra-driver'
import pg from 'pg'
import { ENTITIES } from '../model/index.js'
import { TARGETS_OF, primaryKeyOf, type TableSpec } from '../sinks/cassandra/index.js'
import { EXPECTED_COLUMNS } from '../sinks/postgres/index.js'
import { compareBucketed, type BucketedOptions, type Scan } from './bucketed.js'
import { diff, type Row, type TableComparison } from './diff.js'

export type { Row, TableComparison } from './diff.js'

/** Which rows to compare: ids per entity table (users, orders, products); {} compares every table whole. */
export type Where = Record<string, string[] | undefined>

const text = (v: unknown): string | null => (v === null || v === undefined ? null : String(v))
const cassTimestamp = (v: unknown): string | null => (v instanceof Date ? String(v.getTime()) : null)

// The columns compared are the ones the PostgreSQL sink requires; Cassandra's tables carry the same.
export const USER_COLUMNS: string[] = [...EXPECTED_COLUMNS.users]
export const ORDER_COLUMNS: string[] = [...EXPECTED_COLUMNS.orders]
const TIMESTAMPS = new Set(
  ENTITIES.flatMap((s) => s.fields.filter((f) => f.rule.kind === 'timestamp').map((f) => f.column)),
)
const DATES = new Set(ENTITIES.flatMap((s) => s.fields.filter((f) => f.rule.kind === 'date').map((f) => f.column)))

// Cassandra timestamps hold milliseconds: PostgreSQL's are truncated the same way (towards the past) for the compare.
const pgColumn = (c: string): string =>
  TIMESTAMPS.has(c)
    ? `(floor(extract(epoch from ${c}) * 1000))::bigint::text AS ${c}`
    : DATES.has(c)
      ? `to_char(${c}, 'YYYY-MM-DD') AS ${c}`
      : `${c}::text AS ${c}`

// The entity tables a `where` covers: all of them for {}, otherwise those it names.
const tablesOf = (where: Where): string[] => {
  const named = Object.keys(where)
  return ENTITIES.map((s) => s.table).filter((t) => named.length === 0 || named.includes(t))
}

/** The entity tables from PostgreSQL (all, or those `where` names, optionally only some ids), keyed by id. */
export async function pgRows(pgUrl: string, where: Where = {}): Promise<Record<string, Map<string, Row>>> {
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  try {
    const read = async (table: string, columns: readonly string[], ids?: string[]) => {
      const filter = ids ? ` WHERE id = ANY($1::uuid[])` : ''
      const res = await client.query<Row>(
        `SELECT ${columns.map(pgColumn).join(', ')} FROM ${table}${filter}`,
        ids ? [ids] : [],
      )
      return new Map(res.rows.map((r) => [r.id!, r]))
    }
    const out: Record<string, Map<string, Row>> = {}
    for (const table of tablesOf(where)) out[table] = await read(table, EXPECTED_COLUMNS[table], where[table])
    return out
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

function eachRowOf(
  client: cassandra.Client,
  query: string,
  params: unknown[],
  columns: string[],
  onRow: (r: Row) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    client.eachRow(
      query,
      params,
      { prepare: true, fetchSize: 5_000, autoPage: true },
      (_n, row: cassandra.types.Row) => onRow(cassRow(row, columns)),
      (err) => (err ? reject(err) : resolve()),
    )
  })
}

async function readAll(
  client: cassandra.Client,
  query: string,
  params: unknown[],
  columns: string[],
  key: (r: Row) => string,
  out = new Map<string, Row>(),
): Promise<Map<string, Row>> {
  await eachRowOf(client, query, params, columns, (r) => out.set(key(r), r))
  return out
}

// A whole table, read as 512 token ranges. Deleted rows stay as tombstones for gc_grace_seconds (10 days), and one
// read that passes over more than tombstone_failure_threshold (100,000) of them fails; a range holds a 512th.
function scanTable(
  client: cassandra.Client,
  keyspace: string,
  table: string,
  partitionKey: string,
  columns: string[],
): Scan {
  const parts = 512
  const min = -(1n << 63n)
  const step = (1n << 64n) / BigInt(parts)
  const bounds = Array.from({ length: parts }, (_, i) => min + step * BigInt(i))
  const select = `SELECT ${columns.join(', ')} FROM ${keyspace}.${table}`
  return async (onRow) => {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < parts) {
        const i = next++
        // [bound i, bound i+1), the last one up to and including the maximum token.
        if (i === parts - 1) {
          await eachRowOf(client, `${select} WHERE token(${partitionKey}) >= ?`, [bounds[i]], columns, onRow)
        } else {
          const where = `WHERE token(${partitionKey}) >= ? AND token(${partitionKey}) < ?`
          await eachRowOf(client, `${select} ${where}`, [bounds[i], bounds[i + 1]], columns, onRow)
        }
      }
    }
    await Promise.all(Array.from({ length: 8 }, worker))
  }
}

/** Every row of an entity table from PostgreSQL, normalised like {@link pgRows}, a page at a time in key order. */
function pgScan(client: pg.Client, table: string, columns: readonly string[]): Scan {
  const select = `SELECT ${columns.map(pgColumn).join(', ')} FROM ${table}`
  const page = 5_000
  return async (onRow) => {
    let last: string | null = null
    for (;;) {
      const res: pg.QueryResult<Row> =
        last === null
          ? await client.query<Row>(`${select} ORDER BY ${table}.id LIMIT ${page}`)
          : await client.query<Row>(`${select} WHERE ${table}.id > $1 ORDER BY ${table}.id LIMIT ${page}`, [last])
      for (const r of res.rows) onRow(r)
      if (res.rows.length < page) return
      last = res.rows[res.rows.length - 1].id!
    }
  }
}

const collect = async (scan: Scan, key: (r: Row) => string): Promise<Map<string, Row>> => {
  const out = new Map<string, Row>()
  await scan((r) => out.set(key(r), r))
  return out
}

const IN_CHUNK = 200

// The key of a row in a table: its primary key values joined by '/' (orders_by_user: user_id/id).
const rowKey = (t: TableSpec) => {
  const pk = primaryKeyOf(t)
  return (r: Row): string => pk.map((c) => r[c]).join('/')
}

/**
 * Every entity table and query table from Cassandra (all rows, or the given ids), normalised like {@link pgRows},
 * keyed by table name (orders_by_user also as ordersByUser).
 */
export async function cassandraRows(
  client: cassandra.Client,
  keyspace: string,
  where: Where = {},
): Promise<Record<string, Map<string, Row>>> {
  const ks = keyspace
  // A partition-key IN list makes the coordinator fan out to every partition at once: a few hundred at a time.
  const readIn = async (query: string, keys: string[], columns: string[], key: (r: Row) => string) => {
    const out = new Map<string, Row>()
    for (let i = 0; i < keys.length; i += IN_CHUNK) {
      await readAll(client, query, [keys.slice(i, i + IN_CHUNK)], columns, key, out)
    }
    return out
  }
  const out: Record<string, Map<string, Row>> = {}
  for (const table of tablesOf(where)) {
    const [own, ...queryTables] = TARGETS_OF[table]
    const columns = [...EXPECTED_COLUMNS[table]]
    const ids = where[table]
    const rows = ids
      ? await readIn(`SELECT ${columns.join(', ')} FROM ${ks}.${own.name} WHERE id IN ?`, ids, columns, (r) => r.id!)
      : await collect(scanTable(client, keyspace, own.name, 'id', columns), (r) => r.id!)
    out[table] = rows
    for (const q of queryTables) {
      const qColumns = Object.keys(q.columns)
      const partition = q.partitionKey[0]
      if (!ids) {
        out[q.name] = await collect(scanTable(client, keyspace, q.name, partition, qColumns), rowKey(q))
        continue
      }
      // Only the partitions the rows belong to (in Cassandra, or the referenced ids asked for), filtered to them.
      const spec = ENTITIES.find((s) => s.table === table)!
      const ref = spec.reference
      const parentTable = ref && ENTITIES.find((s) => s.entity === ref.entity)?.table
      const referenced = ref && spec.fields.find((f) => f.field === ref.field)?.column === partition
      const owners = [
        ...new Set(
          [...rows.values()]
            .map((r) => r[partition]!)
            .concat(referenced && parentTable ? (where[parentTable] ?? []) : []),
        ),
      ]
      const wanted = new Set(ids)
      const found = await readIn(
        `SELECT ${qColumns.join(', ')} FROM ${ks}.${q.name} WHERE ${partition} IN ?`,
        owners,
        qColumns,
        rowKey(q),
      )
      out[q.name] = new Map([...found].filter(([, r]) => wanted.has(r.id!)))
    }
  }
  if (out.orders_by_user) out.ordersByUser = out.orders_by_user
  return out
}

/** A query table as it must be: one row per row of its entity, under its key, with the entity's columns. */
export function expectedQueryTable(q: TableSpec, rows: Map<string, Row>): Map<string, Row> {
  const out = new Map<string, Row>()
  const key = rowKey(q)
  for (const r of rows.values()) out.set(key(r), { ...r })
  return out
}

/** orders_by_user as it must be: one row per order, under its user, with the order's columns. */
export function expectedOrdersByUser(orders: Map<string, Row>): Map<string, Row> {
  return expectedQueryTable(TARGETS_OF.orders[1], orders)
}

/**
 * Differences between Cassandra and PostgreSQL (every column of every row, or of the given ids); [] when equal.
 * Given ids, both sides' rows are read whole. Whole tables are compared in bounded memory ({@link compareBucketed}):
 * summaries per bucket of keys first, then row by row only where a bucket differs.
 */
export async function compareStores(
  client: cassandra.Client,
  pgUrl: string,
  keyspace: string,
  where: Where = {},
  options: BucketedOptions = {},
): Promise<{ problems: string[]; tables: TableComparison[]; rows: Record<string, number> }> {
  const tables: TableComparison[] = []
  const rows: Record<string, number> = {}
  if (Object.values(where).some((ids) => ids !== undefined)) {
    const pgState = await pgRows(pgUrl, where)
    const cs = await cassandraRows(client, keyspace, where)
    for (const table of tablesOf(where)) {
      const [own, ...queryTables] = TARGETS_OF[table]
      tables.push(diff(own.name, pgState[table], cs[own.name]))
      for (const q of queryTables) tables.push(diff(q.name, expectedQueryTable(q, pgState[table]), cs[q.name]))
      rows[table] = pgState[table].size
    }
    return { problems: tables.flatMap((t) => t.problems), tables, rows }
  }
  const pgClient = new pg.Client({ connectionString: pgUrl })
  await pgClient.connect()
  try {
    for (const table of tablesOf(where)) {
      const columns = [...EXPECTED_COLUMNS[table]]
      const expected = pgScan(pgClient, table, columns)
      for (const t of TARGETS_OF[table]) {
        // A query table holds one row per entity row, under its own key, with the entity's columns.
        const compared = await compareBucketed(
          {
            name: t.name,
            columns,
            key: rowKey(t),
            expected,
            actual: scanTable(
              client,
              keyspace,
              t.name,
              t.partitionKey[0],
              t.name === table ? columns : Object.keys(t.columns),
            ),
          },
          options,
        )
        tables.push(compared)
        rows[table] ??= compared.expected
      }
    }
  } finally {
    await pgClient.end()
  }
  return { problems: tables.flatMap((t) => t.problems), tables, rows }
}

// Reads what replicating a table needs from the PostgreSQL catalog (pg_attribute, pg_type, pg_index) and turns it
// into a derived table definition (derived.ts). Any role that can connect can read these catalogs.
import pg from 'pg'
import { configError } from '../../config/index.js'
import { deriveTable, type CatalogColumn, type DerivedTable } from './derived.js'

/** A schema-qualified PostgreSQL table name. */
export interface QualifiedName {
  schema: string
  table: string
}

// Plain lower-case identifiers only: the name goes into Debezium's include list (a regular expression), a topic
// name and a CQL table name, where anything else would need quoting three different ways.
const IDENT = /^[a-z_][a-z0-9_]{0,47}$/

/** 'public.items' (or 'items', schema public) -> its parts; a CONFIG_ERROR for anything else. */
export function parseQualifiedName(text: string, what = 'table'): QualifiedName {
  const parts = text.trim().split('.')
  const [schema, table] = parts.length === 1 ? ['public', parts[0]] : parts
  if (parts.length > 2 || !IDENT.test(schema) || !IDENT.test(table)) {
    throw configError(
      `${what} '${text}' must be schema.table in lower-case letters, digits and _ (at most 48 each), e.g. public.items`,
    )
  }
  return { schema, table }
}

/** Something that runs a query (a pg Client or Pool). */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>
}

const COLUMNS_SQL = `
SELECT a.attname AS name, a.attnotnull AS not_null, a.atttypmod AS typmod, t.typname AS typname,
       t.typcategory = 'A' AS is_array, et.typname AS elem_typname,
       format_type(a.atttypid, a.atttypmod) AS display
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`

const PRIMARY_KEY_SQL = `
SELECT a.attname AS name
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
 WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary
 ORDER BY array_position(i.indkey::int2[], a.attnum)`

interface ColumnRow {
  name: string
  not_null: boolean
  typmod: number
  typname: string
  is_array: boolean
  elem_typname: string | null
  display: string
}

/** The table's definition derived from the catalog; a CONFIG_ERROR when it does not exist. */
export async function describeTable(db: Queryable, name: QualifiedName): Promise<DerivedTable> {
  const columns = await db.query<ColumnRow>(COLUMNS_SQL, [name.schema, name.table])
  if (columns.rows.length === 0) {
    throw configError(`table ${name.schema}.${name.table} does not exist in PostgreSQL (or has no columns)`)
  }
  const pk = await db.query<{ name: string }>(PRIMARY_KEY_SQL, [name.schema, name.table])
  const catalog: CatalogColumn[] = columns.rows.map((r) => ({
    name: r.name,
    notNull: r.not_null,
    type: {
      typname: r.typname,
      typmod: r.typmod,
      isArray: r.is_array,
      elemTypname: r.elem_typname,
      display: r.display,
    },
  }))
  return deriveTable(
    name.schema,
    name.table,
    catalog,
    pk.rows.map((r) => r.name),
  )
}

/**
 * Debezium's signal table (configure-debezium.sh's signal.data.collection): in the publication, so that Debezium reads
 * the signals from the WAL, but not a table to replicate (its topic, cdc.public.debezium_signal, holds signals and watermarks).
 */
export const SIGNAL_TABLE: QualifiedName = { schema: 'public', table: 'debezium_signal' }

/** The tables of a publication to replicate (the signal table left out), in name order. */
export async function publicationTables(db: Queryable, publication: string): Promise<QualifiedName[]> {
  const res = await db.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2',
    [publication],
  )
  return res.rows
    .filter((r) => !(r.schemaname === SIGNAL_TABLE.schema && r.tablename === SIGNAL_TABLE.table))
    .map((r) => ({ schema: r.schemaname, table: r.tablename }))
}

/** Runs `fn` with one connection to `url`, closed afterwards. */
export async function withPg<T>(url: string, fn: (db: pg.Client) => Promise<T>, connectTimeoutMs = 10_000): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

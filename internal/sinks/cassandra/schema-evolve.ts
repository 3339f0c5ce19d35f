// ALTER TABLE ... ADD of a column added in PostgreSQL (schema-drift.ts tells which), idempotent across replicate
// processes and worker threads: a column another one added first is fine when it has the same type.
//
// Cassandra has no ADD COLUMN IF NOT EXISTS: the column is looked up in system_schema.columns first, and an ALTER
// that lost a race ("conflicts with an existing column") is looked up again. A column that exists with another type
// (a DROP and ADD of the name with a new type in PostgreSQL) is not changed: Cassandra cannot change a column's type,
// and re-adding a dropped column with another type is refused; the caller reports SCHEMA_MISMATCH.
import { ErrorCodes, PipelineError, errorMessage } from '../../errors/index.js'
import type { CqlExecutor } from './client.js'
import { classifyCassandraError } from './classify.js'
import { quoteCql } from './derived.js'

/** The column's CQL type as system_schema.columns shows it ('text', 'frozen<list<int>>'), or undefined. */
async function columnType(client: CqlExecutor, keyspace: string, table: string, column: string) {
  const res = (await client.execute(
    'SELECT type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?',
    [keyspace, table, column],
    { prepare: true },
  )) as { rows?: { type?: string }[] }
  return res.rows?.[0]?.type
}

const UNDEFINED_COLUMN = /undefined column name/i
const USABLE_TRIES = 50
const USABLE_WAIT_MS = 100

// Cassandra writes a new column to system_schema.columns a moment before the table's schema in memory has it: an
// INSERT prepared in between (by another worker thread or process that found the column there) fails with
// "Undefined column name", a setup error that stops replicate. So the column counts as there once a query of it
// works; until then (at most ~5 s) it is asked again, and after that the batch is retried (retriable).
async function untilUsable(client: CqlExecutor, keyspace: string, table: string, column: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.execute(`SELECT ${quoteCql(column)} FROM ${keyspace}.${quoteCql(table)} LIMIT 1`, [], {
        prepare: false,
      })
      return
    } catch (err) {
      if (!UNDEFINED_COLUMN.test(errorMessage(err))) throw err
      if (attempt >= USABLE_TRIES) {
        throw new PipelineError(
          ErrorCodes.SINK_UNAVAILABLE,
          `${keyspace}.${table} has column ${column} in system_schema but does not take it yet: ${errorMessage(err)}`,
          { cause: err, retriable: true },
        )
      }
      await new Promise((resolve) => setTimeout(resolve, USABLE_WAIT_MS))
    }
  }
}

const sameType = (a: string, b: string): boolean =>
  a.replace(/\s+/g, '').toLowerCase() === b.replace(/\s+/g, '').toLowerCase()

/**
 * Makes sure `table` has `column` of CQL type `cql`. Returns undefined when it has (now), or why it cannot (a column
 * of that name with another type, a refused ALTER). Throws a retriable error when Cassandra is unavailable.
 */
export async function ensureColumn(
  client: CqlExecutor,
  keyspace: string,
  table: string,
  column: string,
  cql: string,
): Promise<string | undefined> {
  const conflict = (found: string) =>
    `${keyspace}.${table} already has a column ${column} of type ${found}, not ${cql} (Cassandra cannot change a column's type)`
  try {
    const found = await columnType(client, keyspace, table, column)
    if (found !== undefined) {
      if (!sameType(found, cql)) return conflict(found)
      await untilUsable(client, keyspace, table, column)
      return undefined
    }
    try {
      await client.execute(`ALTER TABLE ${keyspace}.${quoteCql(table)} ADD ${quoteCql(column)} ${cql}`, [], {
        prepare: false,
      })
    } catch (err) {
      const again = await columnType(client, keyspace, table, column)
      if (again === undefined) throw err
      if (!sameType(again, cql)) return conflict(again)
    }
    await untilUsable(client, keyspace, table, column)
    return undefined
  } catch (err) {
    const e = classifyCassandraError(err)
    if (e.retriable) throw e
    if (e.code === ErrorCodes.CONFIG_ERROR && !/column/i.test(e.message)) throw e
    return `ALTER TABLE ${keyspace}.${table} ADD ${column} ${cql} failed: ${errorMessage(err)}`
  }
}

/** Every column of `columns` in `table`, or a CONFIG_ERROR naming the first that cannot be (start-up). */
export async function ensureColumns(
  client: CqlExecutor,
  keyspace: string,
  table: string,
  columns: readonly { name: string; cql: string }[],
): Promise<void> {
  for (const c of columns) {
    const problem = await ensureColumn(client, keyspace, table, c.name, c.cql)
    if (problem !== undefined) throw new PipelineError(ErrorCodes.CONFIG_ERROR, problem)
  }
}

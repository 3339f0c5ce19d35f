// The I/O around derived tables (derived.ts): which tables --tables names, their definitions from the catalog, and
// their Cassandra tables created when missing. Run in the main thread before the workers start.
import { configError } from '../../config/index.js'
import { errorMessage, ErrorCodes, PipelineError } from '../../errors/index.js'
import { describeTable, parseQualifiedName, publicationTables, withPg, type QualifiedName } from './catalog.js'
import { createCassandraClient, type CassandraClientOptions } from './client.js'
import type { CqlExecutor } from './client.js'
import { changeTopicOf, createTableCql, type DerivedTable } from './derived.js'
import { ensureColumns } from './schema-evolve.js'
import {
  SOURCE_TABLE,
  checkSource,
  pgIdentityReader,
  pgWhere,
  sourceTableCql,
  type PgIdentity,
  type RecordedSource,
} from './source-identity.js'
import type { Logger } from '../../log/index.js'
import { SOURCE_TABLES } from './tables.js'

/** The publication Debezium reads (configure-debezium.sh's publication.name). */
export const PUBLICATION = 'cdc_pub'

/** A PostgreSQL error as a pipeline error: refused connections are UNREACHABLE, the rest CONFIG_ERROR. */
export function pgFailure(err: unknown, url: string): PipelineError {
  if (err instanceof PipelineError) return err
  const code = (err as { code?: string }).code
  const where = (() => {
    try {
      const u = new URL(url)
      return `${u.hostname}:${u.port || '5432'}`
    } catch {
      return 'PostgreSQL'
    }
  })()
  if (
    code === 'ECONNREFUSED' ||
    code === 'ETIMEDOUT' ||
    code === 'EHOSTUNREACH' ||
    /timeout/i.test(errorMessage(err))
  ) {
    return new PipelineError(ErrorCodes.UNREACHABLE, `PostgreSQL at ${where} unreachable: ${errorMessage(err)}`, {
      cause: err,
    })
  }
  return new PipelineError(ErrorCodes.CONFIG_ERROR, `PostgreSQL at ${where}: ${errorMessage(err)}`, { cause: err })
}

/**
 * The derived definitions of the tables --tables names ('publication': every table of cdc_pub), by change topic.
 * Tables with an entity definition (public.users, public.orders) and topics --topics already has are left out.
 */
export async function resolveDerivedTables(
  pgUrl: string,
  entries: readonly string[],
  topicPrefix: string,
  entityTopics: readonly string[],
  connectTimeoutMs: number,
): Promise<Record<string, DerivedTable>> {
  const named = entries.filter((e) => e !== 'publication').map((e) => parseQualifiedName(e, '--tables entry'))
  try {
    return await withPg(
      pgUrl,
      async (db) => {
        const names: QualifiedName[] = [...named]
        if (entries.includes('publication')) names.push(...(await publicationTables(db, PUBLICATION)))
        const out: Record<string, DerivedTable> = {}
        for (const n of names) {
          if (n.schema === 'public' && (SOURCE_TABLES as readonly string[]).includes(n.table)) continue
          const topic = changeTopicOf(topicPrefix, n.schema, n.table)
          if (entityTopics.includes(topic) || out[topic] !== undefined) continue
          out[topic] = await describeTable(db, n)
        }
        return out
      },
      connectTimeoutMs,
    )
  } catch (err) {
    throw pgFailure(err, pgUrl)
  }
}

/**
 * CREATE TABLE IF NOT EXISTS for every replicable table, and ALTER TABLE ADD of the columns an existing one lacks;
 * returns the Cassandra tables it ensured.
 */
export async function createDerivedTables(
  o: Omit<CassandraClientOptions, 'keyspace'> & { keyspace: string },
  tables: readonly DerivedTable[],
): Promise<string[]> {
  const replicable = tables.filter((t) => t.problem === undefined)
  if (replicable.length === 0) return []
  const client = createCassandraClient({ ...o, keyspace: undefined })
  try {
    for (const t of replicable) {
      await client.execute(createTableCql(o.keyspace, t), [], { prepare: false })
      // A table that existed already lacks the columns added in PostgreSQL since it was created (while no replicate
      // ran, or before a restart): added now, or the first insert would name a column Cassandra does not have.
      await ensureColumns(
        client as unknown as CqlExecutor,
        o.keyspace,
        t.target,
        t.columns.map((c) => ({ name: c.name, cql: c.mapped!.cql })),
      )
    }
  } catch (err) {
    throw configError(`creating the derived Cassandra tables in ${o.keyspace} failed: ${errorMessage(err)}`, err)
  } finally {
    await client.shutdown().catch(() => undefined)
  }
  return replicable.map((t) => `${o.keyspace}.${t.target}`)
}

/**
 * Start-up check of the PostgreSQL cluster (source-identity.ts): the replication metadata table created when
 * missing, PostgreSQL's identity recorded on the first start and compared on every later one. Throws SOURCE_CHANGED
 * for another cluster, UNREACHABLE or CONFIG_ERROR when PostgreSQL or Cassandra cannot be asked.
 */
export async function checkSourceAtStart(
  o: Omit<CassandraClientOptions, 'keyspace'> & { keyspace: string },
  pgUrl: string,
  log: Logger,
): Promise<RecordedSource> {
  let current: PgIdentity
  const reader = pgIdentityReader(pgUrl)
  try {
    current = await reader.read()
  } catch (err) {
    throw pgFailure(err, pgUrl)
  } finally {
    await reader.close().catch(() => undefined)
  }
  const client = createCassandraClient({ ...o, keyspace: undefined })
  try {
    await client.execute(sourceTableCql(o.keyspace), [], { prepare: false })
    return await checkSource(client as unknown as CqlExecutor, o.keyspace, pgWhere(pgUrl), current, log)
  } catch (err) {
    if (err instanceof PipelineError) throw err
    throw configError(
      `recording the PostgreSQL source in ${o.keyspace}.${SOURCE_TABLE} failed: ${errorMessage(err)}`,
      err,
    )
  } finally {
    await client.shutdown().catch(() => undefined)
  }
}

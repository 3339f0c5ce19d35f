// The Cassandra sink as a sink module (internal/pipeline SinkModule): what node cmd/replicate names, and what each
// worker thread loads by this file's URL.
import type { Logger } from '../../log/index.js'
import type { BatchSink, SinkModule } from '../../pipeline/index.js'
import { CassandraBatchSink } from './batch-sink.js'
import { checkCassandra } from './client.js'
import { checkSourceAtStart, createDerivedTables } from './derived-setup.js'
import { CASSANDRA_OPTIONS, type CassandraSinkOptions } from './options.js'

export const name = 'cassandra'

export const optionsSchema = CASSANDRA_OPTIONS

/**
 * Cassandra answers within `timeoutMs` and has the keyspace and tables the sink writes (checkCassandra), the tables
 * derived from PostgreSQL's catalog are created when missing, the PostgreSQL cluster is the one the keyspace was
 * replicated from (source-identity.ts; recorded on the first start); a keyspace
 * replicated 3 times written at ONE is warned about: offsets could be committed for writes one node's loss loses.
 */
export async function preflight(
  options: CassandraSinkOptions,
  log: Logger,
  context: { timeoutMs: number },
): Promise<void> {
  const { contactPoints, localDataCenter, keyspace, consistency } = options
  const found = await checkCassandra({
    contactPoints,
    localDataCenter,
    keyspace,
    consistency,
    connectTimeoutMs: context.timeoutMs,
  })
  // --tables: the Cassandra tables derived from the PostgreSQL catalog, created when missing.
  const created = await createDerivedTables(
    { contactPoints, localDataCenter, keyspace, consistency, connectTimeoutMs: context.timeoutMs },
    Object.values(options.derived ?? {}),
  )
  if (created.length > 0) log.info({ tables: created }, 'Cassandra tables derived from PostgreSQL ensured')
  // The PostgreSQL cluster replicated: recorded on the first start, another one refused (SOURCE_CHANGED, exit 5).
  if (options.pgUrl !== undefined) {
    const recorded = await checkSourceAtStart(
      { contactPoints, localDataCenter, keyspace, consistency, connectTimeoutMs: context.timeoutMs },
      options.pgUrl,
      log,
    )
    log.info({ systemIdentifier: recorded.systemIdentifier, timeline: recorded.timeline }, 'PostgreSQL source checked')
  }
  const rf = Number(found.replication.replication_factor ?? Number.NaN)
  log.info({ keyspace, replication: found.replication, consistency }, 'Cassandra schema checked')
  if (rf >= 3 && (consistency === 'ONE' || consistency === 'LOCAL_ONE')) {
    log.warn(
      { consistency, rf },
      'writes acknowledged by one replica: offsets may be committed for writes a single node failure loses',
    )
  }
}

export async function createBatchSink(options: CassandraSinkOptions, log: Logger): Promise<BatchSink> {
  return new CassandraBatchSink(options, undefined, undefined, log)
}

/** The module, typed, with its URL for the engine (a worker thread imports it by that). */
export const cassandraSinkModule: SinkModule<CassandraSinkOptions> & { url: string } = {
  name,
  optionsSchema,
  preflight,
  createBatchSink,
  url: import.meta.url,
}

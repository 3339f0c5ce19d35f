// node cmd/replicate: the consumer group that replicates Debezium's change events (cdc.public.users,
// cdc.public.orders) into Cassandra, through the same consume engine as node cmd/consume.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  engineSettings,
  onShutdownSignals,
  readSettings,
  runCommand,
  withEngineFlags,
  SETTINGS as S,
} from '../../internal/cli/index.js'
import { loadDotEnv } from '../../internal/config/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { reportRun, runPipeline } from '../../internal/pipeline/index.js'
import {
  checkCassandra,
  createDerivedTables,
  parseTopicTables,
  resolveDerivedTables,
  type CassandraSinkOptions,
} from '../../internal/sinks/cassandra/index.js'

const DESCRIPTION = `Consumes Debezium's change topics in a consumer group and replicates every change into Cassandra
(users, orders, orders_by_user; with --tables, any other table, its Cassandra table derived from the PostgreSQL
catalog and created if missing): every assigned partition worked concurrently (in the main thread, or one worker
thread each with --workers auto), prepared statements with bounded
concurrency, every write stamped USING TIMESTAMP from the change's PostgreSQL LSN so that redeliveries and replays
converge and a late change never overwrites a newer one. Offsets are committed only after Cassandra acknowledged
the writes. Cassandra unavailable: the batch is retried with exponential backoff until it is back. Undecodable
changes and TRUNCATEs go to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await withEngineFlags(commandLine('replicate', DESCRIPTION, hideBin(process.argv))).parseAsync()
  const get = readSettings('replicate', argv)
  const brokers = get(S.brokers)
  const groupId = get(S.replicateGroup)
  const topicTables = parseTopicTables(get(S.replicateTopics))
  const contactPoints = get(S.cassandraContactPoints)
  const keyspace = get(S.cassandraKeyspace)
  const localDataCenter = get(S.cassandraLocalDc)
  const consistency = get(S.consistency)
  const concurrency = get(S.concurrency)
  const pgUrl = get(S.pgUrl)
  const tables = get(S.replicateTables)
  const topicPrefix = get(S.topicPrefix)
  const engine = engineSettings(argv)
  const log = createLogger({ level: engine.logLevel, pretty: engine.logFormat === 'pretty', name: 'replicate' })

  const sinkOptions: CassandraSinkOptions = {
    contactPoints,
    localDataCenter,
    keyspace,
    consistency,
    concurrency,
    topics: topicTables,
    // Asked for its current WAL position: a change whose LSN is beyond it is dead-lettered (lsn-bound.ts).
    pgUrl,
    logLevel: engine.logLevel,
    logPretty: engine.logFormat === 'pretty',
  }
  // Kafka first, within --connect-timeout: an unreachable broker is named before anything else starts.
  await (await connectPreflightAdmin(brokers, { timeoutMs: engine.connectTimeoutMs })).disconnect()
  // --tables: the tables without an entity definition, each one's definition derived from PostgreSQL's catalog.
  const derived =
    tables.length === 0
      ? {}
      : await resolveDerivedTables(pgUrl, tables, topicPrefix, Object.keys(topicTables), engine.connectTimeoutMs)
  if (Object.keys(derived).length > 0) sinkOptions.derived = derived
  for (const t of Object.values(derived)) {
    if (t.problem !== undefined)
      log.warn({ table: `${t.schema}.${t.table}` }, `${t.problem}: its changes go to the DLQ`)
  }
  const kafka = createKafka({ brokers, clientId: 'cdc-replicate', logger: log })
  return reportRun('replicate', log, engine.summaryJson, () =>
    runPipeline(
      kafka,
      brokers,
      {
        kafka,
        groupId,
        topics: [...Object.keys(topicTables), ...Object.keys(derived)],
        sink: {
          module: new URL('../../internal/sinks/cassandra/batch-sink.js', import.meta.url).href,
          options: sinkOptions as unknown as Record<string, unknown>,
        },
        ...engine.options,
        connectTimeoutMs: engine.connectTimeoutMs,
        log,
        preflight: async () => {
          const found = await checkCassandra({
            contactPoints,
            localDataCenter,
            keyspace,
            consistency,
            connectTimeoutMs: engine.connectTimeoutMs,
          })
          const created = await createDerivedTables(
            { contactPoints, localDataCenter, keyspace, consistency, connectTimeoutMs: engine.connectTimeoutMs },
            Object.values(derived),
          )
          if (created.length > 0) log.info({ tables: created }, 'Cassandra tables derived from PostgreSQL ensured')
          const rf = Number(found.replication.replication_factor ?? Number.NaN)
          log.info({ keyspace, replication: found.replication, consistency }, 'Cassandra schema checked')
          if (rf >= 3 && (consistency === 'ONE' || consistency === 'LOCAL_ONE')) {
            log.warn(
              { consistency, rf },
              'writes acknowledged by one replica: offsets may be committed for writes a single node failure loses',
            )
          }
        },
        onStarted: (stop) => onShutdownSignals(stop, (line) => log.info(line)),
      },
      log,
    ),
  )
}

runCommand('replicate', main)

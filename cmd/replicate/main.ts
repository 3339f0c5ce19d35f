// node cmd/replicate: the consumer group that replicates Debezium's change events (cdc.public.users,
// cdc.public.orders) into Cassandra, through the same consume engine as node cmd/consume.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  engineSettings,
  onShutdownSignals,
  runCommand,
  withEngineFlags,
} from '../../internal/cli/index.js'
import {
  brokerList,
  configError,
  loadDotEnv,
  nonEmptyString,
  oneOf,
  positiveInt,
  resolveSetting,
  type Setting,
} from '../../internal/config/index.js'
import { createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { reportRun, runPipeline } from '../../internal/pipeline/index.js'
import {
  CONSISTENCY_LEVELS,
  DEFAULT_CONCURRENCY,
  DEFAULT_CONSISTENCY,
  checkCassandra,
  parseTopicTables,
  type CassandraSinkOptions,
} from '../../internal/sinks/cassandra/index.js'

const DESCRIPTION = `Consumes Debezium's change topics in a consumer group and replicates every change into Cassandra
(users, orders, orders_by_user): every assigned partition worked concurrently (in the main thread, or one worker
thread each with --workers auto), prepared statements with bounded
concurrency, every write stamped USING TIMESTAMP from the change's PostgreSQL LSN so that redeliveries and replays
converge and a late change never overwrites a newer one. Offsets are committed only after Cassandra acknowledged
the writes. Cassandra unavailable: the batch is retried with exponential backoff until it is back. Undecodable
changes and TRUNCATEs go to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(\d{1,5}))?$/

/** 'host[:port],...' -> the list, each entry checked. */
function contactPointList(setting: Setting<string>): string[] {
  const s = resolveSetting(setting)
  const rule = 'must be a comma-separated list of host or host:port'
  if (typeof s.raw !== 'string') throw configError(`${s.label} ${rule}`)
  const entries = s.raw.split(',').map((e) => e.trim())
  for (const e of entries) {
    const m = HOST_PORT.exec(e)
    const port = m?.[4] === undefined ? 9042 : Number(m[4])
    if (m === null || port < 1 || port > 65535) throw configError(`${s.label} ${rule}; '${e}' is not`)
  }
  return entries
}

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await withEngineFlags(
    commandLine('replicate', DESCRIPTION, hideBin(process.argv))
      .option('brokers', {
        type: 'string',
        describe: 'Kafka bootstrap servers host:port,... [env KAFKA_BROKERS] [default: the local stack]',
      })
      .option('group', { type: 'string', describe: 'consumer group id', default: 'cdc-cassandra-sink' })
      .option('topics', {
        type: 'string',
        describe:
          "change topics, comma-separated; each carries the table named by its last part (<prefix>.<schema>.users), or say 'topic=users'",
        default: 'cdc.public.users,cdc.public.orders',
      })
      .option('cassandra-contact-points', {
        type: 'string',
        describe: 'Cassandra nodes host[:port],... [env CASSANDRA_CONTACT_POINTS] [default: 127.0.0.1:9042]',
      })
      .option('cassandra-keyspace', {
        type: 'string',
        describe: 'keyspace holding users, orders, orders_by_user [env CASSANDRA_KEYSPACE] [default: cdc_keyspace]',
      })
      .option('cassandra-local-dc', {
        type: 'string',
        describe: 'the data center the driver treats as local [env CASSANDRA_LOCAL_DC] [default: datacenter1]',
      })
      .option('consistency', {
        type: 'string',
        describe: `write consistency: ${CONSISTENCY_LEVELS.join(', ')} [env CASSANDRA_CONSISTENCY] [default: ${DEFAULT_CONSISTENCY}, which is one replica at RF 1 and two of three at RF 3]`,
      })
      .option('concurrency', {
        type: 'string',
        describe: 'Cassandra writes in flight per partition batch',
        default: String(DEFAULT_CONCURRENCY),
      }),
  ).parseAsync()

  const brokers = brokerList({
    flag: 'brokers',
    value: argv.brokers,
    env: 'KAFKA_BROKERS',
    default: '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094',
  })
  const groupId = nonEmptyString({ flag: 'group', value: argv.group })
  const topicTables = parseTopicTables(nonEmptyString({ flag: 'topics', value: argv.topics }).split(','))
  const contactPoints = contactPointList({
    flag: 'cassandra-contact-points',
    value: argv['cassandra-contact-points'],
    env: 'CASSANDRA_CONTACT_POINTS',
    default: '127.0.0.1:9042',
  })
  const keyspace = nonEmptyString({
    flag: 'cassandra-keyspace',
    value: argv['cassandra-keyspace'],
    env: 'CASSANDRA_KEYSPACE',
    default: 'cdc_keyspace',
  })
  if (!/^[A-Za-z][A-Za-z0-9_]{0,47}$/.test(keyspace)) {
    throw configError(`--cassandra-keyspace must be a CQL identifier: letters, digits, _ (got '${keyspace}')`)
  }
  const localDataCenter = nonEmptyString({
    flag: 'cassandra-local-dc',
    value: argv['cassandra-local-dc'],
    env: 'CASSANDRA_LOCAL_DC',
    default: 'datacenter1',
  })
  const consistency = oneOf(
    {
      flag: 'consistency',
      value: argv.consistency?.toUpperCase(),
      env: 'CASSANDRA_CONSISTENCY',
      default: DEFAULT_CONSISTENCY,
    },
    CONSISTENCY_LEVELS,
  )
  const concurrency = positiveInt({ flag: 'concurrency', value: argv.concurrency })
  const engine = engineSettings(argv)
  const log = createLogger({ level: engine.logLevel, name: 'replicate' })

  const sinkOptions: CassandraSinkOptions = {
    contactPoints,
    localDataCenter,
    keyspace,
    consistency,
    concurrency,
    topics: topicTables,
    logLevel: engine.logLevel,
    logPretty: process.stdout.isTTY === true,
  }
  const kafka = createKafka({ brokers, clientId: 'cdc-replicate', logger: log })
  return reportRun('replicate', log, engine.summaryJson, () =>
    runPipeline(
      kafka,
      brokers,
      {
        kafka,
        groupId,
        topics: Object.keys(topicTables),
        sink: {
          module: new URL('../../internal/sinks/cassandra/batch-sink.js', import.meta.url).href,
          options: sinkOptions as unknown as Record<string, unknown>,
        },
        ...engine.options,
        log,
        preflight: async () => {
          const found = await checkCassandra({ contactPoints, localDataCenter, keyspace, consistency })
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

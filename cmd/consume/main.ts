// node cmd/consume: the consumer group that sinks user and order events into PostgreSQL, each partition worked
// independently, committing offsets only after the database has committed.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  engineSettings,
  onShutdownSignals,
  runCommand,
  withEngineFlags,
} from '../../internal/cli/index.js'
import { brokerList, configError, loadDotEnv, nonEmptyString, postgresUrl } from '../../internal/config/index.js'
import { createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { reportRun, runPipeline } from '../../internal/pipeline/index.js'
import { PostgresSink } from '../../internal/sinks/postgres/index.js'

const DESCRIPTION = `Consumes the users and orders topics in a consumer group and writes them into PostgreSQL: every
assigned partition worked concurrently (in the main thread, or one worker thread each with --workers auto),
batched version-guarded upserts in one transaction per batch; an order fetched before its user waits in its
partition's waiting room while the partition goes on; offsets committed only after the transaction. Transient failures are retried with exponential backoff and jitter; what cannot be
applied goes to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await withEngineFlags(
    commandLine('consume', DESCRIPTION, hideBin(process.argv))
      .option('brokers', {
        type: 'string',
        describe: 'Kafka bootstrap servers host:port,... [env KAFKA_BROKERS] [default: the local stack]',
      })
      .option('pg-url', { type: 'string', describe: "PostgreSQL URL [env PG_URL] [default: the local stack's cdc_db]" })
      .option('group', { type: 'string', describe: 'consumer group id', default: 'cdc-postgres-sink' })
      .option('users-topic', { type: 'string', describe: 'topic of user events [env USERS_TOPIC] [default: users]' })
      .option('orders-topic', {
        type: 'string',
        describe: 'topic of order events [env ORDERS_TOPIC] [default: orders]',
      })
      .option('topics', {
        type: 'string',
        describe: 'which of the two topics to consume, comma-separated [default: both]',
      }),
  ).parseAsync()

  const brokers = brokerList({
    flag: 'brokers',
    value: argv.brokers,
    env: 'KAFKA_BROKERS',
    default: '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094',
  })
  const pgUrl = postgresUrl({
    flag: 'pg-url',
    value: argv['pg-url'],
    env: 'PG_URL',
    default: 'postgres://cdc_app:cdc_app@127.0.0.1:5432/cdc_db',
  })
  const groupId = nonEmptyString({ flag: 'group', value: argv.group })
  const topicNames = {
    user: nonEmptyString({ flag: 'users-topic', value: argv['users-topic'], env: 'USERS_TOPIC', default: 'users' }),
    order: nonEmptyString({
      flag: 'orders-topic',
      value: argv['orders-topic'],
      env: 'ORDERS_TOPIC',
      default: 'orders',
    }),
  }
  const topics =
    argv.topics === undefined ? [topicNames.user, topicNames.order] : argv.topics.split(',').map((t) => t.trim())
  for (const t of topics) {
    if (t !== topicNames.user && t !== topicNames.order) {
      throw configError(
        `--topics may only name the users topic '${topicNames.user}' and the orders topic '${topicNames.order}' (got '${t}')`,
      )
    }
  }
  const engine = engineSettings(argv)
  const log = createLogger({
    level: engine.logLevel,
    name: 'consume',
  })

  const sinkOptions = { pgUrl, topics: topicNames }
  const kafka = createKafka({ brokers, clientId: 'cdc-consume', logger: log })
  return reportRun('consume', log, engine.summaryJson, () =>
    runPipeline(
      kafka,
      brokers,
      {
        kafka,
        groupId,
        topics,
        sink: {
          module: new URL('../../internal/sinks/postgres/batch-sink.js', import.meta.url).href,
          options: sinkOptions,
        },
        ...engine.options,
        // Orders refer to users: while catching up, an order is tried once the users before it are written.
        dependsOn: { [topicNames.order]: [topicNames.user] },
        log,
        preflight: async () => {
          const check = new PostgresSink({ connectionString: pgUrl, connectionTimeoutMs: 5_000 })
          try {
            await check.checkSchema()
          } finally {
            await check.close()
          }
        },
        onStarted: (stop) => onShutdownSignals(stop, (line) => log.info(line)),
      },
      log,
    ),
  )
}

runCommand('consume', main)

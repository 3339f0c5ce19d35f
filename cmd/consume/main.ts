// node cmd/consume: the consumer group that sinks user and order events into PostgreSQL, one worker thread per
// partition, committing offsets only after the database has committed.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  ExitCodes,
  formatSummary,
  onShutdownSignals,
  percentile,
  runCommand,
} from '../../internal/cli/index.js'
import {
  brokerList,
  configError,
  loadDotEnv,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
  postgresUrl,
} from '../../internal/config/index.js'
import { errorMessage } from '../../internal/errors/index.js'
import { createKafka, ensureTopics } from '../../internal/kafka/index.js'
import { createLogger, LOG_LEVELS, type LogLevel } from '../../internal/log/index.js'
import { dlqTopicFor, Engine, KafkaDeadLetterWriter, DEFAULT_RETRY_POLICY } from '../../internal/pipeline/index.js'
import { PostgresSink } from '../../internal/sinks/postgres/index.js'

const DESCRIPTION = `Consumes the users and orders topics in a consumer group and writes them into PostgreSQL: one worker
thread per assigned partition, batched version-guarded upserts in one transaction per batch, offsets committed
only after the transaction. Transient failures are retried with exponential backoff and jitter; what cannot be
applied goes to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('consume', DESCRIPTION, hideBin(process.argv))
    .option('brokers', {
      type: 'string',
      describe: 'Kafka bootstrap servers host:port,... [env KAFKA_BROKERS] [default: the local stack]',
    })
    .option('pg-url', { type: 'string', describe: "PostgreSQL URL [env PG_URL] [default: the local stack's cdc_db]" })
    .option('group', { type: 'string', describe: 'consumer group id', default: 'cdc-postgres-sink' })
    .option('users-topic', { type: 'string', describe: 'topic of user events [env USERS_TOPIC] [default: users]' })
    .option('orders-topic', { type: 'string', describe: 'topic of order events [env ORDERS_TOPIC] [default: orders]' })
    .option('topics', {
      type: 'string',
      describe: 'which of the two topics to consume, comma-separated [default: both]',
    })
    .option('workers', {
      type: 'string',
      describe: 'worker threads: auto = one per assigned partition; 0 = in the main thread',
      default: 'auto',
    })
    .option('idle-timeout', {
      type: 'string',
      describe: 'exit cleanly after this many seconds without messages; 0 = run until signalled',
      default: '0',
    })
    .option('from-beginning', {
      type: 'boolean',
      describe: 'where a group without committed offsets starts: true = earliest, false = latest',
      default: true,
    })
    .option('retry-attempts', {
      type: 'string',
      describe: 'tries of a message that failed retriably (e.g. its user not there yet) before the DLQ',
      default: String(DEFAULT_RETRY_POLICY.attempts),
    })
    .option('retry-max-time', {
      type: 'string',
      describe: "seconds from a message's first failure after which it goes to the DLQ",
      default: String(DEFAULT_RETRY_POLICY.maxElapsedMs / 1000),
    })
    .option('task-timeout', {
      type: 'string',
      describe: 'seconds a worker may spend on one batch before it is replaced and the batch retried',
      default: '60',
    })
    .option('summary-json', {
      type: 'boolean',
      describe: 'print the final summary as one JSON line instead of text',
      default: false,
    })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, describe: 'log level [env LOG_LEVEL]' })
    .parseAsync()

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
  const workers = argv.workers === 'auto' ? 'auto' : nonNegativeInt({ flag: 'workers', value: argv.workers })
  const idleTimeoutS = nonNegativeNumber({ flag: 'idle-timeout', value: argv['idle-timeout'] })
  const retry = {
    ...DEFAULT_RETRY_POLICY,
    attempts: positiveInt({ flag: 'retry-attempts', value: argv['retry-attempts'] }),
    maxElapsedMs: nonNegativeNumber({ flag: 'retry-max-time', value: argv['retry-max-time'] }) * 1000,
  }
  const taskTimeoutS = positiveInt({ flag: 'task-timeout', value: argv['task-timeout'] })
  const log = createLogger({
    level: (argv['log-level'] ?? process.env.LOG_LEVEL ?? 'info') as LogLevel,
    name: 'consume',
  })

  // Fail fast, with one clear line, on what no retry will fix: an unreachable broker or database, missing topics
  // or tables.
  const kafka = createKafka({ brokers, clientId: 'cdc-consume', logger: log })
  const admin = kafka.admin({ retry: { retries: 2 } })
  try {
    await admin.connect()
  } catch (err) {
    throw configError(
      `cannot reach Kafka at ${brokers.join(',')}: ${errorMessage(err)} (is the stack up? npm run stack:up)`,
    )
  }
  const existing = new Set(await admin.listTopics())
  for (const t of topics) {
    if (!existing.has(t)) throw configError(`topic '${t}' does not exist: produce first (node cmd/produce creates it)`)
  }
  await ensureTopics(
    admin,
    topics.map((t) => ({
      topic: dlqTopicFor(t),
      partitions: 3,
      replicationFactor: 3,
      configs: { 'min.insync.replicas': '2' },
    })),
  )
  await admin.disconnect()
  const check = new PostgresSink({ connectionString: pgUrl, connectionTimeoutMs: 5_000 })
  try {
    await check.checkSchema()
  } finally {
    await check.close()
  }

  const dlqProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  await dlqProducer.connect()
  const engine = new Engine({
    kafka,
    groupId,
    topics,
    sink: {
      module: new URL('../../internal/sinks/postgres/batch-sink.js', import.meta.url).href,
      options: { pgUrl, topics: topicNames },
    },
    workers,
    retry,
    deadLetters: new KafkaDeadLetterWriter(dlqProducer),
    idleTimeoutMs: idleTimeoutS * 1000,
    taskTimeoutMs: taskTimeoutS * 1000,
    fromBeginning: argv['from-beginning'],
    log,
  })
  onShutdownSignals(
    (signal) => void engine.stop(signal),
    (line) => log.info(line),
  )
  await engine.start()
  log.info({ groupId, topics, workers }, 'consuming')

  let exitCode: number = ExitCodes.ok
  let reason: string
  try {
    reason = await engine.finished
  } catch (err) {
    log.error({ err }, 'consumer failed')
    reason = `failed: ${errorMessage(err)}`
    exitCode = ExitCodes.failure
    await engine.stop(reason).catch(() => undefined)
  }
  await dlqProducer.disconnect().catch(() => undefined)

  const s = engine.stats
  const activeS = s.firstMessageAt === 0 ? 0 : (s.lastMessageAt - s.firstMessageAt) / 1000
  const summary = {
    reason,
    processed: s.received,
    applied: s.applied,
    stale: s.stale,
    deadLettered: s.deadLettered,
    retries: s.retries,
    batches: s.batches,
    commits: s.commits,
    activeSeconds: Number(activeS.toFixed(3)),
    ratePerSec: activeS > 0 ? Math.round(s.received / activeS) : 0,
    latencyMs: {
      p50: percentile(s.latenciesMs, 50),
      p95: percentile(s.latenciesMs, 95),
      p99: percentile(s.latenciesMs, 99),
    },
  }
  if (argv['summary-json']) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else {
    const ms = (v: number) => (Number.isNaN(v) ? '-' : `${Math.round(v)} ms`)
    process.stdout.write(
      formatSummary(`consume summary (${reason})`, [
        ['processed', summary.processed],
        ['applied', summary.applied],
        ['skipped as stale', summary.stale],
        ['sent to DLQ', summary.deadLettered],
        ['retries', summary.retries],
        ['rate', `${summary.ratePerSec} events/s over ${activeS.toFixed(1)} s`],
        [
          'latency p50/p95/p99',
          `${ms(summary.latencyMs.p50)} / ${ms(summary.latencyMs.p95)} / ${ms(summary.latencyMs.p99)}`,
        ],
      ]),
    )
  }
  return exitCode
}

runCommand('consume', main)

// node cmd/produce: generate user and order events with faker and produce them into Kafka.
import { randomInt } from 'node:crypto'
import { hideBin } from 'yargs/helpers'
import { commandLine, formatSummary, onShutdownSignals, runCommand, ExitCodes } from '../../internal/cli/index.js'
import {
  brokerList,
  configError,
  loadDotEnv,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  positiveInt,
} from '../../internal/config/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger, LOG_LEVELS, type LogLevel } from '../../internal/log/index.js'
import {
  EventSender,
  createEventProducer,
  EventGenerator,
  prepareTopics,
  sendEvents,
  type OperationMix,
} from '../../internal/producer/index.js'

const DESCRIPTION = `Generates realistic, referentially consistent user and order events (CREATE/UPDATE/DELETE) and produces them
with an idempotent acks=all producer, keyed by entity id. Creates the topics when missing (RF 3, min ISR 2).
Every partition's acknowledgement is checked; a partition left unacknowledged (a leader moved) is sent again, and a
producer that can no longer deliver is replaced, for up to 120 s per batch. A resent event may land twice in Kafka:
events are versioned, so the copy has no effect downstream. Exits 1 when a batch still fails.
Flags win over environment variables, which win over the defaults.`

function parseMix(text: string): OperationMix {
  const parts = text.split(',').map((p) => p.trim())
  const nums = parts.map(Number)
  if (parts.length !== 3 || nums.some((n) => !Number.isFinite(n) || n < 0) || nums.every((n) => n === 0)) {
    throw configError(`--mix must be three non-negative weights CREATE,UPDATE,DELETE, not all 0 (got '${text}')`)
  }
  return { create: nums[0], update: nums[1], delete: nums[2] }
}

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('produce', DESCRIPTION, hideBin(process.argv))
    .option('count', {
      type: 'string',
      describe: 'events to produce; 0 = no limit (then set --duration or stop with Ctrl-C)',
      default: '10000',
    })
    .option('rate', {
      type: 'string',
      describe: 'events per second; 0 = as fast as the cluster takes them',
      default: '0',
    })
    .option('duration', { type: 'string', describe: 'stop after this many seconds; 0 = no limit', default: '0' })
    .option('seed', {
      type: 'string',
      describe: 'generator seed: the same seed gives the same events [default: random, printed]',
    })
    .option('batch-size', { type: 'string', describe: 'events per produce request', default: '2000' })
    .option('mix', { type: 'string', describe: 'relative weights of CREATE,UPDATE,DELETE', default: '60,30,10' })
    .option('brokers', {
      type: 'string',
      describe: 'Kafka bootstrap servers host:port,... [env KAFKA_BROKERS] [default: the local stack]',
    })
    .option('users-topic', { type: 'string', describe: 'topic of user events [env USERS_TOPIC] [default: users]' })
    .option('orders-topic', { type: 'string', describe: 'topic of order events [env ORDERS_TOPIC] [default: orders]' })
    .option('users-partitions', {
      type: 'string',
      describe: 'partitions of the users topic when created',
      default: '3',
    })
    .option('orders-partitions', {
      type: 'string',
      describe: 'partitions of the orders topic when created',
      default: '5',
    })
    .option('replication-factor', { type: 'string', describe: 'replication factor of created topics', default: '3' })
    .option('min-insync-replicas', { type: 'string', describe: 'min.insync.replicas of created topics', default: '2' })
    .option('progress', { type: 'boolean', describe: 'live progress line [default: when stderr is a terminal]' })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, describe: 'log level [env LOG_LEVEL]' })
    .parseAsync()

  const env = process.env
  const count = nonNegativeInt({ flag: 'count', value: argv.count })
  const rate = nonNegativeNumber({ flag: 'rate', value: argv.rate })
  const durationS = nonNegativeNumber({ flag: 'duration', value: argv.duration })
  const seed = argv.seed === undefined ? randomInt(2 ** 31) : nonNegativeInt({ flag: 'seed', value: argv.seed })
  const batchSize = positiveInt({ flag: 'batch-size', value: argv['batch-size'] })
  const mix = parseMix(argv.mix)
  const brokers = brokerList({
    flag: 'brokers',
    value: argv.brokers,
    env: 'KAFKA_BROKERS',
    default: '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094',
  })
  const usersTopic = nonEmptyString({
    flag: 'users-topic',
    value: argv['users-topic'],
    env: 'USERS_TOPIC',
    default: 'users',
  })
  const ordersTopic = nonEmptyString({
    flag: 'orders-topic',
    value: argv['orders-topic'],
    env: 'ORDERS_TOPIC',
    default: 'orders',
  })
  const layout = {
    usersTopic,
    ordersTopic,
    usersPartitions: positiveInt({ flag: 'users-partitions', value: argv['users-partitions'] }),
    ordersPartitions: positiveInt({ flag: 'orders-partitions', value: argv['orders-partitions'] }),
    replicationFactor: positiveInt({ flag: 'replication-factor', value: argv['replication-factor'] }),
    minInsyncReplicas: positiveInt({ flag: 'min-insync-replicas', value: argv['min-insync-replicas'] }),
  }
  const level = (argv['log-level'] ?? env.LOG_LEVEL ?? 'info') as LogLevel
  const log = createLogger({ level, name: 'produce' })
  const progress = argv.progress ?? process.stderr.isTTY === true

  const kafka = createKafka({ brokers, clientId: 'cdc-produce', logger: log })
  const admin = await connectPreflightAdmin(brokers)
  await prepareTopics(admin, layout, log)
  // The partition counts the topics really have (an existing topic may differ from the layout): every message goes
  // to its key's partition, and the sender checks that partition's acknowledgement.
  const metadata = await admin.fetchTopicMetadata({ topics: [usersTopic, ordersTopic] })
  const partitions = Object.fromEntries(metadata.topics.map((t) => [t.name, t.partitions.length]))
  await admin.disconnect()

  const sender = new EventSender(() => createEventProducer(kafka), { log })
  await sender.connect()
  let stop = false
  onShutdownSignals(
    () => (stop = true),
    (line) => log.info(line),
  )

  log.info({ seed, count, rate, durationS, batchSize, mix, usersTopic, ordersTopic }, 'producing')
  const generator = new EventGenerator({ seed, mix, topics: { user: usersTopic, order: ordersTopic } })
  const started = Date.now()
  let lastDraw = 0
  const stats = await sendEvents(sender, {
    generator,
    partitions,
    count,
    ratePerSec: rate,
    durationMs: durationS * 1000,
    batchSize,
    shouldStop: () => stop,
    onBatch: () => {
      if (!progress || Date.now() - lastDraw < 250) return
      lastDraw = Date.now()
      const s = (Date.now() - started) / 1000
      process.stderr.write(
        `\r  produced ${generator.generated}  ${Math.round(generator.generated / s)} events/s  errors 0   `,
      )
    },
  })
  if (progress) process.stderr.write('\n')
  await sender.disconnect()

  const seconds = stats.elapsedMs / 1000
  process.stdout.write(
    formatSummary('produce summary', [
      ['seed', seed],
      ['produced', stats.sent],
      ...Object.entries(stats.byTopic).map(([t, n]): [string, number] => [`  to ${t}`, n]),
      ['failed', stats.failed],
      ['resent partitions', sender.resentPartitions],
      ['producer renewals', sender.renewals],
      ['elapsed', `${seconds.toFixed(1)} s`],
      ['rate', `${Math.round(stats.sent / Math.max(seconds, 0.001))} events/s`],
    ]),
  )
  if (stats.error) {
    log.error({ err: stats.error }, 'a batch could not be sent after retries; stopped')
    return ExitCodes.failure
  }
  return ExitCodes.ok
}

runCommand('produce', main)

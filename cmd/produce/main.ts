// node cmd/produce: generate user and order events with faker and produce them into Kafka.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  formatSummary,
  onShutdownSignals,
  readSettings,
  runCommand,
  ExitCodes,
  SETTINGS as S,
} from '../../internal/cli/index.js'
import { loadDotEnv } from '../../internal/config/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { produceMetrics, startCommandMetrics } from '../../internal/metrics/index.js'
import {
  EventSender,
  createEventProducer,
  EventGenerator,
  type SendStats,
  layoutTopics,
  prepareTopics,
  sendEvents,
} from '../../internal/producer/index.js'

const DESCRIPTION = `Generates realistic, referentially consistent user and order events (CREATE/UPDATE/DELETE) and produces them
with an idempotent acks=all producer, keyed by entity id. Creates the topics when missing (RF 3, min ISR 2).
Every partition's acknowledgement is checked; a partition left unacknowledged (a leader moved) is sent again, and a
producer that can no longer deliver is replaced, for up to 120 s per batch. A resent event may land twice in Kafka:
events are versioned, so the copy has no effect downstream. Exits 1 when a batch still fails.`

async function main(): Promise<number> {
  loadDotEnv()
  const get = readSettings('produce', await commandLine('produce', DESCRIPTION, hideBin(process.argv)).parseAsync())
  const count = get(S.count)
  const rate = get(S.rate)
  const durationMs = get(S.duration)
  const seed = get(S.seed)
  const batchSize = get(S.batchSize)
  const mix = get(S.mix)
  const brokers = get(S.brokers)
  const usersTopic = get(S.usersTopic)
  const ordersTopic = get(S.ordersTopic)
  const productsTopic = get(S.productsTopic)
  const layout = {
    usersTopic,
    ordersTopic,
    productsTopic,
    usersPartitions: get(S.usersPartitions),
    ordersPartitions: get(S.ordersPartitions),
    replicationFactor: get(S.replicationFactor),
    minInsyncReplicas: get(S.minInsyncReplicas),
  }
  const log = createLogger({ level: get(S.logLevel), pretty: get(S.logFormat) === 'pretty', name: 'produce' })
  const progress = get(S.progress)
  // The endpoint first: a port in use is a usage error, named before anything connects.
  const metrics = await startCommandMetrics({
    command: 'produce',
    host: get(S.metricsHost),
    port: get(S.produceMetricsPort),
    log,
  })
  try {
    return await produce()
  } finally {
    await metrics?.close()
  }

  async function produce(): Promise<number> {
    const kafka = createKafka({ brokers, clientId: 'cdc-produce', logger: log })
    const admin = await connectPreflightAdmin(brokers, { timeoutMs: get(S.connectTimeout) })
    await prepareTopics(admin, layout, log)
    // The partition counts the topics really have (an existing topic may differ from the layout): every message goes
    // to its key's partition, and the sender checks that partition's acknowledgement.
    const metadata = await admin.fetchTopicMetadata({ topics: layoutTopics(layout) })
    const partitions = Object.fromEntries(metadata.topics.map((t) => [t.name, t.partitions.length]))
    await admin.disconnect()

    const sender = new EventSender(() => createEventProducer(kafka), { log })
    await sender.connect()
    let stop = false
    onShutdownSignals(
      () => (stop = true),
      (line) => log.info(line),
    )
    const sendStats: SendStats = { sent: 0, failed: 0, byTopic: {}, elapsedMs: 0 }
    const generator = new EventGenerator({
      seed,
      mix,
      topics: { user: usersTopic, order: ordersTopic, product: productsTopic },
    })
    const onSendTime =
      metrics === undefined
        ? undefined
        : produceMetrics(metrics.registry, {
            acknowledged: () => sendStats.byTopic,
            generated: () => generator.generated,
            failed: () => sendStats.failed,
            resentPartitions: () => sender.resentPartitions,
            renewals: () => sender.renewals,
          })
    metrics?.setReadiness(() => (stop ? { ready: false, reason: 'stopping' } : { ready: true }))

    log.info({ seed, count, rate, durationMs, batchSize, mix, usersTopic, ordersTopic }, 'producing')
    const started = Date.now()
    let lastDraw = 0
    const stats = await sendEvents(sender, {
      generator,
      partitions,
      count,
      ratePerSec: rate,
      durationMs,
      batchSize,
      stats: sendStats,
      ...(onSendTime === undefined ? {} : { onSendTime }),
      shouldStop: () => stop,
      onBatch: () => {
        if (!progress || Date.now() - lastDraw < 250) return
        lastDraw = Date.now()
        const s = (Date.now() - started) / 1000
        // Acknowledged events (every partition acknowledged), and what went wrong so far.
        process.stderr.write(
          `\r  acknowledged ${sendStats.sent}  ${Math.round(sendStats.sent / s)} events/s  ` +
            `failed ${sendStats.failed}  resent partitions ${sender.resentPartitions}   `,
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
}

runCommand('produce', main)

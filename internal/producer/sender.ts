import type { Admin, Kafka, Producer } from 'kafkajs'
import type { Logger } from 'pino'
import { ensureTopics, type TopicSpec } from '../kafka/index.js'
import { encodeEvent } from '../model/index.js'
import type { EventGenerator, GeneratedEvent } from './generator.js'

/** Topic layout the producer guarantees before it sends (created when missing, warned about when different). */
export interface TopicLayout {
  usersTopic: string
  ordersTopic: string
  usersPartitions: number
  ordersPartitions: number
  replicationFactor: number
  minInsyncReplicas: number
}

/** Creates the users and orders topics when missing; logs a warning for each way an existing one differs. */
export async function prepareTopics(admin: Admin, layout: TopicLayout, log: Logger): Promise<void> {
  const configs = { 'min.insync.replicas': String(layout.minInsyncReplicas) }
  const specs: TopicSpec[] = [
    {
      topic: layout.usersTopic,
      partitions: layout.usersPartitions,
      replicationFactor: layout.replicationFactor,
      configs,
    },
    {
      topic: layout.ordersTopic,
      partitions: layout.ordersPartitions,
      replicationFactor: layout.replicationFactor,
      configs,
    },
  ]
  for (const report of await ensureTopics(admin, specs)) {
    if (report.created) log.info({ topic: report.topic }, 'created topic')
    for (const d of report.differences)
      log.warn({ topic: report.topic }, `existing topic differs from the expected layout: ${d}`)
  }
}

/** Options of {@link sendEvents}. */
export interface SendOptions {
  generator: EventGenerator
  /** Stop after this many events (0: no limit). */
  count: number
  /** Events per second (0: as fast as the cluster takes them). */
  ratePerSec: number
  /** Stop after this long (0: no limit). */
  durationMs: number
  batchSize: number
  /** Checked between batches: true stops the run after the batch in flight. */
  shouldStop: () => boolean
  /** Called after each acknowledged batch, with the events it carried. */
  onBatch?: (events: GeneratedEvent[]) => void
}

/** What a run sent. */
export interface SendStats {
  sent: number
  failed: number
  byTopic: Record<string, number>
  elapsedMs: number
  /** The first send error, when a batch failed after the client's retries. */
  error?: Error
}

/** An idempotent producer with acks=all: a retried batch is never written twice, and per-partition order holds. */
export function createEventProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: true,
    // kafkajs keeps idempotent sequence numbers correct only with one request in flight per broker.
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 10_000 },
  })
}

/**
 * Generates and sends events in batches (one request per broker per batch), paced to the target rate. The next batch
 * is generated and encoded while the previous one is in flight (one send at a time, so per-partition order holds).
 * A batch that still fails after kafkajs' retries ends the run with the error recorded: later events would build on
 * entities that may not exist.
 */
export async function sendEvents(producer: Producer, o: SendOptions): Promise<SendStats> {
  const stats: SendStats = { sent: 0, failed: 0, byTopic: {}, elapsedMs: 0 }
  const start = performance.now()
  let generated = 0
  let inFlight: Promise<void> | undefined
  const limitReached = () =>
    (o.count > 0 && generated >= o.count) || (o.durationMs > 0 && performance.now() - start >= o.durationMs)
  const settle = async () => {
    await inFlight
    inFlight = undefined
  }
  while (!limitReached() && !o.shouldStop() && !stats.error) {
    let size = o.batchSize
    if (o.count > 0) size = Math.min(size, o.count - generated)
    if (o.ratePerSec > 0) {
      // Pace: send what the schedule owes now (at least one event), else wait for the next event's slot.
      const owed = Math.floor(((performance.now() - start) / 1000) * o.ratePerSec) - generated
      if (owed <= 0) {
        await new Promise((r) => setTimeout(r, Math.max(1, 1000 / o.ratePerSec)))
        continue
      }
      size = Math.min(size, owed)
    }
    const events = o.generator.take(size)
    generated += events.length
    const byTopic = new Map<string, { key: string; value: Buffer }[]>()
    for (const e of events) {
      let list = byTopic.get(e.topic)
      if (!list) byTopic.set(e.topic, (list = []))
      list.push({ key: e.key, value: encodeEvent(e.event) })
    }
    await settle()
    if (stats.error) {
      stats.failed += events.length
      break
    }
    inFlight = producer
      .sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) })
      .then(
        () => {
          stats.sent += events.length
          for (const [topic, messages] of byTopic) stats.byTopic[topic] = (stats.byTopic[topic] ?? 0) + messages.length
          o.onBatch?.(events)
        },
        (err: unknown) => {
          stats.failed += events.length
          stats.error = err as Error
        },
      )
  }
  await settle()
  stats.elapsedMs = performance.now() - start
  return stats
}

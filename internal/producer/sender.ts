import type { Logger } from 'pino'
import {
  VerifiedSender,
  ensureTopics,
  partitionFor,
  type KafkaAdmin,
  type KafkaClient,
  type KafkaProducer,
  type TopicSpec,
} from '../kafka/index.js'
import { ENTITIES, encodeEvent } from '../model/index.js'
import type { EventGenerator, GeneratedEvent } from './generator.js'

// The partition of a key: the producer's, the DLQ writer's and the replay's (one murmur2, see internal/kafka).
export { partitionFor }

/**
 * Topic layout the producer guarantees before it sends (created when missing, warned about when different): per
 * entity table, `<table>Topic` and `<table>Partitions` (usersTopic, ordersPartitions); an entity left out gets its
 * definition's topic and partition count.
 */
export interface TopicLayout {
  [name: `${string}Topic`]: string
  [name: `${string}Partitions`]: number
  usersTopic: string
  ordersTopic: string
  usersPartitions: number
  ordersPartitions: number
  replicationFactor: number
  minInsyncReplicas: number
}

/** The layout `node cmd/produce` creates by default (SPEC: users 3 partitions, orders 5, RF 3, min ISR 2). */
export const DEFAULT_TOPIC_LAYOUT: Readonly<TopicLayout> = {
  ...Object.fromEntries(
    ENTITIES.flatMap((s) => [
      [`${s.table}Topic`, s.topic],
      [`${s.table}Partitions`, s.partitions],
    ]),
  ),
  usersTopic: 'users',
  ordersTopic: 'orders',
  usersPartitions: 3,
  ordersPartitions: 5,
  replicationFactor: 3,
  minInsyncReplicas: 2,
}

/** Every entity's topic in a layout. */
export function layoutTopics(layout: TopicLayout): string[] {
  return ENTITIES.map((s) => layout[`${s.table}Topic`] ?? s.topic)
}

/** Creates every entity's topic when missing; logs a warning for each way an existing one differs. */
export async function prepareTopics(admin: KafkaAdmin, layout: TopicLayout, log: Logger): Promise<void> {
  const configs = { 'min.insync.replicas': String(layout.minInsyncReplicas) }
  const specs: TopicSpec[] = ENTITIES.map((s) => ({
    topic: layout[`${s.table}Topic`] ?? s.topic,
    partitions: layout[`${s.table}Partitions`] ?? s.partitions,
    replicationFactor: layout.replicationFactor,
    configs,
  }))
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
  /** Partitions of each topic: every message is sent to the partition of its key, and that is checked. */
  partitions: Record<string, number>
  /** Called after each acknowledged batch, with the events it carried. */
  onBatch?: (events: GeneratedEvent[]) => void
  /**
   * When paced: at least this long between two sends (default 10 ms), so that the events owed gather into one
   * request instead of a stream of tiny acks=all requests (each costs the leader and both followers a round).
   * Events are generated (and stamped) when they are sent, so this adds nothing to their measured latency.
   */
  lingerMs?: number
  /** The stats object to count in (the caller reads it live, e.g. its metrics); a new one by default. */
  stats?: SendStats
  /** Called once per acknowledged or failed send with how long it took (the metrics' send-time histogram). */
  onSendTime?: (seconds: number) => void
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
export function createEventProducer(kafka: KafkaClient): KafkaProducer {
  return kafka.orderedProducer({ retries: 10 })
}

/** One event message with the partition it must go to. */
export interface PartitionedMessage {
  key: string
  value: Buffer
  partition: number
}

/**
 * Delivers event batches through the pipeline's one verified send path (internal/kafka/verified-send.ts): every
 * message carries its partition, every partition's acknowledgement is checked and what was not acknowledged is sent
 * again, with the producer replaced after an idempotence failure. Events are versioned and the sinks apply a version
 * once, so a copy a resend adds has no effect.
 */
export class EventSender extends VerifiedSender {}

/**
 * Generates and sends events in batches (one request per broker per batch), paced to the target rate. The next batch
 * is generated and encoded while the previous one is in flight (one send at a time, so per-partition order holds).
 * A batch that still fails after kafkajs' retries ends the run with the error recorded: later events would build on
 * entities that may not exist.
 */
export async function sendEvents(sender: Pick<EventSender, 'send'>, o: SendOptions): Promise<SendStats> {
  const stats: SendStats = o.stats ?? { sent: 0, failed: 0, byTopic: {}, elapsedMs: 0 }
  const start = performance.now()
  let generated = 0
  let inFlight: Promise<void> | undefined
  const limitReached = () =>
    (o.count > 0 && generated >= o.count) || (o.durationMs > 0 && performance.now() - start >= o.durationMs)
  const settle = async () => {
    await inFlight
    inFlight = undefined
  }
  const lingerMs = o.lingerMs ?? 10
  let lastSendAt = Number.NEGATIVE_INFINITY
  while (!limitReached() && !o.shouldStop() && !stats.error) {
    let size = o.batchSize
    if (o.count > 0) size = Math.min(size, o.count - generated)
    if (o.ratePerSec > 0) {
      const lingering = lastSendAt + lingerMs - performance.now()
      if (lingering > 0) await new Promise((r) => setTimeout(r, lingering))
      // Pace: send what the schedule owes now (at least one event), else wait for the next event's slot.
      const owed = Math.floor(((performance.now() - start) / 1000) * o.ratePerSec) - generated
      if (owed <= 0) {
        await new Promise((r) => setTimeout(r, Math.max(1, 1000 / o.ratePerSec)))
        continue
      }
      size = Math.min(size, owed)
    }
    lastSendAt = performance.now()
    const events = o.generator.take(size)
    generated += events.length
    const byTopic = new Map<string, PartitionedMessage[]>()
    for (const e of events) {
      let list = byTopic.get(e.topic)
      if (!list) byTopic.set(e.topic, (list = []))
      const partitions = o.partitions[e.topic]
      if (partitions === undefined) throw new Error(`no partition count for topic ${e.topic}`)
      list.push({ key: e.key, value: encodeEvent(e.event), partition: partitionFor(e.topic, e.key, partitions) })
    }
    await settle()
    if (stats.error) {
      stats.failed += events.length
      break
    }
    const sentAt = performance.now()
    inFlight = sender.send([...byTopic].map(([topic, messages]) => ({ topic, messages }))).then(
      () => {
        o.onSendTime?.((performance.now() - sentAt) / 1000)
        stats.sent += events.length
        for (const [topic, messages] of byTopic) stats.byTopic[topic] = (stats.byTopic[topic] ?? 0) + messages.length
        o.onBatch?.(events)
      },
      (err: unknown) => {
        o.onSendTime?.((performance.now() - sentAt) / 1000)
        stats.failed += events.length
        stats.error = err as Error
      },
    )
  }
  await settle()
  stats.elapsedMs = performance.now() - start
  return stats
}

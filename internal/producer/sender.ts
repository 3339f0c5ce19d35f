import {
  Partitioners,
  type Admin,
  type Kafka,
  type PartitionMetadata,
  type Producer,
  type RecordMetadata,
} from 'kafkajs'
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

/** The layout `node cmd/produce` creates by default (SPEC: users 3 partitions, orders 5, RF 3, min ISR 2). */
export const DEFAULT_TOPIC_LAYOUT: Readonly<TopicLayout> = {
  usersTopic: 'users',
  ordersTopic: 'orders',
  usersPartitions: 3,
  ordersPartitions: 5,
  replicationFactor: 3,
  minInsyncReplicas: 2,
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

/** One message with the partition it must go to. */
export interface PartitionedMessage {
  key: string
  value: Buffer
  partition: number
}

/** The partition Kafka's Java client (and kafkajs' default partitioner) picks for a key: murmur2 of the key. */
export function partitionFor(topic: string, key: string, partitions: number): number {
  let metadata = metadataFor.get(partitions)
  if (!metadata) {
    metadata = Array.from({ length: partitions }, (_, i) => ({
      partitionId: i,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [],
      isr: [],
    }))
    metadataFor.set(partitions, metadata)
  }
  return keyPartitioner({ topic, partitionMetadata: metadata, message: { key, value: null } })
}
const keyPartitioner = Partitioners.DefaultPartitioner()
// The partitioner only reads how many partitions there are: one metadata list per count, not one per message.
const metadataFor = new Map<number, PartitionMetadata[]>()

// Errors after which a new producer (a new producer id) can still deliver: the client's own retries ran out on a
// transient condition, or the idempotence state is out of step with the broker (a leader that lost it, a fenced
// epoch). Anything else (a message too large, an unknown topic, authorization) is not retried.
const RENEWABLE = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH'])
function renewable(err: unknown): boolean {
  const e = err as { name?: string; type?: string; retriable?: boolean; originalError?: unknown }
  if (e?.type !== undefined && RENEWABLE.has(e.type)) return true
  if (e?.name === 'KafkaJSNumberOfRetriesExceeded') return e.originalError === undefined || renewable(e.originalError)
  return e?.retriable === true || e?.name === 'KafkaJSConnectionError' || e?.name === 'KafkaJSRequestTimeoutError'
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Delivers batches with every message acknowledged by its partition's leader (acks=all), in order per partition.
 *
 * Two client failures are covered here, both seen when a broker goes away under load:
 * - kafkajs 2.2 can resolve a send without having sent some partitions: when it retries after a leader moved to a
 *   broker that had already answered for other partitions of the batch, that broker is skipped. So every message
 *   carries its partition and the acknowledgements are checked; partitions without one are sent again.
 * - its idempotent producer can end in an unrecoverable state (OUT_OF_ORDER_SEQUENCE_NUMBER after a leader change),
 *   or run out of retries while a leader is being elected. Then the producer is replaced by a new one and the
 *   partitions not yet acknowledged are sent again.
 * A resend may write a message that did arrive once more (at-least-once into Kafka); events are versioned and the
 * sinks apply a version once, so such a copy has no effect. Gives up after `deliveryTimeoutMs` of trying.
 */
export class EventSender {
  readonly #newProducer: () => Producer
  readonly #log: Logger | undefined
  readonly #deliveryTimeoutMs: number
  #producer: Producer | undefined
  /** Producers replaced after a failure, and partitions sent again, over the sender's life. */
  renewals = 0
  resentPartitions = 0

  constructor(newProducer: () => Producer, options: { log?: Logger; deliveryTimeoutMs?: number } = {}) {
    this.#newProducer = newProducer
    this.#log = options.log
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs ?? 120_000
  }

  async connect(): Promise<void> {
    const p = this.#newProducer()
    await p.connect()
    this.#producer = p
  }

  async disconnect(): Promise<void> {
    await this.#producer?.disconnect()
    this.#producer = undefined
  }

  /** Resolves when every message is acknowledged; rejects with the last error when that does not happen in time. */
  async send(batch: { topic: string; messages: PartitionedMessage[] }[]): Promise<void> {
    let pending = batch.filter((t) => t.messages.length > 0)
    const deadline = Date.now() + this.#deliveryTimeoutMs
    let lastError = 'partitions not acknowledged'
    for (let attempt = 1; pending.length > 0; attempt++) {
      try {
        if (!this.#producer) await this.connect()
        const acks: RecordMetadata[] = await this.#producer!.sendBatch({ acks: -1, topicMessages: pending })
        const acked = new Set(acks.filter((a) => a.errorCode === 0).map((a) => `${a.topicName}/${a.partition}`))
        const left = pending
          .map((t) => ({ topic: t.topic, messages: t.messages.filter((m) => !acked.has(`${t.topic}/${m.partition}`)) }))
          .filter((t) => t.messages.length > 0)
        if (left.length === 0) return
        const partitions = left.flatMap((t) => [...new Set(t.messages.map((m) => `${t.topic}/${m.partition}`))])
        this.resentPartitions += partitions.length
        this.#log?.warn(
          { partitions },
          'the client reported the batch sent, but these partitions were not acknowledged; sending them again',
        )
        pending = left
      } catch (err) {
        if (!renewable(err) || Date.now() >= deadline) throw err
        lastError = (err as Error).message
        this.renewals++
        this.#log?.warn(
          { err: (err as Error).message, attempt },
          'sending failed after the client retries; replacing the producer and sending the unacknowledged messages again',
        )
        const old = this.#producer
        this.#producer = undefined
        await old?.disconnect().catch(() => undefined)
        await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)))
      }
      if (pending.length > 0 && Date.now() >= deadline) {
        throw new Error(`batch not acknowledged within ${this.#deliveryTimeoutMs} ms: ${lastError}`)
      }
    }
  }
}

/**
 * Generates and sends events in batches (one request per broker per batch), paced to the target rate. The next batch
 * is generated and encoded while the previous one is in flight (one send at a time, so per-partition order holds).
 * A batch that still fails after kafkajs' retries ends the run with the error recorded: later events would build on
 * entities that may not exist.
 */
export async function sendEvents(sender: Pick<EventSender, 'send'>, o: SendOptions): Promise<SendStats> {
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
    inFlight = sender.send([...byTopic].map(([topic, messages]) => ({ topic, messages }))).then(
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

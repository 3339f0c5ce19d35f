import {
  Partitioners,
  type CompressionTypes,
  type IHeaders,
  type PartitionMetadata,
  type Producer,
  type RecordMetadata,
} from 'kafkajs'
import type { Logger } from 'pino'

/** One message with the partition it must go to: its acknowledgement is checked by that partition. */
export interface PartitionedMessage {
  key: Buffer | string | null
  value: Buffer | null
  partition: number
  headers?: IHeaders
}

/** The messages of one topic, for {@link VerifiedSender.send}. */
export interface TopicBatch<M extends PartitionedMessage = PartitionedMessage> {
  topic: string
  messages: M[]
}

/** The partition Kafka's Java client (and kafkajs' default partitioner) picks for a key: murmur2 of the key. */
export function partitionFor(topic: string, key: Buffer | string, partitions: number): number {
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

/** Groups items by topic in one pass (push onto each topic's list: no copying of the lists). */
export function groupByTopic<T, M extends PartitionedMessage>(
  items: Iterable<T>,
  place: (item: T) => { topic: string; message: M },
): TopicBatch<M>[] {
  const byTopic = new Map<string, M[]>()
  for (const item of items) {
    const { topic, message } = place(item)
    let list = byTopic.get(topic)
    if (list === undefined) byTopic.set(topic, (list = []))
    list.push(message)
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }))
}

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

const TOO_LARGE = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'])

/** True when the broker refused a record as too large (kafkajs wraps the protocol error; looks through the wrapping). */
export function isRecordTooLarge(err: unknown): boolean {
  for (let e = err as { type?: string; cause?: unknown; originalError?: unknown } | undefined, i = 0; e && i < 5; i++) {
    if (e.type !== undefined && TOO_LARGE.has(e.type)) return true
    e = (e.originalError ?? e.cause) as typeof e
  }
  return false
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Called before messages are sent again (after a producer renewal or unacknowledged partitions) with what is about
 * to be sent and the time it may take; returns what to send instead: the same lists without the messages it found
 * already written (an acknowledgement lost after the write landed). See {@link SendOptions}.
 */
export type BeforeResend = (pending: TopicBatch[], timeoutMs: number) => Promise<TopicBatch[]>

/** Options of one {@link VerifiedSender.send}. */
export interface SendOptions {
  /**
   * Asked before every resend of this send which messages still need writing. Bounded by the delivery timeout (at
   * most half the time left, at most {@link MAX_BEFORE_RESEND_MS}); when it fails or runs out of time everything
   * unacknowledged is sent again (at least once, a warning logged), never dropped.
   */
  beforeResend?: BeforeResend
}

/** The longest one {@link BeforeResend} call may take. */
export const MAX_BEFORE_RESEND_MS = 30_000

/** Options of {@link VerifiedSender}. */
export interface VerifiedSenderOptions {
  log?: Logger
  /** Give up after trying this long (default 120 s). */
  deliveryTimeoutMs?: number
  /** Compression of every request (default none). */
  compression?: CompressionTypes
}

/**
 * The one "send and verify every partition" path of the pipeline: the event producer, the DLQ writer and the DLQ
 * replay all deliver through it. Resolves when every message is acknowledged by its partition's leader (acks=all),
 * in order per partition.
 *
 * Two client failures are covered here, both seen when a broker goes away under load (docs/faults.md):
 * - kafkajs 2.2 can resolve a send without having sent some partitions: when it retries after a leader moved to a
 *   broker that had already answered for other partitions of the batch, that broker is skipped. So every message
 *   carries its partition and the acknowledgements are checked; partitions without one are sent again.
 * - its idempotent producer can end in an unrecoverable state (OUT_OF_ORDER_SEQUENCE_NUMBER after a leader change),
 *   or run out of retries while a leader is being elected. Then the producer is replaced by a new one and the
 *   partitions not yet acknowledged are sent again.
 * A resend may write a message that did arrive once more (at-least-once into Kafka), unless the caller passes a
 * {@link SendOptions.beforeResend} that finds what was already written (the DLQ writer does: exactly once). An error
 * no new producer fixes (a record too large, an unknown topic) is thrown at once; anything else after
 * `deliveryTimeoutMs` of trying.
 */
export class VerifiedSender {
  readonly #newProducer: () => Producer
  readonly #log: Logger | undefined
  readonly #deliveryTimeoutMs: number
  readonly #compression: CompressionTypes | undefined
  #producer: Producer | undefined
  /** Producers replaced after a failure, and partitions sent again, over the sender's life. */
  renewals = 0
  resentPartitions = 0
  /** Messages {@link SendOptions.beforeResend} found already written and left out of a resend, over the sender's life. */
  leftOutAsWritten = 0

  constructor(newProducer: () => Producer, options: VerifiedSenderOptions = {}) {
    this.#newProducer = newProducer
    this.#log = options.log
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs ?? 120_000
    this.#compression = options.compression
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
  async send(batch: TopicBatch[], options: SendOptions = {}): Promise<void> {
    let pending = batch.filter((t) => t.messages.length > 0)
    const deadline = Date.now() + this.#deliveryTimeoutMs
    let lastError = 'partitions not acknowledged'
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1 && options.beforeResend !== undefined) {
        pending = await this.#stillToWrite(pending, options.beforeResend, deadline)
        if (pending.length === 0) return
      }
      try {
        if (!this.#producer) await this.connect()
        const acks: RecordMetadata[] = await this.#producer!.sendBatch({
          acks: -1,
          topicMessages: pending,
          ...(this.#compression === undefined ? {} : { compression: this.#compression }),
        })
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

  /** What `beforeResend` says is left of `pending` (only messages of `pending`, in their order); all of it if it fails. */
  async #stillToWrite(pending: TopicBatch[], beforeResend: BeforeResend, deadline: number): Promise<TopicBatch[]> {
    const timeoutMs = Math.max(0, Math.min(MAX_BEFORE_RESEND_MS, (deadline - Date.now()) / 2))
    let timer: NodeJS.Timeout | undefined
    try {
      const answer = await Promise.race([
        beforeResend(pending, timeoutMs),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(timeoutMs)} ms`)), timeoutMs)
        }),
      ])
      // Only messages that were pending, whatever the hook returns: it may leave messages out, never add any.
      const keep = new Set(answer.flatMap((t) => t.messages))
      let leftOut = 0
      const left = pending
        .map((t) => {
          const messages = t.messages.filter((m) => keep.has(m))
          leftOut += t.messages.length - messages.length
          return { topic: t.topic, messages }
        })
        .filter((t) => t.messages.length > 0)
      if (leftOut > 0) {
        this.leftOutAsWritten += leftOut
        this.#log?.warn(
          { leftOut, resending: left.reduce((n, t) => n + t.messages.length, 0) },
          'messages to send again were already written (their acknowledgement was lost): left out of the resend',
        )
      }
      return left
    } catch (err) {
      this.#log?.warn(
        { err: (err as Error).message },
        'could not check which messages to send again were already written; sending them all again (a second copy is possible)',
      )
      return pending
    } finally {
      clearTimeout(timer)
    }
  }
}

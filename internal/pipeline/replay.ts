import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { configError } from '../config/index.js'
import { ErrorCodes, errorMessage, type ErrorCode } from '../errors/index.js'
import { VerifiedSender, groupByTopic, partitionFor, type KafkaAdmin, type KafkaClient } from '../kafka/index.js'
import { DLQ_HEADERS, dlqTopicFor, parseDlqHeaders, replayHeaders, type DlqInfo } from './dlq.js'
import { bufferOf, outgoingHeaders, toSource, type Envelope, type OutgoingRecord } from './types.js'

/** The header a replayed message carries: the offset of the DLQ record it came from. */
export const REPLAYED_FROM_DLQ_OFFSET = 'x-replayed-from-dlq-offset'
/** The partition of the DLQ record a replayed message came from (the offset alone is ambiguous). */
export const REPLAYED_FROM_DLQ_PARTITION = 'x-replayed-from-dlq-partition'

const KNOWN_CODES = Object.values(ErrorCodes) as string[]

/**
 * The --error-code filter: values may be repeated or comma-separated; none (or only blanks) means every code.
 * CONFIG_ERROR naming the valid codes for an unknown one.
 */
export function parseErrorCodeFilter(values: readonly string[] | string | undefined): Set<ErrorCode> | undefined {
  const list = (typeof values === 'string' ? [values] : (values ?? []))
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '')
  if (list.length === 0) return undefined
  const unknown = list.filter((c) => !KNOWN_CODES.includes(c))
  if (unknown.length > 0) {
    throw configError(`--error-code must be one of ${KNOWN_CODES.join(', ')} (got '${unknown.join(',')}')`)
  }
  return new Set(list as ErrorCode[])
}

/** One record read from a DLQ topic: the pipeline's envelope. */
export type DlqRecord = Envelope

/**
 * The record to produce again, to the topic it originally came from, with its original partition
 * (x-original-partition): where a record without a key goes back to.
 */
export type ReplayMessage = OutgoingRecord & { originalPartition: number }

/** What to do with one DLQ record. */
export type ReplayPlan =
  | { action: 'replay'; info: DlqInfo; message: ReplayMessage }
  /** Its error code is not in the filter. */
  | { action: 'skip'; info: DlqInfo }
  /** Its x- headers cannot be read: it is left where it is and reported. */
  | { action: 'invalid'; reason: string }

/**
 * Decides about one DLQ record: replay it (when its x-error-code passes `filter`; undefined passes all) as its
 * original key, value and headers to its x-original-topic, without the DLQ's x- headers and with
 * x-replayed-from-dlq-partition/-offset saying where it came from.
 */
export function planReplay(record: DlqRecord, filter?: ReadonlySet<string>): ReplayPlan {
  let info: DlqInfo
  try {
    info = parseDlqHeaders(record.headers)
  } catch (err) {
    return { action: 'invalid', reason: errorMessage(err) }
  }
  if (filter !== undefined && !filter.has(info.errorCode)) return { action: 'skip', info }
  if (record.headers?.[DLQ_HEADERS.truncated] !== undefined) {
    // Replaying the cut value would produce something that was never produced.
    return { action: 'invalid', reason: 'a truncated copy (x-truncated): the original value is not in the DLQ' }
  }
  const headers = outgoingHeaders(replayHeaders(record.headers))
  headers[REPLAYED_FROM_DLQ_PARTITION] = String(record.partition)
  headers[REPLAYED_FROM_DLQ_OFFSET] = record.offset
  const key =
    record.key === null ? info.originalKey : typeof record.key === 'string' ? record.key : bufferOf(record.key)
  return {
    action: 'replay',
    info,
    message: {
      topic: info.originalTopic,
      originalPartition: info.originalPartition,
      key,
      value: record.value === null ? null : bufferOf(record.value),
      headers,
    },
  }
}

/** Options of {@link replayDlq}. */
export interface ReplayOptions {
  kafka: KafkaClient
  /** Source topics: their `<topic>.dlq` are read. */
  topics: string[]
  /** Only records with one of these x-error-codes; undefined: all. */
  errorCodes?: ReadonlySet<string>
  /** Read and match only; produce nothing. */
  dryRun: boolean
  log: Logger
  /** Called for every matched record (before it is produced), e.g. to list it. */
  onMatch?: (record: DlqRecord, info: DlqInfo) => void
  /** Fail when no DLQ record arrives for this long while some are still expected. Default 60 s. */
  stallTimeoutMs?: number
  /** The stats object to count in (read live by the command's metrics); a new one by default. */
  stats?: ReplayStats
}

/** What a replay did, per DLQ topic and in all. */
export interface ReplayStats {
  read: number
  matched: number
  replayed: number
  invalid: number
  byTopic: Record<string, { read: number; matched: number; replayed: number; invalid: number }>
}

/**
 * Replays DLQ records: reads each `<topic>.dlq` from its beginning up to the end offsets it has when the replay
 * starts (records dead-lettered meanwhile, including replayed ones failing again, wait for the next replay), and
 * produces every record passing the filter back to its original topic with an idempotent acks=all producer, in DLQ
 * order (one entity's records share a DLQ partition). Reads with a throwaway consumer group, deleted at the end: no
 * committed position, so a replay can be repeated. Repeating one is harmless for the PostgreSQL sink, whose upserts
 * only move rows to a higher version.
 */
export async function replayDlq(o: ReplayOptions): Promise<ReplayStats> {
  const log = o.log.child({ module: 'replay' })
  const dlqTopics = o.topics.map(dlqTopicFor)
  const stats: ReplayStats = o.stats ?? { read: 0, matched: 0, replayed: 0, invalid: 0, byTopic: {} }
  for (const t of dlqTopics) stats.byTopic[t] = { read: 0, matched: 0, replayed: 0, invalid: 0 }

  const admin = o.kafka.admin()
  await admin.connect()
  // Next offset to reach, per "topic/partition" still to read.
  const remaining = new Map<string, bigint>()
  try {
    const existing = new Set(await admin.listTopics())
    const missing = dlqTopics.filter((t) => !existing.has(t))
    if (missing.length > 0) {
      throw configError(`DLQ topic(s) ${missing.join(', ')} do not exist (nothing was ever consumed from the source?)`)
    }
    for (const topic of dlqTopics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.high) > BigInt(p.low)) remaining.set(`${topic}/${p.partition}`, BigInt(p.high))
      }
    }
  } finally {
    await admin.disconnect()
  }
  log.info({ topics: dlqTopics, partitionsWithRecords: remaining.size, dryRun: o.dryRun }, 'replaying')
  if (remaining.size === 0) return stats

  // Through the verified send path: every partition's acknowledgement checked, so `replayed` counts what Kafka has.
  let producer: VerifiedSender | undefined
  if (!o.dryRun) {
    const kafka = o.kafka
    producer = new VerifiedSender(() => kafka.orderedProducer(), { log, compression: 'gzip' })
    await producer.connect()
  }
  const partitionCounts = new TopicPartitionCounts(o.kafka)
  const groupId = `cdc-replay-dlq-${randomUUID()}`
  const consumer = o.kafka.consumerGroup({ groupId, maxWaitTimeMs: 250, retries: 5 })
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: dlqTopics, fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const stallMs = o.stallTimeoutMs ?? 60_000
      let lastProgress = Date.now()
      const watchdog = setInterval(() => {
        if (Date.now() - lastProgress > stallMs) {
          clearInterval(watchdog)
          reject(new Error(`no DLQ records for ${stallMs / 1000} s with ${remaining.size} partition(s) unread`))
        }
      }, 500)
      consumer.onCrash((error, restart) => {
        if (!restart) {
          clearInterval(watchdog)
          reject(error)
        }
      })
      consumer
        .run({
          autoResolve: true,
          eachBatch: async ({ batch }) => {
            const key = `${batch.topic}/${batch.partition}`
            const end = remaining.get(key)
            if (end === undefined) return
            lastProgress = Date.now()
            const counts = stats.byTopic[batch.topic]!
            const toSend: ReplayMessage[] = []
            for (const m of batch.messages) {
              if (BigInt(m.offset) >= end) break
              counts.read++
              // The same envelope the engine hands to sinks.
              const record: DlqRecord = toSource(batch.topic, batch.partition, m)
              const plan = planReplay(record, o.errorCodes)
              if (plan.action === 'invalid') {
                counts.invalid++
                log.warn({ topic: batch.topic, partition: batch.partition, offset: m.offset }, plan.reason)
              } else if (plan.action === 'replay') {
                counts.matched++
                o.onMatch?.(record, plan.info)
                toSend.push(plan.message)
              }
            }
            if (producer !== undefined && toSend.length > 0) {
              // Each to the partition of its key (murmur2 over the target's partitions, as the producer does).
              for (const t of new Set(toSend.map((r) => r.topic))) await partitionCounts.load(t)
              await producer.send(
                groupByTopic(toSend, (r) => {
                  const n = partitionCounts.get(r.topic)
                  const partition = r.key === null ? r.originalPartition % n : partitionFor(r.topic, r.key, n)
                  return { topic: r.topic, message: { key: r.key, value: r.value, headers: r.headers, partition } }
                }),
              )
              counts.replayed += toSend.length
            }
            if (BigInt(batch.lastOffset()) + 1n >= end) remaining.delete(key)
            if (remaining.size === 0) {
              clearInterval(watchdog)
              resolve()
            }
          },
        })
        .catch((err: unknown) => {
          clearInterval(watchdog)
          reject(err as Error)
        })
    })
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await producer?.disconnect().catch(() => undefined)
    await partitionCounts.close()
    const cleanup = o.kafka.admin()
    try {
      await cleanup.connect()
      await cleanup.deleteGroups([groupId])
    } catch (err) {
      log.warn({ err: errorMessage(err), groupId }, 'could not delete the throwaway consumer group')
    } finally {
      await cleanup.disconnect().catch(() => undefined)
    }
  }
  for (const t of Object.values(stats.byTopic)) {
    stats.read += t.read
    stats.matched += t.matched
    stats.replayed += t.replayed
    stats.invalid += t.invalid
  }
  return stats
}

/** Partition counts of topics, read from their metadata once each (with an admin client opened when first needed). */
class TopicPartitionCounts {
  readonly #kafka: KafkaClient
  readonly #counts = new Map<string, number>()
  #admin: KafkaAdmin | undefined

  constructor(kafka: KafkaClient) {
    this.#kafka = kafka
  }

  async load(topic: string): Promise<void> {
    if (this.#counts.has(topic)) return
    if (this.#admin === undefined) {
      const admin = this.#kafka.admin()
      await admin.connect()
      this.#admin = admin
    }
    const { topics } = await this.#admin.fetchTopicMetadata({ topics: [topic] })
    const n = topics[0]?.partitions.length ?? 0
    if (n === 0) throw configError(`topic ${topic} (a DLQ record's x-original-topic) has no partitions`)
    this.#counts.set(topic, n)
  }

  get(topic: string): number {
    const n = this.#counts.get(topic)
    if (n === undefined) throw new Error(`partition count of ${topic} not loaded`)
    return n
  }

  async close(): Promise<void> {
    await this.#admin?.disconnect().catch(() => undefined)
  }
}

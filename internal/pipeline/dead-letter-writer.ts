import type { Logger } from 'pino'
import {
  groupByTopic,
  isRecordTooLarge,
  partitionFor,
  type PartitionReader,
  type PartitionedMessage,
  type SendOptions,
  type TopicBatch,
} from '../kafka/index.js'
import { PipelineError } from '../errors/index.js'
import type { DeadLetter, DeadLetterWriter } from './batch-processor.js'
import {
  DLQ_HEADERS,
  buildDlqMessage,
  dlqTopicFor,
  type DlqMessage,
  type HeaderValue,
  type MessageHeaders,
} from './dlq.js'
import type { SourceHeaders } from './types.js'

/** What the writer sends through: the pipeline's verified send (internal/kafka/verified-send.ts). */
export interface DlqSender {
  send(batch: TopicBatch[], options?: SendOptions): Promise<void>
}

/** How long noting the DLQ partitions' end offsets before a send may take (it is skipped after that). */
export const NOTE_END_OFFSETS_TIMEOUT_MS = 10_000
/** How long reading back before the one-at-a-time retry (after a too-large error) may take. */
const READ_BACK_TIMEOUT_MS = 30_000

/** The value bytes a truncated copy keeps of a record too large for the DLQ topic. */
export const TRUNCATED_VALUE_BYTES = 64 * 1024
/** A key longer than this is left out of a truncated copy (the partition stays the original key's). */
const TRUNCATED_KEY_BYTES = 4 * 1024

// Uint8Arrays come back from worker threads (structured clone): views, not copies.
const buffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.length))
const bytes = (u: Uint8Array | null): Buffer | null => (u === null ? null : buffer(u))

/** The source headers as kafkajs produces them: the same bytes, a repeated header as its list of values. */
export function kafkaHeaders(headers: SourceHeaders | undefined): MessageHeaders {
  const out: MessageHeaders = {}
  for (const [name, v] of Object.entries(headers ?? {})) out[name] = Array.isArray(v) ? v.map(buffer) : buffer(v)
  return out
}

interface OutgoingLetter {
  topic: string
  letter: DeadLetter
  message: PartitionedMessage
}

const headerText = (v: HeaderValue): string | undefined => {
  const one = Array.isArray(v) ? v.at(-1) : v
  return one === undefined ? undefined : typeof one === 'string' ? one : Buffer.from(one).toString('utf8')
}

/** A dead letter's coordinates (its original's topic, partition and offset headers), or undefined without them. */
function coordinatesOf(headers: PartitionedMessage['headers']): string | undefined {
  const h = headers ?? {}
  const topic = headerText(h[DLQ_HEADERS.originalTopic])
  const partition = headerText(h[DLQ_HEADERS.originalPartition])
  const offset = headerText(h[DLQ_HEADERS.originalOffset])
  return topic === undefined || partition === undefined || offset === undefined
    ? undefined
    : JSON.stringify([topic, partition, offset])
}

/**
 * What one {@link KafkaDeadLetterWriter.send} has written so far, as found in the DLQ: the DLQ partitions' end
 * offsets were noted before its first attempt, so a letter with the same coordinates between there and the end now
 * is this send's own earlier attempt (the letters of a source partition are written by one consumer at a time).
 */
class WrittenSince {
  readonly #reader: PartitionReader
  /** Per `topic/partition`: where the next read starts (the noted end offset, then the end of the last read). */
  readonly #next: Map<string, bigint>
  readonly #found = new Set<string>()

  constructor(reader: PartitionReader, ends: Map<string, Map<number, string>>) {
    this.#reader = reader
    this.#next = new Map(
      [...ends].flatMap(([topic, ps]) => [...ps].map(([p, o]) => [`${topic}/${p}`, BigInt(o)] as const)),
    )
  }

  /** `pending` without the letters already in the DLQ; throws when it cannot tell (the caller then sends all). */
  async stillToWrite(pending: TopicBatch[], timeoutMs: number): Promise<TopicBatch[]> {
    const deadline = Date.now() + timeoutMs
    const ends = await this.#reader.endOffsets(
      pending.map((t) => t.topic),
      timeoutMs,
    )
    const ranges = pending.flatMap((t) =>
      [...new Set(t.messages.map((m) => m.partition))].map((partition) => {
        const from = this.#next.get(`${t.topic}/${partition}`)
        const to = ends.get(t.topic)?.get(partition)
        if (from === undefined || to === undefined) throw new Error(`no offsets of ${t.topic}/${partition}`)
        return { topic: t.topic, partition, from: String(from), to }
      }),
    )
    for (const r of await this.#reader.read(ranges, Math.max(0, deadline - Date.now()))) {
      const c = coordinatesOf(r.headers)
      if (c !== undefined) this.#found.add(c)
    }
    for (const r of ranges) {
      const id = `${r.topic}/${r.partition}`
      if (BigInt(r.to) > this.#next.get(id)!) this.#next.set(id, BigInt(r.to))
    }
    return pending.map((t) => ({
      topic: t.topic,
      messages: t.messages.filter((m) => {
        const c = coordinatesOf(m.headers)
        return c === undefined || !this.#found.has(c)
      }),
    }))
  }
}

const headerBytes = (h: DlqMessage['headers']): number =>
  Object.entries(h).reduce(
    (n, [k, v]) => n + k.length + (Array.isArray(v) ? v : [v]).reduce((m, x) => m + Buffer.byteLength(x), 0),
    0,
  )

/**
 * Produces dead letters to `<source topic>.dlq` through the verified send path (acks=all, every partition's
 * acknowledgement checked, unacknowledged partitions sent again), each to the partition of its key (murmur2 over the
 * DLQ topic's partitions; a letter without a key to its original partition's number). The sender compresses (gzip).
 * A record the DLQ topic still refuses as too large is written as a truncated copy (the original's coordinates and
 * size, the first {@link TRUNCATED_VALUE_BYTES} of its value, `x-truncated`): a dead letter never stops the consumer.
 *
 * Exactly once with a `readBack`: before a send the DLQ partitions' end offsets are noted, and before any resend
 * (a renewed producer, an unacknowledged partition, the one-at-a-time retry after a too-large error) the partitions
 * are read back from there and letters whose coordinates are already there are left out: a write whose
 * acknowledgement was lost is not written again. When the offsets cannot be noted or read back, the resend goes
 * ahead with a warning (at least once): a letter is never dropped on a guess.
 */
export class KafkaDeadLetterWriter implements DeadLetterWriter {
  readonly #sender: DlqSender
  readonly #partitions: (dlqTopic: string) => number
  readonly #log: Logger | undefined
  readonly #readBack: PartitionReader | undefined
  /** Truncated copies written, over the writer's life. */
  truncated = 0
  /** Letters found already written before the one-at-a-time retry and left out of it, over the writer's life. */
  leftOutAsWritten = 0

  /**
   * `partitions` gives the partition count of a DLQ topic (from its metadata); `readBack` reads the DLQ back before
   * a resend (without it, a resend after a lost acknowledgement can write a letter twice).
   */
  constructor(sender: DlqSender, partitions: (dlqTopic: string) => number, log?: Logger, readBack?: PartitionReader) {
    this.#sender = sender
    this.#partitions = partitions
    this.#log = log?.child({ module: 'dlq' })
    this.#readBack = readBack
  }

  async send(letters: DeadLetter[]): Promise<void> {
    const records = letters.map((l) => this.#record(l))
    if (records.length === 0) return
    const written = await this.#noteEnds(records)
    const options: SendOptions =
      written === undefined ? {} : { beforeResend: (pending, timeoutMs) => written.stillToWrite(pending, timeoutMs) }
    try {
      return await this.#sender.send(
        groupByTopic(records, (r) => r),
        options,
      )
    } catch (err) {
      if (!isRecordTooLarge(err)) throw err
    }
    // Some record is too large for its DLQ topic: one at a time, so that only that one is replaced by a truncated
    // copy. The broker may have written the other partitions of the failed request: those letters are left out.
    let rest = records
    if (written !== undefined) {
      try {
        const left = await written.stillToWrite(
          groupByTopic(records, (r) => r),
          READ_BACK_TIMEOUT_MS,
        )
        const keep = new Set(left.flatMap((t) => t.messages))
        rest = records.filter((r) => keep.has(r.message))
        if (rest.length < records.length) {
          this.leftOutAsWritten += records.length - rest.length
          this.#log?.warn(
            { leftOut: records.length - rest.length, resending: rest.length },
            'dead letters of a request refused as too large were written anyway: left out of the one-at-a-time retry',
          )
        }
      } catch (err) {
        this.#log?.warn(
          { err: (err as Error).message },
          'could not read the DLQ back before the one-at-a-time retry; writing every letter again (a second copy is possible)',
        )
      }
    }
    for (const r of rest) {
      try {
        await this.#sender.send([{ topic: r.topic, messages: [r.message] }], options)
      } catch (err) {
        if (!isRecordTooLarge(err)) throw err
        await this.#sendTruncated(r, options)
      }
    }
  }

  /** The DLQ partitions' end offsets before the first attempt; undefined (at least once) without a reader or answer. */
  async #noteEnds(records: OutgoingLetter[]): Promise<WrittenSince | undefined> {
    if (this.#readBack === undefined) return undefined
    const topics = [...new Set(records.map((r) => r.topic))]
    try {
      return new WrittenSince(this.#readBack, await this.#readBack.endOffsets(topics, NOTE_END_OFFSETS_TIMEOUT_MS))
    } catch (err) {
      this.#log?.warn(
        { topics, err: (err as Error).message },
        'could not note the DLQ end offsets before a send; should it need a resend, a letter may be written twice',
      )
      return undefined
    }
  }

  #record(l: DeadLetter): OutgoingLetter {
    const topic = dlqTopicFor(l.message.topic)
    const built = buildDlqMessage({
      original: {
        topic: l.message.topic,
        partition: l.message.partition,
        offset: l.message.offset,
        key: bytes(l.message.key),
        value: bytes(l.message.value),
        headers: kafkaHeaders(l.message.headers),
      },
      error: new PipelineError(l.code, l.error),
      attempts: l.attempts,
      firstFailureAt: l.firstFailureAt,
      lastFailureAt: l.lastFailureAt,
    })
    const count = this.#partitions(topic)
    const partition = built.key === null ? l.message.partition % count : partitionFor(topic, built.key, count)
    return { topic, letter: l, message: { ...built, partition } }
  }

  async #sendTruncated(r: OutgoingLetter, options: SendOptions): Promise<void> {
    const { message: m, letter } = r
    const original = letter.message.value
    const valueBytes = original?.byteLength ?? 0
    const originalHeaderBytes = headerBytes(m.headers as DlqMessage['headers'])
    // The DLQ's own x- headers only: the original headers may be what made the record too large.
    const headers: DlqMessage['headers'] = {}
    for (const name of Object.values(DLQ_HEADERS)) {
      const v = (m.headers as DlqMessage['headers'])[name]
      if (v !== undefined) headers[name] = v
    }
    const keyBytes = m.key === null ? 0 : Buffer.byteLength(m.key)
    const key = keyBytes <= TRUNCATED_KEY_BYTES ? m.key : null
    if (key === null) delete headers[DLQ_HEADERS.originalKey]
    headers[DLQ_HEADERS.originalValueBytes] = String(valueBytes)
    const attempts: { value: Buffer | null; note: string }[] = [
      {
        value: original === null ? null : buffer(original).subarray(0, TRUNCATED_VALUE_BYTES),
        note: `too large for the DLQ topic: value of ${valueBytes} bytes cut to its first ${Math.min(valueBytes, TRUNCATED_VALUE_BYTES)}; original headers (${originalHeaderBytes} bytes) left out`,
      },
      { value: null, note: `too large for the DLQ topic: value of ${valueBytes} bytes and original headers left out` },
    ]
    for (const [i, a] of attempts.entries()) {
      headers[DLQ_HEADERS.truncated] = key === m.key ? a.note : `${a.note}; key of ${keyBytes} bytes left out`
      try {
        await this.#sender.send(
          [{ topic: r.topic, messages: [{ key, value: a.value, headers, partition: m.partition }] }],
          options,
        )
        this.truncated++
        const where = {
          topic: letter.message.topic,
          partition: letter.message.partition,
          offset: letter.message.offset,
        }
        this.#log?.warn({ ...where, valueBytes }, `dead letter written as a truncated copy: ${a.note}`)
        return
      } catch (err) {
        if (!isRecordTooLarge(err) || i === attempts.length - 1) throw err
      }
    }
  }
}

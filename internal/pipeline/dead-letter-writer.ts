import type { Logger } from 'pino'
import { groupByTopic, isRecordTooLarge, partitionFor, type PartitionedMessage } from '../kafka/index.js'
import { isRetriableCode } from '../errors/index.js'
import type { KafkaHeaders } from '../kafka/index.js'
import type { DeadLetter, DeadLetterWriter } from './batch-processor.js'
import { DLQ_HEADERS, buildDlqMessage, type DlqMessage } from './dlq.js'
import { bufferOf } from './types.js'

/** What the writer sends through: the pipeline's verified send (internal/kafka/verified-send.ts). */
export interface DlqSender {
  send(batch: { topic: string; messages: PartitionedMessage[] }[]): Promise<void>
}

/** The value bytes a truncated copy keeps of a record too large for the DLQ topic. */
export const TRUNCATED_VALUE_BYTES = 64 * 1024
/** A key longer than this is left out of a truncated copy (the partition stays the original key's). */
const TRUNCATED_KEY_BYTES = 4 * 1024

interface OutgoingLetter {
  topic: string
  letter: DeadLetter
  message: PartitionedMessage
}

const headerBytes = (h: KafkaHeaders): number =>
  Object.entries(h).reduce(
    (n, [k, v]) =>
      n + k.length + (v === undefined ? [] : Array.isArray(v) ? v : [v]).reduce((m, x) => m + Buffer.byteLength(x), 0),
    0,
  )

/**
 * Produces dead letters to `<source topic>.dlq` through the verified send path (acks=all, every partition's
 * acknowledgement checked, unacknowledged partitions sent again), each to the partition of its key (murmur2 over the
 * DLQ topic's partitions; a letter without a key to its original partition's number). The sender compresses (gzip).
 * A record the DLQ topic still refuses as too large is written as a truncated copy (the original's coordinates and
 * size, the first {@link TRUNCATED_VALUE_BYTES} of its value, `x-truncated`): a dead letter never stops the consumer.
 */
export class KafkaDeadLetterWriter implements DeadLetterWriter {
  readonly #sender: DlqSender
  readonly #partitions: (dlqTopic: string) => number
  readonly #log: Logger | undefined
  /** Truncated copies written, over the writer's life. */
  truncated = 0

  /** `partitions` gives the partition count of a DLQ topic (from its metadata). */
  constructor(sender: DlqSender, partitions: (dlqTopic: string) => number, log?: Logger) {
    this.#sender = sender
    this.#partitions = partitions
    this.#log = log?.child({ module: 'dlq' })
  }

  async send(letters: DeadLetter[]): Promise<void> {
    const records = letters.map((l) => this.#record(l))
    try {
      return await this.#sender.send(groupByTopic(records, (r) => r))
    } catch (err) {
      if (!isRecordTooLarge(err)) throw err
    }
    // Some record is too large for its DLQ topic: one at a time, so that only that one is replaced by a truncated
    // copy. Records of this call already written are written again (at least once, as every resend).
    for (const r of records) {
      try {
        await this.#sender.send([{ topic: r.topic, messages: [r.message] }])
      } catch (err) {
        if (!isRecordTooLarge(err)) throw err
        await this.#sendTruncated(r)
      }
    }
  }

  #record(l: DeadLetter): OutgoingLetter {
    // The consumed envelope as it is, and the failure as plain data (the same the sink reported).
    const { topic, key, value, headers } = buildDlqMessage({
      original: l.message,
      error: { code: l.code, message: l.error, retriable: isRetriableCode(l.code) },
      attempts: l.attempts,
      firstFailureAt: l.firstFailureAt,
      lastFailureAt: l.lastFailureAt,
    })
    const count = this.#partitions(topic)
    const partition = key === null ? l.message.partition % count : partitionFor(topic, key, count)
    return { topic, letter: l, message: { key, value, headers, partition } }
  }

  async #sendTruncated(r: OutgoingLetter): Promise<void> {
    const { message: m, letter } = r
    const original = letter.message.value
    const valueBytes = original?.byteLength ?? 0
    const originalHeaders: DlqMessage['headers'] = m.headers ?? {}
    const originalHeaderBytes = headerBytes(originalHeaders)
    // The DLQ's own x- headers only: the original headers may be what made the record too large.
    const headers: DlqMessage['headers'] = {}
    for (const name of Object.values(DLQ_HEADERS)) {
      const v = originalHeaders[name]
      if (v !== undefined) headers[name] = v
    }
    const keyBytes = m.key === null ? 0 : Buffer.byteLength(m.key)
    const key = keyBytes <= TRUNCATED_KEY_BYTES ? m.key : null
    if (key === null) delete headers[DLQ_HEADERS.originalKey]
    headers[DLQ_HEADERS.originalValueBytes] = String(valueBytes)
    const attempts: { value: Buffer | null; note: string }[] = [
      {
        value: original === null ? null : bufferOf(original).subarray(0, TRUNCATED_VALUE_BYTES),
        note: `too large for the DLQ topic: value of ${valueBytes} bytes cut to its first ${Math.min(valueBytes, TRUNCATED_VALUE_BYTES)}; original headers (${originalHeaderBytes} bytes) left out`,
      },
      { value: null, note: `too large for the DLQ topic: value of ${valueBytes} bytes and original headers left out` },
    ]
    for (const [i, a] of attempts.entries()) {
      headers[DLQ_HEADERS.truncated] = key === m.key ? a.note : `${a.note}; key of ${keyBytes} bytes left out`
      try {
        await this.#sender.send([
          { topic: r.topic, messages: [{ key, value: a.value, headers, partition: m.partition }] },
        ])
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

// What crosses the worker-thread boundary (--workers), packed. A batch: the bytes of every key, value and header
// copied into one ArrayBuffer that is transferred (moved, not copied again), the rest as a few flat columns. Posted as
// they are, the messages cost far more: structured clone serialises one object per message and header, and copies
// the whole ArrayBuffer under each Uint8Array view, and kafkajs's keys and values are views into the fetch response,
// so each batch copied the response of every partition fetched with it. A result: only the failed outcomes, by
// index (nearly every outcome is { status: 'ok' }, an object per message to clone for nothing).
import type { BatchResult, MessageOutcome, SourceHeaders, SourceMessage } from './types.js'

/** The messages of a batch in the form posted to a worker thread ({@link packBatch}, {@link unpackBatch}). */
export interface PackedBatch {
  /** Every key, value and header value of the batch, back to back. */
  bytes: ArrayBuffer
  /** Per message, LAYOUT_FIELDS int32s: topic index, partition, key start and length, value start and length (a
   * length of -1: null), and how many header entries it has. */
  layout: Int32Array
  topics: string[]
  offsets: string[]
  timestamps: string[]
  headerNames: string[]
  /** Per header entry, 4 int32s: name index, start, length, form (0 a value, 1 an element of a list, 2 an empty
   * list). */
  headerLayout: Int32Array
}

const LAYOUT_FIELDS = 7
const HEADER_FIELDS = 4
const NULL_LENGTH = -1

/** Packs `messages`; `transfer` lists the buffers to move with it (postMessage's transfer list). */
export function packBatch(messages: readonly SourceMessage[]): { batch: PackedBatch; transfer: ArrayBuffer[] } {
  let size = 0
  let headerEntries = 0
  for (const m of messages) {
    size += (m.key?.byteLength ?? 0) + (m.value?.byteLength ?? 0)
    for (const name in m.headers) {
      const v = m.headers[name]
      if (v === undefined) continue
      if (Array.isArray(v)) {
        headerEntries += Math.max(1, v.length)
        for (const x of v) size += x.byteLength
      } else {
        headerEntries++
        size += v.byteLength
      }
    }
  }
  const bytes = new ArrayBuffer(size)
  const all = new Uint8Array(bytes)
  const layout = new Int32Array(messages.length * LAYOUT_FIELDS)
  const headerLayout = new Int32Array(headerEntries * HEADER_FIELDS)
  const topics: string[] = []
  const headerNames: string[] = []
  const offsets = new Array<string>(messages.length)
  const timestamps = new Array<string>(messages.length)
  let at = 0
  let h = 0
  // Copies `b` (null: none) to the end and returns its length, NULL_LENGTH for null.
  const put = (b: Uint8Array | null): number => {
    if (b === null) return NULL_LENGTH
    all.set(b, at)
    at += b.byteLength
    return b.byteLength
  }
  const putHeader = (name: number, b: Uint8Array | undefined, form: number): void => {
    const start = at
    headerLayout[h] = name
    headerLayout[h + 1] = start
    headerLayout[h + 2] = b === undefined ? 0 : put(b)
    headerLayout[h + 3] = form
    h += HEADER_FIELDS
  }
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]
    const l = i * LAYOUT_FIELDS
    let topic = topics.indexOf(m.topic)
    if (topic < 0) topic = topics.push(m.topic) - 1
    layout[l] = topic
    layout[l + 1] = m.partition
    layout[l + 2] = at
    layout[l + 3] = put(m.key)
    layout[l + 4] = at
    layout[l + 5] = put(m.value)
    let entries = 0
    for (const name in m.headers) {
      const v = m.headers[name]
      if (v === undefined) continue
      let n = headerNames.indexOf(name)
      if (n < 0) n = headerNames.push(name) - 1
      if (!Array.isArray(v)) putHeader(n, v, 0)
      else if (v.length === 0) putHeader(n, undefined, 2)
      else for (const x of v) putHeader(n, x, 1)
      entries += Array.isArray(v) ? Math.max(1, v.length) : 1
    }
    layout[l + 6] = entries
    offsets[i] = m.offset
    timestamps[i] = m.timestamp
  }
  return {
    batch: { bytes, layout, topics, offsets, timestamps, headerNames, headerLayout },
    transfer: [bytes, layout.buffer as ArrayBuffer, headerLayout.buffer as ArrayBuffer],
  }
}

/** The messages of a packed batch, as they were: keys, values and header values are Buffers over its bytes. */
export function unpackBatch(batch: PackedBatch): SourceMessage[] {
  const all = Buffer.from(batch.bytes)
  const { layout, headerLayout, headerNames } = batch
  const count = layout.length / LAYOUT_FIELDS
  const out = new Array<SourceMessage>(count)
  const view = (start: number, length: number): Buffer | null =>
    length === NULL_LENGTH ? null : all.subarray(start, start + length)
  let h = 0
  for (let i = 0; i < count; i++) {
    const l = i * LAYOUT_FIELDS
    const headers: SourceHeaders = {}
    for (let e = layout[l + 6]; e > 0; e--, h += HEADER_FIELDS) {
      const name = headerNames[headerLayout[h]]
      const form = headerLayout[h + 3]
      const value = all.subarray(headerLayout[h + 1], headerLayout[h + 1] + headerLayout[h + 2])
      if (form === 0) headers[name] = value
      else if (form === 2) headers[name] = []
      else ((headers[name] ??= []) as Uint8Array[]).push(value)
    }
    out[i] = {
      topic: batch.topics[layout[l]],
      partition: layout[l + 1],
      offset: batch.offsets[i],
      key: view(layout[l + 2], layout[l + 3]),
      value: view(layout[l + 4], layout[l + 5]),
      headers,
      timestamp: batch.timestamps[i],
    }
  }
  return out
}

/** A batch result as a worker thread posts it back: the outcomes that are not ok, by index ({@link packResult}). */
export interface PackedResult extends Omit<BatchResult, 'outcomes'> {
  /** How many outcomes there are: every one not in `notOk` is { status: 'ok' }. */
  outcomes: number
  notOk: [index: number, outcome: MessageOutcome][]
}

/** The result with its ok outcomes left out. */
export function packResult(result: BatchResult): PackedResult {
  const notOk: [number, MessageOutcome][] = []
  const outcomes = result.outcomes
  for (let i = 0; i < outcomes.length; i++) if (outcomes[i].status !== 'ok') notOk.push([i, outcomes[i]])
  return { ...result, outcomes: outcomes.length, notOk }
}

/** The result as the sink returned it. */
export function unpackResult(packed: PackedResult): BatchResult {
  const outcomes = new Array<MessageOutcome>(packed.outcomes)
  for (let i = 0; i < outcomes.length; i++) outcomes[i] = { status: 'ok' }
  for (const [i, o] of packed.notOk) outcomes[i] = o
  const result: BatchResult = {
    outcomes,
    applied: packed.applied,
    stale: packed.stale,
    latenciesMs: packed.latenciesMs,
  }
  if (packed.provides !== undefined) result.provides = packed.provides
  return result
}

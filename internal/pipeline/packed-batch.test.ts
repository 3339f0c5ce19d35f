import { describe, expect, it } from 'vitest'
import { packBatch, packResult, unpackBatch, unpackResult } from './packed-batch.js'
import type { BatchResult, SourceMessage } from './types.js'

// Views into one larger buffer, as kafkajs hands keys and values over (slices of the fetch response).
const response = Buffer.from('....KEY-1....{"a":1}....x-trace....v1v2....tail-of-the-fetch-response'.repeat(100))
const slice = (text: string): Buffer => {
  const at = response.indexOf(text)
  return response.subarray(at, at + text.length)
}

const messages: SourceMessage[] = [
  {
    topic: 'orders',
    partition: 4,
    offset: '9007199254740993',
    key: slice('KEY-1'),
    value: slice('{"a":1}'),
    headers: { 'x-trace': slice('x-trace'), 'x-repeated': [slice('v1'), slice('v2')], 'x-one': [slice('v1')] },
    timestamp: '1767225600000',
  },
  { topic: 'orders', partition: 4, offset: '7', key: null, value: null, headers: {}, timestamp: '0' },
  {
    topic: 'users',
    partition: 0,
    offset: '0',
    key: Buffer.alloc(0),
    value: new Uint8Array([0xff, 0x00, 0xfe]),
    headers: { empty: [], blank: new Uint8Array(0) },
    timestamp: '1',
  },
]

const plain = (ms: SourceMessage[]) => structuredClone(ms).map((m) => ({ ...m }))

describe('packBatch / unpackBatch', () => {
  it('gives back every message as it was: nulls, empty bytes, topics, int64 offsets, single and repeated headers', () => {
    const { batch, transfer } = packBatch(messages)
    const back = unpackBatch(structuredClone(batch, { transfer }))
    // Compared as plain data (Buffers and Uint8Arrays alike): the same bytes, nulls and header forms.
    const norm = (ms: SourceMessage[]) =>
      ms.map((m) => ({
        ...m,
        key: m.key === null ? null : [...m.key],
        value: m.value === null ? null : [...m.value],
        headers: Object.fromEntries(
          Object.entries(m.headers).map(([k, v]) => [k, Array.isArray(v) ? v.map((x) => [...x]) : { one: [...v] }]),
        ),
      }))
    expect(norm(back)).toEqual(norm(plain(messages)))
    expect(Object.keys(back[0].headers)).toEqual(['x-trace', 'x-repeated', 'x-one'])
  })

  it('copies only the batch bytes, not the buffers its views are over, and moves them without another copy', () => {
    const { batch, transfer } = packBatch(messages)
    expect(batch.bytes.byteLength).toBe(5 + 7 + 7 + 4 + 2 + 3)
    expect(response.buffer.byteLength).toBeGreaterThan(batch.bytes.byteLength * 100)
    const moved = structuredClone(batch, { transfer })
    expect(batch.bytes.byteLength).toBe(0) // detached here: moved to the receiver
    expect(unpackBatch(moved)[0].value).toEqual(Buffer.from('{"a":1}'))
  })

  it('packs an empty batch', () => {
    const { batch, transfer } = packBatch([])
    expect(unpackBatch(structuredClone(batch, { transfer }))).toEqual([])
  })
})

describe('packResult / unpackResult', () => {
  it('posts only the outcomes that are not ok, and gives back the result as the sink returned it', () => {
    const result: BatchResult = {
      outcomes: [
        { status: 'ok' },
        { status: 'failed', code: 'MISSING_REFERENCE', message: 'user u1 ...', retriable: true, awaits: 'user/u1' },
        { status: 'ok' },
        { status: 'failed', code: 'VALIDATION_ERROR', message: 'quantity ...', retriable: false },
      ],
      applied: 1,
      stale: 1,
      latenciesMs: [12, 3.5],
      provides: ['user/u2'],
    }
    const packed = structuredClone(packResult(result))
    expect(packed.outcomes).toBe(4)
    expect(packed.notOk.map(([i]) => i)).toEqual([1, 3])
    expect(unpackResult(packed)).toEqual(result)
    const none = { outcomes: [], applied: 0, stale: 0, latenciesMs: [] }
    expect(unpackResult(structuredClone(packResult(none)))).toEqual(none)
  })
})

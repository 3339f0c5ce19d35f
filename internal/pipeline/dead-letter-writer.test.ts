import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import {
  VerifiedSender,
  partitionFor,
  type Compression,
  type ConsumedMessage,
  type KafkaProducer,
  type ProduceAck,
} from '../kafka/index.js'
import { BatchProcessor, newStats, type DeadLetter } from './batch-processor.js'
import { KafkaDeadLetterWriter, TRUNCATED_VALUE_BYTES } from './dead-letter-writer.js'
import { toSource } from './engine.js'
import type { MessageOutcome, SourceMessage } from './types.js'
import { WaitingRoom } from './waiting-room.js'

const log = pino({ level: 'silent' })

// How the writer is built over a kafkajs producer: the one line that differs when this file is run against the
// code before the fix (there: `new KafkaDeadLetterWriter(producer)`).
const writerOver = (producer: KafkaProducer) =>
  new KafkaDeadLetterWriter(new VerifiedSender(() => producer), () => 3, log)

interface Written {
  topic: string
  partition: number
  key: Buffer | string | null
  value: Buffer | null
  headers: Record<string, unknown>
}

type Sent = { key: Buffer | string | null; value: Buffer | null; headers?: Record<string, unknown>; partition?: number }

/**
 * A producer double (the KafkaProducer port) with 3 partitions per topic. `dropOnce`: the first call acknowledges (and writes) only
 * its first partition and resolves anyway, as kafkajs 2.2.4 does after a leader moved. `maxRecordBytes`: a record
 * larger than this fails the call as the broker's MESSAGE_TOO_LARGE does (nothing of the call written).
 */
function fakeProducer(o: { dropOnce?: boolean; maxRecordBytes?: number } = {}) {
  const written: Written[] = []
  const compressions: (Compression | undefined)[] = []
  let calls = 0
  const size = (m: Sent) =>
    (m.value?.length ?? 0) +
    Object.values(m.headers ?? {}).reduce<number>((n, v) => n + String(v).length, 0) +
    (m.key === null ? 0 : Buffer.byteLength(m.key))
  const producer = {
    connect: async () => undefined,
    disconnect: async () => undefined,
    sendBatch: async (b: {
      topicMessages: { topic: string; messages: Sent[] }[]
      compression?: Compression
    }): Promise<ProduceAck[]> => {
      calls++
      compressions.push(b.compression)
      const tps = new Map<string, { topic: string; partition: number; messages: Sent[] }>()
      for (const t of b.topicMessages) {
        for (const m of t.messages) {
          if (o.maxRecordBytes !== undefined && size(m) > o.maxRecordBytes) {
            const protocol = Object.assign(
              new Error('The request included a message larger than the max message size'),
              {
                name: 'KafkaJSProtocolError',
                type: 'MESSAGE_TOO_LARGE',
                retriable: false,
              },
            )
            throw Object.assign(new Error(protocol.message), { name: 'KafkaJSNonRetriableError', cause: protocol })
          }
          // Without an explicit partition kafkajs' default partitioner picks murmur2 of the key.
          const partition = m.partition ?? partitionFor(t.topic, m.key ?? '', 3)
          const id = `${t.topic}/${partition}`
          if (!tps.has(id)) tps.set(id, { topic: t.topic, partition, messages: [] })
          tps.get(id)!.messages.push(m)
        }
      }
      const acks: ProduceAck[] = []
      ;[...tps.values()].forEach((tp, i) => {
        if (o.dropOnce && calls === 1 && i > 0) return
        for (const m of tp.messages) {
          written.push({
            topic: tp.topic,
            partition: tp.partition,
            key: m.key,
            value: m.value,
            headers: m.headers ?? {},
          })
        }
        acks.push({ topicName: tp.topic, partition: tp.partition, errorCode: 0 })
      })
      return acks
    },
  }
  return { producer: producer as unknown as KafkaProducer, written, compressions, calls: () => calls }
}

const source = (offset: number, key: string, value = Buffer.from('{}')): SourceMessage => ({
  topic: 'orders',
  partition: 1,
  offset: String(offset),
  key: Buffer.from(key),
  value,
  headers: {},
  timestamp: '0',
})
const letter = (m: SourceMessage): DeadLetter => ({
  message: m,
  code: 'VALIDATION_ERROR',
  error: 'bad',
  attempts: 1,
  firstFailureAt: new Date(0),
  lastFailureAt: new Date(0),
})
const header = (w: Written, name: string) => String(w.headers[name])

// Two keys whose dead letters go to different partitions of orders.dlq.
const keys = (() => {
  const first = 'key-0'
  for (let i = 1; ; i++) {
    if (partitionFor('orders.dlq', `key-${i}`, 3) !== partitionFor('orders.dlq', first, 3)) return [first, `key-${i}`]
  }
})()

describe('KafkaDeadLetterWriter', () => {
  it('does not report dead letters written when the client acknowledged only some of their partitions', async () => {
    const fake = fakeProducer({ dropOnce: true })
    const invalid: MessageOutcome = { status: 'failed', code: 'VALIDATION_ERROR', message: 'bad', retriable: false }
    const processor = new BatchProcessor({
      executor: async () => ({
        run: async (ms) => ({ outcomes: ms.map(() => invalid), applied: 0, stale: 0, latenciesMs: [] }),
        close: async () => undefined,
      }),
      retry: { attempts: 1, baseMs: 1, maxMs: 1, maxElapsedMs: 1_000 },
      deadLetters: writerOver(fake.producer),
      taskTimeoutMs: 1_000,
      stats: newStats(),
      log,
      onFatal: () => undefined,
    })
    const messages = [source(10, keys[0]!), source(11, keys[1]!)]
    const outcome = await processor.process(messages, new WaitingRoom(), {
      heartbeat: async () => undefined,
      gone: () => false,
    })
    expect(outcome.kind).toBe('done')
    // Done (so committed) means both dead letters are in the DLQ.
    expect(fake.written.map((w) => header(w, 'x-original-offset')).sort()).toEqual(['10', '11'])
  })

  it('writes header bytes unchanged and a repeated header repeated, from the consumed message to the DLQ', async () => {
    const consumed = {
      offset: '5',
      key: Buffer.from(keys[0]!),
      value: Buffer.from('{}'),
      timestamp: '0',
      attributes: 0,
      headers: { bin: Buffer.from([0xff, 0x00]), rep: [Buffer.from('a,b'), Buffer.from('c')] },
    } as unknown as ConsumedMessage
    const fake = fakeProducer()
    await writerOver(fake.producer).send([letter(toSource('orders', 1, consumed))])
    expect(fake.written).toHaveLength(1)
    const h = fake.written[0]!.headers
    expect(Buffer.isBuffer(h.bin) && (h.bin as Buffer).equals(Buffer.from([0xff, 0x00]))).toBe(true)
    expect(Array.isArray(h.rep)).toBe(true)
    expect((h.rep as Buffer[]).map((b) => Buffer.from(b).toString())).toEqual(['a,b', 'c'])
  })

  it('writes the same bytes for an envelope that crossed a worker thread (its Buffers cloned to plain Uint8Arrays)', async () => {
    const consumed = {
      offset: '6',
      key: Buffer.from(keys[1]!),
      value: Buffer.from([0x7b, 0xff, 0x7d]),
      timestamp: '0',
      headers: { bin: Buffer.from([0xff, 0x00]), rep: [Buffer.from('a'), Buffer.from('b')] },
    } as unknown as ConsumedMessage
    const cloned = structuredClone(toSource('orders', 2, consumed))
    expect(Buffer.isBuffer(cloned.key)).toBe(false)
    const fake = fakeProducer()
    await writerOver(fake.producer).send([letter(cloned)])
    const w = fake.written[0]!
    expect(Buffer.isBuffer(w.key) && w.key.equals(Buffer.from(keys[1]!))).toBe(true)
    expect(Buffer.isBuffer(w.value) && w.value.equals(Buffer.from([0x7b, 0xff, 0x7d]))).toBe(true)
    expect(w.partition).toBe(partitionFor('orders.dlq', keys[1]!, 3))
    expect(Buffer.isBuffer(w.headers.bin) && (w.headers.bin as Buffer).equals(Buffer.from([0xff, 0x00]))).toBe(true)
    expect((w.headers.rep as Buffer[]).map((b) => Buffer.isBuffer(b) && b.toString())).toEqual(['a', 'b'])
    expect(String(w.headers['x-original-key'])).toBe(keys[1])
    expect(String(w.headers['x-error-code'])).toBe('VALIDATION_ERROR')
    expect(String(w.headers['x-error-message'])).toBe('bad')
  })

  it('groups 50,000 dead letters in linear time (no copy of the list per letter)', async () => {
    const time = async (n: number) => {
      const letters = Array.from({ length: n }, (_, i) => letter(source(i, `k${i}`)))
      const fake = fakeProducer()
      const writer = writerOver(fake.producer)
      const start = performance.now()
      await writer.send(letters)
      const ms = performance.now() - start
      expect(fake.written).toHaveLength(n)
      return ms
    }
    await time(5_000) // warm up
    const small = await time(5_000)
    const large = await time(50_000)
    // 10x the letters: about 10x the time when linear, about 100x when every letter copies the list so far.
    console.log(`[dlq] 5,000 letters ${small.toFixed(0)} ms, 50,000 letters ${large.toFixed(0)} ms`)
    expect(large / small).toBeLessThan(30)
  })

  it('writes a record too large for the DLQ topic as a truncated copy with its coordinates and size, and the rest whole', async () => {
    const fake = fakeProducer({ maxRecordBytes: 1_000_000 })
    const big = source(7, keys[0]!, Buffer.alloc(2_000_000, 0x61))
    const small = source(8, keys[1]!)
    await writerOver(fake.producer).send([letter(big), letter(small)])
    const copy = fake.written.find((w) => header(w, 'x-original-offset') === '7')!
    expect(copy.value).toHaveLength(TRUNCATED_VALUE_BYTES)
    expect(copy.value!.equals(Buffer.alloc(TRUNCATED_VALUE_BYTES, 0x61))).toBe(true)
    expect(header(copy, 'x-truncated')).toMatch(/value of 2000000 bytes cut to its first 65536/)
    expect(header(copy, 'x-original-value-bytes')).toBe('2000000')
    expect([header(copy, 'x-original-topic'), header(copy, 'x-original-partition')]).toEqual(['orders', '1'])
    expect(header(copy, 'x-error-code')).toBe('VALIDATION_ERROR')
    expect(copy.partition).toBe(partitionFor('orders.dlq', keys[0]!, 3))
    const whole = fake.written.filter((w) => header(w, 'x-original-offset') === '8')
    expect(whole.length).toBeGreaterThanOrEqual(1)
    expect(whole.every((w) => w.headers['x-truncated'] === undefined)).toBe(true)
  })

  it('sends compressed when its sender compresses', async () => {
    const fake = fakeProducer()
    const sender = new VerifiedSender(() => fake.producer, { compression: 'gzip' })
    await new KafkaDeadLetterWriter(sender, () => 3).send([letter(source(1, 'k'))])
    expect(fake.compressions).toEqual(['gzip'])
  })
})

import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import {
  VerifiedSender,
  partitionFor,
  type Compression,
  type ConsumedMessage,
  type KafkaProducer,
  type PartitionReader,
  type ProduceAck,
  type ReadRecord,
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
 * larger than this fails the call as the broker's MESSAGE_TOO_LARGE does (nothing of the call written, unless
 * `writeOthersWhenTooLarge`: then the call's other partitions are written, as a broker does per partition).
 * `loseAckOnce`: the first call writes everything, then fails as a lost answer does (a request timeout, retriable).
 */
function fakeProducer(
  o: { dropOnce?: boolean; maxRecordBytes?: number; writeOthersWhenTooLarge?: boolean; loseAckOnce?: boolean } = {},
) {
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
      const tps = new Map<string, { topic: string; partition: number; messages: Sent[]; tooLarge: boolean }>()
      for (const t of b.topicMessages) {
        for (const m of t.messages) {
          // Without an explicit partition kafkajs' default partitioner picks murmur2 of the key.
          const partition = m.partition ?? partitionFor(t.topic, m.key ?? '', 3)
          const id = `${t.topic}/${partition}`
          if (!tps.has(id)) tps.set(id, { topic: t.topic, partition, messages: [], tooLarge: false })
          tps.get(id)!.messages.push(m)
          if (o.maxRecordBytes !== undefined && size(m) > o.maxRecordBytes) tps.get(id)!.tooLarge = true
        }
      }
      const write = (tp: { topic: string; partition: number; messages: Sent[] }) => {
        for (const m of tp.messages) {
          written.push({
            topic: tp.topic,
            partition: tp.partition,
            key: m.key,
            value: m.value,
            headers: m.headers ?? {},
          })
        }
      }
      if ([...tps.values()].some((tp) => tp.tooLarge)) {
        if (o.writeOthersWhenTooLarge) for (const tp of tps.values()) if (!tp.tooLarge) write(tp)
        const protocol = Object.assign(new Error('The request included a message larger than the max message size'), {
          name: 'KafkaJSProtocolError',
          type: 'MESSAGE_TOO_LARGE',
          retriable: false,
        })
        throw Object.assign(new Error(protocol.message), { name: 'KafkaJSNonRetriableError', cause: protocol })
      }
      if (o.loseAckOnce && calls === 1) {
        for (const tp of tps.values()) write(tp)
        throw Object.assign(new Error('Request Produce(key: 0, version: 7) timed out'), {
          name: 'KafkaJSRequestTimeoutError',
          retriable: true,
        })
      }
      const acks: ProduceAck[] = []
      ;[...tps.values()].forEach((tp, i) => {
        if (o.dropOnce && calls === 1 && i > 0) return
        write(tp)
        acks.push({ topicName: tp.topic, partition: tp.partition, errorCode: 0 })
      })
      return acks
    },
  }
  return { producer: producer as unknown as KafkaProducer, written, compressions, calls: () => calls }
}

/**
 * A {@link PartitionReader} over what a fake producer wrote (offsets: each partition's records in order). `fail`:
 * every call after the first (the noting) throws; `hang`: every read never answers.
 */
function fakeReader(written: Written[], o: { fail?: 'note' | 'read'; hang?: boolean } = {}) {
  const reads: { from: string; to: string }[] = []
  const inPartition = (topic: string, partition: number) =>
    written.filter((w) => w.topic === topic && w.partition === partition)
  const reader: PartitionReader = {
    endOffsets: async (topics) => {
      if (o.fail === 'note') throw new Error('no leader for orders.dlq/1')
      return new Map(
        topics.map((t) => [t, new Map([0, 1, 2].map((p) => [p, String(inPartition(t, p).length)] as const))] as const),
      )
    },
    read: async (ranges) => {
      if (o.fail === 'read') throw new Error('the read-back group could not join')
      if (o.hang) return new Promise<never>(() => undefined)
      reads.push(...ranges.map((r) => ({ from: r.from, to: r.to })))
      return ranges.flatMap((r) =>
        inPartition(r.topic, r.partition)
          .map((w, i): ReadRecord => ({
            topic: w.topic,
            partition: w.partition,
            offset: String(i),
            key: w.key === null ? null : Buffer.from(w.key),
            value: w.value,
            headers: w.headers as ReadRecord['headers'],
            timestamp: '0',
          }))
          .filter((x) => BigInt(x.offset) >= BigInt(r.from)),
      )
    },
  }
  return { reader, reads }
}

/** The warnings a writer logged. */
function warnings() {
  const lines: string[] = []
  const logger = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) })
  return { logger, messages: () => lines.map((l) => String((JSON.parse(l) as { msg: string }).msg)) }
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

  it('writes each dead letter once when a write landed but its acknowledgement was lost (the DLQ read back before the resend)', async () => {
    const offsets = (w: Written[]) => w.map((x) => header(x, 'x-original-offset')).sort()
    const letters = [letter(source(10, keys[0]!)), letter(source(11, keys[1]!))]
    // Without the read-back (the writer before this fix): the renewed producer writes both again.
    const before = fakeProducer({ loseAckOnce: true })
    await writerOver(before.producer).send(letters)
    expect(offsets(before.written)).toEqual(['10', '10', '11', '11'])

    const fake = fakeProducer({ loseAckOnce: true })
    const { reader, reads } = fakeReader(fake.written)
    const log = warnings()
    const sender = new VerifiedSender(() => fake.producer, { log: log.logger })
    await new KafkaDeadLetterWriter(sender, () => 3, log.logger, reader).send(letters)
    expect(offsets(fake.written)).toEqual(['10', '11'])
    expect(sender.renewals).toBe(1)
    expect(sender.leftOutAsWritten).toBe(2)
    // Read from the end offsets noted before the first attempt (nothing was there).
    expect(reads.map((r) => r.from)).toEqual(['0', '0'])
    expect(log.messages()).toContain(
      'messages to send again were already written (their acknowledgement was lost): left out of the resend',
    )
  })

  it('reads back only from where the DLQ ended before the send: an older letter of the same coordinates does not count', async () => {
    const fake = fakeProducer()
    const { reader } = fakeReader(fake.written)
    const writer = new KafkaDeadLetterWriter(new VerifiedSender(() => fake.producer), () => 3, log, reader)
    // An earlier run dead-lettered offset 10 already (a restart before the commit): it is written again, as before.
    await writer.send([letter(source(10, keys[0]!))])
    const lossy = fakeProducer({ loseAckOnce: true })
    lossy.written.push(...fake.written)
    const again = new KafkaDeadLetterWriter(
      new VerifiedSender(() => lossy.producer),
      () => 3,
      log,
      fakeReader(lossy.written).reader,
    )
    await again.send([letter(source(10, keys[0]!)), letter(source(11, keys[1]!))])
    expect(lossy.written.map((w) => header(w, 'x-original-offset')).sort()).toEqual(['10', '10', '11'])
  })

  it('sends a partition the client skipped (nothing of it written) once, after reading it back', async () => {
    const fake = fakeProducer({ dropOnce: true })
    const { reader, reads } = fakeReader(fake.written)
    const sender = new VerifiedSender(() => fake.producer)
    await new KafkaDeadLetterWriter(sender, () => 3, log, reader).send([
      letter(source(10, keys[0]!)),
      letter(source(11, keys[1]!)),
    ])
    expect(fake.written.map((w) => header(w, 'x-original-offset')).sort()).toEqual(['10', '11'])
    expect(sender.resentPartitions).toBe(1)
    expect(sender.leftOutAsWritten).toBe(0)
    expect(reads).toHaveLength(1)
  })

  it('sends again (at least once, a warning) when the DLQ cannot be read back or its offsets noted: never drops a letter', async () => {
    for (const fail of ['read', 'note'] as const) {
      const fake = fakeProducer({ loseAckOnce: true })
      const log = warnings()
      const writer = new KafkaDeadLetterWriter(
        new VerifiedSender(() => fake.producer, { log: log.logger }),
        () => 3,
        log.logger,
        fakeReader(fake.written, { fail }).reader,
      )
      await writer.send([letter(source(10, keys[0]!)), letter(source(11, keys[1]!))])
      expect(fake.written.map((w) => header(w, 'x-original-offset')).sort()).toEqual(['10', '10', '11', '11'])
      expect(log.messages().some((m) => /a second copy is possible|may be written twice/.test(m))).toBe(true)
    }
  })

  it('bounds a read-back that never answers by the delivery timeout, then sends again', async () => {
    const fake = fakeProducer({ loseAckOnce: true })
    const sender = new VerifiedSender(() => fake.producer, { deliveryTimeoutMs: 3_000 })
    const writer = new KafkaDeadLetterWriter(sender, () => 3, log, fakeReader(fake.written, { hang: true }).reader)
    const start = Date.now()
    await writer.send([letter(source(10, keys[0]!))])
    // 500 ms back-off after the renewal, then at most half of the 2.5 s left.
    expect(Date.now() - start).toBeLessThan(2_500)
    expect(fake.written).toHaveLength(2)
  })

  it('leaves the letters a too-large request wrote anyway out of the one-at-a-time retry', async () => {
    const big = source(7, keys[0]!, Buffer.alloc(2_000_000, 0x61))
    const small = source(8, keys[1]!)
    const count = (w: Written[], offset: string) => w.filter((x) => header(x, 'x-original-offset') === offset).length
    // Without the read-back: the letter of the other partition is written twice.
    const before = fakeProducer({ maxRecordBytes: 1_000_000, writeOthersWhenTooLarge: true })
    await writerOver(before.producer).send([letter(big), letter(small)])
    expect([count(before.written, '7'), count(before.written, '8')]).toEqual([1, 2])

    const fake = fakeProducer({ maxRecordBytes: 1_000_000, writeOthersWhenTooLarge: true })
    const writer = new KafkaDeadLetterWriter(
      new VerifiedSender(() => fake.producer),
      () => 3,
      log,
      fakeReader(fake.written).reader,
    )
    await writer.send([letter(big), letter(small)])
    expect([count(fake.written, '7'), count(fake.written, '8')]).toEqual([1, 1])
    expect(writer.leftOutAsWritten).toBe(1)
    expect(writer.truncated).toBe(1)
  })

  it('writes a truncated copy once when its acknowledgement was lost', async () => {
    const lossy = () => {
      const fake = fakeProducer({ maxRecordBytes: 1_000_000 })
      // The first call that writes (the truncated copy's: the whole record is refused) loses its answer.
      let landed = 0
      const real = fake.producer.sendBatch.bind(fake.producer)
      fake.producer.sendBatch = (async (b: Parameters<KafkaProducer['sendBatch']>[0]) => {
        const acks = await real(b)
        if (++landed === 1) throw Object.assign(new Error('Request timed out'), { name: 'KafkaJSRequestTimeoutError' })
        return acks
      }) as KafkaProducer['sendBatch']
      return fake
    }
    const big = () => letter(source(7, keys[0]!, Buffer.alloc(2_000_000, 0x61)))
    const before = lossy()
    await writerOver(before.producer).send([big()])
    expect(before.written).toHaveLength(2)

    const fake = lossy()
    const writer = new KafkaDeadLetterWriter(
      new VerifiedSender(() => fake.producer),
      () => 3,
      log,
      fakeReader(fake.written).reader,
    )
    await writer.send([big()])
    expect(fake.written).toHaveLength(1)
    expect(fake.written[0]!.value).toHaveLength(TRUNCATED_VALUE_BYTES)
  })

  it('sends compressed when its sender compresses', async () => {
    const fake = fakeProducer()
    const sender = new VerifiedSender(() => fake.producer, { compression: 'gzip' })
    await new KafkaDeadLetterWriter(sender, () => 3).send([letter(source(1, 'k'))])
    expect(fake.compressions).toEqual(['gzip'])
  })
})

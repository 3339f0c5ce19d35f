import { describe, expect, it } from 'vitest'
import type { KafkaProducer, ProduceAck } from '../kafka/index.js'
import { EventGenerator } from './generator.js'
import { EventSender, partitionFor, sendEvents, type PartitionedMessage } from './sender.js'

type Batch = { topic: string; messages: PartitionedMessage[] }[]

// A producer double (the KafkaProducer port of internal/kafka): `answer` decides what each sendBatch call returns or throws.
function fakeProducers(answer: (call: number, batch: Batch) => ProduceAck[] | Error) {
  const calls: { producer: number; batch: Batch }[] = []
  let producers = 0
  let call = 0
  const make = (): KafkaProducer => {
    const id = ++producers
    return {
      connect: async () => undefined,
      disconnect: async () => undefined,
      sendBatch: async ({ topicMessages }: { topicMessages: Batch }) => {
        calls.push({ producer: id, batch: topicMessages })
        const a = answer(++call, topicMessages)
        if (a instanceof Error) throw a
        return a
      },
    } as unknown as KafkaProducer
  }
  return { make, calls, producers: () => producers }
}

const ack = (batch: Batch, skip: string[] = []): ProduceAck[] =>
  batch.flatMap((t) =>
    [...new Set(t.messages.map((m) => m.partition))]
      .filter((p) => !skip.includes(`${t.topic}/${p}`))
      .map((p) => ({ topicName: t.topic, partition: p, errorCode: 0 })),
  )

const msg = (key: string, partition: number): PartitionedMessage => ({ key, value: Buffer.from(key), partition })
const batch: Batch = [
  { topic: 'users', messages: [msg('a', 0), msg('b', 1)] },
  { topic: 'orders', messages: [msg('c', 2), msg('d', 2)] },
]

describe('partitionFor', () => {
  it("is the partition Kafka's Java client picks for the key (murmur2)", () => {
    // Values from Kafka 4.3.1's Java client: Utils.toPositive(Utils.murmur2(key.getBytes(UTF_8))) % n.
    const key = '0f8e1c7a-5b1e-4f6e-9a55-3f1d2c4b5a69'
    expect([partitionFor('t', 'a', 3), partitionFor('t', 'a', 5)]).toEqual([1, 4])
    expect([partitionFor('t', 'b', 3), partitionFor('t', 'b', 5)]).toEqual([2, 1])
    expect([partitionFor('t', key, 3), partitionFor('t', key, 5)]).toEqual([0, 1])
    const ps = Array.from({ length: 300 }, (_, i) => partitionFor('t', `key-${i}`, 3))
    expect(new Set(ps)).toEqual(new Set([0, 1, 2]))
    expect(ps.every((p) => p >= 0 && p < 3)).toBe(true)
  })
})

describe('EventSender', () => {
  it('sends partitions again that the client reported sent without an acknowledgement', async () => {
    const f = fakeProducers((call, b) => (call === 1 ? ack(b, ['orders/2']) : ack(b)))
    const sender = new EventSender(f.make)
    await sender.send(batch)
    expect(f.calls).toHaveLength(2)
    expect(f.calls[1]!.batch).toEqual([{ topic: 'orders', messages: [msg('c', 2), msg('d', 2)] }])
    expect(sender.resentPartitions).toBe(1)
    expect(f.producers()).toBe(1)
  })

  it('replaces the producer after an idempotence failure and sends the batch again', async () => {
    const fatal = Object.assign(new Error('The broker received an out of order sequence number'), {
      name: 'KafkaJSProtocolError',
      type: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
      retriable: false,
    })
    const f = fakeProducers((call, b) => (call === 1 ? fatal : ack(b)))
    const sender = new EventSender(f.make)
    await sender.send(batch)
    expect(f.producers()).toBe(2)
    expect(f.calls.map((c) => c.producer)).toEqual([1, 2])
    expect(f.calls[1]!.batch).toEqual(batch)
    expect(sender.renewals).toBe(1)
  })

  it('replaces the producer when the client ran out of retries on a transient error', async () => {
    const exhausted = Object.assign(new Error('Connection error: connect ECONNREFUSED'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      retriable: false,
      originalError: Object.assign(new Error('ECONNREFUSED'), { name: 'KafkaJSConnectionError', retriable: true }),
    })
    const f = fakeProducers((call, b) => (call < 3 ? exhausted : ack(b)))
    const sender = new EventSender(f.make)
    await sender.send(batch)
    expect(f.producers()).toBe(3)
  })

  it('fails at once on an error a new producer cannot fix', async () => {
    const tooLarge = Object.assign(new Error('The request included a message larger than the max message size'), {
      name: 'KafkaJSProtocolError',
      type: 'MESSAGE_TOO_LARGE',
      retriable: false,
    })
    const f = fakeProducers(() => tooLarge)
    const sender = new EventSender(f.make)
    await expect(sender.send(batch)).rejects.toThrow(/larger than the max message size/)
    expect(f.calls).toHaveLength(1)
  })

  it('gives up after the delivery timeout', async () => {
    const f = fakeProducers(() => Object.assign(new Error('leader not available'), { retriable: true }))
    const sender = new EventSender(f.make, { deliveryTimeoutMs: 300 })
    await expect(sender.send(batch)).rejects.toThrow(/not acknowledged within 300 ms: leader not available/)
  })
})

describe('sendEvents pacing', () => {
  it('gathers the events owed at a paced rate into one request per linger interval, not a stream of tiny ones', async () => {
    const sizes: number[] = []
    const generator = new EventGenerator({ seed: 1 })
    const stats = await sendEvents(
      { send: async (b) => void sizes.push(b.reduce((n, t) => n + t.messages.length, 0)) },
      {
        generator,
        count: 0,
        ratePerSec: 5_000,
        durationMs: 300,
        batchSize: 2_000,
        shouldStop: () => false,
        partitions: { users: 3, orders: 5, products: 3 },
        lingerMs: 20,
      },
    )
    // 300 ms at 5,000/s is about 1,500 events; with 20 ms between sends that is at most ~16 requests (an
    // acknowledgement that comes at once would otherwise let it send every millisecond).
    expect(stats.sent).toBeGreaterThan(1_000)
    expect(sizes.length).toBeLessThanOrEqual(17)
    expect(Math.max(...sizes.slice(1))).toBeGreaterThan(50)
  })
})

import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { partitionFor, type KafkaClient } from '../kafka/index.js'

import { ErrorCodes, PipelineError } from '../errors/index.js'
import { buildDlqMessage, type MessageHeaders } from './dlq.js'
import {
  REPLAYED_FROM_DLQ_OFFSET,
  REPLAYED_FROM_DLQ_PARTITION,
  parseErrorCodeFilter,
  planReplay,
  replayDlq,
} from './replay.js'

const key = Buffer.from('bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb')
const value = Buffer.from([0x7b, 0xff, 0x7d]) // not UTF-8: must come back byte for byte

// A DLQ record as the consumer reads it: the headers buildDlqMessage wrote, as Buffers.
function dlqRecord(code: keyof typeof ErrorCodes, originalHeaders: MessageHeaders = {}) {
  const built = buildDlqMessage({
    original: { topic: 'orders', partition: 4, offset: '77', key, value, headers: originalHeaders },
    error: new PipelineError(code, `failed with ${code}`),
    attempts: 3,
    firstFailureAt: '2025-01-01T00:00:00.000Z',
    lastFailureAt: '2025-01-01T00:00:05.000Z',
  })
  const headers: MessageHeaders = Object.fromEntries(
    Object.entries(built.headers).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]),
  )
  return { topic: 'orders.dlq', partition: 1, offset: '12', key, value, headers }
}

describe('parseErrorCodeFilter', () => {
  it('takes repeated and comma-separated codes', () => {
    expect(parseErrorCodeFilter(['MISSING_REFERENCE', 'DECODE_ERROR, VALIDATION_ERROR'])).toEqual(
      new Set(['MISSING_REFERENCE', 'DECODE_ERROR', 'VALIDATION_ERROR']),
    )
    expect(parseErrorCodeFilter('SINK_REJECTED')).toEqual(new Set(['SINK_REJECTED']))
  })

  it('means every code when nothing is given', () => {
    expect(parseErrorCodeFilter(undefined)).toBeUndefined()
    expect(parseErrorCodeFilter([])).toBeUndefined()
    expect(parseErrorCodeFilter([' , '])).toBeUndefined()
  })

  it('rejects an unknown code with a CONFIG_ERROR naming the valid ones', () => {
    let thrown: unknown
    try {
      parseErrorCodeFilter(['MISSING_REFERENCE,missing_reference'])
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(PipelineError)
    expect((thrown as PipelineError).code).toBe('CONFIG_ERROR')
    expect((thrown as PipelineError).message).toMatch(
      /^--error-code must be one of DECODE_ERROR, VALIDATION_ERROR, MISSING_REFERENCE, .* \(got 'missing_reference'\)$/,
    )
  })
})

describe('planReplay', () => {
  it('replays a matching record to its original topic with its key, bytes and original headers', () => {
    const traceparent = Buffer.from('00-abc-def-01')
    const plan = planReplay(dlqRecord('MISSING_REFERENCE', { traceparent }), new Set(['MISSING_REFERENCE']))
    expect(plan.action).toBe('replay')
    if (plan.action !== 'replay') return
    expect(plan.info).toMatchObject({ originalTopic: 'orders', originalPartition: 4, originalOffset: '77' })
    expect(plan.message.topic).toBe('orders')
    expect(plan.message.key).toBe(key)
    expect(plan.message.value).toBe(value)
    // The DLQ's x- headers are gone (a failure on replay gets fresh ones); where it came from is added.
    expect(plan.message.headers).toEqual({
      traceparent,
      [REPLAYED_FROM_DLQ_PARTITION]: '1',
      [REPLAYED_FROM_DLQ_OFFSET]: '12',
    })
  })

  it('replays every code without a filter', () => {
    for (const code of ['DECODE_ERROR', 'VALIDATION_ERROR', 'MISSING_REFERENCE'] as const) {
      expect(planReplay(dlqRecord(code)).action).toBe('replay')
    }
  })

  it('skips records whose code is not in the filter', () => {
    const filter = new Set(['MISSING_REFERENCE'])
    const plan = planReplay(dlqRecord('VALIDATION_ERROR'), filter)
    expect(plan).toEqual({ action: 'skip', info: expect.objectContaining({ errorCode: 'VALIDATION_ERROR' }) })
    expect(planReplay(dlqRecord('DECODE_ERROR'), filter).action).toBe('skip')
  })

  it('overwrites a previous replay mark rather than stacking one', () => {
    const again = dlqRecord('MISSING_REFERENCE', {
      [REPLAYED_FROM_DLQ_PARTITION]: '0',
      [REPLAYED_FROM_DLQ_OFFSET]: '3',
    })
    const plan = planReplay(again)
    if (plan.action !== 'replay') throw new Error(`expected replay, got ${plan.action}`)
    expect(plan.message.headers[REPLAYED_FROM_DLQ_OFFSET]).toBe('12')
    expect(plan.message.headers[REPLAYED_FROM_DLQ_PARTITION]).toBe('1')
  })

  it('falls back to x-original-key for a record without a key', () => {
    const plan = planReplay({ ...dlqRecord('MISSING_REFERENCE'), key: null })
    if (plan.action !== 'replay') throw new Error(`expected replay, got ${plan.action}`)
    expect(plan.message.key).toBe(key.toString())
  })

  it('reports a record whose DLQ headers are missing or bad instead of replaying it', () => {
    const record = dlqRecord('MISSING_REFERENCE')
    delete record.headers['x-original-topic']
    expect(planReplay(record)).toEqual({ action: 'invalid', reason: 'DLQ header x-original-topic is missing' })
    expect(planReplay({ ...record, headers: undefined }).action).toBe('invalid')
  })

  it('does not replay a truncated copy (its value is not the original)', () => {
    const record = dlqRecord('VALIDATION_ERROR')
    record.headers['x-truncated'] = Buffer.from('too large for the DLQ topic')
    expect(planReplay(record)).toEqual({
      action: 'invalid',
      reason: 'a truncated copy (x-truncated): the original value is not in the DLQ',
    })
  })

  it('keeps header bytes and repeated headers as the DLQ record has them', () => {
    const plan = planReplay(
      dlqRecord('DECODE_ERROR', { bin: Buffer.from([0xff, 0x00]), rep: [Buffer.from('a'), Buffer.from('b')] }),
    )
    if (plan.action !== 'replay') throw new Error(plan.action)
    expect(plan.message.headers.bin).toEqual(Buffer.from([0xff, 0x00]))
    expect(plan.message.headers.rep).toEqual([Buffer.from('a'), Buffer.from('b')])
    expect(plan.message.originalPartition).toBe(4)
  })
})

describe('replayDlq', () => {
  // A client double (the ports of internal/kafka): orders.dlq holds `records` in partition 0; the producer acknowledges (and writes) only the
  // first partition of its first call and resolves anyway, as kafkajs 2.2.4 does after a leader moved.
  function fakeKafka(records: ReturnType<typeof dlqRecord>[]) {
    const written: { topic: string; partition: number; key: unknown }[] = []
    let calls = 0
    const admin = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      listTopics: async () => ['orders', 'orders.dlq'],
      fetchTopicOffsets: async () => [{ partition: 0, low: '0', high: String(records.length), offset: '0' }],
      fetchTopicMetadata: async () => ({
        topics: [{ name: 'orders', partitions: [0, 1, 2, 3, 4].map((p) => ({ partitionId: p })) }],
      }),
      deleteGroups: async () => [],
    }
    const consumer = {
      onCrash: () => undefined,
      connect: async () => undefined,
      subscribe: async () => undefined,
      disconnect: async () => undefined,
      run: async (o: { eachBatch: (p: unknown) => Promise<void> }) => {
        const messages = records.map((r, i) => ({ ...r, offset: String(i) }))
        await o.eachBatch({
          batch: { topic: 'orders.dlq', partition: 0, messages, lastOffset: () => String(records.length - 1) },
        })
      },
    }
    const producer = {
      connect: async () => undefined,
      disconnect: async () => undefined,
      sendBatch: async (b: {
        topicMessages: { topic: string; messages: { key: unknown; partition?: number }[] }[]
      }) => {
        calls++
        const acks: { topicName: string; partition: number; errorCode: number }[] = []
        const seen: string[] = []
        for (const t of b.topicMessages) {
          for (const m of t.messages) {
            // Without an explicit partition kafkajs' default partitioner picks murmur2 of the key.
            const partition = m.partition ?? partitionFor(t.topic, m.key as Buffer, 5)
            const id = `${t.topic}/${partition}`
            if (!seen.includes(id)) seen.push(id)
            if (calls === 1 && seen.indexOf(id) > 0) continue
            written.push({ topic: t.topic, partition, key: m.key })
            if (!acks.some((a) => a.partition === partition)) acks.push({ topicName: t.topic, partition, errorCode: 0 })
          }
        }
        return acks
      },
    }
    return {
      kafka: {
        admin: () => admin,
        consumerGroup: () => consumer,
        orderedProducer: () => producer,
      } as unknown as KafkaClient,
      written,
    }
  }

  it('counts a record replayed only once its partition acknowledged it', async () => {
    // Two records whose keys go to different partitions of orders.
    const a = dlqRecord('MISSING_REFERENCE')
    const b = { ...dlqRecord('MISSING_REFERENCE'), key: Buffer.from('dddddddd-dddd-4ddd-8ddd-dddddddddddd') }
    expect(partitionFor('orders', a.key, 5)).not.toBe(partitionFor('orders', b.key, 5))
    const fake = fakeKafka([a, b])
    const stats = await replayDlq({
      kafka: fake.kafka,
      topics: ['orders'],
      dryRun: false,
      log: pino({ level: 'silent' }),
    })
    expect(stats.replayed).toBe(2)
    expect(fake.written.map((w) => String(w.key)).sort()).toEqual([String(a.key), String(b.key)].sort())
  })
})

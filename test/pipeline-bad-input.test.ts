// Issue 3: bad input never stops the pipeline and is never dropped silently. Malformed, schema-invalid and orphan
// messages written straight into the topics between good events each end in <topic>.dlq with their origin, error
// and attempts, while every good event is applied. After the fix (the missing user arrives), node cmd/replay-dlq
// with the MISSING_REFERENCE filter brings the orphan order back and it is applied.
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { KafkaHeaders } from '../internal/kafka/index.js'
import { encodeEvent, type OrderEvent, type UserEvent } from '../internal/model/index.js'
import { dlqTopicFor } from '../internal/pipeline/index.js'
import { EventGenerator, type GeneratedEvent } from '../internal/producer/index.js'
import { kafka } from './helpers.js'
import {
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  headerText,
  loadRows,
  parseJsonSummary,
  pipelineTest,
  readDlq,
  readEvents,
  readTopics,
  runCommand,
  topicEndOffsets,
  type TopicRecord,
} from './pipeline-helpers.js'

const GOOD = 3_000

interface Bad {
  label: string
  topic: string
  key: string | null
  value: Buffer | null
  headers?: KafkaHeaders
  code: 'DECODE_ERROR' | 'VALIDATION_ERROR' | 'MISSING_REFERENCE'
  message: RegExp
}

interface ReplaySummary {
  read: number
  matched: number
  replayed: number
  invalid: number
  dryRun: boolean
}

const sameBytes = (a: Buffer | null, b: Buffer | null): boolean =>
  a === null || b === null ? a === b : Buffer.compare(a, b) === 0

describe('bad input -> DLQ, and replay after a fix', () => {
  it('dead-letters each bad message with its origin and error, applies every good one, and replays the orphan', async () => {
    const ctx = pipelineTest('bad')
    await ctx.createTopics()
    const generator = new EventGenerator({ seed: ctx.seed, topics: ctx.topicNames })
    const good: GeneratedEvent[] = generator.take(GOOD)
    const aUser = good.find((g) => g.entity === 'user')!.event as UserEvent
    const anOrder = good.find((g) => g.entity === 'order' && g.event.event_type === 'CREATE')!.event as OrderEvent
    const now = new Date().toISOString()
    const missingUserId = randomUUID()
    const orphan: OrderEvent = {
      ...anOrder,
      event_id: randomUUID(),
      order_id: randomUUID(),
      user_id: missingUserId,
      occurred_at: now,
      placed_at: now,
      modified_at: now,
    }
    const json = (v: object) => Buffer.from(JSON.stringify(v))
    const bad: Bad[] = [
      {
        label: 'truncated JSON',
        topic: ctx.users,
        key: randomUUID(),
        value: Buffer.from('{"event_type":"CREATE","user_id":'),
        code: 'DECODE_ERROR',
        message: /not valid JSON/,
      },
      {
        label: 'invalid UTF-8',
        topic: ctx.users,
        key: randomUUID(),
        value: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
        code: 'DECODE_ERROR',
        message: /not valid UTF-8/,
      },
      {
        label: 'tombstone',
        topic: ctx.orders,
        key: randomUUID(),
        value: null,
        code: 'DECODE_ERROR',
        message: /empty/,
      },
      {
        label: 'JSON array, no key',
        topic: ctx.orders,
        key: null,
        value: Buffer.from('[1,2,3]'),
        code: 'DECODE_ERROR',
        message: /must be a JSON object/,
      },
      {
        // An update of a real user: had it been applied, its version would block the user's later events.
        label: 'name of 60 characters',
        topic: ctx.users,
        key: aUser.user_id,
        value: json({ ...aUser, event_id: randomUUID(), event_type: 'UPDATE', version: 1_000, name: 'N'.repeat(60) }),
        code: 'VALIDATION_ERROR',
        message: /^name must be a string of 1 to 50 characters/,
      },
      {
        label: 'negative quantity',
        topic: ctx.orders,
        key: anOrder.order_id,
        value: json({
          ...anOrder,
          event_id: randomUUID(),
          event_type: 'UPDATE',
          order_status: 'SHIPPED',
          version: 1_000,
          quantity: -3,
        }),
        code: 'VALIDATION_ERROR',
        message: /^quantity must be an integer from 1 to 10000 \(got -3\)/,
      },
      {
        label: 'unknown event_type',
        topic: ctx.orders,
        key: anOrder.order_id,
        value: json({ ...anOrder, event_id: randomUUID(), event_type: 'UPSERT', version: 2 }),
        code: 'VALIDATION_ERROR',
        message: /^event_type must be one of CREATE, UPDATE, DELETE/,
      },
      {
        label: 'unknown schema version',
        topic: ctx.orders,
        key: randomUUID(),
        value: json({ ...anOrder, order_id: randomUUID(), event_id: randomUUID(), schema_version: 2 }),
        code: 'VALIDATION_ERROR',
        message: /^schema_version must be 1/,
      },
      {
        label: 'order of a user that never exists',
        topic: ctx.orders,
        key: orphan.order_id,
        value: encodeEvent(orphan),
        headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
        code: 'MISSING_REFERENCE',
        message: new RegExp(`user ${missingUserId}`),
      },
    ]

    // Good events, with the bad ones in between, in three rounds, so good events follow bad ones in the partitions.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const third = Math.ceil(GOOD / 3)
    for (let round = 0; round < 3; round++) {
      const slice = good.slice(round * third, (round + 1) * third)
      const byTopic = new Map<string, { key: string | null; value: Buffer | null; headers?: KafkaHeaders }[]>()
      const add = (topic: string, m: { key: string | null; value: Buffer | null; headers?: KafkaHeaders }) =>
        byTopic.set(topic, [...(byTopic.get(topic) ?? []), m])
      slice.slice(0, slice.length / 2).forEach((g) => add(g.topic, { key: g.key, value: encodeEvent(g.event) }))
      bad.filter((_, i) => i % 3 === round).forEach((b) => add(b.topic, b))
      slice.slice(slice.length / 2).forEach((g) => add(g.topic, { key: g.key, value: encodeEvent(g.event) }))
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
    }
    await producer.disconnect()
    const total = GOOD + bad.length

    const group = ctx.group()
    const consumeArgs = [
      ...ctx.topicArgs,
      '--group',
      group,
      '--retry-max-time',
      '5',
      '--idle-timeout',
      '5',
      '--summary-json',
      '--log-level',
      'warn',
    ]
    const run1 = await runCommand('consume', consumeArgs)
    expectExit(run1)
    const s1 = consumeSummary(run1.stdout)
    console.log(`[bad] consume: ${JSON.stringify(s1)} in ${Math.round(run1.durationMs)} ms`)
    expect(s1.reason).toMatch(/^idle/)
    expect(s1.processed).toBe(total)
    expect(s1.deadLettered).toBe(bad.length)

    // Every good event applied, exactly; the orphan order absent.
    const { events, rejected, records } = await readEvents(ctx)
    expect(events).toHaveLength(GOOD + 1)
    expect(rejected).toHaveLength(bad.length - 1)
    const expected = expectedStateOf(ctx, events)
    ctx.trackRows([missingUserId], [orphan.order_id])
    expect([...expected.orphanOrderIds]).toEqual([orphan.order_id])
    await expectRowsMatch(expected)

    // Each bad message is in its topic's DLQ, once, with its bytes, key, origin and error.
    const findSource = (b: Bad): TopicRecord => {
      const found = records.filter((r) => r.topic === b.topic && r.key === b.key && sameBytes(r.value, b.value))
      expect(found, b.label).toHaveLength(1)
      return found[0]!
    }
    const dlq = await readDlq(ctx)
    expect(dlq).toHaveLength(bad.length)
    for (const b of bad) {
      const source = findSource(b)
      const letters = dlq.filter(
        (d) =>
          headerText(d.headers, 'x-original-topic') === b.topic &&
          headerText(d.headers, 'x-original-partition') === String(source.partition) &&
          headerText(d.headers, 'x-original-offset') === source.offset,
      )
      expect(letters, b.label).toHaveLength(1)
      const d = letters[0]!
      expect(d.topic, b.label).toBe(dlqTopicFor(b.topic))
      expect(sameBytes(d.value, b.value), `${b.label}: DLQ value is the original bytes`).toBe(true)
      expect(d.key, b.label).toBe(b.key)
      expect(headerText(d.headers, 'x-original-key'), b.label).toBe(b.key ?? undefined)
      expect(headerText(d.headers, 'x-error-code'), b.label).toBe(b.code)
      expect(headerText(d.headers, 'x-error-message'), b.label).toMatch(b.message)
      const attempts = Number(headerText(d.headers, 'x-attempts'))
      const first = Date.parse(headerText(d.headers, 'x-first-failure-at') ?? '')
      const last = Date.parse(headerText(d.headers, 'x-last-failure-at') ?? '')
      expect(Number.isFinite(first) && Number.isFinite(last), b.label).toBe(true)
      if (b.code === 'MISSING_REFERENCE') {
        // Retried with backoff inside the 5 s bound, then dead-lettered.
        expect(attempts).toBeGreaterThan(1)
        expect(last - first).toBeGreaterThan(0)
        expect(last - first).toBeLessThanOrEqual(5_000)
        expect(headerText(d.headers, 'traceparent')).toBe(b.headers!.traceparent)
      } else {
        expect(attempts, b.label).toBe(1)
        expect(last, b.label).toBe(first)
      }
    }

    // The fix: the missing user arrives.
    const lateUser: UserEvent = {
      ...aUser,
      event_id: randomUUID(),
      event_type: 'CREATE',
      version: 1,
      user_id: missingUserId,
      name: 'Late Arrival',
      created_at: now,
      modified_at: now,
      occurred_at: now,
      is_deleted: false,
    }
    const userProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await userProducer.connect()
    await userProducer.send({
      topic: ctx.users,
      acks: -1,
      messages: [{ key: missingUserId, value: encodeEvent(lateUser) }],
    })
    await userProducer.disconnect()
    const run2 = await runCommand('consume', consumeArgs)
    expectExit(run2)
    expect(consumeSummary(run2.stdout)).toMatchObject({ processed: 1, applied: 1, deadLettered: 0 })
    expect((await loadRows([missingUserId], [orphan.order_id])).orders.size).toBe(0)

    // Dry run: lists the one MISSING_REFERENCE record of the nine, produces nothing.
    const ordersEndBefore = await topicEndOffsets([ctx.orders])
    const replayArgs = ['--topic', `${ctx.users},${ctx.orders}`, '--error-code', 'MISSING_REFERENCE', '--summary-json']
    const dry = await runCommand('replay-dlq', [...replayArgs, '--dry-run'])
    expectExit(dry)
    expect(parseJsonSummary<ReplaySummary>(dry.stdout, 'matched')).toMatchObject({
      read: bad.length,
      matched: 1,
      replayed: 0,
      invalid: 0,
      dryRun: true,
    })
    const listed = dry.stdout.split('\n').filter((l) => l.startsWith(dlqTopicFor(ctx.orders)))
    expect(listed).toHaveLength(1)
    expect(listed[0]).toContain(`key=${orphan.order_id} MISSING_REFERENCE`)
    expect(await topicEndOffsets([ctx.orders])).toEqual(ordersEndBefore)

    const replay = await runCommand('replay-dlq', replayArgs)
    expectExit(replay)
    expect(parseJsonSummary<ReplaySummary>(replay.stdout, 'matched')).toMatchObject({
      read: bad.length,
      matched: 1,
      replayed: 1,
      dryRun: false,
    })
    // The replayed message: original key, bytes and headers, no DLQ headers, and where it came from.
    const orphanLetter = dlq.find((d) => headerText(d.headers, 'x-error-code') === 'MISSING_REFERENCE')!
    const replayed = (await readTopics([ctx.orders])).filter((r) => r.key === orphan.order_id)
    expect(replayed).toHaveLength(2)
    const copy = replayed.find((r) => headerText(r.headers, 'x-replayed-from-dlq-offset') !== undefined)!
    expect(sameBytes(copy.value, encodeEvent(orphan))).toBe(true)
    expect(headerText(copy.headers, 'traceparent')).toBe(bad.at(-1)!.headers!.traceparent)
    expect(headerText(copy.headers, 'x-replayed-from-dlq-offset')).toBe(orphanLetter.offset)
    expect(headerText(copy.headers, 'x-replayed-from-dlq-partition')).toBe(String(orphanLetter.partition))
    expect(Object.keys(copy.headers).filter((h) => h.startsWith('x-error') || h.startsWith('x-original'))).toEqual([])

    const run3 = await runCommand('consume', consumeArgs)
    expectExit(run3)
    expect(consumeSummary(run3.stdout)).toMatchObject({ processed: 1, applied: 1, deadLettered: 0 })

    // Now the order exists, and every row is still exactly what the events say.
    const after = await readEvents(ctx)
    const expectedAfter = expectedStateOf(ctx, after.events)
    expect(expectedAfter.orphanOrderIds.size).toBe(0)
    expect(expectedAfter.orders.get(orphan.order_id)).toMatchObject({ user_id: missingUserId, status: 'PLACED' })
    const rows = await expectRowsMatch(expectedAfter)
    expect(rows.orders.get(orphan.order_id)).toMatchObject({ user_id: missingUserId, is_deleted: false, version: 1 })
    // Replaying did not dead-letter anything new.
    expect(await readDlq(ctx)).toHaveLength(bad.length)
  })
})

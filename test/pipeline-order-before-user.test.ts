// Issue 3: an order that arrives before its user (the two entities travel on separate topics, so this is normal) is
// retried with backoff and applied once the user is there, without going to the DLQ. Issue 10: it waits in its
// partition's waiting room, so the partition's later messages are applied meanwhile and nothing is fetched twice.
import { describe, expect, it } from 'vitest'
import type { OrderEvent } from '../internal/model/index.js'
import { encodeEvent } from '../internal/model/index.js'
import { MISSING_REFERENCE_RETRY_POLICY } from '../internal/pipeline/index.js'
import { EventGenerator } from '../internal/producer/index.js'
import { kafka, sleep } from './helpers.js'
import {
  consumeSummary,
  countRows,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  loadRows,
  pipelineTest,
  readDlq,
  readEvents,
  startCommand,
  waitFor,
} from './pipeline-helpers.js'

const RETRY_MAX_TIME_S = 30

describe('an order before its user', () => {
  it('is applied once the user arrives, inside the backoff bound, and nothing goes to the DLQ', async () => {
    const ctx = pipelineTest('early')
    await ctx.createTopics()
    // A user and an order of that user, as the generator makes them.
    const generator = new EventGenerator({ seed: ctx.seed, topics: ctx.topicNames })
    const taken = generator.take(200)
    const orderIndex = taken.findIndex((g) => g.entity === 'order' && g.event.event_type === 'CREATE')
    const order = taken[orderIndex]!
    const orderEvent = order.event as OrderEvent
    const user = taken.find(
      (g) => g.entity === 'user' && g.event.event_type === 'CREATE' && g.key === orderEvent.user_id,
    )!
    expect(user).toBeDefined()
    // Orders of other users, produced after the early order into its partition: they must not wait for it.
    const others = taken.filter(
      (g) => g.entity === 'order' && g.event.event_type === 'CREATE' && (g.event as OrderEvent).user_id !== user.key,
    )
    const otherUsers = taken.filter(
      (g) =>
        g.entity === 'user' &&
        g.event.event_type === 'CREATE' &&
        others.some((o) => (o.event as OrderEvent).user_id === g.key),
    )
    expect(others.length).toBeGreaterThan(3)

    const consumer = startCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      ctx.group(),
      '--retry-max-time',
      String(RETRY_MAX_TIME_S),
      '--summary-json',
      '--log-level',
      'debug',
    ])
    await waitFor(
      'the consumer to be assigned both topics',
      () =>
        consumer
          .stderr()
          .split('\n')
          .some((l) => l.includes('partitions assigned') && l.includes(ctx.users) && l.includes(ctx.orders)),
      60_000,
    )

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      await producer.send({
        topic: ctx.users,
        acks: -1,
        messages: otherUsers.map((u) => ({ key: u.key, value: encodeEvent(u.event) })),
      })
      const rowsThere = (what: string, userIds: string[], orderIds: string[]) =>
        waitFor(
          what,
          async () => (await countRows(userIds, orderIds)) === userIds.length + orderIds.length,
          30_000,
          100,
        )
      await rowsThere(
        'the other users',
        otherUsers.map((u) => u.key),
        [],
      )
      await producer.send({
        topic: ctx.orders,
        acks: -1,
        messages: [order, ...others].map((o) => ({ key: o.key, value: encodeEvent(o.event), partition: 0 })),
      })
      const orderSentAt = Date.now()
      // The sink has seen the order, found no user, and parked it; the orders behind it were applied meanwhile.
      await waitFor('the order to be parked', () => /"level":20,[^\n]*retrying/.test(consumer.stderr()), 30_000)
      await rowsThere(
        'the later orders',
        [],
        others.map((o) => o.key),
      )
      await sleep(2_000)
      expect((await loadRows([], [order.key])).orders.size).toBe(0)

      await producer.send({ topic: ctx.users, acks: -1, messages: [{ key: user.key, value: encodeEvent(user.event) }] })
      const userSentAt = Date.now()
      await waitFor('the order row', async () => (await loadRows([], [order.key])).orders.size === 1, 30_000, 100)
      const appliedAt = Date.now()
      console.log(
        `[early] order applied ${appliedAt - userSentAt} ms after its user was sent, ${appliedAt - orderSentAt} ms after the order`,
      )
      // At most one backoff wait (capped at the consumer's maxMs, 1 s) after the user is there, and well inside the
      // retry bound. The bound is the one this test always had (10 s + 3 s), slack for a loaded machine.
      expect(appliedAt - userSentAt).toBeLessThan(10 * MISSING_REFERENCE_RETRY_POLICY.maxMs + 3_000)
      expect(appliedAt - orderSentAt).toBeLessThan(RETRY_MAX_TIME_S * 1000)
    } finally {
      await producer.disconnect()
    }

    consumer.kill('SIGTERM')
    const result = await consumer.exited
    expectExit(result)
    const summary = consumeSummary(result.stdout)
    console.log(`[early] consume: ${JSON.stringify(summary)}`)
    const total = 2 + others.length + otherUsers.length
    expect(summary.processed).toBe(total)
    expect(summary.deadLettered).toBe(0)
    expect(summary.retries).toBeGreaterThan(0)
    expect(summary.applied).toBe(total)
    // Nothing was fetched twice: the early order waited alone, and only it was handed to the sink again.
    expect(summary.received).toBe(total)
    expect(summary.parked).toBe(1)
    expect(summary.handed).toBe(total + summary.retries)

    const { events } = await readEvents(ctx)
    const expected = expectedStateOf(ctx, events)
    expect(expected.orders.has(order.key)).toBe(true)
    await expectRowsMatch(expected)
    expect(await readDlq(ctx)).toEqual([])
  })
})

// Issue 10: messages waiting in a partition's waiting room are never committed before they are applied. Orders are
// produced before any of their users, so every order waits in its room; the consumer is SIGKILLed while they wait,
// their users are produced, and a new consumer in the same group applies them all: exact state, no DLQ.
import { describe, expect, it } from 'vitest'
import { encodeEvent } from '../internal/model/index.js'
import { EventGenerator } from '../internal/producer/index.js'
import { kafka } from './helpers.js'
import {
  committedOffsets,
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  pipelineTest,
  readDlq,
  readEvents,
  runCommand,
  startCommand,
  topicEndOffsets,
  waitFor,
} from './pipeline-helpers.js'

describe('the waiting room across a crash', () => {
  it('commits no waiting order: SIGKILLed while orders wait for their users, a restart applies them exactly', async () => {
    const ctx = pipelineTest('room')
    await ctx.createTopics()
    const generated = new EventGenerator({ seed: ctx.seed, topics: ctx.topicNames }).take(2_000)
    const userEvents = generated.filter((g) => g.entity === 'user')
    const orderEvents = generated.filter((g) => g.entity === 'order')
    expect(orderEvents.length).toBeGreaterThan(100)

    const group = ctx.group()
    const args = [...ctx.topicArgs, '--group', group, '--summary-json', '--log-level', 'debug']
    const first = startCommand('consume', args)
    await waitFor('the consumer to be assigned', () => first.stderr().includes('partitions assigned'), 60_000)
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      // Every order before any user: each one waits for its user.
      await producer.send({
        topic: ctx.orders,
        acks: -1,
        messages: orderEvents.map((o) => ({ key: o.key, value: encodeEvent(o.event) })),
      })
      await waitFor('orders to wait in the room', () => /parked in the waiting room/.test(first.stderr()), 30_000)
      // Give the room time to take every orders batch, then crash with the orders still waiting.
      await new Promise((r) => setTimeout(r, 2_000))
      first.kill('SIGKILL')
      expect((await first.exited).signal).toBe('SIGKILL')
      const committed = await committedOffsets(group, [ctx.orders])
      const ends = await topicEndOffsets([ctx.orders])
      // Nothing of the orders topic was committed past a waiting order (no user existed: none could apply).
      for (const [tp, offset] of committed) expect(Number(offset), tp).toBeLessThanOrEqual(0)
      expect([...ends.values()].reduce((n, o) => n + Number(o), 0)).toBe(orderEvents.length)

      await producer.send({
        topic: ctx.users,
        acks: -1,
        messages: userEvents.map((u) => ({ key: u.key, value: encodeEvent(u.event) })),
      })
    } finally {
      await producer.disconnect()
    }

    const second = await runCommand('consume', [...args, '--idle-timeout', '5', '--session-timeout', '10'])
    expectExit(second)
    const summary = consumeSummary(second.stdout)
    console.log(`[room] after the crash: ${JSON.stringify(summary)}`)
    expect(summary.processed).toBe(userEvents.length + orderEvents.length)
    expect(summary.deadLettered).toBe(0)
    const { events } = await readEvents(ctx)
    await expectRowsMatch(expectedStateOf(ctx, events))
    expect(await readDlq(ctx)).toEqual([])
  })
})

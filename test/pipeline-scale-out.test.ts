// Issue 10: several consume processes in one group share the partitions. While node cmd/produce streams, a second and
// a third member join and the first leaves (SIGTERM): each member gets its share within a rebalance and works it, and
// the final state is exact (waiting rooms are forgotten on every rebalance and their messages delivered again).
import { describe, expect, it } from 'vitest'
import { sleep } from './helpers.js'
import {
  committedCount,
  committedOffsets,
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  pipelineTest,
  readDlq,
  readEvents,
  startCommand,
  topicEndOffsets,
  waitFor,
  type RunningCommand,
} from './pipeline-helpers.js'

const RATE = 1_000
const SECONDS = 40

describe('scale-out: one group, members joining and leaving', () => {
  it('shares the partitions among three members that join and leave mid-stream, every member works, exact result', async () => {
    const ctx = pipelineTest('scale')
    const topics = [ctx.users, ctx.orders, ctx.products]
    await ctx.createTopics({ users: 6, orders: 10 })
    const group = ctx.group()
    const args = [...ctx.topicArgs, '--group', group, '--summary-json', '--session-timeout', '10']
    const member = (): RunningCommand => startCommand('consume', [...args, '--idle-timeout', '8'])

    const a = startCommand('consume', args)
    await sleep(3_000)
    const producer = startCommand('produce', [
      ...ctx.topicArgs,
      '--count',
      '0',
      '--rate',
      String(RATE),
      '--duration',
      String(SECONDS),
      '--seed',
      String(ctx.seed),
      '--log-level',
      'warn',
    ])
    await sleep(8_000)
    const b = member()
    await sleep(8_000)
    const c = member()
    await sleep(8_000)
    // The first member leaves cleanly mid-stream: its partitions move to the other two.
    a.kill('SIGTERM')
    const left = await a.exited
    expectExit(left)
    const produced = await producer.exited
    expectExit(produced)
    const [rb, rc] = await Promise.all([b.exited, c.exited])
    expectExit(rb)
    expectExit(rc)

    const summaries = [left, rb, rc].map((r) => consumeSummary(r.stdout))
    console.log(`[scale] members: ${JSON.stringify(summaries.map((s) => [s.reason, s.processed, s.abandoned]))}`)
    // Every member worked its share.
    for (const s of summaries) expect(s.processed).toBeGreaterThan(0)
    expect(summaries.every((s) => s.deadLettered === 0)).toBe(true)

    const { events, rejected } = await readEvents(ctx)
    expect(rejected).toEqual([])
    expect(events.length).toBeGreaterThan(RATE * SECONDS * 0.8)
    // Each message was committed by exactly one member: together they processed every event once.
    expect(summaries.reduce((n, s) => n + s.processed, 0)).toBe(events.length)
    await waitFor(
      'the committed offsets to reach the ends',
      async () => committedCount(await committedOffsets(group, topics)) === events.length,
      30_000,
    )
    expect(Object.fromEntries(await committedOffsets(group, topics))).toEqual(
      Object.fromEntries(await topicEndOffsets(topics)),
    )
    await expectRowsMatch(expectedStateOf(ctx, events))
    expect(await readDlq(ctx)).toEqual([])
  })
})

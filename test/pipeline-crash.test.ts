// Issue 3: crashes lose nothing and apply nothing twice. While node cmd/produce streams 50,000 events, the consumer
// is killed with SIGKILL (no cleanup, no commit, worker threads gone mid-transaction) three times at random points
// and restarted each time in the same group; after a final run to quiet, PostgreSQL holds exactly the expected rows
// and the group's committed offsets are the topics' end offsets.
//
// The producer is paced so that the stream is still flowing at the third kill: every kill lands mid-stream by
// construction, not by luck (from a full backlog one consumer life can finish 50,000 events in a few seconds).
import { randomInt } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { kafka, sleep } from './helpers.js'
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
  runCommand,
  startCommand,
  topicEndOffsets,
  waitFor,
} from './pipeline-helpers.js'

const EVENTS = 50_000
const KILLS = 3
// Each restart waits out the killed member's session (30 s) before it gets partitions: the third kill comes about
// 75 s in, so the 50,000 events are spread over 100 s.
const RATE = 500

describe('events -> PostgreSQL across consumer crashes', () => {
  it('ends exact after the consumer is SIGKILLed three times mid-stream and restarted in the same group', async () => {
    const ctx = pipelineTest('crash')
    const topics = [ctx.users, ctx.orders, ctx.products]
    await ctx.createTopics()
    const producer = startCommand('produce', [
      ...ctx.topicArgs,
      '--count',
      String(EVENTS),
      '--rate',
      String(RATE),
      '--seed',
      String(ctx.seed),
      '--log-level',
      'warn',
    ])

    const group = ctx.group()
    const args = [...ctx.topicArgs, '--group', group, '--summary-json', '--log-level', 'warn']
    const kills: { life: number; delayMs: number; committedAfterKill: number; producedAtKill: number }[] = []
    for (let life = 1; life <= KILLS; life++) {
      const committedAtStart = committedCount(await committedOffsets(group, topics))
      const consumer = startCommand('consume', args)
      // Once this life has committed something (a restarted life first waits for the killed member's session to
      // expire), let it run 1-4 s more, then kill it wherever it is: in a transaction, between the database commit
      // and the offset commit, in a retry wait...
      await waitFor(
        `life ${life} to commit`,
        async () => {
          if (consumer.stdout().includes('"processed"')) throw new Error(`consumer exited:\n${consumer.stdout()}`)
          return committedCount(await committedOffsets(group, topics)) > committedAtStart
        },
        90_000,
        100,
      )
      const delayMs = 1_000 + randomInt(3_000)
      await sleep(delayMs)
      consumer.kill('SIGKILL')
      const producedAtKill = [...(await topicEndOffsets(topics)).values()].reduce((n, o) => n + Number(o), 0)
      const dead = await consumer.exited
      expect(dead.signal).toBe('SIGKILL')
      const committedAfterKill = committedCount(await committedOffsets(group, topics))
      kills.push({ life, delayMs, committedAfterKill, producedAtKill })
      console.log(`[crash] ${JSON.stringify(kills.at(-1))}`)
      // Mid-stream: the producer was still sending.
      expect(producedAtKill).toBeLessThan(EVENTS)
    }

    const produced = await producer.exited
    expectExit(produced)
    expect(produced.stdout).toMatch(new RegExp(`produced\\s+${EVENTS}\\b`))
    const { events, rejected } = await readEvents(ctx)
    expect(events).toHaveLength(EVENTS)
    expect(rejected).toEqual([])
    const expected = expectedStateOf(ctx, events)

    // The last killed member's session must expire before a new member can get its partitions; wait for that
    // here so the final run's idle timeout only counts real quiet.
    const admin = kafka.admin()
    await admin.connect()
    try {
      await waitFor(
        'the killed member to leave the group',
        async () => (await admin.describeGroups([group])).groups[0]?.members.length === 0,
        60_000,
        500,
      )
    } finally {
      await admin.disconnect()
    }
    const committedBeforeFinal = committedCount(await committedOffsets(group, topics))
    const final = await runCommand('consume', [...args, '--idle-timeout', '5'])
    expectExit(final)
    const summary = consumeSummary(final.stdout)
    console.log(`[crash] final run: ${JSON.stringify(summary)} in ${Math.round(final.durationMs)} ms`)
    expect(summary.reason).toMatch(/^idle/)
    expect(summary.deadLettered).toBe(0)
    // It resumed exactly at the committed offsets: everything after them, nothing before.
    expect(summary.processed).toBe(EVENTS - committedBeforeFinal)

    const ends = await topicEndOffsets(topics)
    const committed = await committedOffsets(group, topics)
    expect(Object.fromEntries(committed)).toEqual(Object.fromEntries(ends))
    expect(committedCount(committed)).toBe(EVENTS)

    await expectRowsMatch(expected)
    expect(await readDlq(ctx)).toEqual([])
  })
})

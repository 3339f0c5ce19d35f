// Issue 11, item 3: data that expires unconsumed is named, not silently skipped. A group consumes a users topic and
// stops (paused); more events are produced; then the topic's log start moves past the group's committed offset,
// deterministically with deleteRecords, and by retention (retention.ms=1000 on small segments). Resumed, the consumer
// exits 4 (DATA_LOSS) with one error record per gap naming topic, partition, from and to, and commits nothing; with
// --on-data-loss continue it counts the gap and consumes what is left.
import { ConfigResourceTypes } from 'kafkajs'
import { describe, expect, it } from 'vitest'
import { entityIdOf, isOrderEvent } from '../internal/model/index.js'
import { createTopicsLed, sleep, withAdmin } from './helpers.js'
import {
  committedOffsets,
  consumeSummary,
  expectExit,
  pipelineTest,
  readEvents,
  runCommand,
  waitFor,
  type PipelineTestContext,
} from './pipeline-helpers.js'

const PARTITIONS = 2
const EVENTS = 1_000

interface Gap {
  topic: string
  partition: number
  from: string
  to: string
  lost: number
}

// The error records of the gaps in a run's stderr (json log lines).
const gapsIn = (stderr: string): Gap[] =>
  stderr
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"data loss'))
    .map((l) => JSON.parse(l) as Gap & { level: number; msg: string })
    .filter((r) => r.level === 50 && r.msg.startsWith('data loss:') && 'from' in r)
    .map(({ topic, partition, from, to, lost }) => ({ topic, partition, from, to, lost }))

/** Creates the users topic, produces, consumes it all in a new group, and produces more (not consumed yet). */
async function consumedThenMore(ctx: PipelineTestContext, configs: Record<string, string> = {}) {
  await withAdmin((admin) =>
    createTopicsLed(admin, {
      topics: [
        {
          topic: ctx.users,
          numPartitions: PARTITIONS,
          replicationFactor: 3,
          configEntries: Object.entries({ 'min.insync.replicas': '2', ...configs }).map(([name, value]) => ({
            name,
            value,
          })),
        },
      ],
    }),
  )
  const produce = async (seed: number) =>
    expectExit(
      await runCommand('produce', [...ctx.topicArgs, '--count', String(EVENTS), '--seed', String(seed)], {
        env: { LOG_LEVEL: 'warn' },
      }),
    )
  await produce(ctx.seed)
  const group = ctx.group()
  const args = [...ctx.topicArgs, '--topics', ctx.users, '--group', group, '--idle-timeout', '2s', '--summary-json']
  const first = await runCommand('consume', [...args, '--log-level', 'warn'])
  expectExit(first)
  // The group is paused (no member) while more events arrive.
  await produce(ctx.seed + 1)
  const { events } = await readEvents(ctx)
  ctx.trackRows(events.filter((e) => !isOrderEvent(e)).map(entityIdOf), events.filter(isOrderEvent).map(entityIdOf))
  const committed = await committedOffsets(group, [ctx.users])
  return { group, args, committed, produce, firstProcessed: consumeSummary(first.stdout).processed }
}

const lowWatermarks = async (topic: string): Promise<Map<number, { low: string; high: string }>> =>
  withAdmin(async (admin) => new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p])))

describe('events -> PostgreSQL: data deleted before it was consumed', () => {
  it('exits 4 naming the gap when deleteRecords moved the log start past the committed offset; continue goes on', async () => {
    const ctx = pipelineTest('data-loss')
    const { group, args, committed, firstProcessed } = await consumedThenMore(ctx)
    const before = await lowWatermarks(ctx.users)
    // Partition 0 loses the first 10 of the events produced while the group was paused; partition 1 loses nothing.
    const from = committed.get(`${ctx.users}/0`)!
    const to = String(Number(from) + 10)
    expect(Number(before.get(0)!.high)).toBeGreaterThan(Number(to))
    await withAdmin(async (admin) => {
      // (kafkajs finds the partition leaders in the admin's metadata, which has to be loaded first)
      await admin.fetchTopicMetadata({ topics: [ctx.users] })
      await admin.deleteTopicRecords({ topic: ctx.users, partitions: [{ partition: 0, offset: to }] })
    })

    const failed = await runCommand('consume', [...args, '--log-format', 'json', '--log-level', 'info'])
    expectExit(failed, 4)
    expect(gapsIn(failed.stderr)).toEqual([{ topic: ctx.users, partition: 0, from, to, lost: 10 }])
    expect(consumeSummary(failed.stdout)).toMatchObject({ lost: 10, processed: 0, handed: 0 })
    expect(failed.stderr).toContain(`${ctx.users}[0] ${from}..${to}`)
    // Nothing committed: the next start finds the gap again.
    expect(await committedOffsets(group, [ctx.users])).toEqual(committed)
    const again = await runCommand('consume', [...args, '--log-level', 'error'])
    expectExit(again, 4)

    const resumed = await runCommand('consume', [...args, '--on-data-loss', 'continue', '--log-level', 'error'])
    expectExit(resumed)
    expect(gapsIn(resumed.stderr)).toEqual([{ topic: ctx.users, partition: 0, from, to, lost: 10 }])
    const high = [...before.values()].reduce((n, p) => n + Number(p.high), 0)
    const s = consumeSummary(resumed.stdout)
    // Everything still in the log was consumed; only the 10 deleted messages are missing.
    expect(firstProcessed + s.processed + 10).toBe(high)
    expect(s.lost).toBe(10)
  })

  it('exits 4 naming the gap after retention.ms=1000 deleted segments the paused group had not consumed', async () => {
    const ctx = pipelineTest('retention-loss')
    // Segments roll at the first message more than 1 s after their first (segment.bytes cannot go below 1 MiB): the
    // events produced while the group was paused end a segment of their own once more come 1 s later.
    const configs = { 'segment.ms': '1000' }
    const { args, committed, produce } = await consumedThenMore(ctx, configs)
    await sleep(1_100)
    await produce(ctx.seed + 2)
    await withAdmin((admin) =>
      admin.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: ConfigResourceTypes.TOPIC,
            name: ctx.users,
            configEntries: Object.entries({ 'min.insync.replicas': '2', ...configs, 'retention.ms': '1000' }).map(
              ([name, value]) => ({ name, value }),
            ),
          },
        ],
      }),
    )
    // The brokers delete expired segments on their retention check (log.retention.check.interval.ms: 10 s in the
    // local stack, 5 min by Kafka's default): wait until some partition's log start has passed the committed offset.
    const started = Date.now()
    const moved = await waitFor(
      'retention to delete segments past the committed offset',
      async () => {
        const low = await lowWatermarks(ctx.users)
        const past = [...low].filter(([p, o]) => BigInt(o.low) > BigInt(committed.get(`${ctx.users}/${p}`) ?? '0'))
        return past.length > 0 ? past : undefined
      },
      420_000,
      2_000,
    )
    console.log(
      `[retention-loss] log start moved after ${Math.round((Date.now() - started) / 1000)} s: ${JSON.stringify(moved)}`,
    )
    const failed = await runCommand('consume', [...args, '--log-format', 'json', '--log-level', 'info'])
    expectExit(failed, 4)
    const gaps = gapsIn(failed.stderr)
    expect(gaps.length).toBeGreaterThan(0)
    for (const g of gaps) {
      expect(g.topic).toBe(ctx.users)
      expect(g.from).toBe(committed.get(`${ctx.users}/${g.partition}`))
      expect(BigInt(g.to)).toBeGreaterThan(BigInt(g.from))
      expect(g.lost).toBe(Number(BigInt(g.to) - BigInt(g.from)))
    }
    expect(consumeSummary(failed.stdout)).toMatchObject({ processed: 0, lost: gaps.reduce((n, g) => n + g.lost, 0) })
  }, 600_000)
})

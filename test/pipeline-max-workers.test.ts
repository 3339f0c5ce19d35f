// Issue 11, item 13: the connections to PostgreSQL stay bounded whatever the partition count. One consumer is
// assigned a 200-partition users topic; with --workers auto its pool is capped at --max-workers (default 2 per core)
// threads, each with its own sink and one connection; in the main thread (--workers 0, the default) the sink's pool
// holds at most 16. While it runs, pg_stat_activity is sampled for the app role's connections that belong to the
// consumer process (matched by client port with the process's own sockets), and every event must be applied.
import { availableParallelism } from 'node:os'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { entityIdOf, isOrderEvent } from '../internal/model/index.js'
import { pgSuperUrl, sleep } from './helpers.js'
import {
  consumeSummary,
  expectExit,
  pipelineTest,
  readEvents,
  runCommand,
  startCommand,
  topicEndOffsets,
  postgresPortsOf,
} from './pipeline-helpers.js'

// Overridable to run this file against a build without the cap (12 threads there are harmless; 200 would not be).
const PARTITIONS = Number(process.env.MAX_WORKERS_TEST_PARTITIONS ?? 200)
const EVENTS = 3_000
const MAX_WORKERS = 2 * availableParallelism()
const INLINE_POOL = 16

describe('events -> PostgreSQL with 200 partitions on one consumer', () => {
  it('keeps its PostgreSQL connections within the cap, threads or not, and applies every event', async () => {
    const ctx = pipelineTest('max-workers')
    await ctx.createTopics({ users: PARTITIONS, orders: 1 })
    expectExit(
      await runCommand('produce', [...ctx.topicArgs, '--count', String(EVENTS), '--seed', String(ctx.seed)], {
        env: { LOG_LEVEL: 'warn' },
      }),
    )
    const { events } = await readEvents(ctx)
    ctx.trackRows(events.filter((e) => !isOrderEvent(e)).map(entityIdOf), events.filter(isOrderEvent).map(entityIdOf))
    const users = [...(await topicEndOffsets([ctx.users])).values()].reduce((n, o) => n + Number(o), 0)
    expect(users).toBeGreaterThan(500)

    const admin = new pg.Pool({ connectionString: pgSuperUrl, max: 1 })
    try {
      for (const [mode, cap] of [
        ['auto', MAX_WORKERS],
        ['0', INLINE_POOL],
      ] as const) {
        const consumer = startCommand('consume', [
          ...ctx.topicArgs,
          '--topics',
          ctx.users,
          '--group',
          ctx.group(`w${mode}`),
          '--workers',
          mode,
          '--idle-timeout',
          '3s',
          '--summary-json',
          '--log-level',
          'info',
          '--log-format',
          'json',
        ])
        let most = 0
        let mostOfRole = 0
        let samples = 0
        let exited = false
        void consumer.exited.then(() => (exited = true))
        while (!exited) {
          const ports = postgresPortsOf(consumer.pid)
          const { rows } = await admin.query<{ mine: string; role: string }>(
            `SELECT count(*) FILTER (WHERE client_port = ANY($1::int[])) AS mine, count(*) AS role
               FROM pg_stat_activity WHERE usename = 'cdc_app'`,
            [ports],
          )
          most = Math.max(most, Number(rows[0].mine))
          mostOfRole = Math.max(mostOfRole, Number(rows[0].role))
          samples++
          await sleep(50)
        }
        const result = await consumer.exited
        expectExit(result)
        const summary = consumeSummary(result.stdout)
        const sized = result.stderr
          .split('\n')
          .filter((l) => l.includes('worker pool sized'))
          .map((l) => (JSON.parse(l) as { workers: number }).workers)
        console.log(
          `[max-workers] ${PARTITIONS} partitions, --workers ${mode}: at most ${most} connections of the consumer ` +
            `(${mostOfRole} of the app role in all), ${samples} samples; pool sized ${JSON.stringify(sized)}; ` +
            `${summary.processed} events at ${summary.ratePerSec}/s`,
        )
        expect(summary.processed).toBe(users)
        expect(summary.deadLettered).toBe(0)
        expect(most).toBeGreaterThan(0)
        expect(most).toBeLessThanOrEqual(cap)
        if (mode === 'auto') for (const n of sized) expect(n).toBeLessThanOrEqual(MAX_WORKERS)
      }
    } finally {
      await admin.end()
    }
  })
})

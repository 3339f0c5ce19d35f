// Issue 16, point 5: node cmd/cache-sync killed with SIGKILL three times mid-stream, restarted each time in the same
// group, while a writer renames 100 users with psql-style UPDATEs and readers keep filling the cache through an API
// instance (L1 on). A killed member never commits what it had not written to Redis, so the restarted one re-applies
// from the last commit (the version guard makes the replays harmless): after the writes stop and the invalidation
// window passes, every key read through the API equals PostgreSQL (the final check of point 2). The staleness is
// printed, not bounded: a kill leaves the partitions unowned until the group gives the dead member up.
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest'
import { startApi } from '../internal/api/index.js'
import { createLogger } from '../internal/log/index.js'
import {
  percentile,
  readsFromTheFuture,
  stalenessOf,
  startRenameWriter,
  untilApiEqualsPg,
  type Read,
  REDIS_URL,
  READER_URL,
  TOPICS,
} from './cache-helpers.js'
import { deletePgRows, summaryOf } from './cdc-helpers.js'
import { groupAtEnd, pgOwnerUrl, psql, sleep, stack } from './helpers.js'
import { startCommand, waitFor, type RunningCommand } from './pipeline-helpers.js'

const KEYS = 100
const WRITE_MS = 21_000
/** When (after the writes start) each SIGKILL lands. */
const KILLS_AT_MS = [3_000, 9_000, 15_000]
const SETTLE_MS = 30_000

let pool: pg.Pool
let redis: ReturnType<typeof createClient>
beforeAll(async () => {
  await stack('start-component', 'redis')
  pool = new pg.Pool({ connectionString: pgOwnerUrl, max: 2 })
  pool.on('error', () => undefined)
  redis = createClient({ url: REDIS_URL })
  redis.on('error', () => undefined)
  await redis.connect()
}, 120_000)
afterAll(async () => {
  await redis?.close().catch(() => undefined)
  await pool?.end()
})

describe('cache-sync killed with SIGKILL three times mid-stream (issue 16, point 5)', () => {
  it('restarted each time, every key read through the API equals PostgreSQL after the writes stop', async () => {
    const group = await groupAtEnd('cache-kill', TOPICS)
    // The broker's minimum session timeout (6 s): a killed member is given up soon, its partitions reassigned.
    const startSync = (): RunningCommand => {
      const cmd = startCommand(
        'cache-sync',
        ['--group', group, '--session-timeout', '6', '--summary-json', '--retry-max-time', '120'],
        { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
      )
      onTestFailed(() => console.log(`cache-sync ${cmd.pid} stderr:\n${cmd.stderr().slice(-2000)}`))
      return cmd
    }
    let sync = startSync()
    const ids = Array.from({ length: KEYS }, () => randomUUID())
    onTestFinished(() => deletePgRows(ids))
    await psql(
      `INSERT INTO users (id, name, dob) VALUES ${ids.map((id) => `('${id}', 'kill 0', '1990-01-01')`).join(', ')}`,
      pgOwnerUrl,
    )
    // cache-sync has applied every insert (a version in each key): it is streaming before the first kill.
    await waitFor(
      'cache-sync applied the inserts',
      async () => (await Promise.all(ids.map((id) => redis.hGet(`cdc:users:${id}`, 'v')))).every((v) => v != null),
      60_000,
      200,
    )
    const api = await startApi({
      host: '127.0.0.1',
      port: 0,
      redisUrl: REDIS_URL,
      pgUrl: READER_URL,
      leaseMs: 10_000,
      fillTtlMs: 3_600_000,
      l1Max: 10_000,
      l1TtlMs: 1_000,
      redisTimeoutMs: 2_000,
      connectTimeoutMs: 10_000,
      log: createLogger({ level: 'warn' }),
      targetsDir: null,
    })
    onTestFinished(() => api.close())

    const writer = startRenameWriter(pool, ids, { prefix: 'kill', writeMs: WRITE_MS, writesPerSecond: 40 })
    const reads: Read[] = []
    const reader = async () => {
      while (writer.writing()) {
        const key = Math.floor(Math.random() * KEYS)
        const startMs = Date.now()
        const res = await fetch(`${api.url}/users/${ids[key]}`)
        const body = (await res.json()) as { name?: string }
        expect(res.status).toBe(200)
        reads.push({
          key,
          seq: Number(body.name!.split(' ')[1]),
          startMs,
          endMs: Date.now(),
          cache: res.headers.get('x-cache')!,
        })
      }
    }
    const readers = Array.from({ length: 4 }, reader)
    const began = Date.now()
    const kills: { signal: string | null; writing: boolean }[] = []
    for (const at of KILLS_AT_MS) {
      await sleep(Math.max(0, began + at - Date.now()))
      const writing = writer.writing()
      sync.kill('SIGKILL')
      kills.push({ signal: (await sync.exited).signal, writing })
      sync = startSync()
    }
    await Promise.all([writer.done, ...readers])
    const lastWriteMs = writer.lastWriteMs()

    const { settledAtMs, mismatches } = await untilApiEqualsPg(pool, [api.url], ids, lastWriteMs + SETTLE_MS)
    const sorted = reads.map((r) => stalenessOf(writer.commits, r)).sort((a, b) => a - b)
    console.log(
      `point 5 SIGKILL x3: ${JSON.stringify({
        writes: writer.commits.reduce((n, c) => n + c.length - 1, 0),
        reads: reads.length,
        hits: reads.filter((r) => r.cache !== 'miss').length,
        stalenessMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 },
        settledAfterMs: settledAtMs < 0 ? -1 : settledAtMs - lastWriteMs,
      })}`,
    )

    sync.kill('SIGTERM')
    const res = await sync.exited
    expect(res.code, res.stderr.slice(-2000)).toBe(0)
    expect(summaryOf(res)).toMatchObject({ deadLettered: 0 })
    // Killed three times, each while the writer was updating rows.
    expect(kills).toEqual(KILLS_AT_MS.map(() => ({ signal: 'SIGKILL', writing: true })))
    expect(readsFromTheFuture(writer.commits, reads), 'reads of names not committed yet').toEqual([])
    expect(mismatches.slice(0, 5), `keys differing from PostgreSQL ${SETTLE_MS} ms after the last write`).toEqual([])
    // The cache was in use (hits), so stale copies had to be invalidated, not merely absent.
    expect(reads.filter((r) => r.cache === 'hit').length).toBeGreaterThan(100)
  }, 90_000)
})

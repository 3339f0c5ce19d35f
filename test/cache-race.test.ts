// Issue 16, point 2: the race checker. 8 concurrent readers hammer 200 users through 2 API instances (in-process,
// L1 on) while a writer renames those users in PostgreSQL with plain UPDATEs (not through our events), cache-sync
// running. Every read is recorded with what it returned and when. After the writes stop and the invalidation window
// passes, every key read through each API equals PostgreSQL; and no read returned a name that had been superseded
// (a newer one committed) for longer than the staleness bound before the read began. Run twice: as is (60 s of
// writes), and with every fill slowed by 500 ms (30 s) so that fills race with invalidations, which the lease must
// refuse (with FILL's token check removed, the slowed run fails: stale fills stay until the row's next change).
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { createClient } from 'redis'
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest'
import { startApi, type ApiServer } from '../internal/api/index.js'
import { createLogger } from '../internal/log/index.js'
import {
  percentile,
  readsFromTheFuture,
  stalenessOf,
  startRenameWriter,
  sumCounter,
  untilApiEqualsPg,
  type Read,
  REDIS_URL,
  READER_URL,
  TOPICS,
} from './cache-helpers.js'
import { deletePgRows, summaryOf } from './cdc-helpers.js'
import { groupAtEnd, pgOwnerUrl, psql, sleep, stack } from './helpers.js'
import { startCommand, waitFor } from './pipeline-helpers.js'

const KEYS = 200
const READERS = 8
const INSTANCES = 2
/** The documented staleness bound (README: The cache): a superseded value is not served longer than this. */
const STALENESS_BOUND_MS = 2_000
/** How long after the last write every key must read as PostgreSQL has it. */
const SETTLE_MS = 30_000

beforeAll(async () => {
  await stack('start-component', 'redis')
}, 120_000)

let pool: pg.Pool
beforeAll(() => {
  pool = new pg.Pool({ connectionString: pgOwnerUrl, max: 2 })
  pool.on('error', () => undefined)
})
afterAll(() => pool?.end())

const atEnd = (label: string): Promise<string> => groupAtEnd(`cache-race-${label}`, TOPICS)

async function race(o: { label: string; writeMs: number; fillDelayMs: number; writesPerSecond: number }) {
  const group = await atEnd(o.label)
  const sync = startCommand(
    'cache-sync',
    ['--group', group, '--session-timeout', '10', '--summary-json', '--retry-max-time', '120'],
    { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
  )
  onTestFailed(() => console.log(`cache-sync stderr:\n${sync.stderr().slice(-3000)}`))
  const ids = Array.from({ length: KEYS }, () => randomUUID())
  onTestFinished(() => deletePgRows(ids))
  await psql(
    `INSERT INTO users (id, name, dob) VALUES ${ids.map((id) => `('${id}', 'race 0', '1990-01-01')`).join(', ')}`,
    pgOwnerUrl,
  )
  for (const id of ids) {
    // cache-sync has applied the insert (a version in the key): its invalidation cannot land on a fill below.
    const key = `cdc:users:${id}`
    await waitFor(
      `cache-sync applied the insert of ${id}`,
      async () => (await redis.hGet(key, 'v')) != null,
      240_000,
      100,
    )
  }
  const apis: ApiServer[] = []
  for (let i = 0; i < INSTANCES; i++) {
    apis.push(
      await startApi({
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
        ...(o.fillDelayMs > 0 ? { beforeFill: () => sleep(o.fillDelayMs) } : {}),
      }),
    )
  }
  onTestFinished(() => Promise.all(apis.map((a) => a.close())).then(() => undefined))

  const writer = startRenameWriter(pool, ids, {
    prefix: 'race',
    writeMs: o.writeMs,
    writesPerSecond: o.writesPerSecond,
  })
  const { commits } = writer
  const reads: Read[] = []
  const reader = async () => {
    while (writer.writing()) {
      const key = Math.floor(Math.random() * KEYS)
      const api = apis[Math.floor(Math.random() * INSTANCES)]!
      const startMs = Date.now()
      const res = await fetch(`${api.url}/users/${ids[key]}`)
      const body = (await res.json()) as { name?: string }
      const endMs = Date.now()
      expect(res.status).toBe(200)
      reads.push({ key, seq: Number(body.name!.split(' ')[1]), startMs, endMs, cache: res.headers.get('x-cache')! })
    }
  }
  await Promise.all([writer.done, ...Array.from({ length: READERS }, reader)])
  const lastWriteMs = writer.lastWriteMs()

  const staleness = reads.map((r) => stalenessOf(commits, r))
  const fromTheFuture = readsFromTheFuture(commits, reads)
  const sorted = [...staleness].sort((a, b) => a - b)
  const stale = staleness.filter((s) => s > 0).length
  const byCache = Object.fromEntries(['l1', 'hit', 'miss'].map((c) => [c, reads.filter((r) => r.cache === c).length]))
  const urls = apis.map((a) => a.url)

  // Settled: every key through each instance equals PostgreSQL.
  const { settledAtMs, mismatches } = await untilApiEqualsPg(pool, urls, ids, lastWriteMs + SETTLE_MS)
  const settledAfterMs = settledAtMs < 0 ? -1 : settledAtMs - lastWriteMs
  const report = {
    run: o.label,
    writes: commits.reduce((n, c) => n + c.length - 1, 0),
    reads: reads.length,
    byCache,
    staleReads: stale,
    stalenessMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 },
    fillsWritten: await sumCounter(urls, 'cdc_api_fills_written_total'),
    fillsRefused: await sumCounter(urls, 'cdc_api_fills_refused_total'),
    leaseBusy: await sumCounter(urls, 'cdc_api_lease_busy_total'),
    settledAfterMs,
  }
  console.log(`point 2 race checker: ${JSON.stringify(report)}`)

  sync.kill('SIGTERM')
  const res = await sync.exited
  expect(res.code, res.stderr.slice(-2000)).toBe(0)
  expect(summaryOf(res)).toMatchObject({ deadLettered: 0 })
  expect(fromTheFuture, 'reads of names not committed yet').toEqual([])
  expect(mismatches.slice(0, 5), `keys differing from PostgreSQL ${SETTLE_MS} ms after the last write`).toEqual([])
  expect(report.stalenessMs.max, 'the longest a superseded name was served').toBeLessThanOrEqual(STALENESS_BOUND_MS)
  expect(report.reads).toBeGreaterThan(500)
  return report
}

type Redis = ReturnType<typeof createClient>
let redis: Redis
beforeAll(async () => {
  redis = createClient({ url: REDIS_URL })
  redis.on('error', () => undefined)
  await redis.connect()
})
afterAll(() => redis?.close().catch(() => undefined))

describe('the race checker (issue 16, point 2)', () => {
  it('8 readers x 200 keys x 2 instances, 60 s of psql-style UPDATEs: converges, staleness bounded', async () => {
    await race({ label: 'plain', writeMs: 60_000, fillDelayMs: 0, writesPerSecond: 25 })
  })

  it('the same with every fill slowed by 500 ms: the lease refuses the fills that raced', async () => {
    const report = await race({ label: 'slow', writeMs: 30_000, fillDelayMs: 500, writesPerSecond: 25 })
    expect(report.fillsRefused).toBeGreaterThan(0)
  })
})

// The api section of npm run bench (issue 16, point 6): node cmd/api's reads/s and latency on misses, Redis hits and
// L1 hits (autocannon against 127.0.0.1, a fixed duration), and the invalidation latency (PostgreSQL commit of an
// UPDATE -> the key deleted in Redis by node cmd/cache-sync) at paced change rates. The rows it reads and updates are
// its own (inserted first, deleted at the end): the shared users are not touched.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import autocannon from 'autocannon'
import pg from 'pg'
import { createClient } from 'redis'
import { SETTINGS, readSetting } from '../internal/cli/index.js'
import { createKafka, type ReadRange } from '../internal/kafka/index.js'
import { INVALIDATION_CHANNEL } from '../internal/sinks/redis/index.js'
import {
  InvalidationMatcher,
  keyId,
  percentiles,
  type ApiBenchResult,
  type InvalidationRun,
  type ReadRun,
} from './api-report.js'
import { ChildCpu, CpuWindow, serverBackground, stackServers } from './cpu.js'

export interface ApiBenchOptions {
  root: string
  brokers: string[]
  /** Duration of each autocannon run and of each paced invalidation run. */
  seconds: number
  /** Paced change rates of the invalidation runs (changes/s). */
  rates: number[]
  /** Rows inserted for the section: the miss run reads each at most once. */
  rows: number
  connections: number
}

interface Child {
  pid: number
  stdout: () => string
  done: Promise<{ code: number | null; stdout: string; stderr: string }>
  kill: (s?: NodeJS.Signals) => void
}

function start(root: string, args: string[]): Child {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn' } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  )
  return { pid: child.pid!, stdout: () => stdout, done, kill: (s = 'SIGTERM') => child.kill(s) }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms: number): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > end) throw new Error(`bench api: ${what} within ${ms} ms`)
    await sleep(100)
  }
}

async function counters(url: string): Promise<{ miss: number; hit: number; l1: number }> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const get = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  return {
    miss: get('cdc_api_cache_misses_total'),
    hit: get('cdc_api_cache_hits_total'),
    l1: get('cdc_api_l1_hits_total'),
  }
}

export async function apiBench(o: ApiBenchOptions): Promise<ApiBenchResult> {
  const pool = new pg.Pool({ connectionString: readSetting(SETTINGS.pgUrl, {}), max: 2 })
  pool.on('error', () => undefined)
  const sub = createClient({ url: readSetting(SETTINGS.redisUrl, {}) })
  sub.on('error', () => undefined)
  await sub.connect()
  let matcher = new InvalidationMatcher()
  const seen = new Set<string>()
  await sub.subscribe(INVALIDATION_CHANNEL, (m) => {
    const at = Date.now()
    const { table, id } = JSON.parse(m) as { table: string; id: string }
    if (table !== 'users') return
    seen.add(id)
    matcher.announced(id, at)
  })
  const tag = randomUUID().slice(0, 8)
  const group = `bench-api-${tag}`
  const ids = Array.from({ length: o.rows }, () => randomUUID())
  const children: Child[] = []
  const closers: (() => Promise<void>)[] = []
  // The group starts at the change topics' end: it sees this section's changes, not the backlog.
  const startSync = async (): Promise<Child> => {
    const c = start(o.root, [
      'cmd/cache-sync',
      '--group',
      group,
      '--from-beginning',
      'false',
      '--metrics-port',
      '0',
      '--session-timeout',
      '10',
      '--summary-json',
    ])
    children.push(c)
    // Streaming once a probe UPDATE of the first row comes back as an invalidation.
    seen.delete(ids[0]!)
    await until(
      'cache-sync streaming',
      async () => {
        await pool.query(`UPDATE users SET modified_at = now() WHERE id = $1`, [ids[0]])
        await sleep(400)
        return seen.has(ids[0]!)
      },
      120_000,
    )
    return c
  }
  const stopSync = async (c: Child) => {
    c.kill('SIGTERM')
    const r = await c.done
    if (r.code !== 0) throw new Error(`cache-sync exited ${r.code}: ${r.stderr.slice(-2000)}`)
    return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { latencyMs: { p50: number; p95: number; p99: number } }
  }
  try {
    await pool.query(`INSERT INTO users (id, name, dob) VALUES ($1, 'bench-api probe', '1990-01-01')`, [ids[0]])
    let sync = await startSync()
    for (let i = 1; i < ids.length; i += 5_000) {
      await pool.query(
        `INSERT INTO users (id, name, dob) SELECT id, 'bench-api 0', '1990-01-01' FROM unnest($1::uuid[]) AS id`,
        [ids.slice(i, i + 5_000)],
      )
    }
    await until('cache-sync applied the inserts', () => ids.every((id) => seen.has(id)) || undefined, 120_000)
    console.log(`api: ${ids.length} bench rows inserted and applied by cache-sync`)

    const startApi = async (extra: string[]) => {
      const c = start(o.root, ['cmd/api', '--port', '0', ...extra])
      children.push(c)
      const url = await until(
        'node cmd/api listening',
        () => /listening on (http:\/\/\S+)/.exec(c.stdout())?.[1],
        60_000,
      )
      return { c, url }
    }
    const plain = await startApi(['--l1-max', '0'])
    const withL1 = await startApi(['--l1-max', '10000', '--l1-ttl', '1s'])
    const reads: ReadRun[] = []
    const readRun = async (kind: string, url: string, path: (i: number) => string): Promise<void> => {
      let i = 0
      const before = await counters(url)
      const r = await autocannon({
        url,
        connections: o.connections,
        duration: o.seconds,
        requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: path(i++) }) }],
      })
      const after = await counters(url)
      const run: ReadRun = {
        kind,
        seconds: o.seconds,
        connections: o.connections,
        requests: r.requests.total,
        requestsPerSec: Math.round(r.requests.total / o.seconds),
        errors: r.errors + r.timeouts,
        non2xx: r.non2xx,
        latencyMs: { p50: r.latency.p50, p99: r.latency.p99 },
        answered: { miss: after.miss - before.miss, hit: after.hit - before.hit, l1: after.l1 - before.l1 },
      }
      reads.push(run)
      console.log(`api reads ${kind}: ${JSON.stringify(run)}`)
    }
    // Misses: every request a row never read (past the last row, the run would read cached ones: counted as hits).
    await readRun('miss', plain.url, (i) => `/users/${ids[1 + (i % (ids.length - 1))]}`)
    // Hits: 1,000 rows the miss run filled.
    const warm = ids.slice(1, 1_001)
    await readRun('hit', plain.url, (i) => `/users/${warm[i % warm.length]}`)
    await readRun('l1', withL1.url, (i) => `/users/${warm[i % warm.length]}`)
    plain.c.kill('SIGTERM')
    withL1.c.kill('SIGTERM')
    await Promise.all([plain.c.done, withL1.c.done])

    // Invalidation: one cache-sync per rate (its summary's latency is that rate's); each row updated once per
    // cycle of `rate * 4` rows (every 4 s), far more than the latency, so each announcement pairs with its commit.
    const invalidation: InvalidationRun[] = []
    await stopSync(sync)
    // Where the time goes: each change's record in the users change topic (its timestamp is Connect's producer's
    // CreateTime) splits commit -> invalidated into Debezium's leg and cache-sync's; and the CPU of every process
    // over the run (cache-sync, the servers, this process: the writer and the subscriber).
    const topic = readSetting(SETTINGS.cacheSyncTopics, {}).find((t) => t.endsWith('.users'))!
    const reader = createKafka({ brokers: o.brokers, clientId: 'bench-api' }).partitionReader({
      groupPrefix: 'bench-api-read',
    })
    closers.push(() => reader.close())
    const servers = stackServers()
    const background = await serverBackground(servers)
    for (const rate of o.rates) {
      sync = await startSync()
      matcher = new InvalidationMatcher()
      const inKafka = new InvalidationMatcher()
      const startOffsets = (await reader.endOffsets([topic], 30_000)).get(topic)!
      const syncCpu = new ChildCpu(sync.pid)
      const ownCpu = process.cpuUsage()
      const window = new CpuWindow(servers, background)
      const cycle = ids.slice(1, 1 + Math.min(ids.length - 1, rate * 4))
      const perTick = Math.max(1, Math.round(rate / 50))
      const began = Date.now()
      let changes = 0
      let seq = 0
      for (let tick = 0; Date.now() < began + o.seconds * 1000; tick++) {
        const batch = Array.from({ length: perTick }, () => cycle[seq++ % cycle.length]!)
        const r = await pool.query<{ id: string; at: number }>(
          `UPDATE users SET name = 'bench-api ' || $2, modified_at = now() WHERE id = ANY($1::uuid[])
           RETURNING id::text, (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS at`,
          [batch, String(tick)],
        )
        for (const row of r.rows) matcher.committed(row.id, Number(row.at))
        changes += r.rows.length
        const next = began + (tick + 1) * 20
        if (next > Date.now()) await sleep(next - Date.now())
      }
      const elapsedS = (Date.now() - began) / 1000
      await until('every invalidation announced', () => matcher.pending === 0 || undefined, 30_000).catch(
        () => undefined,
      )
      syncCpu.sample()
      const own = process.cpuUsage(ownCpu)
      const cpu = window.close({ 'cache-sync': syncCpu.ms, bench: (own.user + own.system) / 1000 }, changes)
      syncCpu.stop()
      const summary = await stopSync(sync)
      const endOffsets = (await reader.endOffsets([topic], 30_000)).get(topic)!
      const ranges: ReadRange[] = [...endOffsets].map(([partition, to]) => ({
        topic,
        partition,
        from: startOffsets.get(partition) ?? '0',
        to,
      }))
      const records = await reader.read(ranges, 60_000)
      records.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)))
      for (const [id, at] of matcher.committedAt) inKafka.committed(id, at)
      for (const r of records) {
        const id = keyId(r.key)
        if (id !== undefined) inKafka.announced(id, Number(r.timestamp))
      }
      const kafkaToInvalidated: number[] = []
      for (const [k, kafkaAt] of inKafka.metAt) {
        const invalidatedAt = matcher.metAt.get(k)
        if (invalidatedAt !== undefined) kafkaToInvalidated.push(invalidatedAt - kafkaAt)
      }
      const run: InvalidationRun = {
        targetPerSec: rate,
        seconds: o.seconds,
        changes,
        achievedPerSec: Math.round(changes / elapsedS),
        commitToInvalidatedMs: percentiles(matcher.latenciesMs),
        unmatched: matcher.pending,
        cacheSyncLatencyMs: summary.latencyMs,
        commitToKafkaMs: percentiles(inKafka.latenciesMs),
        kafkaToInvalidatedMs: percentiles(kafkaToInvalidated),
        cpu,
      }
      invalidation.push(run)
      console.log(`api invalidation at ${rate}/s: ${JSON.stringify(run)}`)
    }
    return { reads, invalidation }
  } finally {
    for (const c of children) c.kill('SIGKILL')
    for (let i = 0; i < ids.length; i += 5_000) {
      await pool.query('DELETE FROM users WHERE id = ANY($1::uuid[])', [ids.slice(i, i + 5_000)]).catch(() => undefined)
    }
    for (const close of closers) await close().catch(() => undefined)
    await sub.close().catch(() => undefined)
    await pool.end()
  }
}

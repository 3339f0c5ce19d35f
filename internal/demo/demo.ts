import { spawn } from 'node:child_process'
import cassandra from 'cassandra-driver'
import pg from 'pg'
import { createClient } from 'redis'
import { SETTINGS, readSetting } from '../cli/index.js'
import { ErrorCodes, PipelineError } from '../errors/index.js'
import { connectPreflightAdmin, createKafka, groupProgress } from '../kafka/index.js'
import { createLogger } from '../log/index.js'
import type { RunSummary } from '../pipeline/index.js'
import { DEFAULT_TOPIC_LAYOUT, layoutTopics, prepareTopics } from '../producer/index.js'
import { INVALIDATION_CHANNEL } from '../sinks/redis/index.js'
import { compareStores, type TableComparison } from '../verify/index.js'
import { checkThroughApi, type CacheCheck } from './cache-check.js'

/** Options of the demo run. */
export interface DemoOptions {
  root: string
  /** The producer is paced at this many events per second for `durationMs`, while the pipeline runs. */
  rate: number
  durationMs: number
  seed: number
  /** Time without messages after which the consumer and the CDC sink stop. */
  quietMs: number
  pgUrl: string
  cassandraContactPoints: string[]
  cassandraLocalDc: string
  keyspace: string
  brokers: string[]
  say: (line: string) => void
  /** A live line per second while the pipeline runs (on a terminal), or undefined for none. */
  progress?: (line: string) => void
}

// What the commands the demo starts use when given no flag (the settings table's defaults).
const CHANGE_TOPICS = readSetting(SETTINGS.replicateTopics, {})
const CONSUME_GROUP = readSetting(SETTINGS.consumeGroup, {})
const REPLICATE_GROUP = readSetting(SETTINGS.replicateGroup, {})
const CACHE_SYNC_GROUP = readSetting(SETTINGS.cacheSyncGroup, {})
const CACHE_TOPICS = readSetting(SETTINGS.cacheSyncTopics, {}).map((t) => t.split('=')[0]!.trim())

/** What the demo saw, for the summary. */
export interface DemoReport {
  produced: number
  produceRate: number
  consume: RunSummary
  replicate: RunSummary
  cacheSync: RunSummary
  /** Rows per entity table in PostgreSQL (users, orders, ...). */
  postgres: Record<string, number>
  comparison: { matches: boolean; tables: TableComparison[] }
  /** Every key cache-sync announced in the run, read through node cmd/api against PostgreSQL. */
  cache: CacheCheck
}

/** node cmd/api on a free port, until stopped. */
function startApi(root: string): { url: Promise<string>; stop: () => Promise<void> } {
  const child = spawn(process.execPath, ['cmd/api', '--port', '0'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn' },
  })
  let stdout = ''
  let stderr = ''
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
  const url = new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      const m = /listening on (http:\/\/\S+)/.exec(stdout)
      if (m) resolve(m[1]!)
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    void closed.then((code) => reject(new Error(`node cmd/api exited ${code}: ${stderr.trim().slice(-500)}`)))
  })
  // Awaited later; an early exit must not be an unhandled rejection meanwhile.
  url.catch(() => undefined)
  return {
    url,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM')
      await closed
    },
  }
}

interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

function node(
  root: string,
  args: string[],
  onLine?: (line: string) => void,
  onChild?: (stop: () => void) => void,
): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn' } })
    onChild?.(() => void child.kill('SIGTERM'))
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      for (const line of d.split('\n')) if (line.trim()) onLine?.(line)
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function bash(root: string, args: string[], say: (line: string) => void): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    for (const s of [child.stdout, child.stderr]) {
      s.setEncoding('utf8').on('data', (d: string) => d.split('\n').forEach((l) => l.trim() && say(`  ${l}`)))
    }
    child.on('error', reject)
    child.on('close', resolve)
  })
}

const summaryOf = (name: string, f: Finished): RunSummary => {
  const line = f.stdout.trim().split('\n').at(-1) ?? ''
  if (f.code !== 0 || !line.startsWith('{')) {
    throw new Error(`${name} exited ${f.code}: ${f.stderr.trim().split('\n').slice(-5).join('\n')}`)
  }
  return JSON.parse(line) as RunSummary
}

/**
 * The main job in one go: the stack up when needed; the consumer and the CDC sink started; events produced at a
 * paced rate while they run (so the latency figures are the live pipeline's, not a backlog's age), with a live line
 * per stage; both stopped once the stream has gone quiet; then PostgreSQL and Cassandra compared row for row.
 */
export async function runDemo(o: DemoOptions): Promise<DemoReport> {
  o.say('1/4 local stack')
  if ((await bash(o.root, ['stack/stack.sh', 'status'], () => undefined)) !== 0) {
    o.say('  not (fully) running: starting it (npm run stack:up); the first start downloads the servers')
    if ((await bash(o.root, ['stack/stack.sh', 'up'], o.say)) !== 0) {
      throw new PipelineError(
        ErrorCodes.UNREACHABLE,
        'the local stack did not start (npm run stack:status; npm run stack:logs)',
      )
    }
  } else o.say('  running and healthy')

  // Bounded first (a broker that does not answer is exit 3 in seconds), then the client the demo polls with.
  await (await connectPreflightAdmin(o.brokers)).disconnect()
  const admin = createKafka({ brokers: o.brokers, clientId: 'cdc-demo' }).admin()
  await admin.connect()
  const api = startApi(o.root)
  const subscriber = createClient({ url: readSetting(SETTINGS.redisUrl, {}) })
  // PostgreSQL as the API reads it (the read-only role): the truth the API's answers are compared with.
  const reader = new pg.Pool({ connectionString: readSetting(SETTINGS.apiPgUrl, {}), max: 8 })
  reader.on('error', () => undefined)
  let stopSync = (): void => undefined
  try {
    o.say(
      '2/4 starting the consumer (into PostgreSQL), the CDC sink (into Cassandra), cache-sync (into Redis) and the API',
    )
    // The consumer needs its topics before the first event: create them as the producer would.
    await prepareTopics(admin, DEFAULT_TOPIC_LAYOUT, createLogger({ level: 'silent', name: 'demo' }))
    const consuming = node(o.root, ['cmd/consume', '--idle-timeout', `${o.quietMs}ms`, '--summary-json'])
    // Change events trail the PostgreSQL writes: the CDC sink waits a little longer before calling it quiet.
    const replicating = node(o.root, ['cmd/replicate', '--idle-timeout', `${o.quietMs + 5_000}ms`, '--summary-json'])
    // A group that never ran starts at the change topics' end: the check reads the keys of this run's changes, and
    // replaying a shared stack's whole history into Redis first would only delay it. It runs until the check is
    // done (stopped then), so that a change another writer makes meanwhile is invalidated as users would see it.
    const syncing = node(
      o.root,
      ['cmd/cache-sync', '--from-beginning', 'false', '--summary-json'],
      undefined,
      (stop) => (stopSync = stop),
    )
    // Every key cache-sync writes is announced: those are the keys the check reads through the API.
    const announced = new Map<string, Set<string>>()
    subscriber.on('error', () => undefined)
    await subscriber.connect()
    await subscriber.subscribe(INVALIDATION_CHANNEL, (message) => {
      const { table, id } = JSON.parse(message) as { table: string; id: string }
      let ids = announced.get(table)
      if (ids === undefined) announced.set(table, (ids = new Set()))
      ids.add(id)
    })
    const apiUrl = await api.url
    const source = layoutTopics(DEFAULT_TOPIC_LAYOUT)
    const joined = async () =>
      (await groupProgress(admin, CONSUME_GROUP, source)).members > 0 &&
      (await groupProgress(admin, REPLICATE_GROUP, CHANGE_TOPICS)).members > 0 &&
      (await groupProgress(admin, CACHE_SYNC_GROUP, CACHE_TOPICS)).members > 0
    const deadline = Date.now() + 60_000
    while (!(await joined())) {
      if (Date.now() > deadline) throw new Error('the consumer and the sinks did not join their groups in 60 s')
      await new Promise((r) => setTimeout(r, 250))
    }
    const before = await groupProgress(admin, CONSUME_GROUP, source)
    const changesBefore = await groupProgress(admin, REPLICATE_GROUP, CHANGE_TOPICS)

    o.say(`3/4 producing ${o.rate} events/s for ${o.durationMs / 1000} s (seed ${o.seed}) while both run`)
    let finished = false
    // Readers fill the cache while the rows change (so the check meets hits, not only misses): random announced rows.
    const reading = Array.from({ length: 2 }, async () => {
      while (!finished) {
        const users = [...(announced.get('users') ?? [])]
        const id = users[Math.floor(Math.random() * users.length)]
        if (id === undefined) await new Promise((r) => setTimeout(r, 200))
        else
          await fetch(`${apiUrl}/users/${id}`).then(
            (r) => r.arrayBuffer(),
            () => undefined,
          )
      }
    })
    const live = (async () => {
      while (!finished && o.progress) {
        const [c, r] = await Promise.all([
          groupProgress(admin, CONSUME_GROUP, source),
          groupProgress(admin, REPLICATE_GROUP, CHANGE_TOPICS),
        ])
        o.progress(
          `produced ${c.end - before.end}  in PostgreSQL ${c.committed - before.committed} (lag ${c.end - c.committed})` +
            `  in Cassandra ${r.committed - changesBefore.committed} changes (lag ${r.end - r.committed})`,
        )
        await new Promise((res) => setTimeout(res, 1_000))
      }
    })().catch(() => undefined)
    const produced = await node(o.root, [
      'cmd/produce',
      '--rate',
      String(o.rate),
      '--duration',
      `${o.durationMs}ms`,
      '--count',
      '0',
      '--seed',
      String(o.seed),
    ])
    if (produced.code !== 0) {
      throw new Error(`produce failed: ${produced.stderr.trim().split('\n').slice(-3).join('\n')}`)
    }
    const producedCount = Number(/produced\s+(\d+)/.exec(produced.stdout)?.[1] ?? 0)
    const produceRate = Number(/rate\s+(\d+)/.exec(produced.stdout)?.[1] ?? 0)
    o.progress?.(`produced ${producedCount} at ${produceRate} events/s; waiting for the stream to go quiet`)
    const [consumed, replicated] = await Promise.all([consuming, replicating])
    finished = true
    await Promise.all([live, ...reading])
    const consume = summaryOf('consume', consumed)
    const replicate = summaryOf('replicate', replicated)
    // cache-sync has committed every change in its topics (the stream is quiet: the replicate group is caught up).
    const caughtUp = Date.now() + 60_000
    for (;;) {
      const p = await groupProgress(admin, CACHE_SYNC_GROUP, CACHE_TOPICS)
      if (p.end - p.committed <= 0) break
      if (Date.now() > caughtUp) throw new Error(`cache-sync still ${p.end - p.committed} changes behind after 60 s`)
      await new Promise((r) => setTimeout(r, 250))
    }

    o.say('4/4 comparing PostgreSQL with Cassandra (every row and column) and with what the API serves from Redis')
    const cache = await checkThroughApi(announced, {
      get: async (path) => {
        const res = await fetch(`${apiUrl}${path}`)
        return { status: res.status, body: await res.text(), cache: res.headers.get('x-cache') ?? '' }
      },
      truth: async (resource, id) =>
        (await reader.query<{ row: string | null }>(resource.sql, [id])).rows[0]?.row ?? null,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    })
    stopSync()
    const cacheSync = summaryOf('cache-sync', await syncing)
    const client = new cassandra.Client({
      contactPoints: o.cassandraContactPoints,
      localDataCenter: o.cassandraLocalDc,
      encoding: { useBigIntAsLong: true },
      socketOptions: { readTimeout: 60_000 },
    })
    try {
      const compared = await compareStores(client, o.pgUrl, o.keyspace)
      return {
        produced: producedCount,
        produceRate,
        consume,
        replicate,
        cacheSync,
        postgres: compared.rows,
        comparison: { matches: compared.problems.length === 0, tables: compared.tables },
        cache,
      }
    } finally {
      await client.shutdown()
    }
  } finally {
    stopSync()
    await admin.disconnect()
    await api.stop()
    await subscriber.close().catch(() => undefined)
    await reader.end()
  }
}

/** The report as the summary a newcomer reads, with where to look next. */
export function formatDemoReport(r: DemoReport, pgUrl = 'postgres://cdc_app:cdc_app@127.0.0.1:5432/cdc_db'): string {
  const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : '-')
  const lines = [
    '',
    'demo summary',
    `  events produced           ${r.produced} (${r.produceRate} events/s)`,
    `  consumed into PostgreSQL  ${r.consume.processed} processed ` +
      `(${r.consume.processed === r.produced ? '= produced' : `produced ${r.produced}: NOT EQUAL`}): ` +
      `${r.consume.applied} applied + ${r.consume.stale} stale + ${r.consume.deadLettered} to the DLQ ` +
      `${r.consume.applied + r.consume.stale + r.consume.deadLettered === r.consume.processed ? '=' : '!='} processed, ` +
      `${r.consume.ratePerSec} events/s`,
    `  work amplification        ${r.consume.amplification.toFixed(2)}x ` +
      `(${r.consume.handed} handed to the sink for ${r.consume.processed} events; ` +
      `${r.consume.parked} waited after a try, ${r.consume.held} held for their users)`,
    `  event -> PostgreSQL       p50 ${ms(r.consume.latencyMs.p50)}, p95 ${ms(r.consume.latencyMs.p95)}, ` +
      `p99 ${ms(r.consume.latencyMs.p99)}`,
    `  replicated to Cassandra   ${r.replicate.processed} change events, ${r.replicate.deadLettered} to the DLQ, ` +
      `${r.replicate.ratePerSec} events/s`,
    `  PostgreSQL -> Cassandra   p50 ${ms(r.replicate.latencyMs.p50)}, p95 ${ms(r.replicate.latencyMs.p95)}, ` +
      `p99 ${ms(r.replicate.latencyMs.p99)}`,
    `  rows in PostgreSQL        ${Object.entries(r.postgres)
      .map(([table, n]) => `${table} ${n}`)
      .join(', ')}`,
    ...r.comparison.tables.map(
      (t) =>
        `  cassandra ${t.table.padEnd(20)} ${t.actual} rows; missing ${t.missing}, extra ${t.extra}, ` +
        `different ${t.differing}`,
    ),
    `  PostgreSQL and Cassandra  ${r.comparison.matches ? 'MATCH' : 'DO NOT MATCH'}`,
    ...r.comparison.tables.flatMap((t) => t.problems.map((e) => `    ${e}`)),
    `  cache-sync into Redis     ${r.cacheSync.processed} change events, ${r.cacheSync.deadLettered} to the DLQ, ` +
      `p50 ${ms(r.cacheSync.latencyMs.p50)}, p95 ${ms(r.cacheSync.latencyMs.p95)}, p99 ${ms(r.cacheSync.latencyMs.p99)}`,
    ...r.cache.tables.map(
      (t) =>
        `  redis ${t.name.padEnd(24)} ${t.keys} keys read through the API (hit ${t.hit}, l1 ${t.l1}, miss ${t.miss}); ` +
        `different ${t.differing}: ${t.differing === 0 ? 'MATCH' : 'MISMATCH'}`,
    ),
    r.cache.tables.length === 0
      ? '  PostgreSQL and Redis      NOT CHECKED: cache-sync announced no key during the run'
      : `  PostgreSQL and Redis      ${r.cache.matches ? 'MATCH' : 'DO NOT MATCH'} (what node cmd/api serves, ` +
        `${r.cache.tables.reduce((n, t) => n + t.keys, 0)} keys cache-sync announced)`,
    ...r.cache.tables.flatMap((t) => t.problems.map((e) => `    ${e}`)),
    '',
    'look further:',
    '  npm run kafka -- topics --describe                     topics, partitions, replicas',
    '  npm run kafka -- groups --describe --all-groups        consumer groups and their lag',
    '  npm run kafka -- console-consumer --topic cdc.public.users --from-beginning --max-messages 3',
    '  npm run cqlsh -- -e "SELECT * FROM cdc_keyspace.users LIMIT 5"',
    '  node cmd/api, then curl -i http://127.0.0.1:8088/users/<id>   a row through the cache (x-cache: hit|miss|l1)',
    `  psql ${pgUrl} -c "SELECT status, count(*) FROM orders GROUP BY 1"`,
    '  npm run stack:status                                   every component',
    '',
  ]
  return lines.join('\n')
}

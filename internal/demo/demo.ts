import { spawn } from 'node:child_process'
import cassandra from 'cassandra-driver'
import { SETTINGS, readSetting } from '../cli/index.js'
import { ErrorCodes, PipelineError } from '../errors/index.js'
import { connectPreflightAdmin, createKafka, groupProgress } from '../kafka/index.js'
import { createLogger } from '../log/index.js'
import type { RunSummary } from '../pipeline/index.js'
import { DEFAULT_TOPIC_LAYOUT, layoutTopics, prepareTopics } from '../producer/index.js'
import { compareStores, type TableComparison } from '../verify/index.js'

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

/** What the demo saw, for the summary. */
export interface DemoReport {
  produced: number
  produceRate: number
  consume: RunSummary
  replicate: RunSummary
  /** Rows per entity table in PostgreSQL (users, orders, ...). */
  postgres: Record<string, number>
  comparison: { matches: boolean; tables: TableComparison[] }
}

interface Finished {
  code: number | null
  stdout: string
  stderr: string
}

function node(root: string, args: string[], onLine?: (line: string) => void): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn' } })
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
  try {
    o.say(`2/4 starting the consumer (into PostgreSQL) and the CDC sink (into Cassandra)`)
    // The consumer needs its topics before the first event: create them as the producer would.
    await prepareTopics(admin, DEFAULT_TOPIC_LAYOUT, createLogger({ level: 'silent', name: 'demo' }))
    const consuming = node(o.root, ['cmd/consume', '--idle-timeout', `${o.quietMs}ms`, '--summary-json'])
    // Change events trail the PostgreSQL writes: the CDC sink waits a little longer before calling it quiet.
    const replicating = node(o.root, ['cmd/replicate', '--idle-timeout', `${o.quietMs + 5_000}ms`, '--summary-json'])
    const source = layoutTopics(DEFAULT_TOPIC_LAYOUT)
    const joined = async () =>
      (await groupProgress(admin, CONSUME_GROUP, source)).members > 0 &&
      (await groupProgress(admin, REPLICATE_GROUP, CHANGE_TOPICS)).members > 0
    const deadline = Date.now() + 60_000
    while (!(await joined())) {
      if (Date.now() > deadline) throw new Error('the consumer and the CDC sink did not join their groups in 60 s')
      await new Promise((r) => setTimeout(r, 250))
    }
    const before = await groupProgress(admin, CONSUME_GROUP, source)
    const changesBefore = await groupProgress(admin, REPLICATE_GROUP, CHANGE_TOPICS)

    o.say(`3/4 producing ${o.rate} events/s for ${o.durationMs / 1000} s (seed ${o.seed}) while both run`)
    let finished = false
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
    await live
    const consume = summaryOf('consume', consumed)
    const replicate = summaryOf('replicate', replicated)

    o.say('4/4 comparing PostgreSQL with Cassandra, every row and column')
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
        postgres: compared.rows,
        comparison: { matches: compared.problems.length === 0, tables: compared.tables },
      }
    } finally {
      await client.shutdown()
    }
  } finally {
    await admin.disconnect()
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
    '',
    'look further:',
    '  npm run kafka -- topics --describe                     topics, partitions, replicas',
    '  npm run kafka -- groups --describe --all-groups        consumer groups and their lag',
    '  npm run kafka -- console-consumer --topic cdc.public.users --from-beginning --max-messages 3',
    '  npm run cqlsh -- -e "SELECT * FROM cdc_keyspace.users LIMIT 5"',
    `  psql ${pgUrl} -c "SELECT status, count(*) FROM orders GROUP BY 1"`,
    '  npm run stack:status                                   every component',
    '',
  ]
  return lines.join('\n')
}

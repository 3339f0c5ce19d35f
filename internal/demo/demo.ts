import { spawn } from 'node:child_process'
import cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError } from '../errors/index.js'
import type { RunSummary } from '../pipeline/index.js'
import { compareStores, type TableComparison } from '../verify/index.js'

/** Options of the demo run. */
export interface DemoOptions {
  root: string
  events: number
  seed: number
  /** Time without messages after which the consumer and the CDC sink stop. */
  quietMs: number
  pgUrl: string
  cassandraContactPoints: string[]
  cassandraLocalDc: string
  keyspace: string
  say: (line: string) => void
}

/** What the demo saw, for the summary. */
export interface DemoReport {
  produced: number
  produceRate: number
  consume: RunSummary
  replicate: RunSummary
  postgres: { users: number; orders: number }
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
 * The main job in one go: the stack up when needed, events produced, consumed into PostgreSQL and replicated into
 * Cassandra until the stream goes quiet, then PostgreSQL and Cassandra compared row for row.
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

  o.say(`2/4 producing ${o.events} events (seed ${o.seed})`)
  const produced = await node(o.root, ['cmd/produce', '--count', String(o.events), '--seed', String(o.seed)])
  if (produced.code !== 0) throw new Error(`produce failed: ${produced.stderr.trim().split('\n').slice(-3).join('\n')}`)
  const producedCount = Number(/produced\s+(\d+)/.exec(produced.stdout)?.[1] ?? 0)
  const produceRate = Number(/rate\s+(\d+)/.exec(produced.stdout)?.[1] ?? 0)
  o.say(`  ${producedCount} events at ${produceRate} events/s`)

  o.say(`3/4 consuming into PostgreSQL and replicating into Cassandra until quiet for ${o.quietMs / 1000} s`)
  const quiet = `${o.quietMs}ms`
  const [consumed, replicated] = await Promise.all([
    node(o.root, ['cmd/consume', '--idle-timeout', quiet, '--summary-json']),
    // Change events trail the PostgreSQL writes: the CDC sink waits a little longer before calling it quiet.
    node(o.root, ['cmd/replicate', '--idle-timeout', `${o.quietMs + 5_000}ms`, '--summary-json']),
  ])
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
}

/** The report as the summary a newcomer reads, with where to look next. */
export function formatDemoReport(r: DemoReport): string {
  const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : '-')
  const lines = [
    '',
    'demo summary',
    `  events produced           ${r.produced} (${r.produceRate} events/s)`,
    `  consumed into PostgreSQL  ${r.consume.processed} processed, ${r.consume.applied} rows written, ` +
      `${r.consume.stale} stale, ${r.consume.deadLettered} to the DLQ, ${r.consume.ratePerSec} events/s`,
    `  event -> PostgreSQL       p50 ${ms(r.consume.latencyMs.p50)}, p95 ${ms(r.consume.latencyMs.p95)}, ` +
      `p99 ${ms(r.consume.latencyMs.p99)}`,
    `  replicated to Cassandra   ${r.replicate.processed} change events, ${r.replicate.deadLettered} to the DLQ, ` +
      `${r.replicate.ratePerSec} events/s`,
    `  PostgreSQL -> Cassandra   p50 ${ms(r.replicate.latencyMs.p50)}, p95 ${ms(r.replicate.latencyMs.p95)}, ` +
      `p99 ${ms(r.replicate.latencyMs.p99)}`,
    `  rows in PostgreSQL        users ${r.postgres.users}, orders ${r.postgres.orders}`,
    ...r.comparison.tables.map(
      (t) =>
        `  cassandra ${t.table.padEnd(15)} ${t.actual} rows; missing ${t.missing}, extra ${t.extra}, ` +
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
    '  psql postgres://cdc_app:cdc_app@127.0.0.1:5432/cdc_db -c "SELECT status, count(*) FROM orders GROUP BY 1"',
    '  npm run stack:status                                   every component',
    '',
  ]
  return lines.join('\n')
}

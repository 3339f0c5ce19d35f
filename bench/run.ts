// npm run bench: throughput and latency of the pipeline on the full local stack, beside Kafka's own perf tools on
// the same cluster and a bare batched upsert loop into PostgreSQL, with the CPU each process spent per 1,000 events.
// Writes bench/results/latest.{json,md}. Figures are medians of repeated runs: these machines are noisy, so compare
// ratios measured in the same run, not single numbers.
//
//   --only=producer,consume,consume-plain,metrics,bare,latency,cdc,api,scale-out,kafka,cpu-path   some sections (default: all)
//   --quick                                                        one run each, smaller counts (a smoke run)
//   --repeats=N --events=N --seconds=N --rates=R,R                 smaller still, for smoke tests on a shared stack
//                                                                  (--rates: the paced rates of latency, cdc and api)
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { cpus, totalmem } from 'node:os'
import { loadDotEnv, positiveInt, stackAddresses } from '../internal/config/index.js'
import { createKafka } from '../internal/kafka/index.js'
import { ENTITIES } from '../internal/model/index.js'
import type { RunSummary } from '../internal/pipeline/index.js'
import { ChildCpu, CpuWindow, serverBackground, stackServers, type CpuReport, type Servers } from './cpu.js'
import { apiBench } from './api.js'
import type { BareResult } from './bare-upsert.js'
import { PLAIN_DB, ensurePlainDatabase } from './plain-db.js'
import { renderReport, type BenchOutput } from './report.js'

const root = new URL('../..', import.meta.url).pathname
// The same .env as the commands and the stack (PG_URL, the stack's ports and passwords); the environment wins.
loadDotEnv({ path: `${root}.env` })
const brokers = process.env.KAFKA_BROKERS ? process.env.KAFKA_BROKERS.split(',') : stackAddresses().brokers
const quick = process.argv.includes('--quick')
// --name=value flags (the value of the last one given), validated like the commands' flags.
const flag = (name: string): string | undefined =>
  process.argv
    .filter((a) => a.startsWith(`--${name}=`))
    .at(-1)
    ?.slice(name.length + 3)
const onlyArg = flag('only')
const want = (section: string): boolean => !onlyArg || onlyArg.split(',').includes(section)
const SECTIONS = [
  'producer',
  'consume',
  'consume-plain',
  'metrics',
  'bare',
  'latency',
  'cdc',
  'api',
  'scale-out',
  'kafka',
  'cpu-path',
]

// --repeats, --events, --seconds and --rates shrink a run for smoke tests on a shared machine; the defaults are the
// benchmark's. A bad value is one line and exit 2, as with the commands.
function settings() {
  try {
    for (const section of onlyArg?.split(',') ?? []) {
      if (!SECTIONS.includes(section)) throw new Error(`--only takes ${SECTIONS.join(', ')} (got '${section}')`)
    }
    // Producer rates (events/s, 0 = unpaced) of the latency and cdc sections.
    const rates = (flag('rates') ?? '').split(',').filter((r) => r !== '')
    for (const r of rates) {
      if (!/^\d+$/.test(r)) throw new Error(`--rates must be comma-separated non-negative integers (got '${r}')`)
    }
    return {
      repeats: positiveInt({ flag: 'repeats', value: flag('repeats'), default: quick ? 1 : 3 }),
      throughputEvents: positiveInt({ flag: 'events', value: flag('events'), default: quick ? 50_000 : 200_000 }),
      latencySeconds: positiveInt({ flag: 'seconds', value: flag('seconds'), default: quick ? 10 : 20 }),
      latencyRates: rates,
    }
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`)
    process.exit(2)
  }
}
const { repeats, throughputEvents, latencySeconds, latencyRates } = settings()

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

interface Child {
  done: Promise<Run>
  kill: (s?: NodeJS.Signals) => void
  /** The child's CPU so far (its last reading once it has exited). */
  cpu: ChildCpu
  /** Resolves when the child's stdout so far matches `re` (rejects if it exits first). */
  printed: (re: RegExp) => Promise<void>
  /** Writes to the child's stdin. */
  write: (text: string) => void
}

// The commands run with their metrics endpoint off unless a section sets --metrics-port (the metrics section measures
// on against off): several run at once, and the default ports are one per command. The figures are therefore without
// metrics; the metrics section gives their cost.
const metricsOff = (args: string[]): string[] => (args.includes('--metrics-port') ? [] : ['--metrics-port', '0'])

function run(cmd: string, args: string[]): Child {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn' } })
  const cpu = new ChildCpu(child.pid!)
  let stdout = ''
  let stderr = ''
  const waiting = new Set<() => void>()
  child.stdout.on('data', (d: Buffer) => {
    // The summary is the last thing a command prints before it exits: read its CPU while it is still there.
    cpu.sample()
    stdout += d.toString()
    for (const check of waiting) check()
  })
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      cpu.stop()
      resolve({ code, stdout, stderr })
    }),
  )
  const printed = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!re.test(stdout)) return
        waiting.delete(check)
        resolve()
      }
      waiting.add(check)
      check()
      void done.then((r) => {
        waiting.delete(check)
        reject(new Error(`${cmd} ${args[0]} exited ${r.code} before printing ${re}: ${r.stderr.slice(-2000)}`))
      })
    })
  return { done, kill: (s = 'SIGTERM') => child.kill(s), cpu, printed, write: (text) => child.stdin.write(text) }
}

async function ok(r: Promise<Run>, what: string): Promise<Run> {
  const res = await r
  if (res.code !== 0) throw new Error(`${what} exited ${res.code}: ${res.stderr.slice(-2000)}`)
  return res
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** A run's own entity topics (every entity's: the generator's mix has them all) and the flags that name them. */
const topicsFor = (tag: string) => {
  const t = { users: `bench-${tag}-users`, orders: `bench-${tag}-orders`, products: `bench-${tag}-products` }
  return {
    ...t,
    all: [t.users, t.orders, t.products],
    args: ['--users-topic', t.users, '--orders-topic', t.orders, '--products-topic', t.products],
  }
}
const created: string[] = []

/** Starts node cmd/produce; `done` resolves with its rate and count. */
function startProduce(
  tag: string,
  extra: string[],
): { done: Promise<{ rate: number; produced: number }>; cpu: ChildCpu } {
  const t = topicsFor(tag)
  created.push(...t.all, ...t.all.map((x) => `${x}.dlq`))
  const child = run('node', [
    'cmd/produce',
    ...t.args,
    '--seed',
    String(Math.floor(Math.random() * 2 ** 31)),
    ...metricsOff(extra),
    ...extra,
  ])
  const done = ok(child.done, 'produce').then((res) => ({
    rate: Number(/rate\s+(\d+) events\/s/.exec(res.stdout)?.[1]),
    produced: Number(/produced\s+(\d+)/.exec(res.stdout)?.[1]),
  }))
  return { done, cpu: child.cpu }
}

const produce = (tag: string, extra: string[]) => startProduce(tag, extra).done

/** What the bench reads of a consumer's --summary-json: the pipeline's RunSummary (the reference consumers of the
 * bare loop report the same fields but handed and received). */
type ConsumeSummary = Pick<
  RunSummary,
  'processed' | 'abandoned' | 'applied' | 'deadLettered' | 'ratePerSec' | 'activeSeconds' | 'latencyMs'
> &
  Partial<Pick<RunSummary, 'handed' | 'received'>>

/**
 * Redelivered work of one consume run: messages handed to a sink per event produced (SPEC: <= 1.02), from the
 * summary's `handed` when the consumer reports it, else what it received (processed + abandoned), which does not see
 * retries inside a batch. And the rate over events produced rather than messages received: the summary's ratePerSec
 * counts every received message, redeliveries too.
 */
function redelivery(s: ConsumeSummary, produced: number) {
  const handed = s.handed ?? s.processed + s.abandoned
  return {
    amplification: Number((handed / produced).toFixed(4)),
    amplificationFrom: s.handed === undefined ? ('processed+abandoned' as const) : ('handed' as const),
    realPerSec: s.activeSeconds > 0 ? Math.round(produced / s.activeSeconds) : 0,
    summaryPerSec: s.ratePerSec,
    handed: s.handed,
    received: s.received,
    processed: s.processed,
    abandoned: s.abandoned,
    produced,
  }
}

type Redelivery = ReturnType<typeof redelivery>

function consume(tag: string, extra: string[]) {
  const t = topicsFor(tag)
  const r = run('node', [
    'cmd/consume',
    ...t.args,
    '--group',
    `bench-${tag}`,
    '--summary-json',
    ...metricsOff(extra),
    ...extra,
  ])
  return {
    kill: r.kill,
    cpu: r.cpu,
    done: r.done,
    summary: ok(r.done, 'consume').then((res) => JSON.parse(res.stdout.trim().split('\n').at(-1)!) as ConsumeSummary),
  }
}

/** Medians over a section's runs of the CPU per 1,000 events of each process group. */
function cpuSummary(runs: CpuReport[]) {
  const groups = [...new Set(runs.flatMap((r) => Object.keys(r.msPer1000)))]
  const nets = runs.map((r) => r.netTotalMsPer1000).filter((v) => v !== undefined)
  return {
    medianMsPer1000: Object.fromEntries(
      groups.map((g) => [g, median(runs.map((r) => r.msPer1000[g]).filter((v) => v !== undefined))]),
    ),
    medianTotalMsPer1000: median(runs.map((r) => r.totalMsPer1000)),
    medianNetTotalMsPer1000: nets.length > 0 ? median(nets) : undefined,
    runs,
  }
}

/** The stack's servers and their background CPU now, for the CPU windows of one section. */
async function serversForSection(): Promise<{ servers: Servers; background: Record<string, number> }> {
  const servers = stackServers()
  return { servers, background: await serverBackground(servers) }
}

async function kafkaTool(args: string[]): Promise<string> {
  return (await ok(run('bash', ['stack/stack.sh', 'kafka', ...args]).done, `kafka ${args[0]}`)).stdout
}

const CHANGE_TOPICS = ENTITIES.map((e) => `cdc.public.${e.table}`)

/**
 * Watches the change topics' end offsets (every 250 ms) from now on. `settled()` waits until they have not moved for
 * 1.5 s and returns when they last moved (ms since the epoch; when they never moved, when the watch began), so the
 * caller can tell how long Debezium trailed the last write.
 */
function watchChanges(): { settled: () => Promise<number> } {
  const admin = createKafka({ brokers, clientId: 'bench-settle' }).admin()
  const total = async () => {
    let n = 0
    for (const t of CHANGE_TOPICS) for (const p of await admin.fetchTopicOffsets(t)) n += Number(p.high)
    return n
  }
  let movedAt = Date.now()
  let stop = false
  const watching = (async () => {
    await admin.connect()
    let last = await total()
    while (!stop || Date.now() - movedAt < 1_500) {
      await new Promise((r) => setTimeout(r, 250))
      const now = await total()
      if (now !== last) {
        last = now
        movedAt = Date.now()
      }
    }
    await admin.disconnect()
  })()
  return {
    settled: async () => {
      stop = true
      await watching
      return movedAt
    },
  }
}

/**
 * Consume -> PostgreSQL throughput, main thread vs one worker per partition, fresh events each run, into the
 * consumer's default database or `pgUrl`. CPU: the consume process over its whole life (start-up and the idle
 * timeout included) and the servers over the same window; the backlog is produced before the window opens. Into
 * the captured database the window stays open until Debezium has emitted every change (its CDC work is part of the
 * cost), and how long Debezium trailed the consumer's last write is reported.
 */
async function consumeSection(
  key: string,
  label: string,
  pgUrl: string | undefined,
  results: Record<string, unknown>,
): Promise<void> {
  const { servers, background } = await serversForSection()
  for (const workers of ['0', 'auto']) {
    const rates: number[] = []
    const cpu: CpuReport[] = []
    const redeliveries: Redelivery[] = []
    const debeziumTailsMs: number[] = []
    for (let i = 0; i < repeats; i++) {
      const tag = `${key === 'consume' ? 'c' : 'cp'}${workers}-${i}-${randomUUID().slice(0, 6)}`
      await produce(tag, ['--count', String(throughputEvents), '--batch-size', '2000'])
      const window = new CpuWindow(servers, background)
      const changes = pgUrl === undefined ? watchChanges() : undefined
      const c = consume(tag, [
        '--workers',
        workers,
        '--idle-timeout',
        '3',
        ...(pgUrl === undefined ? [] : ['--pg-url', pgUrl]),
      ])
      const s = await c.summary
      if (changes) {
        // The consumer exits 3 s (its idle timeout) after its last commit.
        const lastWriteAt = Date.now() - 3_000
        debeziumTailsMs.push(Math.max(0, (await changes.settled()) - lastWriteAt))
      }
      cpu.push(window.close({ consume: c.cpu.ms }, throughputEvents))
      if (s.processed !== throughputEvents) throw new Error(`consume processed ${s.processed} of ${throughputEvents}`)
      const r = redelivery(s, throughputEvents)
      rates.push(s.ratePerSec)
      redeliveries.push(r)
      console.log(
        `consume ${label} --workers ${workers} run ${i + 1}: ${s.ratePerSec} events/s (summary), ${r.realPerSec} produced/active s, amplification ${r.amplification} (${r.amplificationFrom}), CPU ${cpu.at(-1)!.totalMsPer1000} ms per 1,000 events` +
          (debeziumTailsMs.length > i ? `, Debezium done ${debeziumTailsMs[i]} ms after the last write` : ''),
      )
    }
    results[`${key}_workers_${workers}`] = {
      database: label,
      events: throughputEvents,
      ratesPerSec: rates,
      medianPerSec: median(rates),
      realRatesPerSec: redeliveries.map((r) => r.realPerSec),
      medianRealPerSec: median(redeliveries.map((r) => r.realPerSec)),
      amplifications: redeliveries.map((r) => r.amplification),
      medianAmplification: median(redeliveries.map((r) => r.amplification)),
      amplificationFrom: redeliveries[0]?.amplificationFrom,
      redelivery: redeliveries,
      cpu: cpuSummary(cpu),
      ...(debeziumTailsMs.length > 0
        ? { debeziumDoneAfterLastWriteMs: debeziumTailsMs, medianDebeziumDoneAfterLastWriteMs: median(debeziumTailsMs) }
        : {}),
    }
  }
}

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** What one bench/cpu-path run printed. */
interface CpuPathResult {
  events: number
  runs: number[]
  median: number
}

async function main(): Promise<void> {
  const results: Record<string, unknown> = {}
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kafka: '4.3.1 (3 KRaft brokers, combined mode, RF 3, min ISR 2)',
    note: 'everything on one machine: 3 brokers, Connect+Debezium, PostgreSQL, Cassandra, and the pipeline',
  }
  console.log('machine', machine)

  if (want('producer')) {
    // 1. Producer throughput.
    const producerRates: number[] = []
    for (let i = 0; i < repeats; i++) {
      const tag = `p${i}-${randomUUID().slice(0, 6)}`
      const { rate } = await produce(tag, ['--count', String(throughputEvents), '--batch-size', '2000'])
      producerRates.push(rate)
      console.log(`producer run ${i + 1}: ${rate} events/s`)
    }
    results.producer = { events: throughputEvents, ratesPerSec: producerRates, medianPerSec: median(producerRates) }
  }

  // The live sections first, on the database as the run found it; the throughput sections then write hundreds of
  // thousands of rows into it (latency grows with the tables: run the benchmark on a fresh stack, see README).
  if (want('latency')) {
    // 3. End-to-end latency (event created -> row committed in PostgreSQL) at fixed rates and at the maximum.
    const latency: Record<string, unknown> = {}
    const { servers, background } = await serversForSection()
    for (const rate of latencyRates.length > 0 ? latencyRates : ['1000', '5000', '10000', '15000', '0']) {
      const tag = `l${rate}-${randomUUID().slice(0, 6)}`
      const t = topicsFor(tag)
      // The consumer must already be running: create the topics first, then start it, then produce.
      await produce(tag, ['--count', '1'])
      const window = new CpuWindow(servers, background)
      const c = consume(tag, ['--idle-timeout', '5', '--from-beginning'])
      await new Promise((r) => setTimeout(r, 3_000))
      const paced = startProduce(tag, [
        '--rate',
        rate,
        '--duration',
        String(latencySeconds),
        '--count',
        '0',
        '--batch-size',
        '500',
      ])
      const p = await paced.done
      const s = await c.summary
      const cpu = window.close({ consume: c.cpu.ms, produce: paced.cpu.ms }, p.produced + 1)
      latency[rate === '0' ? 'max' : `${rate}/s`] = {
        producedPerSec: p.rate,
        consumedPerSec: s.ratePerSec,
        ...s.latencyMs,
        // Paced production: cross-topic waits (an order before its user) are where redelivery would show.
        redelivery: redelivery(s, p.produced + 1),
        cpu,
      }
      console.log(
        `latency at ${rate === '0' ? 'max' : rate + '/s'}: p50 ${s.latencyMs.p50} p95 ${s.latencyMs.p95} p99 ${s.latencyMs.p99} ms (${p.rate} produced/s)`,
      )
      void t
    }
    // The highest paced rate the pipeline kept under 1 s at p95 (the producer reached it, within 5%).
    const underOneSecond = Object.entries(latency)
      .map(([k, v]) => ({ k, v: v as { producedPerSec: number; p95: number } }))
      .filter(({ k, v }) => k !== 'max' && v.p95 < 1_000 && v.producedPerSec >= 0.95 * Number(k.split('/')[0]))
      .map(({ k }) => Number(k.split('/')[0]))
    results.endToEndLatencyMs = { ...latency, highestPacedRateWithP95Under1s: Math.max(0, ...underOneSecond) }
  }

  if (want('scale-out')) {
    // 3c. Three consume processes in one group on 16 partitions, the producer paced at 5,000 events/s for 60 s
    // (--seconds shortens it): two members from the start, the first SIGKILLed a third of the way in, a third member
    // added halfway. Every member must have worked, the group must end with every message committed once.
    const seconds = Math.max(latencySeconds, quick ? 20 : 60)
    const tag = `so-${randomUUID().slice(0, 6)}`
    const t = topicsFor(tag)
    await produce(tag, ['--count', '1', '--users-partitions', '8', '--orders-partitions', '8'])
    const { servers, background } = await serversForSection()
    const window = new CpuWindow(servers, background)
    const member = () => consume(tag, ['--idle-timeout', '10', '--session-timeout', '10', '--log-level', 'info'])
    const a = member()
    // It is SIGKILLed: its exit is expected to fail.
    const aKilled = a.summary.catch(() => undefined)
    const b = member()
    await new Promise((r) => setTimeout(r, 5_000))
    const paced = startProduce(tag, ['--rate', '5000', '--duration', String(seconds), '--count', '0'])
    await new Promise((r) => setTimeout(r, (seconds * 1000) / 3))
    // What the first member had committed before it is killed: its partitions' offsets moved.
    const admin = createKafka({ brokers, clientId: 'bench-scale' }).admin()
    await admin.connect()
    const committedBeforeKill = await admin.fetchOffsets({ groupId: `bench-${tag}`, topics: t.all })
    a.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, (seconds * 1000) / 6))
    const c = member()
    const p = await paced.done
    const [sb, sc] = await Promise.all([b.summary, c.summary])
    await aKilled
    // The killed member's last assignment (its log), and what the group had committed on those partitions.
    const assigned = (await a.done).stderr
      .split('\n')
      .filter((l) => l.includes('partitions assigned'))
      .map((l) => (JSON.parse(l) as { assignment: Record<string, number[]> }).assignment)
      .at(-1)
    const committedOnKilledPartitions = committedBeforeKill.reduce(
      (n, x) =>
        n +
        x.partitions
          .filter((q) => assigned?.[x.topic]?.includes(q.partition))
          .reduce((m, q) => m + Math.max(0, Number(q.offset)), 0),
      0,
    )
    const ends = new Map<string, number>()
    for (const topic of t.all) {
      for (const o of await admin.fetchTopicOffsets(topic)) ends.set(`${topic}/${o.partition}`, Number(o.high))
    }
    const committed = await admin.fetchOffsets({ groupId: `bench-${tag}`, topics: t.all })
    await admin.disconnect()
    const allCommitted = committed.every((x) =>
      x.partitions.every((q) => Number(q.offset) === ends.get(`${x.topic}/${q.partition}`)),
    )
    const committedByKilled = committedBeforeKill.reduce(
      (n, x) => n + x.partitions.reduce((m, q) => m + Math.max(0, Number(q.offset)), 0),
      0,
    )
    const cpu = window.close({ consume: a.cpu.ms + b.cpu.ms + c.cpu.ms, produce: paced.cpu.ms }, p.produced + 1)
    results.scaleOut = {
      partitions: 16,
      producedPerSec: p.rate,
      produced: p.produced + 1,
      seconds,
      // The killed member printed no summary: what the group had committed before the kill (both first members).
      committedBeforeKill: committedByKilled,
      killedMemberPartitions: assigned,
      committedOnKilledMembersPartitions: committedOnKilledPartitions,
      members: { survivor: sb, added: sc },
      processedBySurvivorAndAdded: sb.processed + sc.processed,
      everyMessageCommitted: allCommitted,
      p95Ms: Math.max(sb.latencyMs.p95, sc.latencyMs.p95),
      p50Ms: Math.max(sb.latencyMs.p50, sc.latencyMs.p50),
      cpu,
    }
    console.log(
      `scale-out: ${p.produced + 1} events at ${p.rate}/s; committed before the kill ${committedByKilled} ` +
        `(${committedOnKilledPartitions} on the killed member's partitions); ` +
        `survivor ${sb.processed}, added ${sc.processed}; every message committed: ${allCommitted}; ` +
        `p50 ${Math.max(sb.latencyMs.p50, sc.latencyMs.p50)} p95 ${Math.max(sb.latencyMs.p95, sc.latencyMs.p95)} ms`,
    )
  }

  if (want('cdc')) {
    // 3b. PostgreSQL commit -> row in Cassandra (Debezium + node cmd/replicate), at fixed change rates and at the
    // maximum. Every event is one row change in PostgreSQL; the replicate group is fresh and starts at the end of the
    // change topics, so it measures only this step's changes.
    const cdc: Record<string, unknown> = {}
    const { servers, background } = await serversForSection()
    for (const rate of latencyRates.length > 0 ? latencyRates : ['500', '2000', '0']) {
      const tag = `r${rate}-${randomUUID().slice(0, 6)}`
      await produce(tag, ['--count', '1'])
      const window = new CpuWindow(servers, background)
      const c = consume(tag, ['--idle-timeout', '15'])
      const r = run('node', [
        'cmd/replicate',
        '--metrics-port',
        '0',
        '--group',
        // Not the consume group's name: one group with two different subscriptions would split their partitions.
        `bench-${tag}-replicate`,
        '--from-beginning',
        'false',
        // Debezium trails PostgreSQL by seconds under load: wait long enough for the first change.
        '--idle-timeout',
        '30',
        '--summary-json',
      ])
      await new Promise((res) => setTimeout(res, 5_000))
      const paced = startProduce(tag, [
        '--rate',
        rate,
        '--duration',
        String(latencySeconds),
        '--count',
        rate === '0' ? String(Math.ceil(throughputEvents / 2)) : '0',
      ])
      const p = await paced.done
      const cs = await c.summary
      const rs = JSON.parse((await ok(r.done, 'replicate')).stdout.trim().split('\n').at(-1)!) as ConsumeSummary
      // Per 1,000 events produced (each one PostgreSQL row change, plus the orders a user's soft delete touches).
      const cpu = window.close({ consume: c.cpu.ms, replicate: r.cpu.ms, produce: paced.cpu.ms }, p.produced + 1)
      // The change topics are shared: changes other writers of cdc_db made in the window are replicated too (and
      // cost Connect, replicate and Cassandra CPU). A user's soft delete adds its orders' changes, but not 2x.
      const note =
        rs.processed > 2 * (p.produced + 1)
          ? `${rs.processed} changes replicated for ${p.produced + 1} events produced: cdc_db had other writers in this window, so the replicate, Connect and Cassandra figures (latency, CPU) include their changes`
          : undefined
      if (note) console.warn(`cdc at ${rate}/s: ${note}`)
      cdc[rate === '0' ? 'max' : `${rate}/s`] = {
        note,
        producedPerSec: p.rate,
        appliedToPostgresPerSec: cs.ratePerSec,
        changeEventsReplicated: rs.processed,
        replicatedPerSec: rs.ratePerSec,
        ...rs.latencyMs,
        consumeRedelivery: redelivery(cs, p.produced + 1),
        replicate: { processed: rs.processed, abandoned: rs.abandoned, handed: rs.handed, received: rs.received },
        cpu,
      }
      console.log(
        `postgres -> cassandra at ${rate === '0' ? 'max' : rate + '/s'}: p50 ${rs.latencyMs.p50} p95 ${rs.latencyMs.p95} p99 ${rs.latencyMs.p99} ms (${rs.processed} changes, ${rs.ratePerSec}/s)`,
      )
    }
    results.postgresToCassandraLatencyMs = cdc
  }

  if (want('api')) {
    // 3d. The cache (bench/api.ts): node cmd/api's reads/s and p50/p99 on misses, Redis hits and L1 hits
    // (autocannon, a fixed duration), and PostgreSQL commit -> key invalidated in Redis at paced change rates.
    results.api = await apiBench({
      root,
      brokers,
      seconds: quick ? 5 : 10,
      rates: latencyRates.length > 0 ? latencyRates.map(Number) : [500, 2000],
      rows: quick ? 10_000 : 40_000,
      connections: 10,
    })
  }

  if (want('consume')) {
    // 2. Consume -> PostgreSQL throughput into cdc_db, which Debezium captures (every row also goes through the WAL
    // decoder, Connect and the brokers again).
    await consumeSection('consume', 'captured (cdc_db)', undefined, results)
  }

  if (want('consume-plain')) {
    // 2b. The same into a database nothing captures: the consumer's own ceiling, without the CDC leg's cost.
    const plainUrl = await ensurePlainDatabase(root)
    await consumeSection('consume_plain', `uncaptured (${PLAIN_DB})`, plainUrl, results)
  }

  if (want('metrics')) {
    // 2d. What the Prometheus metrics cost the consumer: the uncaptured consume runs (the least noisy of the consume
    // figures) with the metrics endpoint on (an ephemeral port, registered with the stack's Prometheus, which scrapes
    // it) and off (--metrics-port 0), alternating on/off so that drift on the shared machine falls on both.
    const plainUrl = await ensurePlainDatabase(root)
    const rates: Record<'on' | 'off', number[]> = { on: [], off: [] }
    for (let i = 0; i < repeats; i++) {
      for (const mode of i % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
        const tag = `m${mode}-${i}-${randomUUID().slice(0, 6)}`
        await produce(tag, ['--count', String(throughputEvents), '--batch-size', '2000'])
        const port = mode === 'on' ? String(await freePort()) : '0'
        const s = await consume(tag, [
          '--workers',
          'auto',
          '--idle-timeout',
          '3',
          '--pg-url',
          plainUrl,
          '--metrics-port',
          port,
        ]).summary
        if (s.processed !== throughputEvents) throw new Error(`consume processed ${s.processed} of ${throughputEvents}`)
        const r = redelivery(s, throughputEvents)
        rates[mode].push(r.realPerSec)
        console.log(`consume uncaptured, metrics ${mode} run ${i + 1}: ${r.realPerSec} produced/active s`)
      }
    }
    results.metrics_overhead = {
      database: `uncaptured (${PLAIN_DB})`,
      events: throughputEvents,
      workers: 'auto',
      onRatesPerSec: rates.on,
      offRatesPerSec: rates.off,
      medianOnPerSec: median(rates.on),
      medianOffPerSec: median(rates.off),
      onOverOff: Math.round((median(rates.on) / median(rates.off)) * 1000) / 1000,
    }
  }

  if (want('bare')) {
    // 2c. The ceiling of consume -> PostgreSQL on this machine: a bare batched UNNEST upsert loop (bench/bare-upsert.ts)
    // into the uncaptured database, same statements as the consumer's sink, no Kafka. Events are generated before
    // the timed loop; its CPU is the loop's own (process.cpuUsage around it) and the servers' over the loop.
    const plainUrl = await ensurePlainDatabase(root)
    const { servers, background } = await serversForSection()
    const rates: number[] = []
    const cpu: CpuReport[] = []
    const runs: BareResult[] = []
    for (let i = 0; i < repeats; i++) {
      const b = run('node', [
        new URL('./bare-upsert.js', import.meta.url).pathname,
        '--pg-url',
        plainUrl,
        '--events',
        String(throughputEvents),
        '--batch-size',
        '2000',
        '--wait-for-go',
      ])
      await b.printed(/^ready$/m)
      const window = new CpuWindow(servers, background)
      b.write('go\n')
      const r = JSON.parse((await ok(b.done, 'bare-upsert')).stdout.trim().split('\n').at(-1)!) as BareResult
      cpu.push(window.close({ bare: r.cpuMs }, r.events))
      if (r.childrenNotWritten > 0) console.warn(`bare run ${i + 1}: ${r.childrenNotWritten} order events not written`)
      rates.push(r.ratePerSec)
      runs.push(r)
      console.log(
        `bare UNNEST upsert loop run ${i + 1}: ${r.ratePerSec} events/s (${r.transactions} transactions), CPU ${cpu.at(-1)!.totalMsPer1000} ms per 1,000 events`,
      )
    }
    results.bare = {
      database: `uncaptured (${PLAIN_DB})`,
      events: throughputEvents,
      batchSize: 2000,
      ratesPerSec: rates,
      medianPerSec: median(rates),
      cpu: cpuSummary(cpu),
      runs,
    }
  }

  if (want('kafka')) {
    // 4. Kafka's own tools on the same cluster: the broker's limit here.
    const perfTopic = `bench-perf-${randomUUID().slice(0, 6)}`
    created.push(perfTopic)
    await kafkaTool(['topics', '--create', '--topic', perfTopic, '--partitions', '8', '--replication-factor', '3'])
    const records = quick ? 200_000 : 1_000_000
    const prodOut = await kafkaTool([
      'producer-perf',
      '--topic',
      perfTopic,
      '--num-records',
      String(records),
      '--record-size',
      '220',
      '--throughput',
      '-1',
      '--producer-props',
      `bootstrap.servers=${brokers.join(',')}`,
      'acks=all',
      'linger.ms=5',
      'batch.size=65536',
    ])
    const prodLine = prodOut.trim().split('\n').at(-1) ?? ''
    const consOut = await kafkaTool(['consumer-perf', '--topic', perfTopic, '--num-records', String(records)])
    const kafkaProducerRate = Number(/([\d.]+) records\/sec/.exec(prodLine)?.[1])
    // The last line: start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, ...
    const consumerFields = consOut
      .trim()
      .split('\n')
      .at(-1)
      ?.split(',')
      .map((f) => f.trim())
    results.kafkaPerfTools = {
      records,
      recordBytes: 220,
      producerPerfRecordsPerSec: kafkaProducerRate,
      producerPerfLine: prodLine,
      consumerPerfOutput: consOut.trim().split('\n').slice(-2).join(' | '),
      consumerPerfFetchRecordsPerSec: consumerFields ? Number(consumerFields[9]) : undefined,
      consumerPerfRecordsPerSec: consumerFields ? Number(consumerFields[5]) : undefined,
    }
    console.log('kafka-producer-perf-test:', prodLine)
    console.log('kafka-consumer-perf-test:', consOut.trim().split('\n').slice(-1)[0])
  }

  if (want('cpu-path')) {
    // 5. The consumer's CPU per event with no network (bench/cpu-path.ts): the sink's path in this thread
    // (--workers 0) and through worker threads (--workers), the pg pool stubbed. Needs no stack: its own medians,
    // not disturbed by the servers (only by other load on the machine).
    const cpuPath = async (mode: string[]) => {
      const args = [`--events=${quick ? 20_000 : 50_000}`, `--runs=${quick ? 3 : 5}`, ...mode]
      const r = run('node', [new URL('./cpu-path.js', import.meta.url).pathname, ...args])
      return JSON.parse((await ok(r.done, 'cpu-path')).stdout.trim().split('\n').at(-1)!) as CpuPathResult
    }
    results.cpuPath = { workers0: await cpuPath([]), workersPool: await cpuPath(['--workers']) }
    console.log('cpu-path:', JSON.stringify(results.cpuPath))
  }

  // Clean up the benchmark's topics and groups (none when only cpu-path ran: no stack needed then).
  if (created.length > 0) {
    const admin = createKafka({ brokers, clientId: 'bench' }).admin()
    await admin.connect()
    const existing = new Set(await admin.listTopics())
    await admin.deleteTopics({ topics: created.filter((t) => existing.has(t)) }).catch(() => undefined)
    await admin.disconnect()
  }

  const out: BenchOutput = {
    date: new Date().toISOString(),
    quick,
    only: onlyArg ?? 'all',
    repeats,
    events: throughputEvents,
    seconds: latencySeconds,
    argv: process.argv.slice(2),
    machine,
    results,
  }
  mkdirSync(`${root}bench/results`, { recursive: true })
  writeFileSync(`${root}bench/results/latest.json`, `${JSON.stringify(out, null, 2)}\n`)
  const report = renderReport(out)
  writeFileSync(`${root}bench/results/latest.md`, report)
  console.log(`\n${report}\nwritten: bench/results/latest.json, bench/results/latest.md`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})

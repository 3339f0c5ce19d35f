// npm run bench: throughput and latency of the pipeline on the full local stack, beside Kafka's own perf tools on
// the same cluster. Writes bench/results/latest.{json,md}. Figures are medians of repeated runs: these machines are
// noisy, so compare ratios, not single numbers.
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { positiveInt } from '../internal/config/index.js'
import { createKafka } from '../internal/kafka/index.js'

const root = new URL('../..', import.meta.url).pathname
const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094').split(',')
const quick = process.argv.includes('--quick')
// --name=value flags (the value of the last one given), validated like the commands' flags.
const flag = (name: string): string | undefined =>
  process.argv
    .filter((a) => a.startsWith(`--${name}=`))
    .at(-1)
    ?.slice(name.length + 3)
// --only producer,consume,latency,cdc,kafka runs some sections (default: all).
const onlyArg = flag('only')
const want = (section: string): boolean => !onlyArg || onlyArg.split(',').includes(section)
// --repeats, --events, --seconds and --rates shrink a run for smoke tests on a shared machine; the defaults are the
// benchmark's.
const repeats = positiveInt({ flag: 'repeats', value: flag('repeats'), default: quick ? 1 : 3 })
const throughputEvents = positiveInt({ flag: 'events', value: flag('events'), default: quick ? 50_000 : 200_000 })
const latencySeconds = positiveInt({ flag: 'seconds', value: flag('seconds'), default: quick ? 10 : 20 })
// Producer rates (events/s, 0 = unpaced) of the latency and cdc sections.
const latencyRates = (flag('rates') ?? '').split(',').filter((r) => r !== '')
for (const r of latencyRates) {
  if (!/^\d+$/.test(r)) throw new Error(`--rates must be comma-separated non-negative integers (got '${r}')`)
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(
  cmd: string,
  args: string[],
  opts: { background?: boolean } = {},
): { done: Promise<Run>; kill: (s?: NodeJS.Signals) => void } {
  const child = spawn(cmd, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn' } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  void opts
  return { done, kill: (s = 'SIGTERM') => child.kill(s) }
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

const topicsFor = (tag: string) => ({ users: `bench-${tag}-users`, orders: `bench-${tag}-orders` })
const created: string[] = []

async function produce(tag: string, extra: string[]): Promise<{ rate: number; produced: number }> {
  const t = topicsFor(tag)
  created.push(t.users, t.orders, `${t.users}.dlq`, `${t.orders}.dlq`)
  const res = await ok(
    run('node', [
      'cmd/produce',
      '--users-topic',
      t.users,
      '--orders-topic',
      t.orders,
      '--seed',
      String(Math.floor(Math.random() * 2 ** 31)),
      ...extra,
    ]).done,
    'produce',
  )
  const rate = Number(/rate\s+(\d+) events\/s/.exec(res.stdout)?.[1])
  const produced = Number(/produced\s+(\d+)/.exec(res.stdout)?.[1])
  return { rate, produced }
}

interface ConsumeSummary {
  processed: number
  applied: number
  deadLettered: number
  ratePerSec: number
  activeSeconds: number
  latencyMs: { p50: number; p95: number; p99: number }
}

function consume(tag: string, extra: string[]) {
  const t = topicsFor(tag)
  const r = run('node', [
    'cmd/consume',
    '--users-topic',
    t.users,
    '--orders-topic',
    t.orders,
    '--group',
    `bench-${tag}`,
    '--summary-json',
    ...extra,
  ])
  return {
    kill: r.kill,
    summary: ok(r.done, 'consume').then((res) => JSON.parse(res.stdout.trim().split('\n').at(-1)!) as ConsumeSummary),
  }
}

async function kafkaTool(args: string[]): Promise<string> {
  return (await ok(run('bash', ['stack/stack.sh', 'kafka', ...args]).done, `kafka ${args[0]}`)).stdout
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

  if (want('consume')) {
    // 2. Consume -> PostgreSQL throughput, main thread vs one worker per partition (fresh events each run).
    for (const workers of ['0', 'auto']) {
      const rates: number[] = []
      for (let i = 0; i < repeats; i++) {
        const tag = `c${workers}-${i}-${randomUUID().slice(0, 6)}`
        await produce(tag, ['--count', String(throughputEvents), '--batch-size', '2000'])
        const s = await consume(tag, ['--workers', workers, '--idle-timeout', '3']).summary
        if (s.processed !== throughputEvents) throw new Error(`consume processed ${s.processed} of ${throughputEvents}`)
        rates.push(s.ratePerSec)
        console.log(`consume --workers ${workers} run ${i + 1}: ${s.ratePerSec} events/s`)
      }
      results[`consume_workers_${workers}`] = {
        events: throughputEvents,
        ratesPerSec: rates,
        medianPerSec: median(rates),
      }
    }
  }

  if (want('latency')) {
    // 3. End-to-end latency (event created -> row committed in PostgreSQL) at fixed rates and at the maximum.
    const latency: Record<string, unknown> = {}
    for (const rate of latencyRates.length > 0 ? latencyRates : ['1000', '5000', '0']) {
      const tag = `l${rate}-${randomUUID().slice(0, 6)}`
      const t = topicsFor(tag)
      // The consumer must already be running: create the topics first, then start it, then produce.
      await produce(tag, ['--count', '1'])
      const c = consume(tag, ['--idle-timeout', '5', '--from-beginning'])
      await new Promise((r) => setTimeout(r, 3_000))
      const p = await produce(tag, [
        '--rate',
        rate,
        '--duration',
        String(latencySeconds),
        '--count',
        '0',
        '--batch-size',
        '500',
      ])
      const s = await c.summary
      latency[rate === '0' ? 'max' : `${rate}/s`] = {
        producedPerSec: p.rate,
        consumedPerSec: s.ratePerSec,
        ...s.latencyMs,
      }
      console.log(
        `latency at ${rate === '0' ? 'max' : rate + '/s'}: p50 ${s.latencyMs.p50} p95 ${s.latencyMs.p95} p99 ${s.latencyMs.p99} ms (${p.rate} produced/s)`,
      )
      void t
    }
    results.endToEndLatencyMs = latency
  }

  if (want('cdc')) {
    // 3b. PostgreSQL commit -> row in Cassandra (Debezium + node cmd/replicate), at fixed change rates and at the
    // maximum. Every event is one row change in PostgreSQL; the replicate group is fresh and starts at the end of the
    // change topics, so it measures only this step's changes.
    const cdc: Record<string, unknown> = {}
    for (const rate of latencyRates.length > 0 ? latencyRates : ['500', '2000', '0']) {
      const tag = `r${rate}-${randomUUID().slice(0, 6)}`
      await produce(tag, ['--count', '1'])
      const c = consume(tag, ['--idle-timeout', '15'])
      const r = run('node', [
        'cmd/replicate',
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
      const p = await produce(tag, [
        '--rate',
        rate,
        '--duration',
        String(latencySeconds),
        '--count',
        rate === '0' ? String(throughputEvents / 2) : '0',
      ])
      const cs = await c.summary
      const rs = JSON.parse((await ok(r.done, 'replicate')).stdout.trim().split('\n').at(-1)!) as ConsumeSummary
      cdc[rate === '0' ? 'max' : `${rate}/s`] = {
        producedPerSec: p.rate,
        appliedToPostgresPerSec: cs.ratePerSec,
        changeEventsReplicated: rs.processed,
        replicatedPerSec: rs.ratePerSec,
        ...rs.latencyMs,
      }
      console.log(
        `postgres -> cassandra at ${rate === '0' ? 'max' : rate + '/s'}: p50 ${rs.latencyMs.p50} p95 ${rs.latencyMs.p95} p99 ${rs.latencyMs.p99} ms (${rs.processed} changes, ${rs.ratePerSec}/s)`,
      )
    }
    results.postgresToCassandraLatencyMs = cdc
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

  // Clean up the benchmark's topics and groups.
  const admin = createKafka({ brokers, clientId: 'bench' }).admin()
  await admin.connect()
  const existing = new Set(await admin.listTopics())
  await admin.deleteTopics({ topics: created.filter((t) => existing.has(t)) }).catch(() => undefined)
  await admin.disconnect()

  const out = {
    date: new Date().toISOString(),
    quick,
    only: onlyArg ?? 'all',
    repeats,
    events: throughputEvents,
    seconds: latencySeconds,
    machine,
    results,
  }
  mkdirSync(`${root}bench/results`, { recursive: true })
  writeFileSync(`${root}bench/results/latest.json`, `${JSON.stringify(out, null, 2)}\n`)
  console.log(JSON.stringify(out, null, 2))
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})

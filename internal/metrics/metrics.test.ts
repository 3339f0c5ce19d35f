import { mkdtempSync, readFileSync, readdirSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../errors/index.js'
import { createLogger } from '../log/index.js'
import { newStats, tally, topicCounts, type EngineState, type EngineStats } from '../pipeline/index.js'
import {
  engineMetrics,
  fetchLag,
  lagMetrics,
  newRegistry,
  produceMetrics,
  progressLine,
  startProgress,
  replayMetrics,
  slotMetrics,
  startCommandMetrics,
  startMetricsServer,
  type Readiness,
} from './index.js'

const log = createLogger({ level: 'silent', pretty: false, name: 'test' })

/** The value of one series in Prometheus text, or undefined. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

const state = (s: Partial<EngineState> = {}): EngineState => ({
  phase: 'running',
  assignment: { users: [0, 1] },
  pausedPartitions: 0,
  inFlightBatches: 0,
  parkedMessages: 0,
  workerThreads: 0,
  workerRestarts: 0,
  oldestUnprocessed: [],
  ...s,
})

describe('tally', () => {
  it('adds to the total and to the topic: the totals are the sums of the topics', () => {
    const stats = newStats()
    tally(stats, 'users', 'received', 5)
    tally(stats, 'orders', 'received', 3)
    tally(stats, 'orders', 'abandoned', 2)
    tally(stats, 'orders', 'abandoned', -1)
    tally(stats, 'users', 'applied', 0)
    expect(stats.received).toBe(8)
    expect(stats.abandoned).toBe(1)
    expect(topicCounts(stats, 'users').received).toBe(5)
    expect(topicCounts(stats, 'orders')).toMatchObject({ received: 3, abandoned: 1, applied: 0 })
    for (const name of ['received', 'abandoned', 'applied'] as const) {
      expect([...stats.byTopic.values()].reduce((n, c) => n + c[name], 0)).toBe(stats[name])
    }
  })
})

describe('engine metrics', () => {
  it('export the engine stats as they are at scrape time, by topic and outcome, dead letters by code', async () => {
    const registry = newRegistry('consume')
    const stats: EngineStats = newStats()
    const engine: { stats?: EngineStats } = {}
    const observer = engineMetrics(registry, {
      stats: () => engine.stats,
      state: () =>
        engine.stats
          ? state({
              workerRestarts: 2,
              oldestUnprocessed: [{ topic: 'users', partition: 1, timestamp: Date.now() - 5_000 }],
            })
          : undefined,
    })
    // Before the engine exists: no per-topic series, the plain counters at 0.
    let text = await registry.metrics()
    expect(value(text, 'cdc_batches_total')).toBe(0)
    expect(value(text, 'cdc_partitions_assigned')).toBe(0)
    expect(text).toMatch(/^cdc_info\{program="consume"\} 1$/m)
    engine.stats = stats
    tally(stats, 'users', 'received', 10)
    tally(stats, 'users', 'applied', 7)
    tally(stats, 'users', 'stale', 2)
    tally(stats, 'users', 'deadLettered', 1)
    topicCounts(stats, 'users').deadLettersByCode.DECODE_ERROR = 1
    stats.batches = 2
    stats.commits = 3
    stats.rebalances = 1
    observer.batchApplied('users', 10, 0.02, [5, 50, 500])
    observer.committed(0.004, true)
    text = await registry.metrics()
    expect(value(text, 'cdc_messages_total{topic="users",outcome="received"}')).toBe(10)
    expect(value(text, 'cdc_messages_total{topic="users",outcome="applied"}')).toBe(7)
    expect(value(text, 'cdc_messages_total{topic="users",outcome="stale"}')).toBe(2)
    expect(value(text, 'cdc_messages_total{topic="users",outcome="dead_lettered"}')).toBe(1)
    expect(value(text, 'cdc_dead_letters_total{topic="users",code="DECODE_ERROR"}')).toBe(1)
    expect(value(text, 'cdc_batches_total')).toBe(2)
    expect(value(text, 'cdc_commits_total')).toBe(3)
    expect(value(text, 'cdc_rebalances_total')).toBe(1)
    expect(value(text, 'cdc_partitions_assigned')).toBe(2)
    expect(value(text, 'cdc_worker_restarts_total')).toBe(2)
    const age = value(text, 'cdc_oldest_unprocessed_age_seconds{topic="users",partition="1"}')!
    expect(age).toBeGreaterThanOrEqual(5)
    expect(age).toBeLessThan(60)
    expect(value(text, 'cdc_sink_latency_seconds_count{topic="users"}')).toBe(3)
    expect(value(text, 'cdc_sink_latency_seconds_bucket{le="0.05",topic="users"}')).toBe(2)
    expect(value(text, 'cdc_batch_size_messages_sum{topic="users"}')).toBe(10)
    expect(value(text, 'cdc_batch_apply_seconds_count{topic="users"}')).toBe(1)
    expect(value(text, 'cdc_commit_seconds_count{result="ok"}')).toBe(1)
    // The counts move with the stats: a second scrape is not a second count.
    tally(stats, 'users', 'received', 1)
    text = await registry.metrics()
    expect(value(text, 'cdc_messages_total{topic="users",outcome="received"}')).toBe(11)
    // The process' defaults (CPU, memory, event-loop lag).
    expect(text).toMatch(/^process_cpu_seconds_total /m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m)
  })
})

describe('consumer lag', () => {
  const admin = {
    fetchOffsets: async () => [
      {
        topic: 'users',
        partitions: [
          { partition: 0, offset: '40' },
          { partition: 1, offset: '-1' },
          { partition: 2, offset: '5' },
        ],
      },
    ],
    fetchTopicOffsets: async () => [
      { partition: 0, offset: '50', high: '50', low: '0' },
      { partition: 1, offset: '30', high: '30', low: '10' },
      { partition: 2, offset: '5', high: '5', low: '0' },
    ],
  }

  it('is the high watermark minus the committed offset (the log start when none), assigned partitions only', async () => {
    const lag = await fetchLag(admin, 'g', { users: [0, 1] })
    expect(lag.map((p) => [p.partition, p.committed, p.highWatermark, p.lag])).toEqual([
      [0, 40n, 50n, 10n],
      [1, 10n, 30n, 20n],
    ])
    expect(await fetchLag(admin, 'g', {})).toEqual([])
  })

  it('is exported as cdc_consumer_lag{topic,partition,group}', async () => {
    const registry = newRegistry('consume')
    let assignment: Record<string, number[]> = {}
    let connects = 0
    const lag = lagMetrics(registry, {
      groupId: 'g1',
      assignment: () => assignment,
      admin: () => ({ ...admin, connect: async () => void connects++, disconnect: async () => undefined }) as never,
    })
    expect(await registry.metrics()).not.toMatch(/^cdc_consumer_lag\{/m)
    assignment = { users: [0, 1, 2] }
    await new Promise((r) => setTimeout(r, 1_050))
    const text = await registry.metrics()
    expect(value(text, 'cdc_consumer_lag{topic="users",partition="0",group="g1"}')).toBe(10)
    expect(value(text, 'cdc_consumer_lag{topic="users",partition="2",group="g1"}')).toBe(0)
    expect(value(text, 'cdc_consumer_committed_offset{topic="users",partition="0",group="g1"}')).toBe(40)
    expect(value(text, 'cdc_consumer_high_watermark{topic="users",partition="1",group="g1"}')).toBe(30)
    expect(connects).toBe(1)
    await lag.close()
  })
})

describe('replication slot metrics', () => {
  it('export retained WAL, lag, active and wal_status per slot, and whether the last reading worked', async () => {
    const registry = newRegistry('replicate')
    let fail = false
    const slots = slotMetrics(registry, {
      pgUrl: 'postgres://unused',
      log,
      intervalMs: 60_000,
      read: async () => {
        if (fail) throw new Error('down')
        return [{ slot: 'cdc_slot', active: true, walStatus: 'reserved', retainedBytes: 4096, lagBytes: 1024 }]
      },
    })
    await slots.poll()
    let text = await registry.metrics()
    expect(value(text, 'cdc_replication_slot_retained_wal_bytes{slot="cdc_slot"}')).toBe(4096)
    expect(value(text, 'cdc_replication_slot_lag_bytes{slot="cdc_slot"}')).toBe(1024)
    expect(value(text, 'cdc_replication_slot_active{slot="cdc_slot"}')).toBe(1)
    expect(value(text, 'cdc_replication_slot_wal_status{slot="cdc_slot",status="reserved"}')).toBe(1)
    expect(value(text, 'cdc_replication_slot_wal_status{slot="cdc_slot",status="lost"}')).toBe(0)
    expect(value(text, 'cdc_replication_slot_poll_ok')).toBe(1)
    fail = true
    await slots.poll()
    text = await registry.metrics()
    expect(value(text, 'cdc_replication_slot_poll_ok')).toBe(0)
    // The last reading stays.
    expect(value(text, 'cdc_replication_slot_active{slot="cdc_slot"}')).toBe(1)
    slots.stop()
  })
})

describe('produce and replay-dlq metrics', () => {
  it('export the live counts', async () => {
    const registry = newRegistry('produce')
    const observe = produceMetrics(registry, {
      acknowledged: () => ({ users: 5, orders: 2 }),
      generated: () => 9,
      failed: () => 0,
      resentPartitions: () => 1,
      renewals: () => 0,
    })
    observe(0.05)
    const text = await registry.metrics()
    expect(value(text, 'cdc_produce_events_total{topic="users",outcome="acknowledged"}')).toBe(5)
    expect(value(text, 'cdc_produce_generated_total')).toBe(9)
    expect(value(text, 'cdc_produce_resent_partitions_total')).toBe(1)
    expect(value(text, 'cdc_produce_send_seconds_count')).toBe(1)
    const replay = newRegistry('replay-dlq')
    replayMetrics(replay, () => ({ 'users.dlq': { read: 3, matched: 2, replayed: 2, invalid: 1 } }))
    expect(value(await replay.metrics(), 'cdc_replay_records_total{topic="users.dlq",outcome="invalid"}')).toBe(1)
  })
})

describe('the metrics endpoint', () => {
  it('serves /metrics, /healthz and /readyz on an ephemeral port, and registers itself for Prometheus', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cdc-targets-'))
    let readiness: Readiness = { ready: false, reason: 'joining consumer group g' }
    const registry = newRegistry('consume')
    const server = await startMetricsServer({
      command: 'consume',
      host: '127.0.0.1',
      port: 0,
      registry,
      readiness: () => readiness,
      targetsDir: dir,
    })
    try {
      expect(server.port).toBeGreaterThan(0)
      const metrics = await fetch(`${server.url}/metrics`)
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      expect(await metrics.text()).toMatch(/^cdc_info\{program="consume"\} 1$/m)
      const health = await fetch(`${server.url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toMatchObject({ status: 'ok' })
      let ready = await fetch(`${server.url}/readyz`)
      expect(ready.status).toBe(503)
      expect(await ready.json()).toEqual({ status: 'not ready', reason: 'joining consumer group g' })
      readiness = { ready: true, detail: { partitions: 3 } }
      ready = await fetch(`${server.url}/readyz`)
      expect(ready.status).toBe(200)
      expect(await ready.json()).toEqual({ status: 'ready', partitions: 3 })
      expect((await fetch(`${server.url}/nothing`)).status).toBe(404)
      expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405)
      // The local stack's file-based discovery: one file, written whole, removed on close.
      expect(readdirSync(dir)).toEqual([`consume-${process.pid}.json`])
      expect(JSON.parse(readFileSync(server.targetFile!, 'utf8'))).toEqual([
        { targets: [`127.0.0.1:${server.port}`], labels: { command: 'consume' } },
      ])
    } finally {
      await server.close()
    }
    expect(existsSync(path.join(dir, `consume-${process.pid}.json`))).toBe(false)
  })

  it('writes no discovery file when the stack has no targets folder', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'cdc-targets-')), 'missing')
    const server = await startMetricsServer({
      command: 'produce',
      host: '127.0.0.1',
      port: 0,
      registry: newRegistry('produce'),
      readiness: () => ({ ready: true }),
      targetsDir: dir,
    })
    expect(server.targetFile).toBeUndefined()
    expect(existsSync(dir)).toBe(false)
    await server.close()
  })

  it('refuses a port in use with one CONFIG_ERROR naming --metrics-port (exit 2)', async () => {
    const blocker = createServer()
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r))
    const port = (blocker.address() as { port: number }).port
    try {
      const err = await startMetricsServer({
        command: 'consume',
        host: '127.0.0.1',
        port,
        registry: newRegistry('consume'),
        readiness: () => ({ ready: true }),
        targetsDir: null,
      }).catch((e: unknown) => e)
      expect(isPipelineError(err, 'CONFIG_ERROR')).toBe(true)
      expect((err as Error).message).toMatch(new RegExp(`^--metrics-port ${port} is in use on 127\\.0\\.0\\.1`))
    } finally {
      blocker.close()
    }
  })

  it('refuses a --metrics-host that is not an address of this machine with one CONFIG_ERROR', async () => {
    const err = await startMetricsServer({
      command: 'consume',
      host: '203.0.113.7',
      port: 0,
      registry: newRegistry('consume'),
      readiness: () => ({ ready: true }),
      targetsDir: null,
    }).catch((e: unknown) => e)
    expect(isPipelineError(err, 'CONFIG_ERROR')).toBe(true)
    expect((err as Error).message).toMatch(/^--metrics-host 203\.0\.113\.7 is not an address of this machine/)
  })

  it('is off with --metrics-port 0; readiness goes starting -> set -> stopped', async () => {
    expect(await startCommandMetrics({ command: 'consume', host: '127.0.0.1', port: 0, log })).toBeUndefined()
    const m = (await startCommandMetrics({
      command: 'consume',
      host: '127.0.0.1',
      port: 0,
      ephemeral: true,
      log,
      targetsDir: null,
    }))!
    const ready = async () => (await fetch(`${m.server.url}/readyz`)).status
    expect(await ready()).toBe(503)
    m.setReadiness(() => ({ ready: true }))
    expect(await ready()).toBe(200)
    let closedHook = false
    m.onClose(() => void (closedHook = true))
    await m.close()
    expect(closedHook).toBe(true)
    await expect(fetch(`${m.server.url}/readyz`)).rejects.toThrow()
  })
})

describe('the progress line of consume and replicate', () => {
  it('shows processed, rate, lag, DLQ and p95 from the engine counts, redrawn in place, ended by a newline', async () => {
    const stats = newStats()
    expect(progressLine(stats, 0, undefined)).toBe('  processed 0  0 events/s  lag -  DLQ 0  p95 -')
    tally(stats, 'users', 'processed', 1500)
    tally(stats, 'users', 'deadLettered', 2)
    for (const ms of [10, 20, 30, 400]) stats.latencyMs.add(ms)
    expect(progressLine(stats, 1499.6, 12n)).toBe('  processed 1500  1500 events/s  lag 12  DLQ 2  p95 400 ms')
    const written: string[] = []
    let asked = 0
    const p = startProgress({
      stats: () => stats,
      lag: async () => (asked++, 7n),
      write: (t) => void written.push(t),
      intervalMs: 20,
    })
    await new Promise((r) => setTimeout(r, 110))
    p.stop()
    expect(asked).toBeGreaterThan(0)
    expect(written.length).toBeGreaterThan(2)
    expect(written.slice(0, -1).every((t) => t.startsWith('\r  processed 1500'))).toBe(true)
    expect(written.some((t) => t.includes('lag 7'))).toBe(true)
    expect(written.at(-1)).toBe('\n')
  })
})

describe('README: Observability', () => {
  it('lists exactly the metric families the commands register', async () => {
    const registry = newRegistry('consume')
    engineMetrics(registry, { stats: () => undefined, state: () => undefined })
    lagMetrics(registry, { groupId: 'g', assignment: () => ({}), admin: () => ({}) as never }).close()
    slotMetrics(registry, { pgUrl: 'x', log, read: async () => [] }).stop()
    produceMetrics(registry, {
      acknowledged: () => ({}),
      generated: () => 0,
      failed: () => 0,
      resentPartitions: () => 0,
      renewals: () => 0,
    })
    replayMetrics(registry, () => ({}))
    const ours = registry
      .getMetricsAsArray()
      .filter((m) => m.name.startsWith('cdc_'))
      .map((m) => {
        const { name, type, labelNames } = m as unknown as { name: string; type: string; labelNames: string[] }
        return [name, type, labelNames.join(', ')]
      })
      .sort()
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const start = readme.indexOf('## Observability')
    expect(start).toBeGreaterThan(0)
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1))
    const listed = [...section.matchAll(/^\| `(cdc_[a-z_]+)` \| ([a-z]+) \| ([a-z, ]*?) ?\|/gm)]
      .map((m) => [m[1], m[2], m[3]])
      .sort()
    expect(listed).toEqual(ours)
  })
})

// Issue 14: the commands' Prometheus metrics and health endpoints on the real stack. produce, consume and replicate
// run as child processes with metrics ports of their own (ephemeral, never the defaults: other tests run beside this
// one); each /metrics is scraped during the run and after it. consume's counts equal its final summary and what the
// test produced, bad records included; its lag reaches 0 on every partition; the latency histograms have counts;
// /readyz is 503 before the group joined, 200 while partitions are assigned, 503 once the stop began.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import type { RunSummary } from '../internal/pipeline/index.js'
import { CDC_TOPICS, replicateArgs } from './cdc-helpers.js'
import { freePort, kafka, repoDir, sleep, testAdmin } from './helpers.js'
import {
  consumeSummary,
  expectExit,
  parseJsonSummary,
  pipelineTest,
  startCommand,
  waitFor,
  type RunningCommand,
} from './pipeline-helpers.js'

/** One scrape: series (name{labels}) -> value. */
type Scrape = Map<string, number>

async function scrape(port: number): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  expect(res.status).toBe(200)
  const out: Scrape = new Map()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

/** The series of `name` whose labels include `match`, as [labels, value]. */
function series(s: Scrape, name: string, match: Record<string, string> = {}): [Record<string, string>, number][] {
  const out: [Record<string, string>, number][] = []
  for (const [key, v] of s) {
    const m = /^([a-z_:]+)(?:\{(.*)\})?$/.exec(key)
    if (m?.[1] !== name) continue
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]))
    if (Object.entries(match).every(([k, x]) => labels[k] === x)) out.push([labels, v])
  }
  return out
}
const one = (s: Scrape, name: string, match: Record<string, string> = {}): number | undefined =>
  series(s, name, match)[0]?.[1]

/** /readyz's status (0: nothing answers). */
async function readyz(port: number): Promise<{ status: number; body: { status?: string; reason?: string } }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`)
    return { status: res.status, body: (await res.json()) as { status?: string; reason?: string } }
  } catch {
    return { status: 0, body: {} }
  }
}

/** Polls /readyz from the command's start until it answers; returns that first answer. */
async function firstReadyz(cmd: RunningCommand, port: number): Promise<{ status: number; reason?: string }> {
  return waitFor(
    'the metrics endpoint to answer',
    async () => {
      const r = await readyz(port)
      if (r.status === 0) {
        // An error line (not an info record that happens to say "error") means the command failed to start.
        if (
          cmd
            .stderr()
            .split('\n')
            .some((l) => l.includes('error') && !l.includes('"level":30'))
        ) {
          throw new Error(cmd.stderr())
        }
        return undefined
      }
      return { status: r.status, reason: r.body.reason }
    },
    30_000,
    20,
  )
}

/** The metric names of one scrape (a histogram's _bucket, _sum and _count as they appear). */
const namesOf = (s: Scrape): string[] => [...s.keys()].map((k) => k.split('{')[0]!)

/** Metric names in PromQL: identifiers with one of the exporters' prefixes (no label names, no functions). */
const metricNames = (promql: string): string[] => [
  ...new Set(promql.match(/\b(?:cdc|process|nodejs|kafka|debezium|cassandra|jvm)_[a-z0-9_]+/g) ?? []),
]

const OUTCOMES = { received: 'received', applied: 'applied', stale: 'stale', deadLettered: 'dead_lettered' } as const

describe('metrics and health endpoints of the commands', () => {
  it('produce, consume and replicate: counts equal the summaries and the input, lag reaches 0, readiness follows the group', async () => {
    const ctx = pipelineTest('observability')
    await ctx.createTopics()
    const [producePort, consumePort, replicatePort] = [await freePort(), await freePort(), await freePort()]
    const group = ctx.group('consume')

    // replicate from the change topics' current end: it sees this run's changes (and whatever else the stack does).
    const replicateGroup = ctx.group('replicate')
    const admin = await testAdmin()
    for (const topic of CDC_TOPICS) {
      const ends = await admin.fetchTopicOffsets(topic)
      await admin.setOffsets({
        groupId: replicateGroup,
        topic,
        partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })),
      })
    }
    const replicate = startCommand('replicate', [
      ...replicateArgs(replicateGroup),
      '--metrics-port',
      String(replicatePort),
    ])

    // consume first, on the empty topics: /readyz says not ready until the group has assigned its partitions.
    const consume = startCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      group,
      '--summary-json',
      // Info: the SIGTERM handler's line is the test's sign that the stop began.
      '--log-level',
      'info',
      '--metrics-port',
      String(consumePort),
    ])
    const first = await firstReadyz(consume, consumePort)
    expect(first.status, JSON.stringify(first)).toBe(503)
    expect(first.reason).toMatch(/^(starting|joining consumer group)/)
    await waitFor('consume ready', async () => (await readyz(consumePort)).status === 200, 60_000, 100)
    const assigned = await scrape(consumePort)
    expect(one(assigned, 'cdc_partitions_assigned')).toBe(3 + 5 + 3)
    expect((await fetch(`http://127.0.0.1:${consumePort}/healthz`)).status).toBe(200)

    // produce, paced so that it is scraped while it runs.
    const produce = startCommand('produce', [
      ...ctx.topicArgs,
      '--count',
      '3000',
      '--rate',
      '1500',
      '--seed',
      String(ctx.seed),
      '--metrics-port',
      String(producePort),
    ])
    // Every metric name the scrapes of our commands showed (for the compose dashboard's check at the end).
    const scraped = new Set<string>()
    const during = await waitFor(
      'produce to have acknowledged events',
      async () => {
        const s = await scrape(producePort).catch(() => undefined)
        if (s === undefined) return undefined
        const acked = series(s, 'cdc_produce_events_total', { outcome: 'acknowledged' }).reduce((n, [, v]) => n + v, 0)
        return acked > 0 ? { s, acked } : undefined
      },
      60_000,
      100,
    )
    expect(during.acked).toBeLessThanOrEqual(3000)
    for (const n of namesOf(during.s)) scraped.add(n)
    expect((await readyz(producePort)).status).toBe(200)
    const produced = await produce.exited
    expectExit(produced)
    expect(produced.stdout).toMatch(/produced\s+3000/)
    expect(one(during.s, 'cdc_produce_send_seconds_count')).toBeGreaterThan(0)

    // Bad records, which the consumer dead-letters: two undecodable, one with a key that is not its user_id.
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({
      topic: ctx.users,
      acks: -1,
      messages: [
        { key: 'bad-1', value: '{"event_type":"CREATE","user_id":' },
        { key: 'bad-2', value: 'not json' },
      ],
    })
    await producer.disconnect()
    const bad = 2
    const total = 3000 + bad

    // Scraped while it consumes, then once every partition's lag is 0 and everything is processed.
    const mid = await scrape(consumePort)
    expect(series(mid, 'cdc_consumer_lag', { group })).toHaveLength(11)
    const after = await waitFor(
      'consume lag 0 on every partition, everything processed',
      async () => {
        const s = await scrape(consumePort)
        const lag = series(s, 'cdc_consumer_lag', { group })
        const processed = series(s, 'cdc_messages_total', { outcome: 'processed' }).reduce((n, [, v]) => n + v, 0)
        return lag.length === 11 && lag.every(([, v]) => v === 0) && processed === total ? s : undefined
      },
      120_000,
      500,
    )
    for (const n of namesOf(after)) scraped.add(n)
    for (const [labels] of series(after, 'cdc_consumer_lag', { group })) {
      expect(one(after, 'cdc_consumer_committed_offset', labels)).toBe(
        one(after, 'cdc_consumer_high_watermark', labels),
      )
    }
    expect(one(after, 'cdc_dead_letters_total', { topic: ctx.users, code: 'DECODE_ERROR' })).toBe(bad)
    expect(one(after, 'cdc_sink_latency_seconds_count', { topic: ctx.users })).toBeGreaterThan(0)
    expect(one(after, 'cdc_sink_latency_seconds_count', { topic: ctx.orders })).toBeGreaterThan(0)
    expect(one(after, 'cdc_batch_apply_seconds_count', { topic: ctx.orders })).toBeGreaterThan(0)
    expect(one(after, 'cdc_commit_seconds_count', { result: 'ok' })).toBeGreaterThan(0)

    // The stop: once the process has taken the SIGTERM (its 'stopping cleanly' line: the handler marks the stop in
    // the same tick), /readyz answers 503 'stopping' (or nothing, once the endpoint closed), never 200 again. Polled
    // only from that line on: a request sent right after kill() can reach the process before the signal does (seen
    // once in CI).
    consume.kill('SIGTERM')
    await waitFor(
      'consume to take the SIGTERM',
      async () => /SIGTERM: stopping cleanly/.test(consume.stderr()),
      30_000,
      5,
    )
    const answers: number[] = []
    while (consume.stdout().indexOf('"processed"') < 0) {
      const r = await readyz(consumePort)
      answers.push(r.status)
      if (r.status === 503) expect(r.body.reason).toBe('stopping')
      if (r.status === 0) break
      await sleep(10)
    }
    expect(
      answers.filter((s) => s === 200),
      `answers after SIGTERM: ${answers.join(', ')}`,
    ).toEqual([])
    const consumed = await consume.exited
    expectExit(consumed)
    const summary = consumeSummary(consumed.stdout)

    // The scrape after the run = the summary = what the test produced.
    const sum = (name: keyof typeof OUTCOMES) =>
      series(after, 'cdc_messages_total', { outcome: OUTCOMES[name] }).reduce((n, [, v]) => n + v, 0)
    for (const name of Object.keys(OUTCOMES) as (keyof typeof OUTCOMES)[]) {
      expect(sum(name), name).toBe(summary[name])
      for (const topic of [ctx.users, ctx.orders, ctx.products]) {
        expect(one(after, 'cdc_messages_total', { topic, outcome: OUTCOMES[name] }), `${topic} ${name}`).toBe(
          summary.byTopic[topic]?.[name] ?? 0,
        )
      }
    }
    expect(summary.processed).toBe(total)
    expect(summary.received).toBe(total)
    expect(summary.deadLettered).toBe(bad)
    expect(summary.applied + summary.stale).toBe(3000)
    expect(summary.byTopic[ctx.users]?.deadLettersByCode).toEqual({ DECODE_ERROR: bad })

    // replicate: this run's changes arrive; its lag reaches 0; the slot is exported; its counts are its summary's.
    const replicated = await waitFor(
      'replicate to apply changes with lag 0 on every partition',
      async () => {
        const s = await scrape(replicatePort)
        const lag = series(s, 'cdc_consumer_lag', { group: replicateGroup })
        const applied = series(s, 'cdc_messages_total', { outcome: 'applied' }).reduce((n, [, v]) => n + v, 0)
        return lag.length > 0 && lag.every(([, v]) => v === 0) && applied > 0 ? s : undefined
      },
      180_000,
      1_000,
    )
    expect((await readyz(replicatePort)).status).toBe(200)
    for (const n of namesOf(replicated)) scraped.add(n)
    expect(one(replicated, 'cdc_replication_slot_active', { slot: 'cdc_slot' })).toBe(1)
    expect(one(replicated, 'cdc_replication_slot_retained_wal_bytes', { slot: 'cdc_slot' })).toBeGreaterThanOrEqual(0)
    expect(one(replicated, 'cdc_replication_slot_wal_status', { slot: 'cdc_slot', status: 'reserved' })).toBeDefined()
    const cdcLatency = series(replicated, 'cdc_sink_latency_seconds_count').reduce((n, [, v]) => n + v, 0)
    expect(cdcLatency).toBeGreaterThan(0)
    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expectExit(done)
    const r = parseJsonSummary<RunSummary>(done.stdout)
    // The shared stack may bring more changes after the last scrape: the summary has at least what it showed.
    for (const name of Object.keys(OUTCOMES) as (keyof typeof OUTCOMES)[]) {
      const scraped = series(replicated, 'cdc_messages_total', { outcome: OUTCOMES[name] }).reduce(
        (n, [, v]) => n + v,
        0,
      )
      expect(r[name], name).toBeGreaterThanOrEqual(scraped)
      expect(
        Object.values(r.byTopic).reduce((n, c) => n + c[name], 0),
        name,
      ).toBe(r[name])
    }

    // The compose dashboard of the commands (item 4): valid JSON, every metric its queries use is in a real scrape
    // of our commands (above) or of the JMX exporters (Debezium, the brokers).
    const dashboard = JSON.parse(readFileSync(`${repoDir}deploy/grafana/dashboards/cdc-pipeline.json`, 'utf8')) as {
      uid: string
      panels: { title: string; datasource: { uid: string }; targets: { expr: string }[] }[]
    }
    expect(dashboard.uid).toBe('cdc-pipeline')
    for (const p of dashboard.panels) expect(p.datasource.uid, p.title).toBe('prometheus')
    const used = metricNames(dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n'))
    expect(used).toEqual(
      expect.arrayContaining([
        'cdc_consumer_lag',
        'cdc_dead_letters_total',
        'cdc_sink_latency_seconds_bucket',
        'cdc_replication_slot_retained_wal_bytes',
        'cdc_rebalances_total',
      ]),
    )
    const jmx = [
      Number(process.env.KAFKA_JMX_EXPORTER_PORT_BASE || 9404),
      Number(process.env.CONNECT_JMX_EXPORTER_PORT || 9407),
    ]
    for (const port of jmx) {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      for (const line of text.split('\n')) if (/^[a-z_]/.test(line)) scraped.add(line.split(/[{ ]/)[0]!)
    }
    expect(used.filter((n) => !scraped.has(n))).toEqual([])
  })
})

// The local stack's Prometheus and the servers' JMX exporters, on the real stack: every exporter target (three
// brokers, Connect, Cassandra) and Prometheus itself are `up` in /api/v1/targets, the JMX metrics the alerting rules
// and the compose dashboard use return series, and the alerting rules are loaded and quiet on the healthy stack.
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { homedir } from 'node:os'
import path from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { loadDotEnv } from '../internal/config/index.js'
import { repoDir, sleep } from './helpers.js'
import { expectExit, pipelineTest, startCommand, waitFor } from './pipeline-helpers.js'

interface Target {
  labels: Record<string, string>
  scrapeUrl: string
  health: 'up' | 'down' | 'unknown'
  lastError: string
}
interface Series {
  metric: Record<string, string>
  value: [number, string]
}

let prometheusUrl: string
let stackHome: string

async function api<T>(pathAndQuery: string): Promise<T> {
  const res = await fetch(`${prometheusUrl}${pathAndQuery}`)
  const body = (await res.json()) as { status: string; data: T; error?: string }
  if (!res.ok || body.status !== 'success') throw new Error(`${pathAndQuery}: ${res.status} ${body.error ?? ''}`)
  return body.data
}
const query = async (promql: string): Promise<Series[]> =>
  (await api<{ result: Series[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`)).result

const SERVER_JOBS = { prometheus: 1, kafka: 3, connect: 1, cassandra: 1 } as const

/** The active targets of the servers' jobs, once each has been scraped at least once (every 15 s). */
async function serverTargets(timeoutMs = 90_000): Promise<Target[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { activeTargets } = await api<{ activeTargets: Target[] }>('/api/v1/targets?state=active')
    const mine = activeTargets.filter((t) => t.labels.job in SERVER_JOBS)
    const allUp = mine.length === 6 && mine.every((t) => t.health === 'up')
    if (allUp || Date.now() > deadline) return mine
    await sleep(2_000)
  }
}

/** Metric names in PromQL: identifiers that start with a server's prefix (no label names, no functions). */
const metricNames = (promql: string): string[] => [
  ...new Set(promql.match(/\b(?:kafka|debezium|cassandra|jvm)_[a-z0-9_]+/g) ?? []),
]

beforeAll(() => {
  // PROMETHEUS_PORT as stack/stack.sh reads it: the environment, else the .env file ($CDC_ENV_FILE or the repository's).
  const env: Record<string, string | undefined> = { ...process.env }
  loadDotEnv({ env, path: process.env.CDC_ENV_FILE || path.join(repoDir, '.env') })
  prometheusUrl = `http://127.0.0.1:${env.PROMETHEUS_PORT || '9090'}`
  stackHome = env.CDC_STACK_HOME || path.join(homedir(), '.cache', 'cdc-pipeline')
})

describe('Prometheus in the local stack', () => {
  it('has every JMX exporter target and itself up: three brokers, Connect, Cassandra', async () => {
    const targets = await serverTargets()
    const byJob = (job: string): Target[] => targets.filter((t) => t.labels.job === job)
    for (const [job, count] of Object.entries(SERVER_JOBS)) expect(byJob(job), job).toHaveLength(count)
    for (const t of targets) expect(t.health, `${t.labels.job} ${t.scrapeUrl}: ${t.lastError}`).toBe('up')
    // Every exporter binds loopback only, on its own port.
    for (const t of targets) expect(new URL(t.scrapeUrl).hostname, t.scrapeUrl).toBe('127.0.0.1')
    expect(new Set(targets.map((t) => t.scrapeUrl)).size).toBe(6)
    // And scrapes the pipeline's commands from targets/pipeline/ (file-based discovery; no command runs here).
    const { yaml } = await api<{ yaml: string }>('/api/v1/status/config')
    const jobs = (parse(yaml) as { scrape_configs: { job_name: string }[] }).scrape_configs.map((j) => j.job_name)
    expect(jobs.sort()).toEqual(['cassandra', 'cdc-pipeline', 'connect', 'kafka', 'prometheus'])
  })

  it('returns series for the brokers, Debezium and Cassandra JMX metrics', async () => {
    await serverTargets()
    const urp = await query('kafka_server_replicamanager_underreplicatedpartitions')
    expect(urp.map((s) => s.metric.instance).sort()).toHaveLength(3)
    for (const s of urp) expect(Number(s.value[1]), s.metric.instance).toBe(0)
    expect(await query('sum(kafka_controller_kafkacontroller_activecontrollercount)')).toMatchObject([
      { value: [expect.any(Number), '1'] },
    ])
    const behind = await query('debezium_postgres_streaming_millisecondsbehindsource')
    expect(behind.length).toBeGreaterThan(0)
    expect(await query('debezium_postgres_streaming_connected')).toMatchObject([{ value: [expect.any(Number), '1'] }])
    expect(await query('kafka_connect_connector_status{connector="cdc-postgres", status="running"}')).toMatchObject([
      { value: [expect.any(Number), '1'] },
    ])
    expect((await query('cassandra_clientrequest_requests_total')).length).toBeGreaterThan(0)
  })

  it('returns series for every JMX metric the alerting rules use', async () => {
    await serverTargets()
    const rules = parse(readFileSync(path.join(repoDir, 'stack/conf/prometheus-alerts.yml'), 'utf8')) as {
      groups: { rules: { expr: string }[] }[]
    }
    const names = metricNames(rules.groups.flatMap((g) => g.rules.map((r) => r.expr)).join('\n'))
    expect(names.length).toBeGreaterThanOrEqual(3)
    for (const name of names) expect((await query(name)).length, `${name} has no series`).toBeGreaterThan(0)
  })

  it('has loaded the alerting rules, and the servers alerts are quiet on the healthy stack', async () => {
    await serverTargets()
    const { groups } = await api<{
      groups: { name: string; rules: { name: string; health: string; state: string; lastError?: string }[] }[]
    }>('/api/v1/rules?type=alert')
    expect(groups.map((g) => g.name).sort()).toEqual(['cdc-pipeline', 'cdc-servers'])
    // Evaluated every 15 s: wait for one evaluation after the targets are up.
    await sleep(16_000)
    const again = await api<{ groups: { name: string; rules: { name: string; health: string; state: string }[] }[] }>(
      '/api/v1/rules?type=alert',
    )
    for (const g of again.groups) for (const r of g.rules) expect(r.health, `${r.name}`).toBe('ok')
    const servers = again.groups.find((g) => g.name === 'cdc-servers')!
    // Not firing (an earlier test that restarts a broker may leave one pending for a moment; firing takes minutes).
    for (const r of servers.rules) expect(r.state, r.name).not.toBe('firing')
    // The connector is registered and running: its alert is not even pending.
    expect(servers.rules.find((r) => r.name === 'CdcConnectorNotRunning')?.state).toBe('inactive')
  })
})

describe('a pipeline command registered in targets/pipeline/', () => {
  it('is a real consume run: scraped as job cdc-pipeline with its command label, cdc_consumer_lag has its group', async () => {
    const ctx = pipelineTest('stack-prometheus')
    await ctx.createTopics()
    const group = ctx.group('consume')
    // An ephemeral port (not the default: other tests may run a consume beside this one).
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    const address = `127.0.0.1:${port}`
    const consume = startCommand(
      'consume',
      [...ctx.topicArgs, '--group', group, '--summary-json', '--metrics-port', String(port)],
      { CDC_STACK_HOME: stackHome },
    )
    const file = path.join(stackHome, 'conf', 'prometheus', 'targets', 'pipeline', `consume-${consume.pid}.json`)
    await waitFor('consume to register its target', () => existsSync(file), 60_000, 100)
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([{ targets: [address], labels: { command: 'consume' } }])
    // Prometheus reads the folder every 30 s and scrapes every 15 s.
    const deadline = Date.now() + 120_000
    let series: Series[] = []
    while (Date.now() < deadline) {
      series = await query(`cdc_consumer_lag{group="${group}"}`)
      if (series.length === 3 + 5 + 3) break
      await sleep(2_000)
    }
    expect(series.map((x) => x.metric.topic).sort()).toEqual(
      [...Array(3).fill(ctx.products), ...Array(5).fill(ctx.orders), ...Array(3).fill(ctx.users)].sort(),
    )
    for (const x of series) {
      expect(x.metric).toMatchObject({ job: 'cdc-pipeline', command: 'consume', instance: address, group })
      expect(x.value[1]).toBe('0')
    }
    const { activeTargets } = await api<{ activeTargets: Target[] }>('/api/v1/targets?state=active')
    const mine = activeTargets.filter((t) => t.labels.instance === address)
    expect(mine.map((t) => [t.labels.job, t.health])).toEqual([['cdc-pipeline', 'up']])
    // A clean exit removes the registration.
    consume.kill('SIGTERM')
    expectExit(await consume.exited)
    expect(existsSync(file)).toBe(false)
  })
})

describe('the compose dashboard (deploy/grafana/dashboards)', () => {
  it('is valid JSON, and every metric its queries use is in a real scrape of the JMX exporters', async () => {
    const file = path.join(repoDir, 'deploy/grafana/dashboards/cdc-servers.json')
    const dashboard = JSON.parse(readFileSync(file, 'utf8')) as {
      uid: string
      panels: { title: string; datasource: { uid: string }; targets: { expr: string }[] }[]
    }
    expect(dashboard.uid).toBe('cdc-servers')
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))
    expect(exprs.length).toBeGreaterThan(0)
    // The data source the compose Grafana provisions.
    for (const p of dashboard.panels) expect(p.datasource.uid, p.title).toBe('prometheus')
    const scraped = new Set<string>()
    for (const t of await serverTargets()) {
      if (t.labels.job === 'prometheus') continue
      const text = await (await fetch(t.scrapeUrl)).text()
      for (const line of text.split('\n')) if (/^[a-z_]/.test(line)) scraped.add(line.split(/[{ ]/)[0]!)
    }
    const used = metricNames(exprs.join('\n'))
    expect(used).toEqual(
      expect.arrayContaining([
        'kafka_server_replicamanager_underreplicatedpartitions',
        'debezium_postgres_streaming_millisecondsbehindsource',
      ]),
    )
    expect(used.filter((n) => !scraped.has(n))).toEqual([])
  })
})

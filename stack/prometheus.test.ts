// The committed Prometheus files, checked by the real promtool (Debian's prometheus package: stack:up and
// stack/ensure-test-tools.sh install it): the local stack's config (stack/conf/prometheus.yml) and the compose one
// (deploy/prometheus/prometheus.yml) with `promtool check config`, the alerting rules with `promtool check rules` and
// their cases (stack/conf/prometheus-alerts.test.yml) with `promtool test rules`. No server is needed: each check runs
// on a copy of the files in a temporary folder, laid out as the stack and compose lay them out; and the layout
// stack/lib/prometheus.sh writes (target lists from the port variables, 0 = off) passes promtool as it is.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'

const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const confDir = path.join(repoDir, 'stack', 'conf')
const INSTALL_HINT =
  'Install it with `bash stack/ensure-test-tools.sh` or `npm run stack:up` (Debian: apt-get install -y ' +
  '--no-install-recommends prometheus), which provide promtool.'

/** Runs promtool; returns its output, or throws with what it said (and how to install it when missing). */
function promtool(cwd: string, ...args: string[]): string {
  try {
    return execFileSync('promtool', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 8_000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string; status?: number | null }
    if (e.code === 'ENOENT') throw new Error(`promtool is not installed. ${INSTALL_HINT}`)
    throw new Error(
      `promtool ${args.join(' ')} failed (exit ${e.status ?? e.code}):\n${e.stdout ?? ''}${e.stderr ?? ''}`,
    )
  }
}

let dir: string
const copy = (from: string, name = path.basename(from)): string => {
  copyFileSync(from, path.join(dir, name))
  return name
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'prometheus-test-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

type Rule = { alert?: string; expr: string }
const alertRules = (): Rule[] =>
  (
    parse(readFileSync(path.join(confDir, 'prometheus-alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }
  ).groups.flatMap((g) => g.rules)

describe('Prometheus config and alerting rules (promtool)', () => {
  it('the local stack config passes promtool check config, rule file included', () => {
    copy(path.join(confDir, 'prometheus.yml'))
    copy(path.join(confDir, 'prometheus-alerts.yml'))
    const out = promtool(dir, 'check', 'config', 'prometheus.yml')
    expect(out).toMatch(/SUCCESS: 1 rule files found/)
    expect(out).toMatch(/SUCCESS: prometheus\.yml is valid prometheus config file syntax/)
  })

  it('the compose config passes promtool check config, with the same rule file', () => {
    copy(path.join(repoDir, 'deploy', 'prometheus', 'prometheus.yml'), 'compose-prometheus.yml')
    copy(path.join(confDir, 'prometheus-alerts.yml'))
    const out = promtool(dir, 'check', 'config', 'compose-prometheus.yml')
    expect(out).toMatch(/SUCCESS: 1 rule files found/)
    expect(out).toMatch(/is valid prometheus config file syntax/)
  })

  it('the alerting rules pass promtool check rules', () => {
    copy(path.join(confDir, 'prometheus-alerts.yml'))
    expect(promtool(dir, 'check', 'rules', 'prometheus-alerts.yml')).toMatch(/SUCCESS: \d+ rules found/)
  })

  it('each alert fires on its case and stays quiet on a healthy series (promtool test rules)', () => {
    copy(path.join(confDir, 'prometheus-alerts.yml'))
    copy(path.join(confDir, 'prometheus-alerts.test.yml'))
    expect(promtool(dir, 'test', 'rules', 'prometheus-alerts.test.yml')).toMatch(/SUCCESS/)
    // Every alert has at least one case that expects it to fire.
    const cases = parse(readFileSync(path.join(confDir, 'prometheus-alerts.test.yml'), 'utf8')) as {
      tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[]
    }
    const fired = new Set(
      cases.tests.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname)),
    )
    expect(
      alertRules()
        .map((r) => r.alert)
        .filter((a) => a !== undefined && !fired.has(a)),
    ).toEqual([])
  })

  it('the alerts use the pipeline metric names the commands export (issue 14)', () => {
    const exprs = alertRules()
      .map((r) => r.expr)
      .join('\n')
    for (const name of [
      'cdc_consumer_lag',
      'cdc_dead_letters_total',
      'cdc_replication_slot_retained_wal_bytes',
      'cdc_replication_slot_active',
      'up{job="cdc-pipeline"}',
      'kafka_connect_connector_status',
    ])
      expect(exprs).toContain(name)
  })

  it('scrapes every 15 s and finds the pipeline commands in targets/pipeline/ (file-based discovery)', () => {
    const config = parse(readFileSync(path.join(confDir, 'prometheus.yml'), 'utf8')) as {
      global: { scrape_interval: string }
      scrape_configs: { job_name: string; file_sd_configs?: { files: string[] }[] }[]
    }
    expect(config.global.scrape_interval).toBe('15s')
    const jobs = Object.fromEntries(config.scrape_configs.map((j) => [j.job_name, j.file_sd_configs?.[0]?.files]))
    expect(jobs).toEqual({
      prometheus: ['targets/prometheus.json'],
      kafka: ['targets/kafka.json'],
      connect: ['targets/connect.json'],
      cassandra: ['targets/cassandra.json'],
      'cdc-pipeline': ['targets/pipeline/*.json'],
    })
  })

  describe('the layout stack/lib/prometheus.sh writes into $CDC_STACK_HOME/conf/prometheus', () => {
    /** Sources the stack's libraries with a scratch CDC_STACK_HOME and ENV, runs SCRIPT; returns the result. */
    const withLibs = (home: string, env: Record<string, string>, script: string) =>
      spawnSync(
        'bash',
        [
          '-c',
          `set -euo pipefail; STACK_DIR=${repoDir}/stack; source "$STACK_DIR/lib/common.sh"; source "$STACK_DIR/lib/prometheus.sh"; ${script}`,
        ],
        {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, CDC_STACK_HOME: home, ...env },
        },
      )

    it('has a target list per server from the port variables (0 = off), and passes promtool as laid out', () => {
      const home = path.join(dir, 'home')
      const r = withLibs(
        home,
        {
          KAFKA_JMX_EXPORTER_PORT_BASE: '19404',
          CONNECT_JMX_EXPORTER_PORT: '0',
          CASSANDRA_JMX_EXPORTER_PORT: '19408',
          PROMETHEUS_PORT: '19090',
        },
        'prometheus_write_config',
      )
      expect(r.stderr).toBe('')
      expect(r.status).toBe(0)
      const conf = path.join(home, 'conf', 'prometheus')
      const targets = (name: string): unknown => JSON.parse(readFileSync(path.join(conf, 'targets', name), 'utf8'))
      expect(targets('kafka.json')).toEqual([{ targets: ['127.0.0.1:19404', '127.0.0.1:19405', '127.0.0.1:19406'] }])
      expect(targets('connect.json')).toEqual([])
      expect(targets('cassandra.json')).toEqual([{ targets: ['127.0.0.1:19408'] }])
      expect(targets('prometheus.json')).toEqual([{ targets: ['127.0.0.1:19090'] }])
      // The committed files, unchanged, and the folder the pipeline's commands register in.
      expect(readFileSync(path.join(conf, 'prometheus.yml'), 'utf8')).toBe(
        readFileSync(path.join(confDir, 'prometheus.yml'), 'utf8'),
      )
      expect(readdirSync(path.join(conf, 'targets', 'pipeline'))).toEqual([])
      const out = promtool(conf, 'check', 'config', 'prometheus.yml')
      expect(out).toMatch(/is valid prometheus config file syntax/)
      // Every file the config names exists now, except the pipeline's (none registered).
      expect(out.match(/WARNING.*/g) ?? []).toEqual([
        expect.stringContaining('"targets/pipeline/*.json" for file_sd in scrape job "cdc-pipeline" does not exist'),
      ])
    })

    it('refuses a port variable that is not a port, in one line, before anything starts', () => {
      const r = withLibs(path.join(dir, 'home2'), { KAFKA_JMX_EXPORTER_PORT_BASE: '65535' }, 'echo started')
      expect(r.status).toBe(1)
      expect(r.stdout).toBe('')
      expect(r.stderr.trim().split('\n')).toHaveLength(1)
      expect(r.stderr).toMatch(/^\[stack\] error: KAFKA_JMX_EXPORTER_PORT_BASE must be a port/)
    })
  })
})

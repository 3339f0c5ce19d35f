// Issue 16, point 3: the shared Redis stopped for 20 s mid-run (bash stack/stack.sh stop-component redis). Readers
// keep reading 50 users through node cmd/api while a writer renames them with plain UPDATEs: every read is answered
// (from PostgreSQL while Redis is away, x-cache: miss), /healthz says degraded and cdc_api_redis_up is 0; Redis back,
// the API uses it again, cache-sync resumes from its backoff, and after the writes stop every key read through the
// API equals PostgreSQL (the final check of point 2). Rows changed while Redis was away are served from what Redis
// held until cache-sync has caught up (README: The cache), so the staleness is bounded by the outage plus how soon
// cache-sync resumes: its retries are at most 1 s apart (a 10 s backoff cap left a p99 of 28 s after a 20 s outage).
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { TOPICS } from './cache-helpers.js'
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest'
import { deletePgRows, summaryOf } from './cdc-helpers.js'
import { groupAtEnd, pgOwnerUrl, psql, sleep, stack } from './helpers.js'
import { startCommand, waitFor, type RunningCommand } from './pipeline-helpers.js'

const KEYS = 50
const DOWN_MS = 20_000

let pool: pg.Pool
beforeAll(async () => {
  await stack('start-component', 'redis')
  pool = new pg.Pool({ connectionString: pgOwnerUrl, max: 2 })
  pool.on('error', () => undefined)
}, 120_000)
afterAll(async () => {
  // Whatever happened, the shared Redis is left running.
  await stack('start-component', 'redis').catch(() => undefined)
  await pool?.end()
}, 120_000)

async function startApiProcess(): Promise<{ url: string; cmd: RunningCommand }> {
  const cmd = startCommand('api', ['--port', '0', '--log-format', 'json', '--redis-timeout', '500ms'], {
    LOG_LEVEL: 'info',
    CDC_STACK_HOME: '/nonexistent/cdc-test',
  })
  onTestFailed(() => console.log(`api stderr:\n${cmd.stderr().slice(-3000)}`))
  const url = await waitFor('node cmd/api listening', () => /listening on (http:\/\/\S+)/.exec(cmd.stdout())?.[1])
  return { url, cmd }
}

describe('Redis stopped for 20 s mid-run (issue 16, point 3)', () => {
  it('the API answers from PostgreSQL and says degraded; cache-sync resumes; every key converges', async () => {
    const group = await groupAtEnd('cache-down', TOPICS)
    const sync = startCommand(
      'cache-sync',
      ['--group', group, '--session-timeout', '10', '--summary-json', '--retry-max-time', '300'],
      { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
    )
    onTestFailed(() => console.log(`cache-sync stderr:\n${sync.stderr().slice(-3000)}`))
    const { url, cmd: api } = await startApiProcess()
    const ids = Array.from({ length: KEYS }, () => randomUUID())
    onTestFinished(() => deletePgRows(ids))
    await psql(
      `INSERT INTO users (id, name, dob) VALUES ${ids.map((id) => `('${id}', 'down 0', '1990-01-01')`).join(', ')}`,
      pgOwnerUrl,
    )

    const commits: number[][] = ids.map(() => [0])
    const answers = { total: 0, failed: 0, duringOutage: { total: 0, miss: 0 } }
    const staleness: number[] = []
    let outage = false
    let writing = true
    const writer = (async () => {
      while (writing) {
        const key = Math.floor(Math.random() * KEYS)
        const seq = commits[key]!.length
        const r = await pool.query<{ at: number }>(
          `UPDATE users SET name = $2 WHERE id = $1 RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS at`,
          [ids[key], `down ${seq}`],
        )
        commits[key]!.push(Number(r.rows[0]!.at))
        await sleep(100)
      }
    })()
    const reader = async () => {
      while (writing) {
        const key = Math.floor(Math.random() * KEYS)
        const start = Date.now()
        const res = await fetch(`${url}/users/${ids[key]}`).catch(() => undefined)
        answers.total++
        if (res?.status !== 200) {
          answers.failed++
          continue
        }
        const seq = Number(((await res.json()) as { name: string }).name.split(' ')[1])
        const next = commits[key]![seq + 1]
        staleness.push(next !== undefined && next < start ? start - next : 0)
        if (outage) {
          answers.duringOutage.total++
          if (res.headers.get('x-cache') === 'miss') answers.duringOutage.miss++
        }
      }
    }
    const readers = Array.from({ length: 4 }, reader)

    await sleep(10_000)
    await stack('stop-component', 'redis')
    const stoppedAt = Date.now()
    outage = true
    await sleep(2_000)
    const health = (await (await fetch(`${url}/healthz`)).json()) as { status: string; redis: string }
    const metricsDown = await (await fetch(`${url}/metrics`)).text()
    await sleep(Math.max(0, DOWN_MS - (Date.now() - stoppedAt)))
    outage = false
    await stack('start-component', 'redis')
    const downForMs = Date.now() - stoppedAt
    await waitFor(
      'the API sees Redis again',
      async () => {
        const h = (await (await fetch(`${url}/healthz`)).json()) as { status: string }
        return h.status === 'ok'
      },
      60_000,
    )
    await sleep(10_000)
    writing = false
    await Promise.all([writer, ...readers])
    const lastWriteMs = Math.max(...commits.map((c) => c.at(-1)!))

    // The final check: every key through the API equals PostgreSQL once cache-sync has caught up.
    const settledAt = await waitFor(
      'every key equal to PostgreSQL',
      async () => {
        const want = new Map(
          (
            await pool.query<{ id: string; name: string }>('SELECT id, name FROM users WHERE id = ANY($1)', [ids])
          ).rows.map((r) => [r.id, r.name]),
        )
        for (const id of ids) {
          const body = (await (await fetch(`${url}/users/${id}`)).json()) as { name?: string }
          if (body.name !== want.get(id)) return undefined
        }
        return Date.now()
      },
      120_000,
      250,
    )
    const sorted = [...staleness].sort((a, b) => a - b)
    const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0
    console.log(
      `point 3 Redis down ${downForMs} ms: ${JSON.stringify({
        ...answers,
        healthDuringOutage: health,
        stalenessMs: { p50: p(0.5), p99: p(0.99), max: sorted.at(-1) },
        settledAfterLastWriteMs: settledAt - lastWriteMs,
      })}`,
    )
    expect(answers.failed).toBe(0)
    // cache-sync resumed within seconds of Redis returning: nothing was served stale much longer than the outage.
    expect(sorted.at(-1) ?? 0, 'the longest a superseded name was served').toBeLessThanOrEqual(downForMs + 5_000)
    expect(answers.duringOutage.total).toBeGreaterThan(50)
    expect(answers.duringOutage.miss).toBe(answers.duringOutage.total)
    expect(health).toMatchObject({ status: 'degraded', redis: 'down' })
    expect(metricsDown).toMatch(/^cdc_api_redis_up 0$/m)
    expect(Number(/^cdc_api_redis_errors_total (\d+)$/m.exec(metricsDown)?.[1])).toBeGreaterThan(0)
    const metricsUp = await (await fetch(`${url}/metrics`)).text()
    expect(metricsUp).toMatch(/^cdc_api_redis_up 1$/m)

    api.kill('SIGTERM')
    expect((await api.exited).code).toBe(0)
    sync.kill('SIGTERM')
    const res = await sync.exited
    expect(res.code, res.stderr.slice(-2000)).toBe(0)
    expect(summaryOf(res)).toMatchObject({ deadLettered: 0 })
  })
})

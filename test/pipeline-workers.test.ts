// Issue 13: what docs/design.md promises of the worker threads, on real threads (the compiled engine in dist/):
// a worker that crashes fails only its own task (WORKER_CRASH) and is replaced; a batch past its task timeout fails
// as SINK_TIMEOUT, the worker is replaced and the batch, tried again, is applied; a sink in a worker thread gets its
// logger as it does inline, so its warnings reach the command's log (the PostgreSQL sink's were lost before).
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { describe, expect, it, onTestFinished } from 'vitest'
import type { PoolExecutor as PoolExecutorClass } from '../internal/pipeline/executor.js'
import type { BatchResult, SinkSpec, SourceMessage } from '../internal/pipeline/index.js'
import { entityIdOf, specOfEvent } from '../internal/model/index.js'
import { pgSuperUrl, repoDir, sleep } from './helpers.js'
import {
  countRows,
  expectExit,
  pipelineTest,
  readEvents,
  runCommand,
  startCommand,
  waitFor,
  postgresPortsOf,
} from './pipeline-helpers.js'

const executorUrl = new URL('../dist/internal/pipeline/executor.js', import.meta.url).href
const { PoolExecutor } = (await import(executorUrl)) as { PoolExecutor: typeof PoolExecutorClass }

// A sink module as a data: URL (a worker thread imports it like any other): the first message's value says what
// the batch does. 'crash' ends its worker thread, 'hang-once' hangs the first time (a marker file says it did),
// 'warn' logs a warning through the logger the sink was given. Its result names the thread that applied it.
const TEST_SINK =
  'data:text/javascript,' +
  encodeURIComponent(`
import { existsSync, writeFileSync } from 'node:fs'
import { threadId } from 'node:worker_threads'
export const name = 'test'
export const optionsSchema = {}
export async function preflight() {}
export async function createBatchSink(options, log) {
  return {
    async apply(messages) {
      const what = messages.length > 0 ? Buffer.from(messages[0].value).toString() : ''
      if (what === 'crash') process.exit(7)
      if (what === 'hang-once' && !existsSync(options.marker)) {
        writeFileSync(options.marker, '')
        return new Promise(() => {})
      }
      if (what === 'warn') log.warn({ marker: options.marker }, 'warning from a worker sink')
      return { outcomes: messages.map(() => ({ status: 'ok' })), applied: messages.length, stale: 0, latenciesMs: [], provides: ['thread/' + threadId] }
    },
    async close() {},
  }
}`)

const message = (value: string, offset = 0): SourceMessage => ({
  topic: 't',
  partition: 0,
  offset: String(offset),
  key: null,
  value: Buffer.from(value),
  headers: {},
  timestamp: '0',
})

function markerFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-workers-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'hung')
}

const threadOf = (r: BatchResult) => r.provides?.[0]

describe('worker threads (PoolExecutor)', () => {
  it('a worker that crashes fails only its own task, as WORKER_CRASH, and is replaced', async () => {
    const pool = new PoolExecutor({ module: TEST_SINK, options: { marker: markerFile() } }, 2)
    onTestFinished(() => pool.close())
    const [crashed, applied] = await Promise.allSettled([
      pool.run([message('crash')], 30_000),
      pool.run([message('ok')], 30_000),
    ])
    expect(crashed.status).toBe('rejected')
    expect((crashed as PromiseRejectedResult).reason).toMatchObject({ code: 'WORKER_CRASH', retriable: true })
    expect(applied).toMatchObject({ status: 'fulfilled', value: { applied: 1 } })
    // Both threads work again: the pool started a new worker for the one that died.
    const after = await Promise.all([pool.run([message('ok')], 30_000), pool.run([message('ok')], 30_000)])
    expect(after.map((r) => r.applied)).toEqual([1, 1])
    expect(new Set(after.map(threadOf)).size).toBe(2)
  })

  it('a batch past the task timeout fails as SINK_TIMEOUT; the worker is replaced and the batch tried again applies', async () => {
    const pool = new PoolExecutor({ module: TEST_SINK, options: { marker: markerFile() } }, 1)
    onTestFinished(() => pool.close())
    const first = await pool.run([message('ok')], 30_000)
    const started = Date.now()
    await expect(pool.run([message('hang-once')], 300)).rejects.toMatchObject({ code: 'SINK_TIMEOUT', retriable: true })
    expect(Date.now() - started).toBeLessThan(10_000)
    // The one thread hung: only a replacement can take the retry (the engine's retry of the partition's batch).
    const retried = await pool.run([message('hang-once')], 30_000)
    expect(retried.applied).toBe(1)
    expect(threadOf(retried)).not.toBe(threadOf(first))
  })
})

/** Runs `code` (an ES module importing the compiled executor) in a node of its own; its stderr is the log. */
async function runScript(code: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: repoDir,
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exitCode = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code: exitCode, stderr }
}

describe('the logger of a sink', () => {
  it.each([
    ['a worker thread', 'new PoolExecutor(spec, 1)'],
    ['the main thread', 'new InlineExecutor(spec)'],
  ])('in %s is built from the spec: its warning reaches the log, at the command level', async (_, create) => {
    const marker = markerFile()
    const spec = (level: string): SinkSpec => ({
      module: TEST_SINK,
      options: { marker },
      log: { level: level as 'warn', pretty: false, name: 'consume' },
    })
    const script = (level: string) => `
      import { InlineExecutor, PoolExecutor } from ${JSON.stringify(executorUrl)}
      const spec = ${JSON.stringify(spec(level))}
      const executor = ${create}
      const result = await executor.run([{ topic: 't', partition: 0, offset: '0', key: null, value: Buffer.from('warn'), headers: {}, timestamp: '0' }], 30000)
      await executor.close()
      if (result.applied !== 1) process.exit(9)
    `
    const shown = await runScript(script('warn'))
    expect(shown.code).toBe(0)
    const lines = shown.stderr
      .split('\n')
      .filter((l) => l.includes('warning from a worker sink'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        name: 'consume',
        module: 'test-sink',
        marker,
        msg: 'warning from a worker sink',
      }),
    ])
    const quiet = await runScript(script('error'))
    expect(quiet.code).toBe(0)
    expect(quiet.stderr).not.toContain('warning from a worker sink')
  })
})

describe('node cmd/consume --workers 1', () => {
  it("logs the PostgreSQL sink's warnings from its worker thread (a pooled connection terminated)", async () => {
    const ctx = pipelineTest('worker-log')
    await ctx.createTopics()
    expectExit(await runCommand('produce', [...ctx.topicArgs, '--count', '200', '--seed', String(ctx.seed)]))
    const { events } = await readEvents(ctx)
    const users = events.filter((e) => specOfEvent(e).entity === 'user').map(entityIdOf)
    ctx.trackRows(users, [])
    const consumer = startCommand('consume', [
      ...ctx.topicArgs,
      '--topics',
      ctx.users,
      '--group',
      ctx.group(),
      '--workers',
      '1',
      '--idle-timeout',
      '4s',
      '--summary-json',
      '--log-format',
      'json',
    ])
    const distinct = new Set(users).size
    await waitFor('the users in PostgreSQL', async () => (await countRows([...new Set(users)], [])) === distinct)
    // The worker's pooled connection is idle now: end it from the server side, as a PostgreSQL restart would.
    const admin = new pg.Client({ connectionString: pgSuperUrl })
    await admin.connect()
    let terminated = 0
    try {
      const ports = await waitFor('the consumer connections', () => {
        const p = postgresPortsOf(consumer.pid)
        return p.length > 0 ? p : undefined
      })
      const { rows } = await admin.query<{ pid: number }>(
        `SELECT pg_terminate_backend(pid) AS done, pid FROM pg_stat_activity
          WHERE usename = 'cdc_app' AND client_port = ANY($1::int[])`,
        [ports],
      )
      terminated = rows.length
    } finally {
      await admin.end()
    }
    expect(terminated).toBeGreaterThan(0)
    await sleep(500)
    const result = await consumer.exited
    expectExit(result)
    const warnings = result.stderr
      .split('\n')
      .filter((l) => l.includes('idle PostgreSQL connection failed'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(warnings.length).toBeGreaterThan(0)
    expect(warnings[0]).toMatchObject({ level: 40, name: 'consume', module: 'postgres-sink' })
  })
})

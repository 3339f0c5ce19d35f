// Issue 16 (second half): node cmd/api and node cmd/purge on the real stack.
//  - point 1: a DBA's UPDATE, an order moved to another user and DELETEs in psql are visible through the API within
//    2 s of the commit, for /users/:id, /orders/:id and both users' /users/:id/orders, with cache-sync running;
//  - the lease: a fill that read PostgreSQL before a change whose invalidation landed during the fill is refused
//    (the API in-process, its fill held by the test-only beforeFill hook);
//  - point 4: node cmd/purge with 3 API instances reports 3 acknowledgements and the next reads are misses; an
//    instance that does not answer makes it exit 1.
// Every row is the test's own (random ids), removed at the end. The purge runs in a Redis database of its own
// (/5): it deletes every cdc: key of the database it is given, and db 0 is shared with the other tests.
import { randomUUID } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createClient } from 'redis'
import { READER_URL, REDIS_URL, TOPICS } from './cache-helpers.js'
import { afterAll, beforeAll, describe, expect, it, onTestFailed, onTestFinished } from 'vitest'
import { startApi } from '../internal/api/index.js'
import { createLogger } from '../internal/log/index.js'
import { APPLY_SCRIPT, INVALIDATION_CHANNEL, scriptArgs, type CachePlan } from '../internal/sinks/redis/index.js'
import { deletePgRows, summaryOf } from './cdc-helpers.js'
import { groupAtEnd, pgOwnerUrl, psql, stack } from './helpers.js'
import { runCommand, startCommand, waitFor, type RunningCommand } from './pipeline-helpers.js'

const PURGE_DB_URL = `${REDIS_URL}/5`
/** Issue 16, point 1: an edit is visible through the API within this long of its commit. */
const VISIBLE_WITHIN_MS = 2_000

type Redis = ReturnType<typeof createClient>
let redis: Redis

beforeAll(async () => {
  await stack('start-component', 'redis')
  redis = createClient({ url: REDIS_URL })
  redis.on('error', () => undefined)
  await redis.connect()
}, 120_000)

afterAll(async () => {
  await redis?.close().catch(() => undefined)
})

interface Answer {
  status: number
  cache: string | null
  body: unknown
}

async function get(base: string, path: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`)
  const text = await res.text()
  return { status: res.status, cache: res.headers.get('x-cache'), body: text === '' ? null : JSON.parse(text) }
}

/** node cmd/api as a child process on a free port; resolves with its base URL once it listens. */
async function startApiProcess(args: string[] = []): Promise<{ url: string; cmd: RunningCommand }> {
  // No stack folder: the test's instances stay out of the shared Prometheus' discovery.
  const cmd = startCommand('api', ['--port', '0', '--log-format', 'json', ...args], {
    LOG_LEVEL: 'info',
    CDC_STACK_HOME: '/nonexistent/cdc-test',
  })
  onTestFailed(() => console.log(`api stderr:\n${cmd.stderr().slice(-3000)}`))
  const url = await waitFor(
    'node cmd/api listening',
    () => /listening on (http:\/\/\S+)/.exec(cmd.stdout())?.[1],
    30_000,
    50,
  )
  return { url, cmd }
}

const atEnd = (label: string): Promise<string> => groupAtEnd(`cache-api-${label}`, TOPICS)

/** Runs `sql` as a DBA (the owner role, in psql) and returns PostgreSQL's clock at the end of the transaction. */
async function dbaEdit(sql: string): Promise<number> {
  // psql -c runs the statements as one transaction: the clock is read just before the commit.
  return Number(await psql(`${sql}; SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint`, pgOwnerUrl))
}

/** Polls until `check` holds of the API's answers; returns the time it first held. */
async function visible(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<number> {
  return waitFor(what, async () => ((await check()) ? Date.now() : undefined), timeoutMs, 10)
}

describe('node cmd/api', () => {
  it('point 1: psql UPDATE, an order moved to another user and DELETEs are visible within 2 s of the commit', async () => {
    const group = await atEnd('dba')
    const sync = startCommand(
      'cache-sync',
      ['--group', group, '--session-timeout', '10', '--summary-json', '--retry-max-time', '120'],
      { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
    )
    onTestFailed(() => console.log(`cache-sync stderr:\n${sync.stderr().slice(-3000)}`))
    const { url } = await startApiProcess()
    const [u1, u2, o1] = [randomUUID(), randomUUID(), randomUUID()]
    onTestFinished(() => deletePgRows([u1, u2], [o1]))
    await psql(
      `INSERT INTO users (id, name, dob) VALUES ('${u1}', 'api one', '1990-01-01'), ('${u2}', 'api two', '1991-01-01');
       INSERT INTO orders (id, status, user_id, quantity, total_amount) VALUES ('${o1}', 'PLACED', '${u1}', 1, 10.00)`,
      pgOwnerUrl,
    )
    // cache-sync has applied the inserts (else their invalidations would land on the copies warmed below).
    for (const key of [`cdc:users:${u1}`, `cdc:users:${u2}`, `cdc:orders:${o1}`, `cdc:user-orders:${u1}`]) {
      await waitFor(`${key} written by cache-sync`, async () => (await redis.hGet(key, 'v')) != null, 240_000)
    }
    const paths = [`/users/${u1}`, `/orders/${o1}`, `/users/${u1}/orders`, `/users/${u2}/orders`]
    /** Reads every path until it is served from a cache (hit or L1): what an edit must then invalidate. */
    const warm = async () => {
      for (const p of paths) {
        await get(url, p)
        const again = await get(url, p)
        expect(['hit', 'l1'], `${p} cached before the edit`).toContain(again.cache)
      }
    }
    const latencies: Record<string, number> = {}
    const ids = (a: Answer) => (a.body as { id: string }[]).map((o) => o.id)

    await warm()
    expect((await get(url, `/users/${u1}`)).body).toMatchObject({ name: 'api one' })
    let committed = await dbaEdit(`UPDATE users SET name = 'api one, renamed' WHERE id = '${u1}'`)
    latencies.update =
      (await visible('the rename', async () => {
        const a = await get(url, `/users/${u1}`)
        return (a.body as { name?: string })?.name === 'api one, renamed'
      })) - committed

    await warm()
    committed = await dbaEdit(`UPDATE orders SET user_id = '${u2}', quantity = 2 WHERE id = '${o1}'`)
    const seen = { order: 0, oldList: 0, newList: 0 }
    await visible('the move on every path', async () => {
      const [order, oldList, newList] = await Promise.all([
        get(url, `/orders/${o1}`),
        get(url, `/users/${u1}/orders`),
        get(url, `/users/${u2}/orders`),
      ])
      const now = Date.now()
      if (seen.order === 0 && (order.body as { user_id?: string }).user_id === u2) seen.order = now
      if (seen.oldList === 0 && oldList.status === 200 && ids(oldList).length === 0) seen.oldList = now
      if (seen.newList === 0 && ids(newList).includes(o1)) seen.newList = now
      return seen.order > 0 && seen.oldList > 0 && seen.newList > 0
    })
    latencies['move: /orders/:id'] = seen.order - committed
    latencies["move: old user's list"] = seen.oldList - committed
    latencies["move: new user's list"] = seen.newList - committed

    await warm()
    committed = await dbaEdit(`DELETE FROM orders WHERE id = '${o1}'`)
    const gone = { order: 0, list: 0 }
    await visible('the order deleted on every path', async () => {
      const [order, list] = await Promise.all([get(url, `/orders/${o1}`), get(url, `/users/${u2}/orders`)])
      const now = Date.now()
      if (gone.order === 0 && order.status === 404) gone.order = now
      if (gone.list === 0 && list.status === 200 && ids(list).length === 0) gone.list = now
      return gone.order > 0 && gone.list > 0
    })
    latencies['delete: /orders/:id'] = gone.order - committed
    latencies['delete: the list'] = gone.list - committed
    // The tombstone answers the 404 from Redis, without PostgreSQL.
    expect((await get(url, `/orders/${o1}`)).cache).toMatch(/^(hit|l1)$/)

    await get(url, `/users/${u1}`)
    committed = await dbaEdit(`DELETE FROM users WHERE id = '${u1}'`)
    latencies['delete: /users/:id'] =
      (await visible('the user deleted', async () => (await get(url, `/users/${u1}`)).status === 404)) - committed

    console.log(`point 1, PostgreSQL commit -> visible through the API (ms): ${JSON.stringify(latencies)}`)
    for (const [what, ms] of Object.entries(latencies)) expect(ms, what).toBeLessThanOrEqual(VISIBLE_WITHIN_MS)

    sync.kill('SIGTERM')
    const res = await sync.exited
    expect(res.code, res.stderr.slice(-2000)).toBe(0)
    expect(summaryOf(res)).toMatchObject({ deadLettered: 0 })
  })

  it('the lease: a fill that raced with an invalidation is refused, and the next read fills the new value', async () => {
    const [u1] = [randomUUID()]
    onTestFinished(() => deletePgRows([u1]))
    await psql(`INSERT INTO users (id, name, dob) VALUES ('${u1}', 'lease old', '1990-01-01')`, pgOwnerUrl)
    const key = `cdc:users:${u1}`
    let hold: (() => void) | undefined
    let arrived: (() => void) | undefined
    const fillArrived = new Promise<void>((r) => (arrived = r))
    const targetsDir = mkdtempSync(path.join(tmpdir(), 'cdc-api-targets-'))
    const api = await startApi({
      host: '127.0.0.1',
      port: 0,
      redisUrl: REDIS_URL,
      pgUrl: READER_URL,
      leaseMs: 10_000,
      fillTtlMs: 60_000,
      l1Max: 0,
      l1TtlMs: 1_000,
      redisTimeoutMs: 2_000,
      connectTimeoutMs: 10_000,
      log: createLogger({ level: 'warn' }),
      targetsDir,
      // The slow fill: PostgreSQL has answered (the old name); the fill waits until the test lets it go.
      beforeFill: async (k) => {
        if (k !== key || hold !== undefined) return
        await new Promise<void>((resolve) => {
          hold = resolve
          arrived!()
        })
      },
    })
    onTestFinished(() => api.close())
    // Registered for the local stack's Prometheus as command="api", like the engine commands.
    const targetFile = path.join(targetsDir, `api-${process.pid}.json`)
    expect(JSON.parse(readFileSync(targetFile, 'utf8'))).toEqual([
      { targets: [`127.0.0.1:${api.port}`], labels: { command: 'api' } },
    ])
    const slow = get(api.url, `/users/${u1}`)
    await fillArrived
    expect(await redis.hGet(key, 'lease')).toMatch(/^[0-9a-f-]{36}:\d+$/)

    // Meanwhile a DBA renames the user and cache-sync applies the change (its own script, called directly with the
    // change's version: what cache-sync runs for it).
    await dbaEdit(`UPDATE users SET name = 'lease new' WHERE id = '${u1}'`)
    const version = ((1n << 62n) + BigInt(Date.now()) * 1000n).toString().padStart(20, '0')
    const plan: CachePlan = { table: 'users', id: u1, key, version, action: 'invalidate', ref: '', listIds: [] }
    const { keys, arguments: args } = scriptArgs(plan, 60_000, INVALIDATION_CHANNEL)
    expect(Number(await redis.eval(APPLY_SCRIPT, { keys, arguments: args }))).toBe(1)

    hold!()
    const first = await slow
    // The reader itself gets what it read (it started before the rename committed) ...
    expect(first).toMatchObject({ status: 200, cache: 'miss', body: { name: 'lease old' } })
    // ... but its fill was refused: the key holds the invalidation's version and no row.
    expect(await redis.hGetAll(key)).toEqual({ v: version })
    const metrics = await (await fetch(`${api.url}/metrics`)).text()
    expect(metrics).toMatch(/^cdc_api_fills_refused_total 1$/m)
    expect(metrics).toMatch(/^cdc_api_fills_written_total 0$/m)

    const next = await get(api.url, `/users/${u1}`)
    expect(next).toMatchObject({ status: 200, cache: 'miss', body: { name: 'lease new' } })
    expect(await get(api.url, `/users/${u1}`)).toMatchObject({ cache: 'hit', body: { name: 'lease new' } })
    expect(await redis.hGet(key, 'v')).toBe(version)
    await api.close()
    expect(existsSync(targetFile)).toBe(false)
  })
})

describe('node cmd/purge', () => {
  it('point 4: 3 API instances acknowledge, the next reads are misses; a silent instance makes it exit 1', async () => {
    const users = [randomUUID(), randomUUID(), randomUUID()]
    onTestFinished(() => deletePgRows(users))
    await psql(
      `INSERT INTO users (id, name, dob) VALUES ${users.map((u, i) => `('${u}', 'purge ${i}', '1990-01-01')`).join(', ')}`,
      pgOwnerUrl,
    )
    const apis = await Promise.all([0, 1, 2].map(() => startApiProcess(['--redis-url', PURGE_DB_URL])))
    for (const { url } of apis) {
      for (const u of users) await get(url, `/users/${u}`)
      // Every instance has every user in its L1 now (or at worst in Redis).
      for (const u of users) expect(['l1', 'hit']).toContain((await get(url, `/users/${u}`)).cache)
    }
    const db5 = redis.duplicate({ url: PURGE_DB_URL })
    db5.on('error', () => undefined)
    await db5.connect()
    onTestFinished(() => db5.close())
    for (const u of users) expect(await db5.hExists(`cdc:users:${u}`, 'row')).toBeTruthy()
    // A table's truncate mark (cache-sync's) is not cached data: it stays, refusing changes from before the truncate.
    await db5.set('cdc:~truncated:users', '00000000000000000001')

    const res = await runCommand('purge', ['--redis-url', PURGE_DB_URL, '--timeout', '10s'], { timeoutMs: 30_000 })
    expect(res.code, res.stderr).toBe(0)
    expect(res.stdout).toMatch(/^purged on 3 instances; \d+ keys? deleted; /)
    for (const u of users) expect(await db5.exists(`cdc:users:${u}`)).toBe(0)
    expect(await db5.get('cdc:~truncated:users')).toBe('00000000000000000001')
    // Instance i reads user i: neither its L1 nor Redis has it.
    for (const [i, { url }] of apis.entries()) {
      expect(await get(url, `/users/${users[i]}`), `instance ${i}`).toMatchObject({ status: 200, cache: 'miss' })
      const metrics = await (await fetch(`${url}/metrics`)).text()
      expect(metrics).toMatch(/^cdc_api_purges_total 1$/m)
    }

    // An instance that cannot answer (stopped): the request reaches 3, 2 acknowledge, exit 1.
    process.kill(apis[2]!.cmd.pid, 'SIGSTOP')
    try {
      const partial = await runCommand('purge', ['--redis-url', PURGE_DB_URL, '--timeout', '2s'], { timeoutMs: 30_000 })
      expect(partial.code, partial.stderr).toBe(1)
      expect(partial.stdout).toMatch(
        /^purged on 2 instances \(of 3 reached; the others did not answer within --timeout\)/,
      )
    } finally {
      process.kill(apis[2]!.cmd.pid, 'SIGCONT')
    }
    for (const { cmd } of apis) cmd.kill('SIGTERM')
    for (const { cmd } of apis) expect((await cmd.exited).code).toBe(0)
  })
})

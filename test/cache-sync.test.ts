// Issue 16 (first half): node cmd/cache-sync on the real stack. A DBA's edits in psql reach Redis through Debezium
// (keys invalidated, or refreshed to PostgreSQL's values, both users' order lists invalidated when an order moves,
// every key announced on cdc:invalidations); the one Lua script refuses an older version and a resurrection after a
// delete (called directly with crafted versions); Redis stopped for ~10 s mid-run, cache-sync backs off and resumes,
// and the end state is right. Every test's group starts at the change topics' current end: no backlog to replay.
import { randomUUID } from 'node:crypto'
import { createClient } from 'redis'
import { REDIS_URL, TOPICS } from './cache-helpers.js'
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import {
  APPLY_SCRIPT,
  INVALIDATION_CHANNEL,
  scriptArgs,
  truncatedKey,
  type CachePlan,
} from '../internal/sinks/redis/index.js'
import { deletePgRows, summaryOf } from './cdc-helpers.js'
import { groupAtEnd, pgOwnerUrl, psql, sleep, stack } from './helpers.js'
import { runCommand, startCommand, waitFor, type RunningCommand } from './pipeline-helpers.js'

const STREAMED = 1n << 62n

type Redis = ReturnType<typeof createClient>
let redis: Redis
let subscriber: Redis
const announced: { table: string; id: string; version: string }[] = []

beforeAll(async () => {
  // The stack's Redis (stack:up starts it; this brings it up on a stack started before Redis was part of it).
  await stack('start-component', 'redis')
  redis = createClient({ url: REDIS_URL })
  redis.on('error', () => undefined)
  await redis.connect()
  subscriber = redis.duplicate()
  subscriber.on('error', () => undefined)
  await subscriber.connect()
  await subscriber.subscribe(INVALIDATION_CHANNEL, (m) => announced.push(JSON.parse(m) as (typeof announced)[0]))
}, 120_000)

afterAll(async () => {
  await subscriber?.close().catch(() => undefined)
  await redis?.close().catch(() => undefined)
})

const atEnd = (label: string): Promise<string> => groupAtEnd(`cache-sync-${label}`, TOPICS)

function startSync(group: string, mode: 'invalidate' | 'refresh'): RunningCommand {
  const sync = startCommand(
    'cache-sync',
    ['--group', group, '--mode', mode, '--session-timeout', '10', '--summary-json', '--retry-max-time', '120'],
    { LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
  )
  onTestFailed(() => console.log(`cache-sync (${mode}) stderr:\n${sync.stderr().slice(-4000)}`))
  return sync
}

async function stopSync(sync: RunningCommand): Promise<{ processed: number; deadLettered: number }> {
  sync.kill('SIGTERM')
  const res = await sync.exited
  expect(res.code, res.stderr.slice(-3000)).toBe(0)
  return summaryOf(res) as unknown as { processed: number; deadLettered: number }
}

const hash = (key: string) => redis.hGetAll(key)
const has = async (key: string, field: string): Promise<boolean> => Number(await redis.hExists(key, field)) === 1
const version = async (key: string): Promise<bigint | undefined> => {
  const v = await redis.hGet(key, 'v')
  return v === null || v === undefined ? undefined : BigInt(v)
}

/** The LSN-based version the key holds once it has caught up with a change made after `after` (a version). */
// Debezium streams in commit order: after a bench's burst on the shared stack, a change can take minutes to come out.
async function waitForVersionAbove(key: string, after: bigint, timeoutMs = 240_000): Promise<bigint> {
  return waitFor(
    `${key} past version ${after}`,
    async () => {
      const v = await version(key)
      return v !== undefined && v > after ? v : undefined
    },
    timeoutMs,
    200,
  )
}

const pgOne = async (sql: string): Promise<string> => psql(sql)

describe('node cmd/cache-sync', () => {
  it('invalidate mode: psql INSERT, UPDATE, an order moved to another user and DELETE invalidate the keys', async () => {
    const group = await atEnd('inv')
    const sync = startSync(group, 'invalidate')
    const [u1, u2, o1] = [randomUUID(), randomUUID(), randomUUID()]
    try {
      await psql(
        `INSERT INTO users (id, name, dob) VALUES ('${u1}', 'cache one', '1990-01-01'), ('${u2}', 'cache two', '1991-01-01')`,
      )
      await psql(
        `INSERT INTO orders (id, status, user_id, quantity, total_amount) VALUES ('${o1}', 'PLACED', '${u1}', 1, 10.00)`,
      )
      const inserted = await waitForVersionAbove(`cdc:orders:${o1}`, 0n)
      expect(inserted).toBeGreaterThan(STREAMED)
      expect(await hash(`cdc:orders:${o1}`)).toEqual({ v: String(inserted).padStart(20, '0'), ref: u1 })
      await waitForVersionAbove(`cdc:user-orders:${u1}`, 0n)

      // Copies a reader filled in meanwhile (what the API will do): every one must go on the next change.
      const fill = async (key: string) => redis.hSet(key, 'row', '{"filled":true}')
      await Promise.all(
        [`cdc:users:${u1}`, `cdc:orders:${o1}`, `cdc:user-orders:${u1}`, `cdc:user-orders:${u2}`].map(fill),
      )

      announced.length = 0
      await psql(`UPDATE orders SET user_id = '${u2}', quantity = 2 WHERE id = '${o1}'`)
      const moved = await waitForVersionAbove(`cdc:orders:${o1}`, inserted)
      expect(await has(`cdc:orders:${o1}`, 'row')).toBe(false)
      expect(await redis.hGet(`cdc:orders:${o1}`, 'ref')).toBe(u2)
      for (const u of [u1, u2]) {
        expect(await has(`cdc:user-orders:${u}`, 'row'), `user-orders of ${u}`).toBe(false)
        expect(await version(`cdc:user-orders:${u}`)).toBe(moved)
        expect(await redis.pTTL(`cdc:user-orders:${u}`)).toBeGreaterThan(0)
      }
      const v = String(moved).padStart(20, '0')
      await waitFor('the announcements of the move', () => announced.length >= 3)
      expect(announced).toEqual(
        expect.arrayContaining([
          { table: 'orders', id: o1, version: v },
          { table: 'user-orders', id: u1, version: v },
          { table: 'user-orders', id: u2, version: v },
        ]),
      )

      const userBefore = (await version(`cdc:users:${u1}`))!
      await psql(`UPDATE users SET name = 'cache one, renamed' WHERE id = '${u1}'`)
      await waitForVersionAbove(`cdc:users:${u1}`, userBefore)
      expect(await has(`cdc:users:${u1}`, 'row')).toBe(false)

      await psql(`DELETE FROM orders WHERE id = '${o1}'`, pgOwnerUrl)
      const deleted = await waitForVersionAbove(`cdc:orders:${o1}`, moved)
      expect(await hash(`cdc:orders:${o1}`)).toMatchObject({ deleted: '1' })
      const ttl = await redis.pTTL(`cdc:orders:${o1}`)
      expect(ttl).toBeGreaterThan(23 * 3_600_000)
      expect(ttl).toBeLessThanOrEqual(24 * 3_600_000)
      expect(await version(`cdc:user-orders:${u2}`)).toBe(deleted)
    } finally {
      const summary = await stopSync(sync)
      expect(summary.deadLettered).toBe(0)
      await deletePgRows([u1, u2], [o1])
    }
  }, 900_000)

  it("refresh mode: the cached rows equal PostgreSQL's after each edit, both users' lists invalidated", async () => {
    const group = await atEnd('refresh')
    const sync = startSync(group, 'refresh')
    const [u1, u2, o1] = [randomUUID(), randomUUID(), randomUUID()]
    const cols = ['id', 'status', 'user_id', 'quantity', 'total_amount', 'is_deleted', 'version']
    const expectOrderEqualsPg = async () => {
      const pgRow = (await pgOne(`SELECT ${cols.join(', ')} FROM orders WHERE id = '${o1}'`)).split('|')
      const cached = JSON.parse((await redis.hGet(`cdc:orders:${o1}`, 'row'))!) as Record<string, unknown>
      expect(cols.map((c) => String(cached[c]))).toEqual(
        pgRow.map((v) => (v === 't' ? 'true' : v === 'f' ? 'false' : v)),
      )
    }
    try {
      await psql(
        `INSERT INTO users (id, name, dob) VALUES ('${u1}', 'refresh one', '1990-01-01'), ('${u2}', 'refresh two', '1991-01-01')`,
      )
      await psql(
        `INSERT INTO orders (id, status, user_id, quantity, total_amount, version) VALUES ('${o1}', 'PLACED', '${u1}', 3, 12.50, 1)`,
      )
      const v1 = await waitForVersionAbove(`cdc:orders:${o1}`, 0n)
      await expectOrderEqualsPg()
      const cachedUser = JSON.parse((await redis.hGet(`cdc:users:${u1}`, 'row'))!) as Record<string, unknown>
      expect(cachedUser).toMatchObject({ id: u1, name: 'refresh one' })
      expect(await redis.pTTL(`cdc:orders:${o1}`)).toBe(-1)

      await redis.hSet(`cdc:user-orders:${u1}`, 'row', '[]')
      await redis.hSet(`cdc:user-orders:${u2}`, 'row', '[]')
      await psql(
        `UPDATE orders SET user_id = '${u2}', status = 'SHIPPED', total_amount = 99.90, version = 2 WHERE id = '${o1}'`,
      )
      const v2 = await waitForVersionAbove(`cdc:orders:${o1}`, v1)
      await expectOrderEqualsPg()
      for (const u of [u1, u2]) {
        expect(await has(`cdc:user-orders:${u}`, 'row'), `user-orders of ${u}`).toBe(false)
        expect(await version(`cdc:user-orders:${u}`)).toBe(v2)
      }

      await psql(`DELETE FROM orders WHERE id = '${o1}'`, pgOwnerUrl)
      await waitForVersionAbove(`cdc:orders:${o1}`, v2)
      expect(await hash(`cdc:orders:${o1}`)).toMatchObject({ deleted: '1' })
      expect(await has(`cdc:orders:${o1}`, 'row')).toBe(false)
    } finally {
      const summary = await stopSync(sync)
      expect(summary.deadLettered).toBe(0)
      await deletePgRows([u1, u2], [o1])
    }
  }, 900_000)

  it('at start: an unreachable Redis is one line and exit 3, a refused password one line and exit 2', async () => {
    const down = await runCommand('cache-sync', ['--redis-url', 'redis://:x@127.0.0.1:1', '--connect-timeout', '3'], {
      timeoutMs: 60_000,
      env: { LOG_LEVEL: 'silent' },
    })
    expect(down.code, down.stderr).toBe(3)
    expect(down.stderr.trim()).toMatch(
      /^cache-sync: Redis is not reachable at redis:\/\/:\*\*\*@127\.0\.0\.1:1 \(ECONNREFUSED\)/,
    )
    expect(down.stderr.trim().split('\n')).toHaveLength(1)
    const wrong = new URL(REDIS_URL)
    wrong.password = 'not-the-password'
    const refused = await runCommand('cache-sync', ['--redis-url', wrong.toString()], {
      timeoutMs: 60_000,
      env: { LOG_LEVEL: 'silent' },
    })
    expect(refused.code, refused.stderr).toBe(2)
    expect(refused.stderr.trim()).toMatch(
      /^cache-sync: Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+ refused the connection: WRONGPASS/,
    )
    expect(refused.stderr).not.toContain('not-the-password')
  }, 120_000)

  // A real TRUNCATE of the shared orders table (as test/cdc-truncate.test.ts does): every other test creates the orders
  // it needs.
  it("TRUNCATE orders: the cached orders and users' lists from before it go, later changes stay, older ones are refused", async () => {
    const group = await atEnd('truncate')
    const sync = startSync(group, 'refresh')
    const [u1, o1, o2, o3] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    const order = (id: string, n: number) =>
      `INSERT INTO orders (id, status, user_id, quantity, total_amount, version) VALUES ('${id}', 'PLACED', '${u1}', ${n}, 1.50, 1)`
    try {
      await psql(`INSERT INTO users (id, name, dob) VALUES ('${u1}', 'truncate cache', '1990-01-01')`)
      await psql(`${order(o1, 1)}; ${order(o2, 2)}`)
      const v2 = await waitForVersionAbove(`cdc:orders:${o2}`, 0n)
      await waitForVersionAbove(`cdc:orders:${o1}`, 0n)
      // A list a reader filled before the truncate.
      await redis.hSet(`cdc:user-orders:${u1}`, 'row', '[]')
      announced.length = 0
      await psql('TRUNCATE orders', pgOwnerUrl)
      await psql(order(o3, 3))
      const v3 = await waitForVersionAbove(`cdc:orders:${o3}`, 0n)
      const mark = await waitFor(
        'the truncate mark',
        async () => (await redis.get(truncatedKey('orders'))) ?? undefined,
      )
      const truncatedAt = BigInt(mark)
      expect(truncatedAt).toBeGreaterThan(v2)
      expect(truncatedAt).toBeLessThan(v3)
      // The mark is raised first, then the SCAN pages of row keys and lists follow: wait for the truncate to be
      // through (the user's list is the last thing it touches).
      await waitFor('the truncate to drop the old keys and the filled list', async () => {
        const rows = await redis.exists([`cdc:orders:${o1}`, `cdc:orders:${o2}`])
        return rows === 0 && !(await has(`cdc:user-orders:${u1}`, 'row'))
      })
      expect(await redis.exists([`cdc:orders:${o1}`, `cdc:orders:${o2}`])).toBe(0)
      expect(JSON.parse((await redis.hGet(`cdc:orders:${o3}`, 'row'))!)).toMatchObject({ id: o3, quantity: 3 })
      // The user's list: the filled copy gone; the truncate's version, or o3's that came after it.
      expect(await has(`cdc:user-orders:${u1}`, 'row')).toBe(false)
      expect((await version(`cdc:user-orders:${u1}`))!).toBeGreaterThanOrEqual(truncatedAt)
      expect(announced).toContainEqual({ table: 'orders', id: o1, version: mark })
      // A change from before the truncate, met later (another partition's, a redelivery): refused by the mark.
      const late = randomUUID()
      const plan: CachePlan = {
        table: 'orders',
        id: late,
        key: `cdc:orders:${late}`,
        version: (truncatedAt - 1n).toString().padStart(20, '0'),
        action: 'set',
        row: '{}',
        ref: u1,
        list: 'user-orders',
        listIds: [u1],
      }
      const sha = await redis.scriptLoad(APPLY_SCRIPT)
      expect(await redis.evalSha(sha, scriptArgs(plan, 60_000, `test:${late}`))).toBe(0)
      expect(await redis.exists(`cdc:orders:${late}`)).toBe(0)
    } finally {
      const summary = await stopSync(sync)
      expect(summary.deadLettered).toBe(0)
      await deletePgRows([u1], [o3])
    }
  }, 900_000)

  it('the Lua guard refuses an older or equal version and a resurrection after a delete (called directly)', async () => {
    const id = randomUUID()
    const user = randomUUID()
    const key = `cdc:orders:${id}`
    const sha = await redis.scriptLoad(APPLY_SCRIPT)
    // Crafted versions above today's WAL position: above any truncate mark a real TRUNCATE of orders left.
    const base = BigInt(await psql("SELECT pg_current_wal_lsn() - '0/0'"))
    const v = (n: bigint) => (STREAMED + base + n).toString().padStart(20, '0')
    const apply = (n: bigint, action: CachePlan['action'], row?: object) => {
      const plan: CachePlan = {
        table: 'orders',
        id,
        key,
        version: v(n),
        action,
        ...(row === undefined ? {} : { row: JSON.stringify(row) }),
        ref: action === 'delete' ? '' : user,
        list: 'user-orders',
        listIds: [user],
      }
      return redis.evalSha(sha, scriptArgs(plan, 60_000, `test:${id}`))
    }
    expect(await apply(100n, 'set', { n: 100 })).toBe(2)
    expect(await apply(50n, 'set', { n: 50 })).toBe(0)
    expect(await apply(100n, 'set', { n: 'again' })).toBe(0)
    expect(await hash(key)).toEqual({ v: v(100n), row: '{"n":100}', ref: user })
    expect(await apply(200n, 'delete')).toBe(2)
    expect(await hash(key)).toMatchObject({ v: v(200n), deleted: '1' })
    // A late change from before the delete: refused, the tombstone stays.
    expect(await apply(150n, 'set', { n: 150 })).toBe(0)
    expect(await apply(150n, 'invalidate')).toBe(0)
    expect(await hash(key)).toMatchObject({ v: v(200n), deleted: '1' })
    expect(await redis.pTTL(key)).toBeGreaterThan(0)
    // A newer change (the row inserted again) is applied.
    expect(await apply(300n, 'set', { n: 300 })).toBe(2)
    expect(await hash(key)).toEqual({ v: v(300n), row: '{"n":300}', ref: user })
    expect(await redis.pTTL(key)).toBe(-1)
    // A snapshot row (below 2^62) never overwrites a streamed change.
    const snapshot = redis.evalSha(sha, {
      ...scriptArgs(
        {
          table: 'orders',
          id,
          key,
          version: 5_000n.toString().padStart(20, '0'),
          action: 'set',
          row: '{}',
          ref: user,
          list: 'user-orders',
          listIds: [],
        },
        60_000,
        `test:${id}`,
      ),
    })
    expect(await snapshot).toBe(0)
    await redis.del([key, `cdc:user-orders:${user}`])
  }, 60_000)

  it('Redis stopped for ~10 s mid-run: cache-sync backs off, resumes, and the end state is right', async () => {
    const group = await atEnd('redis-down')
    const sync = startSync(group, 'refresh')
    const u1 = randomUUID()
    let redisDown = false
    try {
      await psql(`INSERT INTO users (id, name, dob, version) VALUES ('${u1}', 'outage 0', '1990-01-01', 0)`)
      const v0 = await waitForVersionAbove(`cdc:users:${u1}`, 0n)
      await redis.close()
      await subscriber.close()
      await stack('stop-component', 'redis')
      redisDown = true
      const downAt = Date.now()
      for (let i = 1; i <= 5; i++) {
        await psql(`UPDATE users SET name = 'outage ${i}', version = ${i} WHERE id = '${u1}'`)
        await sleep(1_500)
      }
      await sleep(Math.max(0, 10_000 - (Date.now() - downAt)))
      expect(sync.exited).toBeDefined()
      await stack('start-component', 'redis')
      redisDown = false
      redis = createClient({ url: REDIS_URL })
      redis.on('error', () => undefined)
      await redis.connect()
      subscriber = redis.duplicate()
      subscriber.on('error', () => undefined)
      await subscriber.connect()
      await subscriber.subscribe(INVALIDATION_CHANNEL, (m) => announced.push(JSON.parse(m) as (typeof announced)[0]))
      // What Redis acknowledged before the stop survived it (AOF): the key still has the insert's version at least.
      expect(await version(`cdc:users:${u1}`)).toBeGreaterThanOrEqual(v0)
      await waitFor(
        'the last update in Redis',
        async () => {
          const row = await redis.hGet(`cdc:users:${u1}`, 'row')
          return row !== null && row !== undefined && (JSON.parse(row) as { version: number }).version === 5
        },
        240_000,
        500,
      )
      const cached = JSON.parse((await redis.hGet(`cdc:users:${u1}`, 'row'))!) as Record<string, unknown>
      expect(cached).toMatchObject({ id: u1, name: 'outage 5', version: 5 })
      expect(await pgOne(`SELECT name FROM users WHERE id = '${u1}'`)).toBe('outage 5')
      expect(sync.stderr()).toMatch(/Redis unavailable/)
    } finally {
      if (redisDown) await stack('start-component', 'redis')
      const summary = await stopSync(sync)
      expect(summary.deadLettered).toBe(0)
      await deletePgRows([u1])
    }
  }, 900_000)
})

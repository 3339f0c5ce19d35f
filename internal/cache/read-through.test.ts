import { describe, expect, it } from 'vitest'
import { L1 } from './l1.js'
import { ReadThrough, type CacheEvent, type Loader } from './read-through.js'
import { resourcesOf, normalizeId } from './resources.js'
import type { CacheLookup, CacheStore } from './store.js'
import { acknowledgePurge, replyListOf } from './purge.js'

const U1 = '11111111-1111-4111-8111-111111111111'
const [users, , , userOrders] = resourcesOf()

/** The scripts' decisions on a Map (the Lua itself runs against Redis in test/cache-api.test.ts). */
class FakeStore implements CacheStore {
  keys = new Map<string, Record<string, string>>()
  failing = false
  calls: string[] = []
  async lookup(key: string, token: string): Promise<CacheLookup> {
    this.calls.push(`lookup ${key}`)
    if (this.failing) throw new Error('The client is offline')
    const h = this.keys.get(key) ?? {}
    if (h.row !== undefined) return { kind: 'hit', row: h.row }
    if (h.deleted === '1') return { kind: 'gone' }
    if (h.lease !== undefined) return { kind: 'busy' }
    this.keys.set(key, { ...h, lease: token })
    return { kind: 'lease', token }
  }
  async fill(key: string, token: string, row: string, _ttl: number, ref: string): Promise<boolean> {
    this.calls.push(`fill ${key}`)
    const h = this.keys.get(key)
    if (h?.lease !== token) return false
    delete h.lease
    Object.assign(h, { row }, ref === '' ? {} : { ref })
    return true
  }
  async release(key: string, token: string): Promise<void> {
    this.calls.push(`release ${key}`)
    const h = this.keys.get(key)
    if (h?.lease === token) delete h.lease
  }
  /** What cache-sync's script does to a key: replaces it whole. */
  invalidate(key: string, v: string): void {
    this.keys.set(key, { v })
  }
}

function setup(o: { row?: string | null; l1?: L1; beforeFill?: (key: string) => Promise<void> } = {}) {
  const store = new FakeStore()
  const events: CacheEvent[] = []
  let loads = 0
  const load: Loader = async () => {
    loads++
    return { row: o.row === undefined ? `{"id":"${U1}"}` : o.row, ref: '' }
  }
  const reads = new ReadThrough({
    store,
    load,
    leaseMs: 1_000,
    fillTtlMs: 60_000,
    l1: o.l1,
    onEvent: (e) => void events.push(e),
    ...(o.beforeFill ? { beforeFill: o.beforeFill } : {}),
  })
  return { store, events, reads, loads: () => loads }
}

describe('ReadThrough (lease decisions, with a fake store)', () => {
  it('a miss takes the lease and fills; the next read is a hit that does not touch PostgreSQL', async () => {
    const t = setup()
    expect(await t.reads.read(users!, U1)).toEqual({ status: 200, body: `{"id":"${U1}"}`, source: 'miss' })
    expect(await t.reads.read(users!, U1)).toMatchObject({ status: 200, source: 'hit' })
    expect(t.loads()).toBe(1)
    expect(t.events).toEqual(['miss', 'fill-written', 'hit'])
    expect(t.store.keys.get(`cdc:users:${U1}`)).toEqual({ row: `{"id":"${U1}"}` })
  })

  it("a miss that finds another reader's lease reads PostgreSQL and does not fill", async () => {
    const t = setup()
    t.store.keys.set(`cdc:users:${U1}`, { v: '1', lease: 'someone' })
    expect(await t.reads.read(users!, U1)).toMatchObject({ status: 200, source: 'miss' })
    expect(t.events).toEqual(['miss', 'lease-busy'])
    expect(t.store.calls.filter((c) => c.startsWith('fill'))).toEqual([])
  })

  it('a fill after an invalidation that cancelled its lease is refused and not kept in L1', async () => {
    const l1 = new L1({ max: 10, ttlMs: 60_000 })
    l1.resume()
    const t = setup({
      l1,
      beforeFill: async (key) => t.store.invalidate(key, '5'),
    })
    expect(await t.reads.read(users!, U1)).toMatchObject({ source: 'miss' })
    expect(t.events).toEqual(['miss', 'fill-refused'])
    expect(t.store.keys.get(`cdc:users:${U1}`)).toEqual({ v: '5' })
    expect(l1.size).toBe(0)
  })

  it('a tombstone is a 404 from the cache without a PostgreSQL read', async () => {
    const t = setup()
    t.store.keys.set(`cdc:users:${U1}`, { v: '9', deleted: '1' })
    expect(await t.reads.read(users!, U1)).toEqual({ status: 404, body: null, source: 'hit' })
    expect(t.loads()).toBe(0)
  })

  it('a row PostgreSQL does not have is a 404, not cached, and the lease is given back', async () => {
    const t = setup({ row: null })
    expect(await t.reads.read(userOrders!, U1)).toEqual({ status: 404, body: null, source: 'miss' })
    expect(t.store.keys.get(`cdc:user-orders:${U1}`)).toEqual({})
    expect(t.store.calls).toEqual([`lookup cdc:user-orders:${U1}`, `release cdc:user-orders:${U1}`])
  })

  it('Redis failing: served from PostgreSQL, a Redis error counted, nothing filled', async () => {
    const t = setup()
    t.store.failing = true
    expect(await t.reads.read(users!, U1)).toMatchObject({ status: 200, source: 'miss' })
    expect(t.events).toEqual(['redis-error', 'miss'])
  })

  it('a PostgreSQL failure gives the lease back and is thrown', async () => {
    const store = new FakeStore()
    const reads = new ReadThrough({
      store,
      load: async () => {
        throw new Error('connection refused')
      },
      leaseMs: 1_000,
      fillTtlMs: 1_000,
    })
    await expect(reads.read(users!, U1)).rejects.toThrow('connection refused')
    expect(store.keys.get(`cdc:users:${U1}`)).toEqual({})
  })
})

describe('L1', () => {
  it('serves a hit stored before any invalidation; an invalidation during the read keeps it out', async () => {
    const l1 = new L1({ max: 10, ttlMs: 60_000 })
    l1.resume()
    const t = setup({ l1 })
    t.store.keys.set(`cdc:users:${U1}`, { row: '"a"' })
    await t.reads.read(users!, U1)
    expect(await t.reads.read(users!, U1)).toEqual({ status: 200, body: '"a"', source: 'l1' })
    l1.evict(`cdc:users:${U1}`)
    const since = l1.mark()
    l1.evict('cdc:users:other')
    expect(l1.remember(`cdc:users:${U1}`, since, { status: 200, body: '"a"' })).toBe(false)
    expect(l1.get(`cdc:users:${U1}`)).toBeUndefined()
  })

  it('is neither served nor filled while suspended (the invalidations not subscribed)', () => {
    const l1 = new L1({ max: 10, ttlMs: 60_000 })
    l1.resume()
    expect(l1.remember('k', l1.mark(), { status: 200, body: '1' })).toBe(true)
    l1.suspend()
    expect(l1.get('k')).toBeUndefined()
    expect(l1.remember('k', l1.mark(), { status: 200, body: '1' })).toBe(false)
    l1.resume()
    expect(l1.get('k')).toBeUndefined()
  })

  it('is bounded', () => {
    const l1 = new L1({ max: 2, ttlMs: 60_000 })
    l1.resume()
    for (const k of ['a', 'b', 'c']) l1.remember(k, l1.mark(), { status: 200, body: k })
    expect(l1.size).toBe(2)
    expect(l1.get('a')).toBeUndefined()
  })
})

describe('resources and keys', () => {
  it('derives the routes, keys and SQL from the entity definitions', () => {
    expect(resourcesOf().map((r) => [r.route, r.keyOf(U1)])).toEqual([
      ['/users/:id', `cdc:users:${U1}`],
      ['/orders/:id', `cdc:orders:${U1}`],
      ['/products/:id', `cdc:products:${U1}`],
      ['/users/:id/orders', `cdc:user-orders:${U1}`],
    ])
    expect(resourcesOf()[1]!.sql).toContain(`coalesce(t."user_id"::text, '') AS ref`)
    expect(userOrders!.sql).toMatch(/FROM "users" p WHERE p.id = \$1.*FROM "orders" t WHERE t."user_id" = \$1/)
  })

  it('takes UUIDs only, lowercased as cache-sync writes them', () => {
    expect(normalizeId(U1.toUpperCase())).toBe(U1)
    expect(normalizeId('1 OR 1=1')).toBeUndefined()
  })
})

describe('purge acknowledgements', () => {
  it('push onto the reply list derived from the request id only', async () => {
    const pushed: string[] = []
    const redis = {
      rPush: async (key: string) => void pushed.push(key),
      pExpire: async () => 1,
    } as never
    const id = 'r1'
    await acknowledgePurge(redis, JSON.stringify({ id, replyTo: replyListOf(id) }), { instance: 'a', dropped: 0 })
    expect(pushed).toEqual(['cdc-purge-acks:r1'])
    await expect(
      acknowledgePurge(redis, JSON.stringify({ id, replyTo: 'cdc:users:x' }), { instance: 'a', dropped: 0 }),
    ).rejects.toThrow(/not a purge request/)
  })
})

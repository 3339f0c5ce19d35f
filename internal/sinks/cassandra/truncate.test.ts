import cassandra from 'cassandra-driver'
import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../../errors/index.js'
import { readSettings } from '../../cli/cli.js'
import { settingsOf } from '../../cli/settings.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { CassandraBatchSink, type CqlExecutor } from './batch-sink.js'
import { deriveTable, type CatalogColumn } from './derived.js'
import type { CassandraSinkOptions } from './options.js'
import { TABLES } from './tables.js'
import { applyTruncate, deletePartitionCql, scanCql, targetOfDerived, targetOfSpec, tokenBounds } from './truncate.js'
import { STREAMED_BAND } from './write-timestamp.js'

const U1 = '11111111-1111-4111-8111-111111111111'
const U2 = '22222222-2222-4222-8222-222222222222'
const O = (n: number) => `aaaaaaaa-aaaa-4aaa-8aaa-${String(n).padStart(12, '0')}`

const options: CassandraSinkOptions = {
  contactPoints: ['127.0.0.1:9042'],
  localDataCenter: 'datacenter1',
  keyspace: 'ks',
  consistency: 'LOCAL_QUORUM',
  concurrency: 4,
  topics: { 'cdc.public.users': 'users', 'cdc.public.orders': 'orders' },
}

const order = (id: string, userId: string) => ({
  id,
  status: 'PLACED',
  user_id: userId,
  quantity: 3,
  total_amount: '12.50',
  placed_at: '2026-01-02T03:04:05.123Z',
  modified_at: '2026-01-02T03:04:05.123Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
})

let offset = 0
function msg(
  topic: string,
  table: string,
  op: string,
  lsn: number,
  after: Record<string, unknown> | null,
  key: Record<string, unknown> | null,
): SourceMessage {
  const value = {
    before: null,
    after,
    source: { ts_ms: 1_000, snapshot: 'false', db: 'cdc_db', schema: 'public', table, txId: 7, lsn },
    op,
    ts_ms: 2_000,
  }
  return {
    topic,
    partition: 0,
    offset: String(offset++),
    key: key === null ? null : Buffer.from(JSON.stringify(key)),
    value: Buffer.from(JSON.stringify(value)),
    headers: {},
    timestamp: '0',
  }
}
const orderMsg = (op: string, lsn: number, id: string, user = U1) =>
  msg('cdc.public.orders', 'orders', op, lsn, op === 't' ? null : order(id, user), op === 't' ? null : { id })
const truncateOrders = (lsn: number) => orderMsg('t', lsn, '')

// A token for a partition key, spread over the whole signed 64-bit range (the fake's partitioner).
function tokenOf(key: string): bigint {
  let h = 1469598103934665603n
  for (const ch of key) h = ((h ^ BigInt(ch.charCodeAt(0))) * 1099511628211n) & ((1n << 64n) - 1n)
  return h - (1n << 63n)
}

/**
 * Cassandra's rule for timestamps, per table: a partition tombstone at T hides every row written at or below T; a
 * write at or below a tombstone is shadowed. SELECT DISTINCT pages by fetchSize over a token range.
 */
class TimestampedCassandra implements CqlExecutor {
  rows = new Map<string, Map<string, { partition: Record<string, unknown>; ts: bigint }>>()
  tombstones = new Map<string, bigint>()
  statements: string[] = []
  fail?: (query: string) => unknown
  async execute(
    query: string,
    params: unknown[],
    opts: { prepare: boolean; fetchSize?: number; pageState?: string },
  ): Promise<unknown> {
    this.statements.push(query)
    const err = this.fail?.(query)
    if (err) throw err
    const table = /(?:INTO|FROM) ks\.("?\w+"?)/.exec(query)![1]
    const rows = this.rows.get(table) ?? new Map()
    this.rows.set(table, rows)
    if (query.startsWith('INSERT')) {
      const cols = /\(([^)]*)\) VALUES/.exec(query)![1].split(', ')
      const pk = table === 'orders_by_user' ? ['user_id'] : [cols[0]]
      const partition = Object.fromEntries(pk.map((c) => [c.replace(/"/g, ''), params[cols.indexOf(c)]]))
      const pkText = JSON.stringify(Object.values(partition))
      const ts = params.at(-1) as bigint
      const stone = this.tombstones.get(`${table} ${pkText}`)
      if (stone !== undefined && ts <= stone) return {}
      const rowKey = table === 'orders_by_user' ? `${pkText}/${String(params[cols.indexOf('id')])}` : pkText
      const had = rows.get(rowKey)
      if (had === undefined || had.ts < ts) rows.set(rowKey, { partition, ts })
      return {}
    }
    if (query.startsWith('DELETE')) {
      const ts = params[0] as bigint
      const pkText = JSON.stringify(params.slice(1))
      if (query.includes('token')) throw new Error('unexpected')
      // A partition delete (truncate.ts) or a row delete by id (orders, the fake treats both as partitions).
      const k = `${table} ${pkText}`
      const stone = this.tombstones.get(k)
      if (stone === undefined || stone < ts) this.tombstones.set(k, ts)
      for (const [rk, r] of rows) {
        if (JSON.stringify(Object.values(r.partition)) === pkText && r.ts <= ts) rows.delete(rk)
      }
      return {}
    }
    // SELECT DISTINCT pk FROM t WHERE token(pk) >= ? [AND token(pk) < ?]
    const lo = params[0] as bigint
    const hi = params[1] as bigint | undefined
    const seen = new Map<string, Record<string, unknown>>()
    for (const r of rows.values()) {
      const t = tokenOf(JSON.stringify(Object.values(r.partition)))
      if (t >= lo && (hi === undefined || t < hi)) seen.set(JSON.stringify(Object.values(r.partition)), r.partition)
    }
    // Paged by position (the last token returned), as Cassandra's paging state: deletes meanwhile skip nothing.
    const tokenOfRow = (p: Record<string, unknown>) => tokenOf(JSON.stringify(Object.values(p)))
    const all = [...seen.values()]
      .sort((a, b) => (tokenOfRow(a) < tokenOfRow(b) ? -1 : 1))
      .filter((p) => opts.pageState === undefined || tokenOfRow(p) > BigInt(opts.pageState))
    const size = opts.fetchSize ?? 5000
    const page = all.slice(0, size)
    return { rows: page, pageState: size < all.length ? String(tokenOfRow(page.at(-1)!)) : null }
  }
  async shutdown(): Promise<void> {}
  ids(table: string): string[] {
    return [...(this.rows.get(table)?.keys() ?? [])].sort()
  }
}

const ts = (lsn: number) => STREAMED_BAND + BigInt(lsn)

describe('TRUNCATE statements', () => {
  it('scans distinct partition keys by token range and deletes each partition at the write timestamp', () => {
    const orders = targetOfSpec(TABLES.orders)
    const byUser = targetOfSpec(TABLES.orders_by_user)
    expect(scanCql('ks', orders, false)).toBe(
      'SELECT DISTINCT id FROM ks.orders WHERE token(id) >= ? AND token(id) < ?',
    )
    expect(scanCql('ks', byUser, true)).toBe('SELECT DISTINCT user_id FROM ks.orders_by_user WHERE token(user_id) >= ?')
    expect(deletePartitionCql('ks', byUser)).toBe('DELETE FROM ks.orders_by_user USING TIMESTAMP ? WHERE user_id = ?')
    const col = (name: string, typname: string): CatalogColumn => ({
      name,
      notNull: true,
      type: { typname, typmod: -1, isArray: false, elemTypname: null, display: typname },
    })
    const derived = targetOfDerived(deriveTable('shop', 'x', [col('a', 'int4'), col('B', 'text')], ['a', 'B']))
    expect(scanCql('ks', derived, false)).toBe(
      'SELECT DISTINCT "a", "B" FROM ks."shop_x" WHERE token("a", "B") >= ? AND token("a", "B") < ?',
    )
    expect(deletePartitionCql('ks', derived)).toBe(
      'DELETE FROM ks."shop_x" USING TIMESTAMP ? WHERE "a" = ? AND "B" = ?',
    )
    const bounds = tokenBounds(4)
    expect(bounds).toEqual([-(1n << 63n), -(1n << 62n), 0n, 1n << 62n])
  })
})

describe('TRUNCATE applied (--on-truncate apply, the default)', () => {
  it('deletes every row written before it and keeps those after it, in orders and orders_by_user', async () => {
    const fake = new TimestampedCassandra()
    const sink = new CassandraBatchSink(options, fake)
    const before = Array.from({ length: 50 }, (_, i) => orderMsg('c', 10 + i, O(i), i % 2 ? U1 : U2))
    expect((await sink.apply(before)).applied).toBe(50)
    expect(fake.ids('orders')).toHaveLength(50)
    // One batch: a change before the truncate, the truncate, changes after it (one of a key written before).
    const r = await sink.apply([
      orderMsg('c', 5000, O(9000)),
      truncateOrders(6000),
      orderMsg('c', 7000, O(9001), U2),
      orderMsg('u', 7001, O(3), U1),
    ])
    expect(r.outcomes.every((o) => o.status === 'ok')).toBe(true)
    expect(fake.ids('orders')).toEqual([JSON.stringify([O(3)]), JSON.stringify([O(9001)])].sort())
    expect(fake.ids('orders_by_user')).toEqual(
      [`${JSON.stringify([U1])}/${O(3)}`, `${JSON.stringify([U2])}/${O(9001)}`].sort(),
    )
    // Every delete carried the truncate's timestamp.
    expect(fake.tombstones.get(`orders ${JSON.stringify([O(9000)])}`)).toBe(ts(6000))
    // A change from before the truncate that arrives after it (another partition's lag) is dropped as stale.
    const late = await sink.apply([orderMsg('c', 5500, O(9002))])
    expect(late).toMatchObject({ applied: 0, stale: 1 })
    expect(fake.ids('orders')).toHaveLength(2)
    // Redelivered: deleting again at the same timestamp leaves the later rows.
    await sink.apply([truncateOrders(6000)])
    expect(fake.ids('orders')).toHaveLength(2)
    // users untouched.
    expect(fake.statements.some((q) => q.includes('ks.users'))).toBe(false)
  })

  it('pages each token range: every partition deleted once, a page at a time', async () => {
    const fake = new TimestampedCassandra()
    await new CassandraBatchSink(options, fake).apply(Array.from({ length: 40 }, (_, i) => orderMsg('c', 10 + i, O(i))))
    fake.statements = []
    const deleted = await applyTruncate(fake, 'ks', [targetOfSpec(TABLES.orders)], ts(100), 3, {
      parts: 2,
      fetchSize: 7,
    })
    expect(deleted).toEqual({ orders: 40 })
    expect(fake.ids('orders')).toEqual([])
    expect(fake.statements.filter((q) => q.startsWith('SELECT')).length).toBeGreaterThanOrEqual(6)
    expect(fake.statements.filter((q) => q.startsWith('DELETE'))).toHaveLength(40)
  })

  it('a write from before the truncate that Cassandra receives after it is shadowed; a later one wins', async () => {
    const fake = new TimestampedCassandra()
    await new CassandraBatchSink(options, fake).apply([orderMsg('c', 10, O(1))])
    // A fresh sink (another worker) truncates; the first one then writes changes of the same row, older and newer.
    await new CassandraBatchSink(options, fake).apply([truncateOrders(100)])
    const other = new CassandraBatchSink(options, fake)
    await other.apply([orderMsg('u', 50, O(1))])
    expect(fake.ids('orders')).toEqual([])
    await other.apply([orderMsg('u', 150, O(1))])
    expect(fake.ids('orders')).toEqual([JSON.stringify([O(1)])])
  })

  it('throws a retriable error when Cassandra fails mid-scan (the engine retries; nothing is committed)', async () => {
    const fake = new TimestampedCassandra()
    const sink = new CassandraBatchSink(options, fake)
    await sink.apply([orderMsg('c', 10, O(1)), orderMsg('c', 11, O(2))])
    fake.fail = (q) =>
      q.startsWith('DELETE FROM ks.orders_by_user')
        ? new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.writeTimeout, 'Operation timed out')
        : undefined
    const err = await sink.apply([truncateOrders(100)]).catch((e: unknown) => e)
    expect(isPipelineError(err)).toBe(true)
    expect((err as { retriable: boolean }).retriable).toBe(true)
    fake.fail = undefined
    const r = await sink.apply([truncateOrders(100)])
    expect(r.outcomes[0].status).toBe('ok')
    expect(fake.ids('orders')).toEqual([])
    expect(fake.ids('orders_by_user')).toEqual([])
  })

  it('dead-letters a truncate whose LSN is beyond PostgreSQL WAL position, deleting nothing', async () => {
    const fake = new TimestampedCassandra()
    const sink = new CassandraBatchSink(options, fake, async () => 1_000n)
    await sink.apply([orderMsg('c', 10, O(1))])
    const r = await sink.apply([truncateOrders(1 << 30)])
    expect(r.outcomes[0]).toMatchObject({ status: 'failed' })
    expect(fake.ids('orders')).toHaveLength(1)
  })

  it('applies a truncate of a table replicated with --tables (derived from the catalog)', async () => {
    const fake = new TimestampedCassandra()
    const col = (name: string, typname: string): CatalogColumn => ({
      name,
      notNull: true,
      type: { typname, typmod: -1, isArray: false, elemTypname: null, display: typname },
    })
    const items = deriveTable('public', 'items', [col('id', 'int4'), col('v', 'text')], ['id'])
    const topic = 'cdc.public.items'
    const sink = new CassandraBatchSink({ ...options, derived: { [topic]: items } }, fake)
    const item = (op: string, lsn: number, id: number) =>
      msg(topic, 'items', op, lsn, op === 't' ? null : { id, v: 'x' }, op === 't' ? null : { id })
    await sink.apply([item('c', 10, 1), item('c', 11, 2)])
    expect(fake.ids('"items"')).toHaveLength(2)
    const r = await sink.apply([item('t', 20, 0), item('c', 30, 3)])
    expect(r.outcomes.every((o) => o.status === 'ok')).toBe(true)
    expect(fake.ids('"items"')).toEqual(['[3]'])
  })
})

describe('--on-truncate', () => {
  it('is a replicate setting, apply by default, dlq on request, anything else refused', () => {
    const row = settingsOf('replicate').find((s) => s.flag === 'on-truncate')
    expect(row).toMatchObject({ env: 'ON_TRUNCATE', default: 'apply' })
    expect(readSettings('replicate', {}, {})(row!)).toBe('apply')
    expect(readSettings('replicate', { 'on-truncate': 'dlq' }, {})(row!)).toBe('dlq')
    expect(readSettings('replicate', {}, { ON_TRUNCATE: 'dlq' })(row!)).toBe('dlq')
    expect(() => readSettings('replicate', { 'on-truncate': 'ignore' }, {})(row!)).toThrow(/--on-truncate/)
  })
})

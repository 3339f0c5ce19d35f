// Issue 11, item 9, against the real PostgreSQL: the upserts move a row at most MAX_VERSION_JUMP versions ahead, so a
// hostile version of 2^53 - 1 is reported (and dead-lettered by the batch sink) instead of freezing the row.
import { randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import type { OrderEvent, UserEvent } from '../internal/model/index.js'
import { PostgresSink } from '../internal/sinks/postgres/index.js'
import { pgOwnerUrl, pgUrl, psql } from './helpers.js'

const at = '2026-01-01T00:00:00.000Z'
const user = (id: string, version: number, name: string): UserEvent => ({
  event_id: randomUUID(),
  schema_version: 1,
  event_type: version === 1 ? 'CREATE' : 'UPDATE',
  version,
  occurred_at: at,
  user_id: id,
  name,
  dob: '1990-01-01',
  created_at: at,
  modified_at: at,
  is_deleted: false,
})
const order = (id: string, userId: string, version: number): OrderEvent => ({
  event_id: randomUUID(),
  schema_version: 1,
  event_type: version === 1 ? 'CREATE' : 'UPDATE',
  version,
  occurred_at: at,
  order_id: id,
  order_status: version === 1 ? 'PLACED' : 'SHIPPED',
  user_id: userId,
  quantity: 1,
  order_total: 5,
  placed_at: at,
  modified_at: at,
  is_deleted: false,
})

describe('PostgreSQL upserts: a version too far ahead never freezes a row', () => {
  const sink = new PostgresSink({ connectionString: pgUrl })
  const users: string[] = []
  afterAll(async () => {
    await sink.close()
    if (users.length > 0) {
      const ids = users.map((u) => `'${u}'`).join(',')
      await psql(`DELETE FROM orders WHERE user_id IN (${ids}); DELETE FROM users WHERE id IN (${ids})`, pgOwnerUrl)
    }
  })

  it('users: rejects 2^53 - 1 on an existing row and on a new one; the row moves on afterwards', async () => {
    const [u1, u2] = [randomUUID(), randomUUID()]
    users.push(u1, u2)
    expect((await sink.writeBatch('user', [user(u1, 1, 'v1')])).applied).toBe(1)
    const hostile = user(u1, Number.MAX_SAFE_INTEGER, 'hostile')
    const fresh = user(u2, Number.MAX_SAFE_INTEGER, 'hostile new')
    const r = await sink.writeBatch('user', [hostile, fresh])
    expect(r).toMatchObject({ applied: 0, stale: 0 })
    expect(r.rejected?.map((x) => [x.event.user_id, x.error.code])).toEqual(
      [
        [u1, 'VALIDATION_ERROR'],
        [u2, 'VALIDATION_ERROR'],
      ].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    )
    expect(await psql(`SELECT name || ':' || version FROM users WHERE id IN ('${u1}', '${u2}')`)).toBe('v1:1')
    // The next genuine event still applies; a replay is stale, not rejected.
    expect((await sink.writeBatch('user', [user(u1, 2, 'v2')])).applied).toBe(1)
    const replay = await sink.writeBatch('user', [user(u1, 2, 'v2')])
    expect(replay).toMatchObject({ applied: 0, stale: 1 })
    expect(replay.rejected).toBeUndefined()
    // At the bound exactly: written.
    expect((await sink.writeBatch('user', [user(u1, 1_000_002, 'far')])).applied).toBe(1)
  })

  it('orders: rejects a version too far ahead, tells it from a missing user', async () => {
    const u = randomUUID()
    users.push(u)
    await sink.writeBatch('user', [user(u, 1, 'owner')])
    const [o1, o2, o3] = [randomUUID(), randomUUID(), randomUUID()]
    expect((await sink.writeBatch('order', [order(o1, u, 1)])).applied).toBe(1)
    const r = await sink.writeBatch('order', [
      order(o1, u, Number.MAX_SAFE_INTEGER),
      order(o2, u, 1_000_001),
      order(o3, randomUUID(), 1),
    ])
    expect(r.applied).toBe(0)
    expect(r.rejected?.map((x) => x.event.order_id).sort()).toEqual([o1, o2].sort())
    expect(r.missingRefs.map((e) => e.order_id)).toEqual([o3])
    expect(await psql(`SELECT version FROM orders WHERE id = '${o1}'`)).toBe('1')
    expect((await sink.writeBatch('order', [order(o1, u, 2)])).applied).toBe(1)
  })
})

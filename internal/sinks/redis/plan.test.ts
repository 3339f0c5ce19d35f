import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../../errors/index.js'
import type { CdcRow, RowChange } from '../../model/index.js'
import { STREAMED_BAND } from '../cassandra/write-timestamp.js'
import { parseCacheTopics } from './options.js'
import { listNameOf, planChange, rowJson, versionOf } from './plan.js'
import { scriptArgs } from './script.js'
import { ORDER, USER, PRODUCT } from '../../model/index.js'

const O1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
const U1 = '11111111-1111-4111-8111-111111111111'
const U2 = '22222222-2222-4222-8222-222222222222'

const order = (userId: string, version: number): CdcRow => ({
  id: O1,
  status: 'PLACED',
  user_id: userId,
  quantity: 2,
  total_amount: '12.50',
  placed_at: '2025-01-01T00:00:01Z',
  modified_at: '2025-01-01T00:00:02Z',
  is_deleted: false,
  version,
  last_event_id: null,
})

function change(
  op: RowChange['op'],
  before: CdcRow | null,
  after: CdcRow | null,
  lsn: bigint | null,
  id = O1,
): RowChange {
  return {
    kind: 'row',
    op,
    before,
    after,
    key: { id },
    source: { lsn, txId: 1n, tsMs: 1, snapshot: op === 'r', db: 'cdc_db', schema: 'public', table: 'orders' },
    emittedAtMs: 1,
  }
}

describe('the cache plan of a change', () => {
  it('versions a streamed change above every snapshot row, as the Cassandra sink orders writes, in 20 digits', () => {
    const streamed = versionOf(change('u', null, null, 5n))
    const snapshot = versionOf(change('r', null, null, 1_000_000n))
    expect(streamed).toBe((STREAMED_BAND + 5n).toString().padStart(20, '0'))
    expect(snapshot).toBe('00000000000001000000')
    expect(streamed.length).toBe(20)
    expect(snapshot < streamed).toBe(true)
    // Compared as strings, in Lua: the order of the numbers.
    expect(versionOf(change('u', null, null, 9n)) < versionOf(change('u', null, null, 10n))).toBe(true)
  })

  it('versions an incremental-snapshot row in the streamed band at its last commit LSN, as the Cassandra sink does', () => {
    const row = change('r', null, order(U1, 1), 700n)
    row.source = { ...row.source, incremental: true, sequence: [700n, null] }
    expect(versionOf(row)).toBe((STREAMED_BAND + 700n).toString().padStart(20, '0'))
    expect(versionOf(row) > versionOf(change('u', null, null, 699n))).toBe(true)
    expect(versionOf(row) < versionOf(change('u', null, null, 701n))).toBe(true)
    expect(versionOf(change('r', null, null, 700n))).toBe('00000000000000000700')
  })

  it('refuses a change without an LSN, without an id, or keyed by another row', () => {
    expect(() => planChange('orders', change('c', null, order(U1, 1), null), 'invalidate')).toThrow(/no source.lsn/)
    const noId = change('c', null, { ...order(U1, 1), id: null }, 1n)
    noId.key = null
    expect(() => planChange('orders', noId, 'invalidate')).toThrow(/no primary key id/)
    const other = change('c', null, order(U1, 1), 1n, U2)
    expect(() => planChange('orders', other, 'invalidate')).toThrow(
      expect.objectContaining({
        code: ErrorCodes.VALIDATION_ERROR,
        message: expect.stringMatching(/not the row's id/),
      }),
    )
  })

  it('invalidate mode: an insert invalidates the row and its user list', () => {
    const p = planChange('orders', change('c', null, order(U1, 1), 100n), 'invalidate')
    expect(p).toMatchObject({
      key: `cdc:orders:${O1}`,
      action: 'invalidate',
      list: 'user-orders',
      ref: U1,
      listIds: [U1],
    })
    expect(p.row).toBeUndefined()
  })

  it('refresh mode: an update writes the after-image as JSON', () => {
    const p = planChange('orders', change('u', order(U1, 1), order(U1, 2), 100n), 'refresh')
    expect(p.action).toBe('set')
    expect(JSON.parse(p.row!)).toEqual(order(U1, 2))
  })

  it('an order moved to another user touches both users lists', () => {
    const p = planChange('orders', change('u', order(U1, 1), order(U2, 2), 100n), 'invalidate')
    expect(p.listIds).toEqual([U1, U2].sort())
    expect(p.ref).toBe(U2)
    const { keys, arguments: args } = scriptArgs(p, 60_000, 'cdc:invalidations')
    expect(keys).toEqual([
      `cdc:orders:${O1}`,
      'cdc:~truncated:orders',
      `cdc:user-orders:${U1}`,
      `cdc:user-orders:${U2}`,
    ])
    expect(args.slice(0, 10)).toEqual([
      p.version,
      'invalidate',
      '',
      '60000',
      'cdc:invalidations',
      'orders',
      O1,
      U2,
      'cdc:user-orders:',
      'user-orders',
    ])
    expect(args.slice(10)).toEqual([U1, U2])
  })

  it('a delete leaves a tombstone in both modes and invalidates its user list, keeping no parent', () => {
    for (const mode of ['invalidate', 'refresh'] as const) {
      const p = planChange('orders', change('d', order(U1, 2), null, 100n), mode)
      expect(p).toMatchObject({ action: 'delete', ref: '', listIds: [U1] })
      expect(p.warning).toBeUndefined()
    }
  })

  it('warns when an update has no before-image (REPLICA IDENTITY DEFAULT): the stored parent id is the fallback', () => {
    const p = planChange('orders', change('u', null, order(U2, 2), 100n), 'invalidate')
    expect(p.listIds).toEqual([U2])
    expect(p.warning).toMatch(/without a before-image.*REPLICA IDENTITY FULL/)
  })

  it('entities without a reference have no list', () => {
    expect(listNameOf(USER)).toBeUndefined()
    expect(listNameOf(PRODUCT)).toBeUndefined()
    expect(listNameOf(ORDER)).toBe('user-orders')
    const u = change('u', { id: U1, name: 'a' }, { id: U1, name: 'b', version: 2n ** 60n }, 7n, U1)
    const p = planChange('users', u, 'refresh')
    expect(p).toMatchObject({ key: `cdc:users:${U1}`, listIds: [], ref: '' })
    expect(p.list).toBeUndefined()
    expect(JSON.parse(p.row!)).toEqual({ id: U1, name: 'b', version: (2n ** 60n).toString() })
  })

  it('writes bigints as decimal strings and bytes as base64', () => {
    expect(rowJson({ a: 1n << 62n, b: new Uint8Array([1, 2]) })).toBe(`{"a":"${1n << 62n}","b":"AQI="}`)
  })

  it('maps change topics to tables with an entity definition only', () => {
    expect(parseCacheTopics(['cdc.public.users', 'x=orders'])).toEqual({ 'cdc.public.users': 'users', x: 'orders' })
    expect(() => parseCacheTopics(['cdc.public.inventory'])).toThrow(/entity definition/)
  })
})

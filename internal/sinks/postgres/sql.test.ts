import { describe, expect, it } from 'vitest'

import { ORDER, PRODUCT, USER, type OrderEvent, type ProductEvent, type UserEvent } from '../../model/index.js'
import { buildExistingQuery, buildLockParentsQuery, buildUpsert, reduceBatch, type Statement } from './index.js'
import { booleanArray, plainArray, textArray } from './sql.js'

// The definitions' statements under the names these checks were written with.
const buildUserUpsert = (events: readonly UserEvent[]): Statement => buildUpsert(USER, events)
const buildOrderUpsert = (events: readonly OrderEvent[]): Statement => buildUpsert(ORDER, events)
const reduceUsers = (events: readonly UserEvent[]): UserEvent[] => reduceBatch(USER, events)
const reduceOrders = (events: readonly OrderEvent[]): OrderEvent[] => reduceBatch(ORDER, events)
const buildExistingOrdersQuery = (ids: readonly string[]): Statement => buildExistingQuery(ORDER, ids)
const buildLockUsersQuery = (ids: readonly string[]): Statement => buildLockParentsQuery(USER, ids)

const U1 = '11111111-1111-4111-8111-111111111111'
const U2 = '22222222-2222-4222-8222-222222222222'
const O1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
const O2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'

function user(id: string, version: number, name: string, deleted = false): UserEvent {
  return {
    event_id: `e-${id.slice(0, 2)}-${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : deleted ? 'DELETE' : 'UPDATE',
    version,
    occurred_at: `2025-01-01T00:00:0${version}.000Z`,
    user_id: id,
    name,
    dob: '1990-01-02',
    created_at: '2025-01-01T00:00:01.000Z',
    modified_at: `2025-01-01T00:00:0${version}.000Z`,
    is_deleted: deleted,
  }
}

function order(id: string, version: number, patch: Partial<OrderEvent> = {}): OrderEvent {
  return {
    event_id: `e-${id.slice(0, 2)}-${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'UPDATE',
    version,
    occurred_at: `2025-01-01T00:00:0${version}.000Z`,
    order_id: id,
    order_status: 'PLACED',
    user_id: U1,
    quantity: 2,
    order_total: 19.9,
    placed_at: '2025-01-01T00:00:01.000Z',
    modified_at: `2025-01-01T00:00:0${version}.000Z`,
    is_deleted: false,
    ...patch,
  }
}

describe('reduceUsers', () => {
  it('keeps the highest version per id, whatever the order in the batch, sorted by id', () => {
    const reduced = reduceUsers([user(U2, 1, 'b'), user(U1, 2, 'a2'), user(U1, 3, 'a3'), user(U1, 1, 'a1')])
    expect(reduced.map((e) => [e.user_id, e.version, e.name])).toEqual([
      [U1, 3, 'a3'],
      [U2, 1, 'b'],
    ])
  })

  it('returns an empty list for an empty batch', () => {
    expect(reduceUsers([])).toEqual([])
  })
})

describe('reduceOrders', () => {
  it('keeps the highest version per id', () => {
    const reduced = reduceOrders([order(O2, 1), order(O1, 1), order(O1, 2, { order_status: 'SHIPPED' })])
    expect(reduced.map((e) => [e.order_id, e.version, e.order_status])).toEqual([
      [O1, 2, 'SHIPPED'],
      [O2, 1, 'PLACED'],
    ])
  })

  it('keeps is_deleted sticky and modified_at at the maximum across the folded events', () => {
    const deleted = order(O1, 2, {
      event_type: 'DELETE',
      order_status: 'CANCELLED',
      is_deleted: true,
      modified_at: '2025-01-01T00:00:09.000Z',
    })
    const later = order(O1, 3, { order_status: 'SHIPPED', modified_at: '2025-01-01T00:00:05.000Z' })
    const [reduced] = reduceOrders([order(O1, 1), deleted, later])
    expect(reduced).toMatchObject({
      version: 3,
      order_status: 'SHIPPED',
      is_deleted: true,
      modified_at: '2025-01-01T00:00:09.000Z',
      event_id: later.event_id,
    })
  })

  it('returns the event itself when nothing needs merging', () => {
    const e = order(O1, 2)
    expect(reduceOrders([order(O1, 1), e])[0]).toBe(e)
  })
})

describe('buildUserUpsert', () => {
  it('uses unnest of typed arrays and only moves rows forward', () => {
    const stmt = buildUserUpsert([user(U1, 2, "O'Brien", false), user(U2, 3, 'Zoë', true)])
    expect(stmt.name).toMatch(/^cdc_upsert_users/)
    expect(stmt.text).toContain(
      'unnest($1::uuid[], $2::text[], $3::date[], $4::timestamptz[], $5::timestamptz[], $6::boolean[]',
    )
    expect(stmt.text).toContain('$7::bigint[], $8::uuid[]')
    expect(stmt.text).toContain('ON CONFLICT (id) DO UPDATE SET')
    expect(stmt.text).toContain('WHERE users.version < EXCLUDED.version')
    expect(stmt.text).toMatch(/RETURNING id$/)
    expect(stmt.values).toEqual([
      `{${U1},${U2}}`,
      `{"O'Brien","Zoë"}`,
      '{1990-01-02,1990-01-02}',
      '{2025-01-01T00:00:01.000Z,2025-01-01T00:00:01.000Z}',
      '{2025-01-01T00:00:02.000Z,2025-01-01T00:00:03.000Z}',
      '{f,t}',
      '{2,3}',
      '{e-11-2,e-22-3}',
    ])
  })

  it('has a constant text whatever the batch size', () => {
    expect(buildUserUpsert([user(U1, 1, 'a')]).text).toBe(buildUserUpsert([user(U1, 1, 'a'), user(U2, 1, 'b')]).text)
  })
})

describe('buildOrderUpsert', () => {
  it('joins users, derives deletion from the user and keeps is_deleted sticky', () => {
    const stmt = buildOrderUpsert([order(O1, 1), order(O2, 4, { order_total: 0.1, user_id: U2 })])
    expect(stmt.name).toMatch(/^cdc_upsert_orders/)
    expect(stmt.text).toContain('JOIN users u ON u.id = v.user_id')
    expect(stmt.text).toContain('GREATEST(v.modified_at, CASE WHEN u.is_deleted THEN u.modified_at END)')
    expect(stmt.text).toContain('v.is_deleted OR u.is_deleted')
    expect(stmt.text).toContain('is_deleted = orders.is_deleted OR EXCLUDED.is_deleted')
    expect(stmt.text).toContain('modified_at = GREATEST(orders.modified_at, EXCLUDED.modified_at)')
    expect(stmt.text).toContain('WHERE orders.version < EXCLUDED.version')
    expect(stmt.text).toMatch(/RETURNING id$/)
    expect(stmt.values).toEqual([
      `{${O1},${O2}}`,
      '{PLACED,PLACED}',
      `{${U1},${U2}}`,
      '{2,2}',
      '{19.9,0.1}',
      '{2025-01-01T00:00:01.000Z,2025-01-01T00:00:01.000Z}',
      '{2025-01-01T00:00:01.000Z,2025-01-01T00:00:04.000Z}',
      '{f,f}',
      '{1,4}',
      '{e-aa-1,e-bb-4}',
    ])
  })

  it('asks for existing versions with one array parameter', () => {
    expect(buildExistingOrdersQuery([O1, O2])).toEqual({
      name: expect.stringMatching(/^cdc_existing_orders/),
      text: 'SELECT id, version FROM orders WHERE id = ANY($1::uuid[])',
      values: [`{${O1},${O2}}`],
    })
  })
})

describe('buildLockUsersQuery', () => {
  it("share-locks each referenced user once, in id order (the users upsert's order)", () => {
    const b = 'bbbbbbbb-0000-4000-8000-000000000000'
    const a = 'aaaaaaaa-0000-4000-8000-000000000000'
    const q = buildLockUsersQuery([b, a, b])
    expect(q.name).toBe('cdc_lock_users_v1')
    expect(q.text).toMatch(/ORDER BY id FOR SHARE$/)
    expect(q.values).toEqual([`{${a},${b}}`])
  })
})

describe('array literals', () => {
  it('quotes free text and escapes only " and \\', () => {
    expect(textArray(['plain', 'a "quoted" name', 'back\\slash', '', 'comma, {brace}', 'NULL'])).toBe(
      '{"plain","a \\"quoted\\" name","back\\\\slash","","comma, {brace}","NULL"}',
    )
  })

  it('joins values that need no quoting', () => {
    expect(plainArray([])).toBe('{}')
    expect(plainArray([1, 2])).toBe('{1,2}')
    expect(booleanArray([true, false])).toBe('{t,f}')
  })
})

describe('products: the upsert from the definition', () => {
  const P1 = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc'
  const P2 = 'dddddddd-dddd-4ddd-8ddd-dddddddddddd'
  const product = (id: string, version: number, over: Partial<ProductEvent> = {}): ProductEvent => ({
    event_id: `e-${id.slice(0, 2)}-${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'UPDATE',
    version,
    occurred_at: `2025-01-01T00:00:0${version}.000Z`,
    product_id: id,
    name: 'Tea "pot"',
    category: 'kitchen',
    price: 19.9,
    stock: 3,
    created_at: '2025-01-01T00:00:01.000Z',
    modified_at: `2025-01-01T00:00:0${version}.000Z`,
    is_deleted: false,
    ...over,
  })

  it('writes every column as a typed array, without a join, keeping is_deleted sticky and modified_at greatest', () => {
    const stmt = buildUpsert(PRODUCT, [product(P1, 1), product(P2, 2, { price: 0.1, stock: 0, is_deleted: true })])
    expect(stmt.name).toBe('cdc_upsert_products_v1')
    expect(stmt.text).toContain(
      'INSERT INTO products (id, name, category, price, stock, created_at, modified_at, is_deleted, version, last_event_id)',
    )
    expect(stmt.text).toContain(
      'unnest($1::uuid[], $2::text[], $3::text[], $4::numeric[], $5::int[], $6::timestamptz[], $7::timestamptz[], ' +
        '$8::boolean[], $9::bigint[], $10::uuid[])',
    )
    expect(stmt.text).not.toContain('JOIN')
    expect(stmt.text).toContain('SELECT v.*')
    expect(stmt.text).toContain('is_deleted = products.is_deleted OR EXCLUDED.is_deleted')
    expect(stmt.text).toContain('modified_at = GREATEST(products.modified_at, EXCLUDED.modified_at)')
    expect(stmt.text).toContain('price = EXCLUDED.price')
    expect(stmt.text).toMatch(
      /WHERE products\.version < EXCLUDED\.version AND EXCLUDED\.version <= products\.version \+ 1000000\nRETURNING id$/,
    )
    expect(stmt.values).toEqual([
      `{${P1},${P2}}`,
      '{"Tea \\"pot\\"","Tea \\"pot\\""}',
      '{"kitchen","kitchen"}',
      '{19.9,0.1}',
      '{3,0}',
      '{2025-01-01T00:00:01.000Z,2025-01-01T00:00:01.000Z}',
      '{2025-01-01T00:00:01.000Z,2025-01-01T00:00:02.000Z}',
      '{f,t}',
      '{1,2}',
      '{e-cc-1,e-dd-2}',
    ])
  })

  it('reduces a batch per id: the highest version, is_deleted ORed, modified_at the greatest', () => {
    const deleted = product(P1, 2, { is_deleted: true, modified_at: '2025-01-01T00:00:09.000Z' })
    const [kept] = reduceBatch(PRODUCT, [product(P1, 1), deleted, product(P1, 3, { stock: 9 })])
    expect(kept).toMatchObject({ version: 3, stock: 9, is_deleted: true, modified_at: '2025-01-01T00:00:09.000Z' })
  })

  it('asks for existing versions of products', () => {
    expect(buildExistingQuery(PRODUCT, [P1]).text).toBe('SELECT id, version FROM products WHERE id = ANY($1::uuid[])')
  })
})

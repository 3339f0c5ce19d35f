import { describe, expect, it } from 'vitest'

import { ExpectedStateBuilder, applyEvents, type EventType, type OrderEvent, type UserEvent } from './index.js'

const U = '00000000-0000-4000-8000-00000000000'
const O = '00000000-0000-4000-9000-00000000000'
let seq = 0

function ts(minute: number): string {
  return new Date(Date.UTC(2025, 0, 1, 0, minute)).toISOString()
}

function userEvent(n: number, type: EventType, version: number, minute: number, name = `user ${n}`): UserEvent {
  return {
    event_id: `e-${++seq}`,
    schema_version: 1,
    event_type: type,
    version,
    occurred_at: ts(minute),
    user_id: `${U}${n}`,
    name,
    dob: '1990-01-01',
    created_at: ts(0),
    modified_at: ts(minute),
    is_deleted: type === 'DELETE',
  }
}

function orderEvent(
  n: number,
  user: number,
  type: EventType,
  version: number,
  minute: number,
  status: OrderEvent['order_status'] = type === 'DELETE' ? 'CANCELLED' : 'PLACED',
): OrderEvent {
  return {
    event_id: `e-${++seq}`,
    schema_version: 1,
    event_type: type,
    version,
    occurred_at: ts(minute),
    order_id: `${O}${n}`,
    order_status: status,
    user_id: `${U}${user}`,
    quantity: 2,
    order_total: 10.5,
    placed_at: ts(1),
    modified_at: ts(minute),
    is_deleted: type === 'DELETE',
  }
}

describe('applyEvents', () => {
  it('takes the fields of the highest version and ignores stale or replayed events', () => {
    const create = userEvent(1, 'CREATE', 1, 1, 'first')
    const rename = userEvent(1, 'UPDATE', 2, 2, 'second')
    const state = applyEvents([create, rename, create, { ...rename, name: 'replayed' }])
    expect(state.users.get(`${U}1`)).toEqual({
      id: `${U}1`,
      name: 'second',
      dob: '1990-01-01',
      created_at: ts(0),
      modified_at: ts(2),
      is_deleted: false,
      version: 2,
      last_event_id: rename.event_id,
    })
  })

  it('does not let a late lower version move a row back', () => {
    const state = applyEvents([userEvent(1, 'UPDATE', 3, 3, 'new'), userEvent(1, 'UPDATE', 2, 2, 'old')])
    expect(state.users.get(`${U}1`)?.name).toBe('new')
  })

  it('builds orders from their latest event', () => {
    const state = applyEvents([
      userEvent(1, 'CREATE', 1, 1),
      orderEvent(1, 1, 'CREATE', 1, 2),
      orderEvent(1, 1, 'UPDATE', 2, 3, 'SHIPPED'),
    ])
    expect(state.orders.get(`${O}1`)).toMatchObject({
      status: 'SHIPPED',
      user_id: `${U}1`,
      quantity: 2,
      total_amount: 10.5,
      placed_at: ts(1),
      modified_at: ts(3),
      is_deleted: false,
      version: 2,
    })
  })

  it('keeps an order deleted once a DELETE applied, even if a higher version says otherwise', () => {
    const state = applyEvents([
      userEvent(1, 'CREATE', 1, 1),
      orderEvent(1, 1, 'DELETE', 2, 3),
      orderEvent(1, 1, 'UPDATE', 3, 4, 'SHIPPED'),
    ])
    expect(state.orders.get(`${O}1`)).toMatchObject({ status: 'SHIPPED', is_deleted: true, version: 3 })
  })

  it("marks a deleted user's orders deleted with the user's modified_at when later", () => {
    const state = applyEvents([
      userEvent(1, 'CREATE', 1, 1),
      orderEvent(1, 1, 'CREATE', 1, 2),
      orderEvent(2, 1, 'CREATE', 1, 3),
      orderEvent(2, 1, 'DELETE', 2, 4),
      userEvent(1, 'DELETE', 2, 5),
    ])
    expect(state.users.get(`${U}1`)?.is_deleted).toBe(true)
    expect(state.orders.get(`${O}1`)).toMatchObject({ status: 'PLACED', is_deleted: true, modified_at: ts(5) })
    expect(state.orders.get(`${O}2`)).toMatchObject({ status: 'CANCELLED', is_deleted: true, modified_at: ts(5) })
  })

  it("keeps the order's modified_at when it is later than the user's deletion", () => {
    const state = applyEvents([
      userEvent(1, 'CREATE', 1, 1),
      userEvent(1, 'DELETE', 2, 5),
      orderEvent(1, 1, 'CREATE', 1, 9),
    ])
    expect(state.orders.get(`${O}1`)).toMatchObject({ is_deleted: true, modified_at: ts(9) })
  })

  it('leaves out orders whose user never exists and reports them', () => {
    const state = applyEvents([orderEvent(1, 7, 'CREATE', 1, 1)])
    expect(state.orders.size).toBe(0)
    expect([...state.orphanOrderIds]).toEqual([`${O}1`])
  })

  it('does not depend on where a user appears relative to its orders', () => {
    const state = applyEvents([orderEvent(1, 1, 'CREATE', 1, 2), userEvent(1, 'CREATE', 1, 1)])
    expect(state.orders.has(`${O}1`)).toBe(true)
  })

  it('reports stale events from the builder', () => {
    const b = new ExpectedStateBuilder()
    expect(b.apply(userEvent(1, 'CREATE', 1, 1))).toBe(true)
    expect(b.apply(userEvent(1, 'CREATE', 1, 1))).toBe(false)
  })
})

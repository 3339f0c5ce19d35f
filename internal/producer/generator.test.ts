import { describe, expect, it } from 'vitest'

import {
  applyEvents,
  decodeEvent,
  encodeEvent,
  type OrderEvent,
  type ProductEvent,
  type UserEvent,
} from '../model/index.js'
import { EventGenerator, type GeneratedEvent } from './index.js'

const FIXED = new Date('2025-03-01T08:00:00.000Z')
const fixedClock = (): Date => FIXED

// A clock that ticks 1 ms per reading, so timestamps differ and ordering checks mean something.
function tickingClock(): () => Date {
  let ms = FIXED.getTime()
  return () => new Date(ms++)
}

describe('EventGenerator determinism', () => {
  it('gives identical events for the same seed and clock', () => {
    const a = new EventGenerator({ seed: 7, clock: fixedClock }).take(10_000)
    const b = new EventGenerator({ seed: 7, clock: fixedClock }).take(10_000)
    expect(b).toEqual(a)
  })

  it('gives different events for a different seed', () => {
    const a = new EventGenerator({ seed: 7, clock: fixedClock }).take(100)
    const b = new EventGenerator({ seed: 8, clock: fixedClock }).take(100)
    expect(b.map((e) => e.key)).not.toEqual(a.map((e) => e.key))
  })

  it('produces unique event ids', () => {
    const events = new EventGenerator({ seed: 1, clock: fixedClock }).take(20_000)
    expect(new Set(events.map((e) => e.event.event_id)).size).toBe(events.length)
  })
})

describe('EventGenerator consistency over 50k events', () => {
  const generated = new EventGenerator({ seed: 42, clock: tickingClock() }).take(50_000)

  it('keeps references, liveness and versions consistent', () => {
    const users = new Map<string, { version: number; deleted: boolean }>()
    const orders = new Map<string, { version: number; status: string; userId: string; terminal: boolean }>()
    const products = new Map<string, { version: number; deleted: boolean }>()
    for (const { entity, topic, key, event } of generated) {
      if (entity === 'product') {
        // Products stand alone: versions go up by one, nothing follows a DELETE.
        const e = event as ProductEvent
        expect(topic).toBe('products')
        expect(key).toBe(e.product_id)
        const known = products.get(e.product_id)
        if (e.event_type === 'CREATE') {
          expect(known).toBeUndefined()
          expect(e.version).toBe(1)
          products.set(e.product_id, { version: 1, deleted: false })
        } else {
          expect(known?.deleted).toBe(false)
          expect(e.version).toBe(known!.version + 1)
          known!.version = e.version
          known!.deleted = e.event_type === 'DELETE'
        }
        continue
      }
      if (entity === 'user') {
        const e = event as UserEvent
        expect(topic).toBe('users')
        expect(key).toBe(e.user_id)
        const known = users.get(e.user_id)
        if (e.event_type === 'CREATE') {
          expect(known).toBeUndefined()
          expect(e.version).toBe(1)
          users.set(e.user_id, { version: 1, deleted: false })
        } else {
          expect(known?.deleted).toBe(false)
          expect(e.version).toBe(known!.version + 1)
          known!.version = e.version
          known!.deleted = e.event_type === 'DELETE'
        }
      } else {
        const e = event as OrderEvent
        expect(topic).toBe('orders')
        expect(key).toBe(e.order_id)
        // Every order event points at a user created earlier and not deleted at that moment.
        expect(users.get(e.user_id)?.deleted).toBe(false)
        const known = orders.get(e.order_id)
        if (e.event_type === 'CREATE') {
          expect(known).toBeUndefined()
          expect(e.version).toBe(1)
          expect(e.order_status).toBe('PLACED')
          orders.set(e.order_id, { version: 1, status: 'PLACED', userId: e.user_id, terminal: false })
          continue
        }
        expect(known?.terminal).toBe(false)
        expect(e.user_id).toBe(known!.userId)
        expect(e.version).toBe(known!.version + 1)
        if (e.event_type === 'UPDATE') {
          expect(e.order_status).toBe(known!.status === 'PLACED' ? 'SHIPPED' : 'DELIVERED')
        } else {
          expect(['PLACED', 'SHIPPED']).toContain(known!.status)
          expect(e.order_status).toBe('CANCELLED')
          expect(e.is_deleted).toBe(true)
        }
        known!.version = e.version
        known!.status = e.order_status
        known!.terminal = e.order_status === 'DELIVERED' || e.order_status === 'CANCELLED'
      }
    }
  })

  it('honours the mix roughly and makes about one user per three orders', () => {
    const count = (pred: (g: GeneratedEvent) => boolean): number => generated.filter(pred).length
    const n = generated.length
    // Default mix 60/30/10; fallbacks to CREATE only nudge creates up.
    expect(count((g) => g.event.event_type === 'CREATE') / n).toBeGreaterThan(0.55)
    expect(count((g) => g.event.event_type === 'CREATE') / n).toBeLessThan(0.66)
    expect(count((g) => g.event.event_type === 'UPDATE') / n).toBeGreaterThan(0.25)
    expect(count((g) => g.event.event_type === 'DELETE') / n).toBeGreaterThan(0.07)
    const userCreates = count((g) => g.entity === 'user' && g.event.event_type === 'CREATE')
    const orderCreates = count((g) => g.entity === 'order' && g.event.event_type === 'CREATE')
    expect(orderCreates / userCreates).toBeGreaterThan(2.5)
    expect(orderCreates / userCreates).toBeLessThan(3.5)
  })

  it('leaves no order without its user in the expected state', () => {
    const state = applyEvents(generated.map((g) => g.event))
    expect(state.orphanOrderIds.size).toBe(0)
    expect(state.orders.size).toBe(generated.filter((g) => g.entity === 'order' && g.event.version === 1).length)
  })

  it('makes only events that pass decodeEvent', () => {
    for (const { entity, event } of generated) {
      expect(decodeEvent(entity, encodeEvent(event))).toEqual(event)
    }
  })

  it('keeps timestamps ordered per entity and dob in the past', () => {
    for (const { event } of generated) {
      if ('dob' in event) expect(event.dob < FIXED.toISOString().slice(0, 10)).toBe(true)
      expect(event.occurred_at).toBe(event.modified_at)
    }
  })
})

describe('EventGenerator mix and fallbacks', () => {
  it('makes a CREATE when nothing is eligible for an UPDATE/DELETE', () => {
    const events = new EventGenerator({ seed: 3, clock: fixedClock, mix: { create: 0, update: 1, delete: 0 } }).take(3)
    expect(events[0]!.entity).toBe('user')
    expect(events[0]!.event.event_type).toBe('CREATE')
  })

  it('with only creates, makes only creates', () => {
    const events = new EventGenerator({ seed: 3, clock: fixedClock, mix: { create: 1, update: 0, delete: 0 } }).take(
      1000,
    )
    expect(events.every((e) => e.event.event_type === 'CREATE')).toBe(true)
  })

  it('uses configured topics', () => {
    const g = new EventGenerator({ seed: 3, clock: fixedClock, topics: { user: 'u1', order: 'o1', product: 'p1' } })
    expect(new Set(g.take(200).map((e) => e.topic))).toEqual(new Set(['u1', 'o1', 'p1']))
  })

  it('rejects a bad mix', () => {
    expect(() => new EventGenerator({ seed: 1, mix: { create: 0, update: 0, delete: 0 } })).toThrow(
      'mix must have at least one positive weight',
    )
    expect(() => new EventGenerator({ seed: 1, mix: { create: -1, update: 1, delete: 0 } })).toThrow(
      'mix.create must be a non-negative number (got -1)',
    )
  })

  it('never lets timestamps go backwards when the clock does', () => {
    let ms = FIXED.getTime()
    const g = new EventGenerator({ seed: 5, clock: () => new Date((ms -= 1000)) })
    const events = g.take(500)
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.event.occurred_at >= events[i - 1]!.event.occurred_at).toBe(true)
    }
  })
})

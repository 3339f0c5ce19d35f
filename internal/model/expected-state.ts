import type { AnyEvent, OrderEvent, OrderStatus, UserEvent } from './events.js'
import { isOrderEvent } from './events.js'

/** A users row as PostgreSQL must hold it. */
export interface UserRow {
  id: string
  name: string
  dob: string
  created_at: string
  modified_at: string
  is_deleted: boolean
  version: number
  last_event_id: string
}

/** An orders row as PostgreSQL must hold it. */
export interface OrderRow {
  id: string
  status: OrderStatus
  user_id: string
  quantity: number
  total_amount: number
  placed_at: string
  modified_at: string
  is_deleted: boolean
  version: number
  last_event_id: string
}

/** What the tables must contain after a set of events, computed without SQL. */
export interface ExpectedState {
  users: Map<string, UserRow>
  orders: Map<string, OrderRow>
  /** Orders whose user never existed: they are not in the table, they end in the DLQ. */
  orphanOrderIds: Set<string>
}

interface OrderAccumulator {
  latest: OrderEvent
  // Sticky across versions, as `orders.is_deleted OR EXCLUDED.is_deleted` in the upsert.
  everDeleted: boolean
  // As GREATEST(orders.modified_at, EXCLUDED.modified_at) in the upsert.
  maxModifiedAt: string
}

function later(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a
}

/**
 * Folds events (in production order, one at a time, so a million need no list) into the expected table contents.
 * Mirrors the SQL: the highest version wins, lower or equal versions change nothing, an order's is_deleted is sticky
 * and also set by its user's deletion, whose modified_at then bumps the order's; orders without a user are left out.
 */
export class ExpectedStateBuilder {
  private readonly users = new Map<string, UserEvent>()
  private readonly orders = new Map<string, OrderAccumulator>()

  /** Applies one event; returns false when it is stale (version not above the stored one). */
  apply(event: AnyEvent): boolean {
    return isOrderEvent(event) ? this.applyOrder(event) : this.applyUser(event)
  }

  private applyUser(event: UserEvent): boolean {
    const stored = this.users.get(event.user_id)
    if (stored !== undefined && stored.version >= event.version) return false
    this.users.set(event.user_id, event)
    return true
  }

  private applyOrder(event: OrderEvent): boolean {
    const stored = this.orders.get(event.order_id)
    if (stored === undefined) {
      this.orders.set(event.order_id, {
        latest: event,
        everDeleted: event.is_deleted,
        maxModifiedAt: event.modified_at,
      })
      return true
    }
    if (stored.latest.version >= event.version) return false
    stored.latest = event
    stored.everDeleted ||= event.is_deleted
    stored.maxModifiedAt = later(stored.maxModifiedAt, event.modified_at)
    return true
  }

  /** The rows as they must be now. */
  result(): ExpectedState {
    const users = new Map<string, UserRow>()
    for (const [id, e] of this.users) {
      users.set(id, {
        id,
        name: e.name,
        dob: e.dob,
        created_at: e.created_at,
        modified_at: e.modified_at,
        is_deleted: e.is_deleted,
        version: e.version,
        last_event_id: e.event_id,
      })
    }
    const orders = new Map<string, OrderRow>()
    const orphanOrderIds = new Set<string>()
    for (const [id, acc] of this.orders) {
      const e = acc.latest
      const user = users.get(e.user_id)
      if (user === undefined) {
        orphanOrderIds.add(id)
        continue
      }
      orders.set(id, {
        id,
        status: e.order_status,
        user_id: e.user_id,
        quantity: e.quantity,
        total_amount: e.order_total,
        placed_at: e.placed_at,
        modified_at: user.is_deleted ? later(acc.maxModifiedAt, user.modified_at) : acc.maxModifiedAt,
        is_deleted: acc.everDeleted || user.is_deleted,
        version: e.version,
        last_event_id: e.event_id,
      })
    }
    return { users, orders, orphanOrderIds }
  }
}

/** The expected table contents after applying `events` in order. */
export function applyEvents(events: Iterable<AnyEvent>): ExpectedState {
  const builder = new ExpectedStateBuilder()
  for (const event of events) builder.apply(event)
  return builder.result()
}

/** The schema version every event carries; decoders reject others. */
export const SCHEMA_VERSION = 1

/** The operations an event reports. */
export const EVENT_TYPES = ['CREATE', 'UPDATE', 'DELETE'] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** Order statuses, as stored in orders.status. */
export const ORDER_STATUSES = ['PLACED', 'CANCELLED', 'SHIPPED', 'DELIVERED'] as const
export type OrderStatus = (typeof ORDER_STATUSES)[number]

/** The two entities the pipeline carries. */
export type Entity = 'user' | 'order'

/** Bounds enforced by the decoder, matching the PostgreSQL columns. */
export const LIMITS = {
  nameMaxChars: 50,
  quantityMin: 1,
  quantityMax: 10_000,
  // numeric(10, 2): below 10^8.
  orderTotalBelow: 100_000_000,
} as const

/** Fields every event has. Events are full-state snapshots, so every event is an upsert of its entity. */
export interface EventBase {
  /** uuid, unique per event. */
  event_id: string
  schema_version: typeof SCHEMA_VERSION
  event_type: EventType
  /** Per entity, strictly increasing: CREATE is 1, each later event +1. Rows never move to a lower version. */
  version: number
  /** ISO timestamp of the event's generation (end-to-end latency). */
  occurred_at: string
}

/** A user's full state after the operation. */
export interface UserEvent extends EventBase {
  user_id: string
  /** 1..50 characters. */
  name: string
  /** YYYY-MM-DD, not after the date of occurred_at anywhere on Earth (UTC+14). */
  dob: string
  created_at: string
  modified_at: string
  /** True exactly for DELETE (soft delete). */
  is_deleted: boolean
}

/** An order's full state after the operation. */
export interface OrderEvent extends EventBase {
  order_id: string
  order_status: OrderStatus
  user_id: string
  /** Integer 1..10000. */
  quantity: number
  /** >= 0, at most 2 decimals, < 10^8. */
  order_total: number
  placed_at: string
  modified_at: string
  /** True exactly for DELETE, which cancels the order. */
  is_deleted: boolean
}

/** Either event. */
export type AnyEvent = UserEvent | OrderEvent

/** The event type of an entity. */
export type EventOf<E extends Entity> = E extends 'user' ? UserEvent : OrderEvent

/** True for an order event (discriminates by the id field). */
export function isOrderEvent(event: AnyEvent): event is OrderEvent {
  return 'order_id' in event
}

/** The entity id an event is keyed by (Kafka key, primary key). */
export function entityIdOf(event: AnyEvent): string {
  return isOrderEvent(event) ? event.order_id : event.user_id
}

/** The schema version every event carries; decoders reject others. */
export const SCHEMA_VERSION = 1

/** The operations an event reports. */
export const EVENT_TYPES = ['CREATE', 'UPDATE', 'DELETE'] as const
export type EventType = (typeof EVENT_TYPES)[number]

/** Order statuses, as stored in orders.status. */
export const ORDER_STATUSES = ['PLACED', 'CANCELLED', 'SHIPPED', 'DELIVERED'] as const
export type OrderStatus = (typeof ORDER_STATUSES)[number]

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

/**
 * The event type of each entity, one entry per definition (entities/*.ts add theirs by declaration merging):
 * `EventOf<'user'>` is a lookup, never a conditional type.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface EntityEvents {}

/** The entities the pipeline carries (the registry in entities/ lists their definitions). */
export type Entity = keyof EntityEvents

/** The event type of an entity. */
export type EventOf<E extends Entity> = EntityEvents[E]

/** An event of any entity. */
export type AnyEvent = EntityEvents[Entity]

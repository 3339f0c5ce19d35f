import { LIMITS, ORDER_STATUSES, type AnyEvent, type EventBase, type OrderStatus } from '../events.js'
import type { EntitySpec } from './spec.js'

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

declare module '../events.js' {
  interface EntityEvents {
    order: OrderEvent
  }
}

/** True for an order event (discriminates by the id field). */
export function isOrderEvent(event: AnyEvent): event is OrderEvent {
  return 'order_id' in event
}

/**
 * orders: a user's order. It references its user (written only once the user is there), is cancelled by DELETE
 * (is_deleted sticky, modified_at never back), and is also kept in Cassandra under its user (orders_by_user).
 */
export const ORDER: EntitySpec = {
  entity: 'order',
  topic: 'orders',
  partitions: 5,
  keyField: 'order_id',
  table: 'orders',
  fields: [
    {
      field: 'order_status',
      column: 'status',
      rule: { kind: 'enum', values: ORDER_STATUSES },
      check: (status, ctx) => {
        if (ctx.eventType === 'CREATE' && status !== 'PLACED') ctx.fail('must be PLACED for CREATE')
        if (ctx.eventType === 'DELETE' && status !== 'CANCELLED') ctx.fail('must be CANCELLED for DELETE')
        if (ctx.eventType === 'UPDATE' && status === 'CANCELLED') {
          ctx.fail('must not be CANCELLED for UPDATE (cancelling is a DELETE)')
        }
      },
    },
    { field: 'user_id', column: 'user_id', rule: { kind: 'uuid' } },
    { field: 'quantity', column: 'quantity', rule: { kind: 'int', min: LIMITS.quantityMin, max: LIMITS.quantityMax } },
    {
      field: 'order_total',
      column: 'total_amount',
      rule: { kind: 'money', below: LIMITS.orderTotalBelow, precision: 10, scale: 2 },
    },
    { field: 'placed_at', column: 'placed_at', rule: { kind: 'timestamp' } },
    {
      field: 'modified_at',
      column: 'modified_at',
      rule: { kind: 'timestamp', notBefore: 'placed_at' },
      merge: 'greatest',
    },
    { field: 'is_deleted', column: 'is_deleted', rule: { kind: 'boolean', deletedFlag: true }, merge: 'sticky' },
  ],
  reference: { field: 'user_id', entity: 'user', cascadeDelete: true },
  // A user's orders in one partition: kept in step with orders by the sink (never by Cassandra).
  queryTables: [{ name: 'orders_by_user', partitionKey: ['user_id'], clusteringKey: ['id'] }],
}

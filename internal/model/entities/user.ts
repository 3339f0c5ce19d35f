import { LIMITS, type EventBase } from '../events.js'
import { LATEST_UTC_OFFSET_MS, parseDate } from '../values.js'
import type { EntitySpec } from './spec.js'

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

declare module '../events.js' {
  interface EntityEvents {
    user: UserEvent
  }
}

/** users: a person; their soft delete marks their orders (trigger users_soft_delete_cascade). */
export const USER: EntitySpec = {
  entity: 'user',
  topic: 'users',
  partitions: 3,
  keyField: 'user_id',
  table: 'users',
  fields: [
    { field: 'name', column: 'name', rule: { kind: 'text', maxChars: LIMITS.nameMaxChars } },
    {
      field: 'dob',
      column: 'dob',
      rule: { kind: 'date' },
      // Not in the future of the event itself: the day must have begun somewhere on Earth (UTC+14) at occurred_at.
      // The event's own time, not the consumer's clock: a consumer whose clock is behind would dead-letter valid
      // events for good, and a replay would judge the same event differently.
      check: (value, ctx) => {
        if (parseDate(value as string) > ctx.occurredMs + LATEST_UTC_OFFSET_MS) {
          ctx.fail('must not be after the date of occurred_at')
        }
      },
    },
    { field: 'created_at', column: 'created_at', rule: { kind: 'timestamp' } },
    { field: 'modified_at', column: 'modified_at', rule: { kind: 'timestamp', notBefore: 'created_at' } },
    { field: 'is_deleted', column: 'is_deleted', rule: { kind: 'boolean', deletedFlag: true } },
  ],
  queryTables: [],
}

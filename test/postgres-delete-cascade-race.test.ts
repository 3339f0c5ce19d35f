// Regression: an order inserted while its user's soft delete was committing stayed is_deleted = false. The orders
// upsert's JOIN saw the user still live, and the soft-delete trigger's UPDATE could not see the uncommitted order.
// Found by pipeline-exactness (about 70 of 22,000 orders wrong per 50,000 events); fixed by share-locking the users an
// orders batch refers to before the upsert (buildLockUsersQuery).
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { describe, expect, it, onTestFinished } from 'vitest'
import { USER, type OrderEvent, type UserEvent } from '../internal/model/index.js'
import { PostgresSink, buildUpsert } from '../internal/sinks/postgres/index.js'
import { pgOwnerUrl, pgUrl, psql, sleep } from './helpers.js'

const at = (ms: number) => new Date(Date.UTC(2025, 0, 1) + ms).toISOString()

function userEvent(id: string, version: number, modifiedMs: number): UserEvent {
  return {
    event_id: randomUUID(),
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'DELETE',
    version,
    occurred_at: at(modifiedMs),
    user_id: id,
    name: 'Race Condition',
    dob: '1990-01-01',
    created_at: at(0),
    modified_at: at(modifiedMs),
    is_deleted: version > 1,
  }
}

function orderCreate(id: string, userId: string, placedMs: number): OrderEvent {
  return {
    event_id: randomUUID(),
    schema_version: 1,
    event_type: 'CREATE',
    version: 1,
    occurred_at: at(placedMs),
    order_id: id,
    order_status: 'PLACED',
    user_id: userId,
    quantity: 2,
    order_total: 19.98,
    placed_at: at(placedMs),
    modified_at: at(placedMs),
    is_deleted: false,
  }
}

describe('PostgreSQL sink: soft-delete cascade under concurrency', () => {
  it("marks an order deleted when it is inserted while its user's deletion is still uncommitted", async () => {
    const userId = randomUUID()
    const orderId = randomUUID()
    const sink = new PostgresSink({ connectionString: pgUrl, poolSize: 1 })
    const dba = new pg.Client({ connectionString: pgUrl })
    await dba.connect()
    onTestFinished(async () => {
      await dba.query('ROLLBACK').catch(() => undefined)
      await dba.end()
      // As the owner: the runtime role may not delete.
      await psql(`DELETE FROM orders WHERE user_id = '${userId}'; DELETE FROM users WHERE id = '${userId}'`, pgOwnerUrl)
      await sink.close()
    })
    await sink.writeBatch('user', [userEvent(userId, 1, 0)])

    // The users partition's transaction: the user is deleted (the trigger runs now, finding no orders) but not
    // committed yet when the orders partition's transaction inserts an order of that user.
    await dba.query('BEGIN')
    await dba.query(buildUpsert(USER, [userEvent(userId, 2, 5_000)]))
    let written = false
    const orderWrite = sink.writeBatch('order', [orderCreate(orderId, userId, 1_000)]).then((r) => {
      written = true
      return r
    })
    await sleep(1_000)
    const writtenBeforeCommit = written
    await dba.query('COMMIT')
    const result = await orderWrite
    expect(result.applied).toBe(1)

    const { rows } = await dba.query<{ is_deleted: boolean; modified_at: Date; status: string }>(
      'SELECT is_deleted, modified_at, status FROM orders WHERE id = $1',
      [orderId],
    )
    expect(rows).toHaveLength(1)
    expect(rows[0]!.is_deleted).toBe(true)
    // Stamped with the user's deletion time, as the trigger would have done.
    expect(rows[0]!.modified_at.toISOString()).toBe(at(5_000))
    expect(rows[0]!.status).toBe('PLACED')
    // How: the order write waited for the user's transaction instead of racing it.
    expect(writtenBeforeCommit).toBe(false)
  })
})

import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { pgSuperUrl, psql } from './helpers.js'
import {
  STREAMED_BAND,
  cassandraClient,
  cassandraRows,
  deletePgRows,
  expectStoresEqual,
  prepareReplicateGroup,
  replicateArgs,
  start,
  summaryOf,
  uniqueName,
  waitForReplicated,
  writetime,
} from './cdc-helpers.js'

// A DBA at psql (the superuser), not the pipeline's role.
const dba = (sql: string) => psql(sql, pgSuperUrl)

describe('CDC -> Cassandra: changes a DBA makes by hand in psql', () => {
  it('INSERT, UPDATE (a rename, an order moved to another user), hard DELETE reach Cassandra and converge', async () => {
    const [ada, bob, cy] = [randomUUID(), randomUUID(), randomUUID()]
    const [o1, o2, o3] = [randomUUID(), randomUUID(), randomUUID()]
    onTestFinished(() => deletePgRows([ada, bob, cy], [o1, o2, o3]))
    const group = uniqueName('cdc-dba-replicate')
    await prepareReplicateGroup(group)
    const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '60']))

    await dba(
      `INSERT INTO users (id, name, dob, created_at, modified_at) VALUES ` +
        `('${ada}', 'Ada', '1955-03-04', now(), now()), ('${bob}', 'Bob', '1990-01-01', now(), now()), ` +
        `('${cy}', 'Cy', '1969-12-31', now(), NULL)`,
    )
    await dba(
      `INSERT INTO orders (id, status, user_id, quantity, total_amount, placed_at, modified_at) VALUES ` +
        `('${o1}', 'PLACED', '${ada}', 2, 19.99, now(), now()), ('${o2}', 'PLACED', '${ada}', 1, 0.05, now(), now()), ` +
        `('${o3}', 'SHIPPED', '${ada}', 3, 12345678.90, now(), now())`,
    )
    await dba(`UPDATE users SET name = 'Ada Lovelace', modified_at = now() WHERE id = '${ada}'`)
    // Moved to another user, and a column set to NULL: the old value must not survive in Cassandra.
    await dba(`UPDATE orders SET user_id = '${bob}', placed_at = NULL, modified_at = now() WHERE id = '${o1}'`)
    await dba(`UPDATE orders SET status = 'CANCELLED', is_deleted = true, modified_at = now() WHERE id = '${o3}'`)
    await dba(`DELETE FROM orders WHERE id = '${o2}'`)
    await dba(`DELETE FROM users WHERE id = '${cy}'`)

    await waitForReplicated(group)
    const client = cassandraClient()
    const mine = await cassandraRows(client, { users: [ada, bob, cy], orders: [o1, o2, o3] })
    expect(mine.users.get(ada)).toMatchObject({ name: 'Ada Lovelace', dob: '1955-03-04' })
    expect(mine.users.get(bob)).toMatchObject({ name: 'Bob' })
    expect(mine.users.has(cy)).toBe(false)
    expect(mine.orders.get(o1)).toMatchObject({ user_id: bob, placed_at: null, total_amount: '19.99' })
    expect(mine.orders.has(o2)).toBe(false)
    expect(mine.orders.get(o3)).toMatchObject({ status: 'CANCELLED', is_deleted: 'true', total_amount: '12345678.90' })
    expect([...mine.ordersByUser.keys()].sort()).toEqual([`${ada}/${o3}`, `${bob}/${o1}`].sort())
    // Every column equal to PostgreSQL, for these rows...
    await expectStoresEqual(client, { users: [ada, bob, cy], orders: [o1, o2, o3] }, () => waitForReplicated(group))
    // ...and for every other row of the three tables.
    await expectStoresEqual(client, {}, () => waitForReplicated(group))

    // Written by a streamed change: the write timestamp is 2^62 + the change's LSN.
    const wt = await writetime(client, 'users', 'name', 'id = ?', [ada])
    expect(wt).not.toBeNull()
    expect(wt! > STREAMED_BAND).toBe(true)

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    expect(summaryOf(done)).toMatchObject({ deadLettered: 0 })
  })
})

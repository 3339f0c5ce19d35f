// Issue 15, must-show 2 (first half): with replicate caught up, Cassandra is damaged by hand (10 rows edited, 10
// deleted, 10 added that PostgreSQL never had, in users and in orders); npm run resnapshot -- --table users and
// --table orders, while replicate runs, repair it: afterwards the full compare of users, orders and orders_by_user
// is exact. Triggers incremental snapshots on the shared stack: run it under the exclusive stack lock.
import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  KEYSPACE,
  cassandraClient,
  compareStores,
  deletePgRows,
  expectStoresEqual,
  prepareReplicateGroup,
  resnapshot,
  replicateArgs,
  start,
  summaryOf,
  uniqueName,
  waitForReplicated,
  writetime,
} from './cdc-helpers.js'
import { psql } from './helpers.js'

/** The count a reconcile line printed for a Cassandra table ("... N not in PostgreSQL deleted"). */
function deletedIn(stdout: string, table: string): number {
  const m = new RegExp(`reconcile ${KEYSPACE}\\.${table}: (\\d+) rows read, (\\d+) not in PostgreSQL deleted`).exec(
    stdout,
  )
  expect(m, stdout).not.toBeNull()
  return Number(m![2])
}

describe('npm run resnapshot repairs Cassandra', () => {
  it(
    '10 rows edited, 10 deleted and 10 added by hand in users and orders: the full compare is exact after it',
    { timeout: 1_500_000 },
    async () => {
      const group = uniqueName('cdc-resnap-replicate')
      await prepareReplicateGroup(group)
      const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '900']))

      // Rows of this test in PostgreSQL: 20 users, the first 10 with 3 orders each (main's orders table may be empty).
      const users = Array.from({ length: 20 }, () => randomUUID())
      const orders = users.slice(0, 10).flatMap(() => [randomUUID(), randomUUID(), randomUUID()])
      onTestFinished(() => deletePgRows(users, orders))
      await psql(
        `INSERT INTO users (id, name, dob, modified_at, version) VALUES ${users
          .map((u, i) => `('${u}', 'resnap ${i}', '1990-01-01', now(), 1)`)
          .join(', ')};
       INSERT INTO orders (id, status, user_id, quantity, total_amount, modified_at, version) VALUES ${orders
         .map((o, i) => `('${o}', 'PLACED', '${users[Math.floor(i / 3)]}', ${i + 1}, ${i}.50, now(), 1)`)
         .join(', ')}`,
      )
      await waitForReplicated(group)
      const client = cassandraClient()
      const [editedUsers, deletedUsers] = [users.slice(0, 10), users.slice(10, 20)]
      const [editedOrders, deletedOrders] = [orders.slice(0, 10), orders.slice(10, 20)]
      const addedUsers = Array.from({ length: 10 }, () => randomUUID())
      const addedOrders = Array.from({ length: 10 }, () => ({ id: randomUUID(), user: randomUUID() }))
      // Everything compared before the damage is equal for these rows.
      const touched = {
        users: [...editedUsers, ...deletedUsers, ...addedUsers],
        orders: [...orders, ...addedOrders.map((o) => o.id)],
      }
      expect((await compareStores(client, touched)).problems).toEqual([])

      // The damage, by hand. At the driver's own timestamp (wall-clock microseconds, as cqlsh writes) an edit or a delete
      // would lose to the stored row (written at 2^62 + its LSN) and change nothing, so each goes in just above the
      // row's WRITETIME: what a write the pipeline should not have made, or a change that never arrived, leaves.
      const ks = KEYSPACE
      const above = async (table: string, column: string, id: string): Promise<bigint> => {
        const wt = await writetime(client, table, column, 'id = ?', [id])
        expect(wt, `${table} ${id}`).not.toBeNull()
        return wt! + 1n
      }
      for (const id of editedUsers) {
        const ts = await above('users', 'name', id)
        await client.execute(`UPDATE ${ks}.users USING TIMESTAMP ? SET name = 'damaged' WHERE id = ?`, [ts, id], {
          prepare: true,
        })
      }
      for (const id of deletedUsers) {
        const ts = await above('users', 'name', id)
        await client.execute(`DELETE FROM ${ks}.users USING TIMESTAMP ? WHERE id = ?`, [ts, id], { prepare: true })
      }
      for (const id of addedUsers) {
        await client.execute(`INSERT INTO ${ks}.users (id, name, version) VALUES (?, 'never in PostgreSQL', 1)`, [id], {
          prepare: true,
        })
      }
      for (const id of editedOrders) {
        const ts = await above('orders', 'status', id)
        await client.execute(`UPDATE ${ks}.orders USING TIMESTAMP ? SET status = 'DAMAGED' WHERE id = ?`, [ts, id], {
          prepare: true,
        })
      }
      for (const id of deletedOrders) {
        const ts = await above('orders', 'status', id)
        await client.execute(`DELETE FROM ${ks}.orders USING TIMESTAMP ? WHERE id = ?`, [ts, id], { prepare: true })
      }
      for (const o of addedOrders) {
        await client.execute(
          `INSERT INTO ${ks}.orders (id, status, user_id, version) VALUES (?, 'FAKE', ?, 1)`,
          [o.id, o.user],
          {
            prepare: true,
          },
        )
        await client.execute(
          `INSERT INTO ${ks}.orders_by_user (user_id, id, status, version) VALUES (?, ?, 'FAKE', 1)`,
          [o.user, o.id],
          { prepare: true },
        )
      }
      // The compare sees all of it (so the exact compare at the end means repaired).
      const damaged = await compareStores(client, touched)
      const counts = Object.fromEntries(damaged.tables.map((t) => [t.table, [t.missing, t.extra, t.differing]]))
      expect(counts.users, damaged.problems.join('\n')).toEqual([10, 10, 10])
      expect(counts.orders, damaged.problems.join('\n')).toEqual([10, 10, 10])
      // The fake orders went into orders_by_user too (how the compare of given ids finds that table's rows shows the
      // deleted orders' rows there as missing as well).
      expect(counts.orders_by_user![1]).toBe(10)

      // While replicate runs.
      const u = await resnapshot(['--table', 'users'])
      expect(u).toMatch(/signal [0-9a-f-]{36}: incremental snapshot of public\.users/)
      expect(u).toMatch(/public\.users: \d+ rows read, SUCCEEDED/)
      expect(u).toMatch(/snapshot completed/)
      expect(deletedIn(u, 'users')).toBeGreaterThanOrEqual(10)
      const o = await resnapshot(['--table', 'orders'])
      expect(o).toMatch(/public\.orders: \d+ rows read, SUCCEEDED/)
      expect(deletedIn(o, 'orders')).toBeGreaterThanOrEqual(10)
      expect(deletedIn(o, 'orders_by_user')).toBeGreaterThanOrEqual(10)

      await waitForReplicated(group)
      expect((await compareStores(client, touched)).problems).toEqual([])
      const rows = await expectStoresEqual(client, {}, () => waitForReplicated(group))
      expect(rows.users).toBeGreaterThan(10)

      replicate.kill('SIGTERM')
      const done = await replicate.exited
      expect(done.code, done.stderr).toBe(0)
      // The snapshot rows were applied, none dead-lettered (main dead-letters them: no source.lsn).
      expect(summaryOf(done).deadLettered).toBe(0)
      console.log(`resnapshot: ${rows.users} users, ${rows.orders} orders equal after the repair\n${u}${o}`)
    },
  )
})

// Issue 15, must-show 2 (second half): the slot lost. With replicate caught up, the connector is stopped and its
// replication slot dropped; rows are then updated and deleted in PostgreSQL, changes no slot keeps. The recovery
// docs/faults.md gives: the connector's offsets deleted and the connector resumed (a fresh slot, and an initial
// snapshot that is written below every streamed change and repairs nothing), then npm run resnapshot for users and
// orders while replicate runs. Afterwards the full compare is exact: the rows updated in the gap have PostgreSQL's
// values, the rows deleted in the gap are gone from Cassandra (the reconcile pass). Stops the shared connector and
// triggers snapshots: run it under the exclusive stack lock.
import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  cassandraClient,
  compareStores,
  deletePgRows,
  expectStoresEqual,
  prepareReplicateGroup,
  replicateArgs,
  resnapshot,
  start,
  summaryOf,
  uniqueName,
  waitForReplicated,
} from './cdc-helpers.js'
import { connectApi, pgOwnerUrl, pgSuperUrl, psql, sleep, waitForDebeziumStreaming } from './helpers.js'

const CONNECTOR = '/connectors/cdc-postgres'

type Status = { connector?: { state?: string }; tasks?: unknown[] } | null

async function connectorState(): Promise<string | undefined> {
  return ((await connectApi('GET', `${CONNECTOR}/status`)).json as Status)?.connector?.state
}

/** STOPPED, and its task gone: the task writes its last offsets as it stops, which would undo a reset before it. */
async function untilStopped(timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const s = (await connectApi('GET', `${CONNECTOR}/status`)).json as Status
    if (s?.connector?.state === 'STOPPED' && (s.tasks ?? []).length === 0) return
    if (Date.now() > deadline)
      throw new Error(`the connector is not stopped after ${timeoutMs} ms: ${JSON.stringify(s)}`)
    await sleep(500)
  }
}

/** docs/faults.md's recovery of a lost slot, up to the re-snapshot: stopped, offsets deleted, resumed. */
async function freshSlot(): Promise<void> {
  if ((await connectorState()) !== 'STOPPED') {
    expect((await connectApi('PUT', `${CONNECTOR}/stop`)).status).toBeLessThan(300)
  }
  await untilStopped()
  expect((await connectApi('DELETE', `${CONNECTOR}/offsets`)).status).toBeLessThan(300)
  expect((await connectApi('GET', `${CONNECTOR}/offsets`)).json).toEqual({ offsets: [] })
  const slot = await psql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdc_slot'`, pgSuperUrl)
  if (slot === '1') await psql(`SELECT pg_drop_replication_slot('cdc_slot')`, pgSuperUrl)
  expect((await connectApi('PUT', `${CONNECTOR}/resume`)).status).toBeLessThan(300)
}

describe('the slot lost: a fresh slot and npm run resnapshot', () => {
  it(
    'rows updated and deleted while no slot kept their changes: the full compare is exact after the recovery',
    { timeout: 1_500_000 },
    async () => {
      const group = uniqueName('cdc-slot-loss')
      await prepareReplicateGroup(group)
      const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '900']))

      const users = Array.from({ length: 20 }, () => randomUUID())
      const orders = users.slice(0, 10).flatMap(() => [randomUUID(), randomUUID()])
      onTestFinished(() => deletePgRows(users, orders))
      await psql(
        `INSERT INTO users (id, name, dob, modified_at, version) VALUES ${users
          .map((u, i) => `('${u}', 'slot ${i}', '1990-01-01', now(), 1)`)
          .join(', ')};
       INSERT INTO orders (id, status, user_id, quantity, total_amount, modified_at, version) VALUES ${orders
         .map((o, i) => `('${o}', 'PLACED', '${users[Math.floor(i / 2)]}', ${i + 1}, ${i}.50, now(), 1)`)
         .join(', ')}`,
      )
      await waitForReplicated(group)

      // Whatever happens below, the shared connector ends up streaming again (from a fresh slot if the test
      // stopped after dropping it).
      let dropped = false
      let recovered = false
      onTestFinished(async () => {
        if (dropped && !recovered) await freshSlot()
        else if ((await connectorState()) !== 'RUNNING') await connectApi('PUT', `${CONNECTOR}/resume`)
        await waitForDebeziumStreaming(300_000)
      })
      expect((await connectApi('PUT', `${CONNECTOR}/stop`)).status).toBeLessThan(300)
      await untilStopped()
      // The slot lets go once the task is gone.
      for (let i = 0; ; i++) {
        const active = await psql(`SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc_slot'`, pgSuperUrl)
        if (active !== 't') break
        if (i > 60) throw new Error('cdc_slot still active 60 s after the connector stopped')
        await sleep(1_000)
      }
      dropped = true
      await psql(`SELECT pg_drop_replication_slot('cdc_slot')`, pgSuperUrl)

      // The gap: changes no slot keeps.
      const [updatedUsers, deletedUsers] = [users.slice(0, 10), users.slice(10, 20)]
      const [updatedOrders, deletedOrders] = [orders.slice(0, 10), orders.slice(10, 20)]
      const list = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ')
      await psql(
        `UPDATE users SET name = 'updated in the gap', version = version + 1, modified_at = now() WHERE id IN (${list(updatedUsers)});
         UPDATE orders SET status = 'SHIPPED', version = version + 1, modified_at = now() WHERE id IN (${list(updatedOrders)});
         DELETE FROM orders WHERE id IN (${list(deletedOrders)});
         DELETE FROM users WHERE id IN (${list(deletedUsers)})`,
        pgOwnerUrl,
      )
      const touched = { users, orders }
      const client = cassandraClient()
      const before = await compareStores(client, touched)
      const counts = Object.fromEntries(before.tables.map((t) => [t.table, [t.missing, t.extra, t.differing]]))
      expect(counts.users, before.problems.join('\n')).toEqual([0, 10, 10])
      expect(counts.orders, before.problems.join('\n')).toEqual([0, 10, 10])

      // The recovery of docs/faults.md: offsets deleted, the connector resumed (a fresh slot and an initial
      // snapshot), then the re-snapshots.
      await freshSlot()
      recovered = true
      await waitForDebeziumStreaming(300_000)
      // The initial snapshot repairs nothing: it is written below every streamed change.
      await waitForReplicated(group, 600_000)
      const afterInitial = await compareStores(client, touched)
      expect(afterInitial.problems.length, 'the initial snapshot alone should not repair').toBeGreaterThan(0)

      const u = await resnapshot(['--table', 'users'])
      expect(u).toMatch(/public\.users: \d+ rows read, SUCCEEDED/)
      const o = await resnapshot(['--table', 'orders'])
      expect(o).toMatch(/public\.orders: \d+ rows read, SUCCEEDED/)

      await waitForReplicated(group, 600_000)
      expect((await compareStores(client, touched)).problems).toEqual([])
      const rows = await expectStoresEqual(client, {}, () => waitForReplicated(group, 600_000))

      replicate.kill('SIGTERM')
      const done = await replicate.exited
      expect(done.code, done.stderr).toBe(0)
      expect(summaryOf(done).deadLettered).toBe(0)
      console.log(`slot loss: ${rows.users} users, ${rows.orders} orders equal after the recovery\n${u}${o}`)
    },
  )
})

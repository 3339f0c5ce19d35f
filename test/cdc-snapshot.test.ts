import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { pgOwnerUrl, psql, registerTestConnector, sleep, testAdmin } from './helpers.js'
import {
  STREAMED_BAND,
  cassandraClient,
  cassandraRows,
  compareStores,
  deletePgRows,
  replicateArgs,
  start,
  summaryOf,
  uniqueName,
  writetime,
} from './cdc-helpers.js'

/** Registers a second connector on its own slot and topic prefix; removes connector, slot and topics at the end. */
async function snapshotConnector(suffix: string, usersWhere: string): Promise<string> {
  const name = `test-cdc-snapshot-${suffix}`
  const slot = `test_cdc_slot_${suffix}`
  const prefix = `snapcdc${suffix}`
  const created = await registerTestConnector({
    name,
    slot,
    prefix,
    config: {
      'table.include.list': 'public.users,public.orders',
      // Only this test's rows in the snapshot: the shared tables hold every other test's rows too.
      'snapshot.select.statement.overrides': 'public.users,public.orders',
      'snapshot.select.statement.overrides.public.users': `SELECT * FROM public.users WHERE ${usersWhere}`,
      'snapshot.select.statement.overrides.public.orders': `SELECT * FROM public.orders WHERE user_id IN (SELECT id FROM public.users WHERE ${usersWhere})`,
      'tombstones.on.delete': 'true',
      'decimal.handling.mode': 'precise',
      'time.precision.mode': 'adaptive',
      'topic.creation.default.partitions': '3',
    },
  })
  expect(created.status, JSON.stringify(created.json)).toBe(201)
  return prefix
}

async function waitForTopics(topics: string[], timeoutMs: number): Promise<void> {
  const admin = await testAdmin()
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const existing = new Set(await admin.listTopics())
    if (topics.every((t) => existing.has(t))) return
    if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} did not appear within ${timeoutMs} ms`)
    await sleep(1_000)
  }
}

describe('CDC -> Cassandra: snapshot', () => {
  it('rows that existed before a connector was registered on a fresh slot reach Cassandra, and later changes win', async () => {
    const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
    const tag = `snaptest-${suffix}`
    const users = [randomUUID(), randomUUID(), randomUUID()]
    const orders = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    onTestFinished(() => deletePgRows(users, orders))
    await psql(
      `INSERT INTO users (id, name, dob, created_at, modified_at) VALUES ` +
        `('${users[0]}', '${tag} 0', '1944-06-06', now(), now()), ('${users[1]}', '${tag} 1', '2001-09-11', now(), NULL), ` +
        `('${users[2]}', '${tag} 2', '1970-01-01', NULL, NULL)`,
    )
    await psql(
      `INSERT INTO orders (id, status, user_id, quantity, total_amount, placed_at, modified_at, is_deleted) VALUES ` +
        `('${orders[0]}', 'PLACED', '${users[0]}', 1, 0.01, now(), now(), false), ` +
        `('${orders[1]}', 'SHIPPED', '${users[0]}', 7, 99999999.99, now(), now(), false), ` +
        `('${orders[2]}', 'CANCELLED', '${users[1]}', 2, 0, now(), now(), true), ` +
        `('${orders[3]}', 'DELIVERED', '${users[2]}', 3, 10.5, NULL, NULL, false)`,
    )
    const where = { users, orders }

    const prefix = await snapshotConnector(suffix, `name LIKE '${tag} %'`)
    const topics = [`${prefix}.public.users`, `${prefix}.public.orders`]
    await waitForTopics(topics, 120_000)
    const group = uniqueName('cdc-snapshot-replicate')
    const replicate = start('replicate', replicateArgs(group, ['--topics', topics.join(','), '--idle-timeout', '120']))

    const client = cassandraClient()
    const until = async (what: string, ok: () => Promise<boolean>) => {
      const deadline = Date.now() + 120_000
      while (!(await ok())) {
        if (Date.now() > deadline) {
          const last = await compareStores(client, where)
          throw new Error(`${what} within 120 s:\n${last.problems.join('\n')}\n${replicate.output().slice(-3000)}`)
        }
        await sleep(1_000)
      }
    }
    // Every column of the snapshot rows equals PostgreSQL, orders_by_user included.
    await until(
      'snapshot rows did not reach Cassandra',
      async () => (await compareStores(client, where)).problems.length === 0,
    )
    // They were written by the snapshot (op r): their write timestamps are in the snapshot band, below 2^62.
    const snapshotWt = await writetime(client, 'users', 'name', 'id = ?', [users[0]])
    expect(snapshotWt !== null && snapshotWt < STREAMED_BAND, `writetime ${snapshotWt}`).toBe(true)

    // A change after the snapshot (streamed by the same connector) wins over the snapshot row; so does a delete.
    await psql(`UPDATE users SET name = '${tag} 0 renamed', modified_at = now() WHERE id = '${users[0]}'`)
    await psql(`DELETE FROM orders WHERE id = '${orders[3]}'`, pgOwnerUrl)
    await until('the changes after the snapshot did not reach Cassandra', async () => {
      const rows = await cassandraRows(client, where)
      return rows.users.get(users[0])?.name === `${tag} 0 renamed` && !rows.orders.has(orders[3])
    })
    const after = await cassandraRows(client, where)
    expect(after.ordersByUser.has(`${users[2]}/${orders[3]}`)).toBe(false)
    expect((await compareStores(client, where)).problems).toEqual([])
    expect((await writetime(client, 'users', 'name', 'id = ?', [users[0]]))! > STREAMED_BAND).toBe(true)

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    const summary = summaryOf(done)
    expect(summary.deadLettered).toBe(0)
    expect(summary.processed).toBeGreaterThanOrEqual(users.length + orders.length)
  })
})

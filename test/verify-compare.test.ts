// The whole-table compare (the demo's and the convergence tests') against the real stores: it must find a row that
// differs, a row that is missing and a row that is extra, each exactly once, while holding only the rows of the
// buckets that differ, never whole tables (a used stack holds millions of rows: the old compare ran out of heap).
import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { compareStores as compareWith } from '../internal/verify/index.js'
import { cqlsh, pgUrl, psql } from './helpers.js'
import { KEYSPACE, cassandraClient, deletePgRows, prepareReplicateGroup, uniqueName } from './cdc-helpers.js'

describe('whole-table compare of PostgreSQL with Cassandra', () => {
  it('finds each damaged, missing and extra row exactly, holding at most its row budget', async () => {
    // Cassandra first brought up to date with PostgreSQL (the baseline group), so that only this test's damage differs
    // (the integration files run one at a time: nothing else writes meanwhile).
    await prepareReplicateGroup(uniqueName('verify-compare'))
    const [user, order, product] = [randomUUID(), randomUUID(), randomUUID()]
    // The damage is written above any write timestamp replication uses, so that a replicate running meanwhile (on a
    // shared stack) cannot repair it before the compare; cleaned up above that again.
    const damage = (1n << 63n) - 1_000n
    onTestFinished(async () => {
      await deletePgRows([user], [order])
      await cqlsh(`DELETE FROM ${KEYSPACE}.users USING TIMESTAMP ${damage + 1n} WHERE id = ${user}`)
      await cqlsh(`DELETE FROM ${KEYSPACE}.products USING TIMESTAMP ${damage + 1n} WHERE id = ${product}`)
    })
    // PostgreSQL has the user and its order; Cassandra a damaged copy of the user, no order (deleted above anything
    // replication writes), and a product PostgreSQL never had.
    await psql(`INSERT INTO users (id, name, dob) VALUES ('${user}', 'Grace', '1906-12-09')`)
    await psql(
      `INSERT INTO orders (id, status, user_id, quantity, total_amount, placed_at) ` +
        `VALUES ('${order}', 'PLACED', '${user}', 1, 9.99, now())`,
    )
    await cqlsh(
      `INSERT INTO ${KEYSPACE}.users (id, name, dob, created_at, modified_at, is_deleted, version, last_event_id) ` +
        `VALUES (${user}, 'Grace (damaged)', '1906-12-09', null, null, false, 0, null) USING TIMESTAMP ${damage}`,
    )
    await cqlsh(`DELETE FROM ${KEYSPACE}.orders USING TIMESTAMP ${damage} WHERE id = ${order}`)
    await cqlsh(
      `DELETE FROM ${KEYSPACE}.orders_by_user USING TIMESTAMP ${damage} WHERE user_id = ${user} AND id = ${order}`,
    )
    await cqlsh(
      `INSERT INTO ${KEYSPACE}.products (id, name) VALUES (${product}, 'not in PostgreSQL') USING TIMESTAMP ${damage}`,
    )

    const rowBudget = 1_000
    const { tables, problems } = await compareWith(cassandraClient(), pgUrl, KEYSPACE, {}, { rowBudget })
    const byName = Object.fromEntries(tables.map((t) => [t.table, t]))
    expect(byName.users).toMatchObject({ missing: 0, extra: 0, differing: 1 })
    expect(byName.orders).toMatchObject({ missing: 1, extra: 0, differing: 0 })
    expect(byName.orders_by_user).toMatchObject({ missing: 1, extra: 0, differing: 0 })
    expect(byName.products).toMatchObject({ missing: 0, extra: 1, differing: 0 })
    expect(byName.products_by_category).toMatchObject({ missing: 0, extra: 0, differing: 0 })
    // The one column that differs, and only it.
    expect(problems, problems.join('\n')).toContain(`users ${user}: name PostgreSQL Grace Cassandra Grace (damaged)`)
    expect(problems.some((p) => p.startsWith(`orders ${order}: missing in Cassandra`))).toBe(true)
    expect(problems.some((p) => p.startsWith(`orders_by_user ${user}/${order}: missing in Cassandra`))).toBe(true)
    expect(problems.some((p) => p.startsWith(`products ${product}: in Cassandra only`))).toBe(true)
    for (const t of tables) {
      const held = (t as { rowsHeld?: number }).rowsHeld
      // One bucket of a table (a 4096th) may come on top of the budget.
      expect(held, t.table).toBeLessThanOrEqual(rowBudget + Math.ceil((2 * t.expected) / 4096) + 10)
    }
  })
})

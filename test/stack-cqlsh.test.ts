import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { cqlsh } from './helpers.js'

describe('cqlsh against the local Cassandra', () => {
  it('sees the cdc_keyspace schema and reads back a row it wrote', async () => {
    const tables = await cqlsh("SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'cdc_keyspace'")
    for (const t of ['users', 'orders', 'orders_by_user']) expect(tables).toContain(t)

    const id = randomUUID()
    await cqlsh(
      `INSERT INTO cdc_keyspace.users (id, name, dob, is_deleted, version) VALUES (${id}, 'cqlsh probe', '1985-06-07', false, 1)`,
    )
    onTestFinished(async () => {
      await cqlsh(`DELETE FROM cdc_keyspace.users WHERE id = ${id}`)
    })
    const out = await cqlsh(`SELECT id, name, dob FROM cdc_keyspace.users WHERE id = ${id}`)
    expect(out).toMatch(new RegExp(`${id}\\s*\\|\\s*cqlsh probe\\s*\\|\\s*1985-06-07`))
    expect(out).toContain('(1 rows)')
  })
})

import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  connectApi,
  consumeUntil,
  endOffsets,
  pgOwnerUrl,
  pgSuperUrl,
  psql,
  registerTestConnector,
  sleep,
  waitForDebeziumStreaming,
  type Received,
} from './helpers.js'

interface ChangeEvent {
  op: 'c' | 'u' | 'd' | 'r' | 't'
  before: Record<string, unknown> | null
  after: Record<string, unknown> | null
}

// A Connect JSON message: { schema, payload } with an embedded schema (the snapshot test's connector), the payload
// alone without one (cdc-postgres).
const unwrap = <T>(bytes: Buffer): T => {
  const v = JSON.parse(bytes.toString()) as Record<string, unknown>
  return ('schema' in v && 'payload' in v ? v.payload : v) as T
}
const keyId = (r: Received): string | undefined =>
  r.message.key ? unwrap<{ id: string }>(r.message.key).id : undefined
// null for a tombstone.
const change = (r: Received): ChangeEvent | null => (r.message.value ? unwrap<ChangeEvent>(r.message.value) : null)

describe('Debezium on the local stack', () => {
  it('keeps streaming after a logical decoding message larger than a Kafka record may be', async () => {
    // Any application on the database can emit one; Debezium captured them onto cdc.message by default, and one over
    // Connect's 1 MB max.request.size failed the task for good (configure-debezium.sh now excludes every prefix).
    const topic = 'cdc.public.users'
    await waitForDebeziumStreaming()
    const from = await endOffsets(topic)
    await psql(`SELECT pg_logical_emit_message(true, 'cdc-test', repeat(md5(random()::text), 100000))`, pgSuperUrl)
    const id = randomUUID()
    onTestFinished(async () => {
      await psql(`DELETE FROM users WHERE id = '${id}'`, pgOwnerUrl)
    })
    await psql(`INSERT INTO users (id, name, dob) VALUES ('${id}', 'after the message', '1990-02-03')`)
    const received = await consumeUntil(topic, (rs) => rs.some((r) => keyId(r) === id), { from, timeoutMs: 120_000 })
    expect(received.some((r) => keyId(r) === id)).toBe(true)
    // The task failed 5 s after the send of the message failed (the change behind it could still get out): look later.
    await sleep(7_000)
    const { json } = await connectApi('GET', '/connectors/cdc-postgres/status')
    expect((json as { tasks: { state: string }[] }).tasks.map((t) => t.state)).toEqual(['RUNNING'])
  })

  it(
    'streams psql INSERT, UPDATE and DELETE on users as c, u (with before-image), d and a tombstone',
    { timeout: 420_000 },
    async () => {
      const topic = 'cdc.public.users'
      await waitForDebeziumStreaming()
      const from = await endOffsets(topic)
      const id = randomUUID()
      await psql(
        `INSERT INTO users (id, name, dob, created_at, modified_at) VALUES ('${id}', 'Ada', '1990-02-03', now(), now())`,
      )
      await psql(`UPDATE users SET name = 'Ada Lovelace', modified_at = now() WHERE id = '${id}'`)
      await psql(`DELETE FROM users WHERE id = '${id}'`, pgOwnerUrl)

      const mine = (rs: Received[]) => rs.filter((r) => keyId(r) === id)
      const received = await consumeUntil(topic, (rs) => mine(rs).length >= 4, { from, timeoutMs: 240_000 })
      const events = mine(received).map(change)

      expect(events.map((e) => e?.op ?? 'tombstone')).toEqual(['c', 'u', 'd', 'tombstone'])
      const [created, updated, deleted] = events as ChangeEvent[]
      expect(created.before).toBeNull()
      expect(created.after).toMatchObject({ id, name: 'Ada', is_deleted: false })
      // REPLICA IDENTITY FULL: the update carries the complete old row.
      expect(updated.before).toMatchObject({ id, name: 'Ada', dob: created.after!.dob })
      expect(updated.after).toMatchObject({ id, name: 'Ada Lovelace' })
      expect(deleted.before).toMatchObject({ id, name: 'Ada Lovelace' })
      expect(deleted.after).toBeNull()
      // dates arrive as days since the epoch: 1990-02-03 is day 7338.
      expect(created.after!.dob).toBe(7338)
    },
  )

  it('sends rows that existed before a connector was registered as snapshot (r) events', async () => {
    const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
    const name = `test-snapshot-${suffix}`
    const slot = `test_slot_${suffix}`
    const prefix = `snap${suffix}`
    const ids: string[] = [randomUUID(), randomUUID(), randomUUID()]
    const values = ids.map((id, i) => `('${id}', 'Snap ${i}', '1970-01-0${i + 1}', now(), now())`).join(', ')
    await psql(`INSERT INTO users (id, name, dob, created_at, modified_at) VALUES ${values}`)
    onTestFinished(async () => {
      await psql(`DELETE FROM users WHERE id IN (${ids.map((id) => `'${id}'`).join(', ')})`, pgOwnerUrl)
    })

    const created = await registerTestConnector({
      name,
      slot,
      prefix,
      config: {
        'table.include.list': 'public.users',
        // Only this test's rows: the shared users table can hold many thousands of rows from other tests by now.
        'snapshot.select.statement.overrides': 'public.users',
        'snapshot.select.statement.overrides.public.users': `SELECT * FROM public.users WHERE id IN (${ids.map((id) => `'${id}'`).join(', ')})`,
        'topic.creation.default.partitions': '1',
      },
    })
    expect(created.status).toBe(201)

    const snapshotOf = (rs: Received[]) => rs.filter((r) => ids.includes(keyId(r) ?? '') && change(r)?.op === 'r')
    const received = await consumeUntil(`${prefix}.public.users`, (rs) => snapshotOf(rs).length >= 3, {
      timeoutMs: 120_000,
    })
    const rows = snapshotOf(received).map((r) => change(r)!.after!)
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort())
    expect(rows.find((r) => r.id === ids[1])).toMatchObject({ name: 'Snap 1', dob: 1 })
  })
})

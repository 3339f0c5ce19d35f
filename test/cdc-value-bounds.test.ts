// Issue 11, item 5: an 8-character decimal "1e100000" in a change event took 20-76 s in the driver's
// BigDecimal.fromString: past --task-timeout its batch was retried without end, under it the value was written into
// Cassandra, though no numeric(10,2) could ever hold it. Now it is dead-lettered within seconds and the rest of its
// batch is applied. Item 9 likewise: a source.lsn near 2^62 (it would freeze its row) and a Kafka key naming another
// row are dead-lettered. Change events are written by hand into a topic named like Debezium's, replicated into a keyspace
// of this test (the shared one stays as PostgreSQL has it).
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it, onTestFinished } from 'vitest'
import { DLQ_HEADERS, dlqTopicFor } from '../internal/pipeline/index.js'
import { createTopicsLed, consumeUntil, kafka, repoDir, testAdmin } from './helpers.js'
import { cassandraClient, replicateArgs, start, summaryOf, uniqueName } from './cdc-helpers.js'

/** A keyspace with the three tables of cassandra-schema.cql (no indexes), dropped when the test ends. */
async function testKeyspace(): Promise<string> {
  const ks = `cdc_test_${randomUUID().replaceAll('-', '').slice(0, 10)}`
  const client = cassandraClient()
  const statements = readFileSync(`${repoDir}cassandra-schema.cql`, 'utf8')
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('--'))
    .join('\n')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('CREATE KEYSPACE') || s.startsWith('CREATE TABLE'))
    .map((s) => s.replaceAll('cdc_keyspace', ks).replace('__RF__', '1'))
  onTestFinished(() => client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).then(() => undefined))
  for (const s of statements) await client.execute(s)
  return ks
}

const source = (lsn: number | string) => ({
  ts_ms: Date.now(),
  snapshot: 'false',
  db: 'cdc_db',
  schema: 'public',
  table: 'orders',
  lsn,
})

const orderAfter = (id: string, userId: string, total: string) => ({
  id,
  status: 'PLACED',
  user_id: userId,
  quantity: 1,
  total_amount: total,
  placed_at: '2026-12-01T10:00:00.000Z',
  modified_at: '2026-12-01T10:00:00.000Z',
  is_deleted: false,
  version: 1,
  last_event_id: randomUUID(),
})

/** A topic named like Debezium's orders change topic, deleted with its DLQ when the test ends. */
async function changeTopic(): Promise<string> {
  const topic = `${uniqueName('cdctest')}.public.orders`
  const admin = await testAdmin()
  await createTopicsLed(admin, { topics: [{ topic, numPartitions: 1, replicationFactor: 3 }] })
  onTestFinished(() => admin.deleteTopics({ topics: [topic, dlqTopicFor(topic)] }).catch(() => undefined))
  return topic
}

/** Writes the messages in one request (one batch of the replicate consumer). */
async function sendAll(topic: string, messages: { key: string; value: string }[]): Promise<void> {
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic, messages })
  await producer.disconnect()
}

describe('node cmd/replicate: a value no column can hold', () => {
  it('dead-letters "1e100000" within seconds and applies the rest of its batch', async () => {
    const ks = await testKeyspace()
    const topic = await changeTopic()

    const userId = randomUUID()
    const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    const bad = ids[1]
    await sendAll(
      topic,
      ids.map((id, i) => ({
        key: JSON.stringify({ id }),
        value: JSON.stringify({
          op: 'c',
          before: null,
          after: orderAfter(id, userId, id === bad ? '1e100000' : `${i + 1}2.50`),
          source: source(100 + i),
        }),
      })),
    )

    const startedAt = Date.now()
    const res = await start(
      'replicate',
      replicateArgs(uniqueName('cdc-bounds'), ['--topics', topic, '--cassandra-keyspace', ks, '--idle-timeout', '3']),
    ).exited
    const ranMs = Date.now() - startedAt
    expect(res.code, res.stderr).toBe(0)
    expect(summaryOf(res)).toMatchObject({ processed: 4, deadLettered: 1, applied: 3 })

    const [dead] = await consumeUntil(dlqTopicFor(topic), (rs) => rs.length >= 1, { timeoutMs: 30_000 })
    const header = (name: string) => String(dead.message.headers?.[name])
    expect(header(DLQ_HEADERS.errorCode)).toBe('VALIDATION_ERROR')
    expect(header(DLQ_HEADERS.errorMessage)).toMatch(
      /column total_amount: '1e100000' does not fit Cassandra type decimal \(no numeric\(10,2\) can hold it\)/,
    )
    expect(dead.message.key?.toString()).toBe(JSON.stringify({ id: bad }))
    // Within seconds of the start (including the consumer joining its group), not after a minute in BigDecimal.
    const deadLetteredMs = Number(dead.message.timestamp) - startedAt
    console.log(`"1e100000" dead-lettered ${deadLetteredMs} ms after replicate started (run ${ranMs} ms)`)
    expect(deadLetteredMs).toBeLessThan(15_000)

    const client = cassandraClient()
    const rows = await client.execute(`SELECT id, total_amount FROM ${ks}.orders`)
    const written = new Map(rows.rows.map((r) => [String(r.id), String(r.total_amount)]))
    expect(written).toEqual(
      new Map([
        [ids[0], '12.50'],
        [ids[2], '32.50'],
        [ids[3], '42.50'],
      ]),
    )
    const byUser = await client.execute(`SELECT id FROM ${ks}.orders_by_user WHERE user_id = ?`, [userId], {
      prepare: true,
    })
    expect(byUser.rows.map((r) => String(r.id)).sort()).toEqual([ids[0], ids[2], ids[3]].sort())
  })

  it("dead-letters an LSN beyond PostgreSQL's WAL position and a key naming another row, applies the rest", async () => {
    const ks = await testKeyspace()
    const topic = await changeTopic()
    const userId = randomUUID()
    const [ok, hostile, misKeyed] = [randomUUID(), randomUUID(), randomUUID()]
    const change = (id: string, lsn: number | string) =>
      JSON.stringify({ op: 'c', before: null, after: orderAfter(id, userId, '9.99'), source: source(lsn) })
    await sendAll(topic, [
      { key: JSON.stringify({ id: ok }), value: change(ok, 200) },
      // 2^62 - 2 (as text: JSON numbers beyond 2^53 are read exactly), far beyond any WAL position.
      {
        key: JSON.stringify({ id: hostile }),
        value: change(hostile, 0).replace('"lsn":0', '"lsn":4611686018427387902'),
      },
      { key: JSON.stringify({ id: ok }), value: change(misKeyed, 201) },
    ])
    const res = await start(
      'replicate',
      replicateArgs(uniqueName('cdc-bounds'), ['--topics', topic, '--cassandra-keyspace', ks, '--idle-timeout', '3']),
    ).exited
    expect(res.code, res.stderr).toBe(0)
    expect(summaryOf(res)).toMatchObject({ processed: 3, deadLettered: 2, applied: 1 })
    const dead = await consumeUntil(dlqTopicFor(topic), (rs) => rs.length >= 2, { timeoutMs: 30_000 })
    // The two letters have different keys, so they may be in different DLQ partitions: read in either order.
    const reasons = dead
      .map((r) => [
        String(r.message.headers?.[DLQ_HEADERS.errorCode]),
        String(r.message.headers?.[DLQ_HEADERS.errorMessage]),
      ])
      .sort((a, b) => (a[1].startsWith('source.lsn') ? -1 : b[1].startsWith('source.lsn') ? 1 : 0))
    expect(reasons).toHaveLength(2)
    expect(reasons[0][0]).toBe('VALIDATION_ERROR')
    expect(reasons[0][1]).toMatch(
      /^source\.lsn 3FFFFFFF\/FFFFFFFE is beyond PostgreSQL's current WAL position [0-9A-F]+\/[0-9A-F]+/,
    )
    expect(reasons[1]).toEqual(['VALIDATION_ERROR', `the key's id "${ok}" is not the row's id (${misKeyed})`])
    const rows = await cassandraClient().execute(`SELECT id FROM ${ks}.orders`)
    expect(rows.rows.map((r) => String(r.id))).toEqual([ok])
  })
})

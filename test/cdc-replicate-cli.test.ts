import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { DLQ_HEADERS, dlqTopicFor } from '../internal/pipeline/index.js'
import { createTopicsLed, consumeUntil, kafka, testAdmin } from './helpers.js'
import { cassandraClient, replicateArgs, start, summaryOf, uniqueName, type CommandResult } from './cdc-helpers.js'

/** Exit 2 for misuse and misconfiguration, 3 for a Cassandra that cannot be reached at start. */
async function replicateFails(args: string[], code = 2): Promise<CommandResult> {
  const res = await start('replicate', args).exited
  expect(res.code, res.stdout + res.stderr).toBe(code)
  // One clear line, no stack trace.
  expect(res.stderr.trim().split('\n'), res.stderr).toHaveLength(1)
  return res
}

describe('node cmd/replicate: misuse and bad input', () => {
  it('a bad flag, an unreachable Cassandra, a missing keyspace or table: one clear line, non-zero exit', async () => {
    expect((await replicateFails(['--consistency', 'ANY'])).stderr).toMatch(/--consistency must be one of LOCAL_QUORUM/)
    expect((await replicateFails(['--topics', 'cdc.public.payments'])).stderr).toMatch(
      /--topics: 'cdc.public.payments'/,
    )
    expect((await replicateFails(['--cassandra-contact-points', '127.0.0.1:1'], 3)).stderr).toMatch(
      /Cassandra is not reachable at 127\.0\.0\.1:1 .*ECONNREFUSED/,
    )
    const ks = `cdc_test_${randomUUID().replaceAll('-', '').slice(0, 10)}`
    expect((await replicateFails(['--cassandra-keyspace', ks])).stderr).toMatch(
      new RegExp(`keyspace ${ks} does not exist in Cassandra .*cassandra-schema\\.cql`),
    )
    // A keyspace with only one of the three tables.
    const client = cassandraClient()
    await client.execute(
      `CREATE KEYSPACE ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
    )
    onTestFinished(() => client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).then(() => undefined))
    await client.execute(`CREATE TABLE ${ks}.users (id uuid PRIMARY KEY, name text)`)
    expect((await replicateFails(['--cassandra-keyspace', ks])).stderr).toMatch(
      new RegExp(`table ${ks}\\.users: dob is missing, created_at is missing`),
    )
  })

  it('an undecodable change, and a TRUNCATE with --on-truncate dlq, go to the DLQ with their reason; the rest is applied', async () => {
    // A topic named like Debezium's, carrying orders, written by hand.
    const topic = `${uniqueName('cdctest')}.public.orders`
    const admin = await testAdmin()
    await createTopicsLed(admin, { topics: [{ topic, numPartitions: 1, replicationFactor: 3 }] })
    onTestFinished(() => admin.deleteTopics({ topics: [topic, dlqTopicFor(topic)] }).catch(() => undefined))
    const id = randomUUID()
    const source = { ts_ms: Date.now(), snapshot: 'false', db: 'cdc_db', schema: 'public', table: 'orders', lsn: 1 }
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({
      topic,
      messages: [
        { key: JSON.stringify({ id }), value: '{"op": "c", "after": {broken' },
        { key: null, value: JSON.stringify({ op: 't', before: null, after: null, source }) },
        // Deleting a row that never existed: valid, applied (a tombstone at an old LSN), harmless.
        { key: JSON.stringify({ id }), value: JSON.stringify({ op: 'd', before: null, after: null, source }) },
        { key: JSON.stringify({ id }), value: null },
      ],
    })
    await producer.disconnect()

    const res = await start(
      'replicate',
      // dlq: applied (the default), this hand-written truncate of public.orders would empty the shared Cassandra
      // tables of every row written below its write timestamp (test/cdc-truncate.test.ts covers applying).
      replicateArgs(uniqueName('cdc-cli'), ['--topics', topic, '--idle-timeout', '3', '--on-truncate', 'dlq']),
    ).exited
    expect(res.code, res.stderr).toBe(0)
    expect(summaryOf(res)).toMatchObject({ processed: 4, deadLettered: 2, applied: 1, stale: 1 })

    const dead = await consumeUntil(dlqTopicFor(topic), (rs) => rs.length >= 2, { timeoutMs: 30_000 })
    const codes = dead.map((r) => String(r.message.headers?.[DLQ_HEADERS.errorCode]))
    expect(codes.sort()).toEqual(['DECODE_ERROR', 'UNSUPPORTED'])
    const truncate = dead.find((r) => String(r.message.headers?.[DLQ_HEADERS.errorCode]) === 'UNSUPPORTED')!
    expect(String(truncate.message.headers?.[DLQ_HEADERS.errorMessage])).toMatch(
      /TRUNCATE of public\.orders .* not replicated: truncate cdc_keyspace\.orders and orders_by_user by hand .*--on-truncate dlq/,
    )
    expect(String(truncate.message.headers?.[DLQ_HEADERS.originalTopic])).toBe(topic)
  })
})

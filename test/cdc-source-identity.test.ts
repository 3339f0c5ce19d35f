// Issue 15, "It must show" item 5: a change event carrying another PostgreSQL cluster's system identifier stops
// replicate with one message naming the recovery (exit code 5), and so does a keyspace recorded as replicated from
// another cluster than the PostgreSQL replicate reads. Each test has a keyspace of its own (cassandra-schema.cql's
// tables), so the shared keyspace's record is never touched.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it, onTestFinished } from 'vitest'
import { SOURCE_IDENTITY_HEADER, sourceTableCql } from '../internal/sinks/cassandra/source-identity.js'
import { createTopicsLed, kafka, psql, repoDir, testAdmin } from './helpers.js'
import { cassandraClient, replicateArgs, start, summaryOf, uniqueName } from './cdc-helpers.js'

/** A keyspace with cassandra-schema.cql's tables and the replication metadata table, dropped after the test. */
async function ownKeyspace(): Promise<string> {
  const ks = `cdc_id_${randomUUID().replaceAll('-', '').slice(0, 10)}`
  const client = cassandraClient()
  onTestFinished(async () => {
    await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`)
  })
  const statements = readFileSync(`${repoDir}cassandra-schema.cql`, 'utf8')
    .replace(/--.*$/gm, '')
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('CREATE KEYSPACE') || s.startsWith('CREATE TABLE'))
    .map((s) => s.replaceAll('cdc_keyspace', ks).replace('__RF__', '1'))
  for (const s of statements) await client.execute(s)
  // What replicate creates when missing (cassandra-schema.cql has it too).
  await client.execute(sourceTableCql(ks))
  return ks
}

/** A topic named like Debezium's, carrying users, written by hand. */
async function usersTopic(): Promise<string> {
  const topic = `${uniqueName('cdcid')}.public.users`
  const admin = await testAdmin()
  await createTopicsLed(admin, { topics: [{ topic, numPartitions: 1, replicationFactor: 3 }] })
  onTestFinished(() => admin.deleteTopics({ topics: [topic, `${topic}.dlq`] }).catch(() => undefined))
  return topic
}

const systemIdentifier = async (): Promise<string> =>
  (await psql('SELECT system_identifier FROM pg_control_system()')).trim()
const walLsn = async (): Promise<number> => Number((await psql("SELECT pg_current_wal_lsn() - '0/0'")).trim())

function userChange(id: string, name: string, lsn: number) {
  return JSON.stringify({
    op: 'c',
    before: null,
    after: {
      id,
      name,
      dob: '1990-01-01',
      created_at: null,
      modified_at: null,
      is_deleted: false,
      version: 1,
      last_event_id: null,
    },
    source: { ts_ms: Date.now(), snapshot: 'false', db: 'cdc_db', schema: 'public', table: 'users', lsn },
  })
}

const RECOVERY = /Recovery: re-snapshot Cassandra .*docs\/faults\.md.*DELETE FROM \w+\.replication_source/

describe('node cmd/replicate: the PostgreSQL source', () => {
  it('a change event whose header names another cluster stops replicate (exit 5) before it is written', async () => {
    const ks = await ownKeyspace()
    const topic = await usersTopic()
    const sysid = await systemIdentifier()
    const lsn = await walLsn()
    const [ours, theirs] = [randomUUID(), randomUUID()]
    const producer = kafka.producer()
    await producer.connect()
    await producer.send({
      topic,
      messages: [
        {
          key: JSON.stringify({ id: ours }),
          value: userChange(ours, 'from this cluster', lsn),
          headers: { [SOURCE_IDENTITY_HEADER]: sysid },
        },
        {
          key: JSON.stringify({ id: theirs }),
          value: userChange(theirs, 'from another cluster', lsn + 1),
          headers: { [SOURCE_IDENTITY_HEADER]: '1234567890123456789' },
        },
      ],
    })
    await producer.disconnect()

    const group = uniqueName('cdc-id')
    const res = await start(
      'replicate',
      replicateArgs(group, ['--topics', `${topic}=users`, '--cassandra-keyspace', ks, '--idle-timeout', '20']),
    ).exited
    expect(res.code, res.stderr).toBe(5)
    const lines = res.stderr.trim().split('\n')
    expect(lines, res.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(
        `^replicate: the change event at ${topic.replaceAll('.', '\\.')} partition 0 offset 1 comes from PostgreSQL ` +
          `cluster '1234567890123456789' \\(its cdc\\.pg\\.system_identifier header\\), but ${ks} was replicated ` +
          `from cluster ${sysid} `,
      ),
    )
    expect(lines[0]).toMatch(RECOVERY)
    // Nothing of the batch that carried it was written (the first change came in the same batch, or before it).
    const client = cassandraClient()
    const written = await client.execute(`SELECT id FROM ${ks}.users WHERE id = ?`, [theirs], { prepare: true })
    expect(written.rows).toHaveLength(0)
    expect(summaryOf(res).processed).toBeLessThanOrEqual(1)
    const recorded = await client.execute(`SELECT system_identifier FROM ${ks}.replication_source`)
    expect(recorded.rows.map((r) => r.system_identifier as string)).toEqual([sysid])
  }, 240_000)

  it('a keyspace recorded as replicated from another cluster: replicate refuses to start (exit 5), one line', async () => {
    const ks = await ownKeyspace()
    const topic = await usersTopic()
    await cassandraClient().execute(
      `INSERT INTO ${ks}.replication_source (source, system_identifier, timeline, lsn_seen) VALUES ('postgresql', '42', 1, 0)`,
    )
    const res = await start(
      'replicate',
      replicateArgs(uniqueName('cdc-id'), [
        '--topics',
        `${topic}=users`,
        '--cassandra-keyspace',
        ks,
        '--idle-timeout',
        '3',
      ]),
    ).exited
    expect(res.code, res.stderr).toBe(5)
    const lines = res.stderr.trim().split('\n')
    expect(lines, res.stderr).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(
        `^replicate: PostgreSQL at [\\w.]+:\\d+ is cluster ${await systemIdentifier()} \\(timeline \\d+\\), but ${ks} ` +
          `was replicated from cluster 42 \\(${ks}\\.replication_source\\): a restore or a migration to another cluster`,
      ),
    )
    expect(lines[0]).toMatch(RECOVERY)
  }, 240_000)
})

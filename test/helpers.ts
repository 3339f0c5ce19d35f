// Helpers for the integration tests: they talk to the real local stack (npm test starts it). Every resource a
// helper creates gets a unique name and is removed by the helper's own cleanup when the test ends.
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { onTestFinished } from 'vitest'
import pg from 'pg'
import { SETTINGS, readSetting } from '../internal/cli/index.js'
import { stackAddresses } from '../internal/config/index.js'
import { waitForLeaders } from '../internal/kafka/client.js'
import { createKafka, type ConsumedMessage } from '../internal/kafka/index.js'

const run = promisify(execFile)
export const repoDir = new URL('..', import.meta.url).pathname

// The commands' own settings (flag-less here: the environment, else the table's defaults).
export const brokers = readSetting(SETTINGS.brokers, {})
export const pgUrl = readSetting(SETTINGS.pgUrl, {})
export const connectUrl = stackAddresses().connectUrl
// The owner role's: cdc_owner owns the tables. Tests reset and remove rows with it; the runtime role (pgUrl) may only
// SELECT, INSERT and UPDATE, like the consumer.
export const pgOwnerUrl =
  process.env.PG_OWNER_URL ??
  `postgres://cdc_owner:${process.env.PG_OWNER_PASSWORD ?? 'cdc_owner'}@127.0.0.1:${process.env.PG_PORT ?? '5432'}/cdc_db`
export const pgSuperUrl = `postgres://postgres:${process.env.PG_SUPERUSER_PASSWORD ?? 'postgres'}@127.0.0.1:${process.env.PG_PORT ?? '5432'}/cdc_db`

/** A port nothing listens on now (the kernel's pick). */
export async function freePort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as { port: number }).port
  await new Promise((r) => s.close(r))
  return port
}

export const uniqueName = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

export const kafka = createKafka({ brokers, clientId: 'cdc-tests' })
// The client's own admin and consumer (the tests set up topics and read records with more than the ports offer).
type Admin = ReturnType<typeof kafka.admin>
type Consumer = ReturnType<typeof kafka.consumer>

/** An admin client, disconnected when the test ends. */
export async function testAdmin(): Promise<Admin> {
  const admin = kafka.admin()
  await admin.connect()
  onTestFinished(() => admin.disconnect())
  return admin
}

/** Creates a topic with a unique name (RF 3), deleted when the test ends. */
export async function testTopic(partitions = 3): Promise<string> {
  const admin = await testAdmin()
  const topic = uniqueName('test')
  await createTopicsLed(admin, { topics: [{ topic, numPartitions: partitions, replicationFactor: 3 }] })
  onTestFinished(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined)
  })
  return topic
}

type TopicsToCreate = Parameters<Admin['createTopics']>[0]

/**
 * Creates topics and waits until every partition has a leader, with the product's own wait: kafkajs'
 * `waitForLeaders: true` retries only LEADER_NOT_AVAILABLE, and a broker that has not seen the new topic yet
 * answers UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition"), which failed a CI run.
 */
export async function createTopicsLed(admin: Admin, o: TopicsToCreate): Promise<void> {
  await admin.createTopics({ ...o, waitForLeaders: false })
  await waitForLeaders(
    admin,
    o.topics.map((t) => ({
      topic: t.topic,
      partitions: t.numPartitions ?? 1,
      replicationFactor: t.replicationFactor ?? 3,
    })),
  )
}

/** A consumer group of its own (`<prefix>-<random>`), its offsets set to where `topics` end now: no backlog. */
export async function groupAtEnd(prefix: string, topics: readonly string[]): Promise<string> {
  const group = uniqueName(prefix)
  const admin = await testAdmin()
  for (const topic of topics) {
    const ends = await admin.fetchTopicOffsets(topic)
    await admin.setOffsets({
      groupId: group,
      topic,
      partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })),
    })
  }
  return group
}

/** Runs fn with an admin client of its own, disconnected afterwards (for helpers that are polled in loops). */
export async function withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

/** The next offset of each partition of a topic now (no partitions for a topic that does not exist yet). */
export async function endOffsets(topic: string): Promise<Map<number, string>> {
  return withAdmin(async (admin) => {
    const offsets = new Map<number, string>()
    if (!(await admin.listTopics()).includes(topic)) return offsets
    for (const p of await admin.fetchTopicOffsets(topic)) offsets.set(p.partition, p.offset)
    return offsets
  })
}

export interface Received {
  partition: number
  message: ConsumedMessage
}

/**
 * Reads a topic in a fresh consumer group from the given start offsets (partitions not named start at the
 * beginning) until `done` says the collected messages are enough, or fails after timeoutMs.
 */
export async function consumeUntil(
  topic: string,
  done: (received: Received[]) => boolean,
  options: { from?: Map<number, string>; timeoutMs?: number } = {},
): Promise<Received[]> {
  const groupId = uniqueName('test-reader')
  const consumer: Consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  await consumer.connect()
  onTestFinished(() => consumer.disconnect())
  const received: Received[] = []
  const timeoutMs = options.timeoutMs ?? 60_000
  // The topic may be created by the code under test after we start: poll until it exists.
  const admin = await testAdmin()
  const deadline = Date.now() + timeoutMs
  while (!(await admin.listTopics()).includes(topic)) {
    if (Date.now() > deadline) throw new Error(`topic ${topic} did not appear within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 500))
  }
  // Start offsets are committed for the (new, memberless) group before it joins, so the consumer starts there
  // whatever the timing: a seek on GROUP_JOIN can lose to the first fetch from the beginning (seen once in CI right
  // after a stack restart, which then read the whole change topic).
  if (options.from !== undefined && options.from.size > 0) {
    await admin.setOffsets({
      groupId,
      topic,
      partitions: [...options.from].map(([partition, offset]) => ({ partition, offset })),
    })
  }
  await consumer.subscribe({ topic, fromBeginning: true })
  return new Promise<Received[]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms on ${topic}; got ${received.length} messages`)),
      Math.max(1, deadline - Date.now()),
    )
    void consumer
      .run({
        eachMessage: async ({ partition, message }) => {
          received.push({ partition, message })
          if (done(received)) {
            clearTimeout(timer)
            resolve(received)
          }
        },
      })
      .catch(reject)
  })
}

/** Runs SQL through the psql command line, as a DBA would; returns stdout (unaligned, tuples only). */
export async function psql(sql: string, url = pgUrl): Promise<string> {
  const { stdout } = await run('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-tA', url, '-c', sql], {
    env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' },
  })
  return stdout.trim()
}

/** A node-postgres pool on cdc_db, ended when the test ends. */
export function testPool(url = pgUrl): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  pool.on('error', () => undefined)
  onTestFinished(() => pool.end())
  return pool
}

/** `bash stack/stack.sh ARGS` (status, up, down, stop-component, ...); returns stdout, fails on a non-zero exit. */
export async function stack(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [`${repoDir}stack/stack.sh`, ...args], { timeout: 600_000 })
  return stdout
}

/** Runs cqlsh against the local Cassandra through the stack script; returns stdout. */
export async function cqlsh(statement: string): Promise<string> {
  const { stdout } = await run('bash', [`${repoDir}stack/stack.sh`, 'cqlsh', '-e', statement], { timeout: 60_000 })
  return stdout
}

/** Calls Kafka Connect's REST API. */
export async function connectApi(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${connectUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/**
 * Registers a test's own Debezium PostgreSQL connector beside cdc-postgres: its own slot and topic prefix, the
 * shared publication, Connect's default converters (so its events carry schemas), `config` on top. When the test
 * ends it removes the connector, then the slot (once the task has let go of it), then the prefix's topics.
 */
export async function registerTestConnector(o: {
  name: string
  slot: string
  prefix: string
  config: Record<string, string>
}): Promise<{ status: number; json: unknown }> {
  const created = await connectApi('PUT', `/connectors/${o.name}/config`, {
    'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
    'plugin.name': 'pgoutput',
    'database.hostname': '127.0.0.1',
    'database.port': process.env.PG_PORT ?? '5432',
    'database.user': 'cdc_debezium',
    'database.password': process.env.PG_DEBEZIUM_PASSWORD ?? 'cdc_debezium',
    'database.dbname': 'cdc_db',
    'topic.prefix': o.prefix,
    'slot.name': o.slot,
    'publication.name': 'cdc_pub',
    'publication.autocreate.mode': 'disabled',
    'snapshot.mode': 'initial',
    'topic.creation.default.replication.factor': '3',
    ...o.config,
  })
  onTestFinished(async () => {
    await connectApi('DELETE', `/connectors/${o.name}`)
    // The slot stays active for a moment after the task stops.
    for (let i = 0; i < 30; i++) {
      const left = await psql(
        `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${o.slot}' AND NOT active`,
        pgSuperUrl,
      )
      if (left === '1') break
      await sleep(1_000)
    }
    await psql(
      `SELECT pg_drop_replication_slot('${o.slot}') FROM pg_replication_slots WHERE slot_name = '${o.slot}'`,
      pgSuperUrl,
    )
    const admin = await testAdmin()
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${o.prefix}.`) || t.endsWith(`.${o.prefix}`))
    await admin.deleteTopics({ topics }).catch(() => undefined)
  })
  return created
}

/**
 * Waits until the cdc-postgres connector and its task are RUNNING and its slot is active: another test registering
 * or deleting a connector makes Connect restart every task.
 */
export async function waitForDebeziumStreaming(timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const status = await connectApi('GET', '/connectors/cdc-postgres/status').catch(() => undefined)
    const states = JSON.stringify(status?.json ?? '').match(/\\?"state\\?":\\?"[A-Z]+/g) ?? []
    const active = await psql(`SELECT active FROM pg_replication_slots WHERE slot_name = 'cdc_slot'`, pgSuperUrl)
    if (states.length >= 2 && states.every((s) => s.includes('RUNNING')) && active === 't') return
    if (Date.now() > deadline) throw new Error(`the cdc-postgres connector is not streaming: ${states.join(' ')}`)
    await sleep(1_000)
  }
}

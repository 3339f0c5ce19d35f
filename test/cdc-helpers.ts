// Helpers for the CDC -> Cassandra integration tests: run the real commands as child processes, wait until
// Debezium and a replicate consumer group have caught up with PostgreSQL, and compare every row of Cassandra's
// users, orders and orders_by_user with PostgreSQL's users and orders.
import { randomUUID } from 'node:crypto'
import cassandra from 'cassandra-driver'
import { expect, onTestFinished } from 'vitest'
import { SETTINGS, readSetting } from '../internal/cli/index.js'
import type { RunSummary } from '../internal/pipeline/index.js'
import * as verify from '../internal/verify/index.js'
import { STREAMED_BAND } from '../internal/sinks/cassandra/index.js'
import { consumeUntil, endOffsets, kafka, pgOwnerUrl, pgUrl, psql, sleep, testAdmin, uniqueName } from './helpers.js'
import {
  committedOffsets,
  expectExit,
  parseJsonSummary,
  runCommand,
  startCommand,
  topicEndOffsets,
  type CommandName,
  type CommandResult,
  type RunningCommand,
} from './pipeline-helpers.js'

export const CDC_TOPICS = readSetting(SETTINGS.replicateTopics, {})
export const KEYSPACE = readSetting(SETTINGS.cassandraKeyspace, {})
export { STREAMED_BAND }

/** A command still running (see startCommand). */
export type Running = RunningCommand
export type { CommandResult }

/** Starts `node cmd/<name> ...args` at log level warn (TEST_LOG_LEVEL); SIGKILLed if running when the test ends. */
export const start = (name: CommandName, args: string[]): Running =>
  startCommand(name, args, { LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' })

/** Runs a command to its end (failing after timeoutMs) and expects exit code 0. */
export async function runOk(name: CommandName, args: string[], timeoutMs = 180_000): Promise<CommandResult> {
  const res = await runCommand(name, args, { timeoutMs, env: { LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' } })
  expectExit(res)
  return res
}

/** `npm run resnapshot -- ...args` to its end (it waits for Debezium's COMPLETED by default), expecting exit 0. */
export async function resnapshot(args: string[]): Promise<string> {
  const res = await runCommand('resnapshot', args, {
    timeoutMs: 900_000,
    env: { LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn' },
  })
  expectExit(res)
  return res.stdout
}

/** The JSON summary a command printed last (--summary-json). */
export const summaryOf = (res: CommandResult): RunSummary => parseJsonSummary<RunSummary>(res.stdout)

/** Arguments of a replicate run on the local stack for a test (a short session timeout: restarts rejoin fast). */
export const replicateArgs = (group: string, extra: string[] = []): string[] => [
  '--group',
  group,
  '--summary-json',
  '--session-timeout',
  '10',
  ...extra,
]

/** Produce/consume topics of one test (created by produce), deleted with their DLQs when the test ends. */
export async function eventTopics(tag: string): Promise<{ users: string; orders: string; products: string }> {
  const t = {
    users: uniqueName(`${tag}-users`),
    orders: uniqueName(`${tag}-orders`),
    products: uniqueName(`${tag}-products`),
  }
  const admin = await testAdmin()
  onTestFinished(async () => {
    const all = [t.users, t.orders, t.products, `${t.users}.dlq`, `${t.orders}.dlq`, `${t.products}.dlq`]
    const existing = new Set(await admin.listTopics())
    await admin.deleteTopics({ topics: all.filter((x) => existing.has(x)) }).catch(() => undefined)
  })
  return t
}

// ----------------------------------------------------------------------------------------------------------------
// Consumer groups and offsets

type Offsets = Map<string, string> // 'topic/partition' -> offset

/**
 * The replicate group of a test must see every change PostgreSQL ever had for a full compare to be valid. Replaying
 * the whole history from the beginning is exact but gets slower as the shared change topics grow (every test of
 * every engineer adds to them). So by default the helper first brings Cassandra up to date with a long-lived
 * baseline group (which only has to apply what arrived since its last run, and which commits only what Cassandra
 * acknowledged), then starts the test's own group exactly where the baseline stopped. Write timestamps make the
 * overlap harmless. CDC_TEST_FULL_REPLAY=1 skips the baseline: the test's group starts from the beginning.
 */
export async function prepareReplicateGroup(
  group: string,
  topics = CDC_TOPICS,
): Promise<{ fromOffsets: Offsets | null }> {
  if (process.env.CDC_TEST_FULL_REPLAY === '1') return { fromOffsets: null }
  const baseline = process.env.CDC_TEST_BASELINE_GROUP ?? 'cdc-test-baseline'
  const res = await runOk(
    'replicate',
    replicateArgs(baseline, ['--topics', topics.join(','), '--idle-timeout', '4']),
    600_000,
  )
  expect(summaryOf(res).deadLettered).toBe(0)
  const offsets = await committedOffsets(baseline, topics)
  const admin = await testAdmin()
  for (const topic of topics) {
    let partitions = [...offsets]
      .filter(([k]) => k.startsWith(`${topic}/`))
      .map(([k, offset]) => ({ partition: Number(k.slice(topic.length + 1)), offset: offset === '-1' ? '0' : offset }))
    // A change topic the baseline never committed on (a table new to the stack): the test's group reads it whole.
    if (partitions.length === 0) {
      partitions = (await admin.fetchTopicOffsets(topic)).map((p) => ({ partition: p.partition, offset: p.low }))
    }
    await admin.setOffsets({ groupId: group, topic, partitions })
  }
  return { fromOffsets: offsets }
}

/**
 * Waits until Debezium has emitted every change committed in PostgreSQL so far and the replicate group has
 * committed offsets past all of it. A sentinel user is inserted and deleted; once its delete shows on the change
 * topic, Debezium (which streams in commit order) has emitted everything before it.
 */
export async function waitForReplicated(group: string, timeoutMs = 240_000, topics = CDC_TOPICS): Promise<void> {
  const usersTopic = topics.find((t) => t.endsWith('.users'))!
  const from = await endOffsets(usersTopic)
  const id = randomUUID()
  await psql(`INSERT INTO users (id, name, dob) VALUES ('${id}', 'cdc-test sentinel', '2000-01-01')`)
  await psql(`DELETE FROM users WHERE id = '${id}'`, pgOwnerUrl)
  const isSentinelDelete = (key: Buffer | null, value: Buffer | null) =>
    value !== null && key?.toString().includes(id) === true && value.toString().includes('"op":"d"')
  // done() runs after each message: looking at the newest one alone keeps a long read linear.
  await consumeUntil(usersTopic, (rs) => isSentinelDelete(rs.at(-1)!.message.key, rs.at(-1)!.message.value), {
    from,
    timeoutMs,
  })
  // The Connect producer may still be delivering to another partition for a moment.
  await sleep(1_500)
  const ends = await topicEndOffsets(topics)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const committed = await committedOffsets(group, topics)
    const behind = [...ends].filter(([k, end]) => BigInt(committed.get(k) ?? '-1') < BigInt(end))
    if (behind.length === 0) return
    if (Date.now() > deadline) {
      throw new Error(
        `group ${group} still behind after ${timeoutMs} ms: ${behind.map(([k, e]) => `${k} ${committed.get(k)}/${e}`).join(', ')}`,
      )
    }
    await sleep(1_000)
  }
}

/** Waits until the group commits past the offsets it had when called: its consumer is applying changes. */
export async function waitForProgress(group: string, timeoutMs = 60_000, topics = CDC_TOPICS): Promise<void> {
  const before = await committedOffsets(group, topics)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const now = await committedOffsets(group, topics)
    if ([...now].some(([k, o]) => BigInt(o) > BigInt(before.get(k) ?? '-1'))) return
    if (Date.now() > deadline) throw new Error(`group ${group} made no progress within ${timeoutMs} ms`)
    await sleep(250)
  }
}

// ----------------------------------------------------------------------------------------------------------------
// Reading both stores

/** A Cassandra client on the local node, shut down when the test ends. */
export function cassandraClient(): cassandra.Client {
  const client = new cassandra.Client({
    contactPoints: readSetting(SETTINGS.cassandraContactPoints, {}),
    localDataCenter: readSetting(SETTINGS.cassandraLocalDc, {}),
    encoding: { useBigIntAsLong: true },
    socketOptions: { readTimeout: 60_000 },
  })
  onTestFinished(() => client.shutdown())
  return client
}

export type { Row } from '../internal/verify/index.js'

/** The entity tables from PostgreSQL (all, or those `where` names, optionally only some ids), keyed by id. */
export const pgRows = (where: verify.Where = {}) => verify.pgRows(pgUrl, where)

/** The entity and query tables from Cassandra (all rows, or the given ids), normalised like {@link pgRows}. */
export const cassandraRows = (client: cassandra.Client, where: verify.Where = {}) =>
  verify.cassandraRows(client, KEYSPACE, where)

/** Differences between Cassandra and PostgreSQL (every column of every row, or of the given ids); [] when equal. */
export const compareStores = (client: cassandra.Client, where: verify.Where = {}) =>
  verify.compareStores(client, pgUrl, KEYSPACE, where)

/**
 * Asserts Cassandra equals PostgreSQL. PostgreSQL is shared: when another test writes at the same moment, a compare
 * can catch a change in flight, so a failed compare is repeated twice after `catchUp` (waitForReplicated while the
 * replicate process still runs) before it counts.
 */
export async function expectStoresEqual(
  client: cassandra.Client,
  where: verify.Where = {},
  catchUp: () => Promise<void> = () => sleep(3_000),
) {
  let last = await compareStores(client, where)
  for (let i = 0; i < 2 && last.problems.length > 0; i++) {
    await catchUp()
    last = await compareStores(client, where)
  }
  expect(last.problems, last.problems.join('\n')).toEqual([])
  return last.rows
}

/** WRITETIME of a column of one row (bigint), or null when the row or the cell does not exist. */
export async function writetime(
  client: cassandra.Client,
  table: string,
  column: string,
  where: string,
  params: unknown[],
): Promise<bigint | null> {
  const rs = await client.execute(
    `SELECT WRITETIME(${column}) AS wt FROM ${KEYSPACE}.${table} WHERE ${where}`,
    params,
    { prepare: true },
  )
  const v: unknown = rs.first()?.get('wt')
  return typeof v === 'bigint' ? v : null
}

/** Deletes rows a test created in PostgreSQL (orders first: they reference users), as the owner role. */
export async function deletePgRows(users: string[], orders: string[] = []): Promise<void> {
  const list = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ')
  if (orders.length > 0) await psql(`DELETE FROM orders WHERE id IN (${list(orders)})`, pgOwnerUrl)
  if (users.length > 0)
    await psql(
      `DELETE FROM orders WHERE user_id IN (${list(users)}); DELETE FROM users WHERE id IN (${list(users)})`,
      pgOwnerUrl,
    )
}

export { kafka, sleep, uniqueName }

// The fault-injection harness: runs the whole pipeline under load (node cmd/produce at a fixed rate into a
// scenario's own topics, node cmd/consume into PostgreSQL, Debezium, node cmd/replicate into Cassandra), lets a
// scenario inject its fault, measures how long until changes made after the fault show up in PostgreSQL and in
// Cassandra, then drains and checks every row: PostgreSQL against the state computed from the events in Kafka,
// Cassandra against PostgreSQL. Each scenario adds one row to the table the suite prints at the end.
import { mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import type cassandra from 'cassandra-driver'
import pg from 'pg'
import { expect, onTestFinished } from 'vitest'
import { randomInt } from 'node:crypto'
import {
  ENTITIES,
  applyEvents,
  decodeEvent,
  encodeEvent,
  entityIdOf,
  entityOfTopic,
  type AnyEvent,
  type ExpectedState,
  type UserEvent,
} from '../../internal/model/index.js'
import { EventGenerator } from '../../internal/producer/index.js'
import { TARGETS_OF } from '../../internal/sinks/cassandra/index.js'
import { expectedQueryTable, type Row } from '../../internal/verify/index.js'
import { kafka, pgUrl, sleep, stack, withAdmin } from '../helpers.js'
import {
  CDC_TOPICS,
  KEYSPACE,
  cassandraClient,
  cassandraRows,
  pgRows,
  prepareReplicateGroup,
  replicateArgs,
  start,
  summaryOf,
  waitForProgress,
  waitForReplicated,
  type CommandResult,
  type Running,
} from '../cdc-helpers.js'
import {
  canonicalExpected,
  compareRows,
  committedOffsets,
  loadTables,
  pipelineTest,
  readTopics,
  topicEndOffsets,
  waitFor,
  type PipelineTestContext,
  type RowComparison,
  type TopicRecord,
} from '../pipeline-helpers.js'

/** One line of the fault table. */
export interface FaultRow {
  fault: string
  /** How long the fault lasted (the component was away), when it has a duration. */
  downS: number | null
  /** From the end of the fault until an event created after it was in PostgreSQL / its row in Cassandra. */
  recoveryPostgresS: number | null
  recoveryCassandraS: number | null
  events: number
  lost: number
  duplicates: number
  dlq: string
  outcome: string
}

export const table: FaultRow[] = []

/** Where every process's output of a run is kept (one file per process life), for a look after a failure. */
export const logDir = `${tmpdir()}/cdc-faults-${new Date().toISOString().replace(/[:.]/g, '-')}`

function keepOutput(name: string, text: string): void {
  mkdirSync(logDir, { recursive: true })
  writeFileSync(`${logDir}/${name}.log`, text)
}

/** The table in Markdown, as the suite prints it and docs/faults.md shows it. */
export function formatTable(rows: FaultRow[]): string {
  const s = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(1)} s`)
  const lines = [
    '| fault | down | recovery: PostgreSQL | recovery: Cassandra | events | lost | duplicates in effect | DLQ | outcome |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${s(r.downS)} | ${s(r.recoveryPostgresS)} | ${s(r.recoveryCassandraS)} | ${r.events} | ` +
        `${r.lost} | ${r.duplicates} | ${r.dlq} | ${r.outcome} |`,
    ),
  ]
  return lines.join('\n')
}

/** What a scenario's fault reports back: how long it lasted and when it ended (epoch ms). */
export interface FaultTiming {
  downMs: number | null
  endedAt: number
}

/** The running pipeline a fault acts on. */
export interface Load {
  ctx: PipelineTestContext
  consumeGroup: string
  replicateGroup: string
  consume: Running
  replicate: Running
  /** SIGKILLs the consumer (or the CDC sink) and starts a new one in the same group. */
  crashConsume(): Promise<void>
  crashReplicate(): Promise<void>
  /** Starts measuring recovery from `at` (epoch ms) now, while the fault is still on; default: when it ended. */
  recoverFrom(at: number): void
}

export interface Scenario {
  fault: string
  events: number
  rate: number
  inject(load: Load): Promise<FaultTiming>
  /** Valid events the scenario writes itself besides produce's (each with its own event id). */
  extraEvents?: number
  /** Records written straight into the topics by the scenario; checked by the scenario itself after the run. */
  afterDrain?(load: Load, records: TopicRecord[]): Promise<{ dlq: string }>
}

/** A record that the pipeline must apply: it decodes and its key is its entity id. */
function decodeValid(ctx: PipelineTestContext, r: TopicRecord): AnyEvent | null {
  try {
    const event = decodeEvent(entityOfTopic(r.topic, ctx.topicNames), r.value)
    return r.key === entityIdOf(event) ? event : null
  } catch {
    return null
  }
}

/** Sums comparisons, collecting their problems. */
function tally(parts: RowComparison[], problems: string[]): { lost: number; duplicates: number } {
  for (const p of parts) problems.push(...p.problems)
  return {
    lost: parts.reduce((n, p) => n + p.lost, 0),
    duplicates: parts.reduce((n, p) => n + p.duplicates, 0),
  }
}

/** Cassandra's entity tables and query tables (orders_by_user...) for the given ids against PostgreSQL's rows. */
async function compareCassandra(client: cassandra.Client, ids: Record<string, string[]>): Promise<RowComparison[]> {
  const want = await pgRows(ids)
  const have = await cassandraRows(client, ids)
  return ENTITIES.flatMap((spec) =>
    TARGETS_OF[spec.table]!.map((t) =>
      compareRows(
        `cassandra ${t.name}`,
        t.name === spec.table ? want[spec.table]! : expectedQueryTable(t, want[spec.table]!),
        have[t.name]!,
      ),
    ),
  )
}

/**
 * Seconds from `since` until a change made then is visible: a probe user event is produced into the scenario's users
 * topic at `since` (a new user, keyed by its id), then polled for in PostgreSQL and in Cassandra. null when it does
 * not show within 180 s.
 */
async function measureRecovery(
  client: cassandra.Client,
  ctx: PipelineTestContext,
  since: number,
): Promise<{ postgresS: number | null; cassandraS: number | null }> {
  const generator = new EventGenerator({ seed: randomInt(2 ** 31), mix: { create: 1, update: 0, delete: 0 } })
  let probe = generator.next()
  while (probe.entity !== 'user') probe = generator.next()
  const event = probe.event as UserEvent
  const deadline = since + 180_000
  const producer = kafka.producer({ retry: { retries: 30, maxRetryTime: 2_000 } })
  try {
    await producer.connect()
    await producer.send({ topic: ctx.users, acks: -1, messages: [{ key: event.user_id, value: encodeEvent(event) }] })
  } finally {
    await producer.disconnect().catch(() => undefined)
  }
  let postgresS: number | null = null
  while (postgresS === null && Date.now() < deadline) {
    const c = new pg.Client({ connectionString: pgUrl })
    try {
      await c.connect()
      const res = await c.query('SELECT 1 FROM users WHERE id = $1', [event.user_id])
      if (res.rowCount === 1) postgresS = (Date.now() - since) / 1000
    } catch {
      // PostgreSQL itself may be what is away.
    } finally {
      await c.end().catch(() => undefined)
    }
    if (postgresS === null) await sleep(200)
  }
  if (postgresS === null) return { postgresS, cassandraS: null }
  while (Date.now() < deadline) {
    try {
      const rs = await client.execute(`SELECT id FROM ${KEYSPACE}.users WHERE id = ?`, [event.user_id], {
        prepare: true,
      })
      if (rs.rowLength === 1) return { postgresS, cassandraS: (Date.now() - since) / 1000 }
    } catch {
      // Cassandra itself may be what is away.
    }
    await sleep(200)
  }
  return { postgresS, cassandraS: null }
}

/** Waits until the group has committed every offset of the topics (the end offsets when called). */
async function waitForDrained(group: string, topics: string[], timeoutMs: number): Promise<void> {
  const ends = await topicEndOffsets(topics)
  await waitFor(
    `group ${group} to commit up to the end of ${topics.join(', ')}`,
    async () => {
      const committed = await committedOffsets(group, topics)
      return [...ends].every(([k, end]) => BigInt(committed.get(k) ?? '-1') >= BigInt(end))
    },
    timeoutMs,
    1_000,
  )
}

function expectClean(what: string, res: CommandResult): void {
  expect(res.code, `${what} exited ${res.code} (${res.signal}):\n${(res.stdout + res.stderr).slice(-6000)}`).toBe(0)
}

/**
 * Runs one scenario and records its table row; fails when anything was lost, applied twice in effect, dead-lettered
 * without cause, or a process ended badly. The row is recorded before the checks, so a failing fault is in the table.
 */
export async function runScenario(s: Scenario): Promise<FaultRow> {
  const slug = s.fault
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 24)
  const ctx = pipelineTest(`fault-${slug}`)
  await ctx.createTopics()
  const topics = [ctx.users, ctx.orders, ctx.products]
  const client = cassandraClient()
  const replicateGroup = ctx.group('replicate')
  await prepareReplicateGroup(replicateGroup)
  const cdcDlqTopics = CDC_TOPICS.map((t) => `${t}.dlq`)
  const cdcDlqBefore = await topicEndOffsets(cdcDlqTopics)

  const produce = start('produce', [
    ...ctx.topicArgs,
    '--count',
    String(s.events),
    '--rate',
    String(s.rate),
    '--batch-size',
    '100',
    '--seed',
    String(ctx.seed),
  ])
  const lives = { consume: 0, replicate: 0 }
  const consumeGroup = ctx.group('consume')
  const consumeArgs = [...ctx.topicArgs, '--group', consumeGroup, '--summary-json', '--session-timeout', '10']
  const load: Load = {
    ctx,
    consumeGroup,
    replicateGroup,
    consume: start('consume', consumeArgs),
    replicate: start('replicate', replicateArgs(replicateGroup)),
    crashConsume: () => crash('consume'),
    crashReplicate: () => crash('replicate'),
    recoverFrom: (at) => {
      recovering = measureRecovery(client, ctx, at)
    },
  }
  let recovering: ReturnType<typeof measureRecovery> | undefined
  // SIGKILLs one of the two long-running processes and starts a new one in the same group.
  async function crash(name: 'consume' | 'replicate'): Promise<void> {
    load[name].kill('SIGKILL')
    expect((await load[name].exited).signal).toBe('SIGKILL')
    keepOutput(`${slug}-${name}-${++lives[name]}`, load[name].output())
    load[name] = start(name, name === 'consume' ? consumeArgs : replicateArgs(replicateGroup))
  }
  // Under way: the consumer has written and the CDC sink has applied the changes that caused.
  await waitForProgress(replicateGroup, 120_000)
  await sleep(2_000)

  const timing = await s.inject(load)
  const recovery = await (recovering ?? measureRecovery(client, ctx, timing.endedAt))
  console.log(`[faults] ${s.fault}: ${JSON.stringify({ ...timing, ...recovery })}`)

  const produced = await produce.exited
  const problems: string[] = []
  if (produced.code !== 0) {
    problems.push(`produce exited ${produced.code}: ${(produced.stdout + produced.stderr).slice(-3000)}`)
  }
  const producedCount = Number(/produced\s+(\d+)/.exec(produced.stdout)?.[1] ?? NaN)
  const resent = /resent partitions\s+(\d+)/.exec(produced.stdout)?.[1]
  const renewals = /producer renewals\s+(\d+)/.exec(produced.stdout)?.[1]
  console.log(`[faults] ${s.fault}: produce resent ${resent} partition batches, renewed its producer ${renewals} times`)

  await waitForDrained(consumeGroup, topics, 300_000)
  load.consume.kill('SIGTERM')
  const consumed = await load.consume.exited
  await waitForReplicated(replicateGroup)

  // Every record in the topics: what the pipeline must apply, and what it must reject (the scenario checks those).
  const records = await readTopics(topics, 120_000)
  const valid: AnyEvent[] = []
  for (const r of records) {
    const e = decodeValid(ctx, r)
    if (e) valid.push(e)
  }
  const distinct = new Set(valid.map((e) => e.event_id)).size
  const expected: ExpectedState = applyEvents(valid)
  ctx.trackRows(expected.users.keys(), [...expected.orders.keys(), ...expected.orphanOrderIds])

  // PostgreSQL against the events, every entity table...
  const want = canonicalExpected(expected)
  const ids = Object.fromEntries(ENTITIES.map((e) => [e.table, [...want[e.table]!.keys()]]))
  const have = await loadTables(
    Object.fromEntries(ENTITIES.map((e) => [e.table, [...ids[e.table]!, ...(expected.orphans[e.table] ?? [])]])),
  )
  // ... and Cassandra against PostgreSQL, for the same ids.
  const rows = tally(
    [
      ...ENTITIES.map((e) => compareRows(`postgres ${e.table}`, want[e.table]!, have[e.table]!)),
      ...(await compareCassandra(client, ids)),
    ],
    problems,
  )
  // An event produce reported as sent that is not in Kafka is lost before the pipeline even saw it.
  // The recovery probe is one more event.
  const lostInKafka = Math.max(0, s.events + (s.extraEvents ?? 0) + 1 - distinct)
  if (lostInKafka > 0) problems.push(`${lostInKafka} produced events are not in Kafka`)
  const lost = lostInKafka + rows.lost
  const duplicates = rows.duplicates

  load.replicate.kill('SIGTERM')
  const replicated = await load.replicate.exited
  keepOutput(`${slug}-produce`, produced.stdout + produced.stderr)
  keepOutput(`${slug}-consume-${++lives.consume}`, consumed.stdout + consumed.stderr)
  keepOutput(`${slug}-replicate-${++lives.replicate}`, replicated.stdout + replicated.stderr)
  const cdcDlqAfter = await topicEndOffsets(cdcDlqTopics)
  const cdcDead = [...cdcDlqAfter].reduce((n, [k, end]) => n + Number(end) - Number(cdcDlqBefore.get(k) ?? '0'), 0)

  let dlq: string
  if (s.afterDrain) {
    dlq = (await s.afterDrain(load, records)).dlq
  } else {
    const dead = (await readTopics(topics.map((t) => `${t}.dlq`)).catch(() => [])).length
    dlq = dead === 0 ? '0' : `${dead} (valid events!)`
    if (dead > 0) problems.push(`${dead} valid events in the DLQ`)
  }
  if (cdcDead > 0) problems.push(`${cdcDead} change events in the CDC DLQ`)

  const row: FaultRow = {
    fault: s.fault,
    downS: timing.downMs === null ? null : timing.downMs / 1000,
    recoveryPostgresS: recovery.postgresS,
    recoveryCassandraS: recovery.cassandraS,
    events: valid.length,
    lost,
    duplicates,
    dlq: cdcDead > 0 ? `${dlq}; CDC DLQ ${cdcDead}` : dlq,
    outcome: problems.length === 0 && consumed.code === 0 && replicated.code === 0 ? 'pass' : 'FAIL',
  }
  table.push(row)
  console.log(`[faults] ${JSON.stringify(row)}`)

  expect(problems.slice(0, 30), problems.slice(0, 30).join('\n')).toEqual([])
  expect(producedCount, 'produce must report every event it was asked for').toBe(s.events)
  expect(lost).toBe(0)
  expect(duplicates).toBe(0)
  expect(recovery.postgresS, 'changes after the fault reach PostgreSQL').not.toBeNull()
  expect(recovery.cassandraS, 'changes after the fault reach Cassandra').not.toBeNull()
  expectClean('consume (last life, SIGTERM)', consumed)
  expectClean('replicate (last life, SIGTERM)', replicated)
  expect(summaryOf(replicated).deadLettered).toBe(0)
  return row
}

/** The node id of the broker leading partition `partition` of `topic`. */
export async function leaderOf(topic: string, partition = 0): Promise<number> {
  const md = await withAdmin((admin) => admin.fetchTopicMetadata({ topics: [topic] }))
  return md.topics[0]!.partitions.find((x) => x.partitionId === partition)!.leader
}

/** The node id of the broker coordinating a consumer group (Kafka's consumer-groups tool; kafkajs has no call). */
export async function coordinatorOf(group: string): Promise<number> {
  const out = await stack('kafka', 'groups', '--describe', '--group', group, '--state')
  const id = new RegExp(`^${group}\\s+\\S+\\s+\\((\\d+)\\)`, 'm').exec(out)?.[1]
  if (id === undefined) throw new Error(`no coordinator for ${group} in:\n${out}`)
  return Number(id)
}

/** Makes sure a component is running again when the test ends, whatever happened. */
export function restoreAfter(component: string): void {
  onTestFinished(async () => {
    await stack('start-component', component)
  })
}

export type { Row }

// Helpers for the pipeline integration tests: run the real commands as child processes, read back what a test's
// topics hold, compute the rows PostgreSQL must have (decodeEvent + applyEvents, no SQL involved) and compare them
// with the rows it has. Every resource gets a unique name and is removed when the test ends.
import { spawn } from 'node:child_process'
import { randomInt, randomUUID } from 'node:crypto'
import { readFileSync, readdirSync, readlinkSync } from 'node:fs'
import pg from 'pg'
import { ensureTopics, type KafkaHeaders } from '../internal/kafka/index.js'
import { expect, onTestFinished } from 'vitest'
import {
  ENTITIES,
  VERSION_COLUMN,
  applyEvents,
  decodeEvent,
  entityOfTopic,
  type AnyEvent,
  type EntitySpec,
  type ExpectedState,
  type TopicNames,
} from '../internal/model/index.js'
import { EXPECTED_COLUMNS } from '../internal/sinks/postgres/index.js'
import { dlqTopicFor } from '../internal/pipeline/index.js'
import type { RunSummary } from '../internal/pipeline/index.js'
import { kafka, pgOwnerUrl, pgUrl, repoDir, sleep, withAdmin } from './helpers.js'

export type CommandName = 'produce' | 'consume' | 'replicate' | 'cache-sync' | 'replay-dlq'
/** Any command startCommand and runCommand can run (the cache's read side serves no engine flags). */
export type RunnableCommand = CommandName | 'api' | 'purge' | 'resnapshot'

/** How a command run ended, with everything it printed. */
export interface CommandResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  durationMs: number
}

/** A command still running. */
export interface RunningCommand {
  pid: number
  stdout(): string
  stderr(): string
  /** stdout, then stderr. */
  output(): string
  /** Resolves when the process has exited and its output is closed. */
  exited: Promise<CommandResult>
  kill(signal: NodeJS.Signals): void
}

/**
 * Starts `node cmd/<name> ...args` from the repository root; killed (SIGKILL) if still running when the test ends.
 * Metrics are off (--metrics-port 0) unless `args` names a port: tests run several copies of a command at once, and
 * other tests beside them, so the default ports would collide.
 */
export function startCommand(name: RunnableCommand, args: string[], env: Record<string, string> = {}): RunningCommand {
  const started = performance.now()
  const serves = (['produce', 'consume', 'replicate', 'cache-sync', 'replay-dlq'] as string[]).includes(name)
  const metrics = !serves || args.some((a) => a.startsWith('--metrics-port')) ? [] : ['--metrics-port', '0']
  const child = spawn(process.execPath, [`cmd/${name}`, ...metrics, ...args], {
    cwd: repoDir,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<CommandResult>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: out, stderr: err, durationMs: performance.now() - started }),
    )
  })
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    output: () => out + err,
    exited,
    kill: (signal) => void child.kill(signal),
  }
}

/** Runs a command to its end; fails (after killing it) when it takes longer than timeoutMs. */
export async function runCommand(
  name: RunnableCommand,
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<CommandResult> {
  const cmd = startCommand(name, args, options.env)
  const timeoutMs = options.timeoutMs ?? 120_000
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      cmd.kill('SIGKILL')
      reject(
        new Error(
          `node cmd/${name} ${args.join(' ')} still running after ${timeoutMs} ms\n` +
            `stdout:\n${cmd.stdout().slice(-3000)}\nstderr:\n${cmd.stderr().slice(-3000)}`,
        ),
      )
    }, timeoutMs)
  })
  try {
    return await Promise.race([cmd.exited, timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/** Fails with the command's output when it did not exit with `code`. */
export function expectExit(result: CommandResult, code = 0): void {
  if (result.code !== code) {
    throw new Error(
      `expected exit code ${code}, got ${result.code} (signal ${result.signal})\n` +
        `stdout:\n${result.stdout.slice(-4000)}\nstderr:\n${result.stderr.slice(-4000)}`,
    )
  }
}

/** The last stdout line that is a JSON object with `key` and is not a log record (--summary-json). */
export function parseJsonSummary<T>(stdout: string, key = 'processed'): T {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{'))
  for (let i = lines.length - 1; i >= 0; i--) {
    const parsed = JSON.parse(lines[i]!) as Record<string, unknown>
    if (key in parsed && !('level' in parsed)) return parsed as T
  }
  throw new Error(`no JSON summary with '${key}' in stdout:\n${stdout.slice(-3000)}`)
}

/** The consume summary printed with --summary-json. */
export const consumeSummary = (stdout: string): RunSummary => parseJsonSummary<RunSummary>(stdout)

/** Polls `check` every intervalMs until it returns a value other than undefined/false; fails after timeoutMs. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** One test's own users and orders topics (and their DLQs), consumer groups, seed and PostgreSQL rows. */
export interface PipelineTestContext {
  users: string
  orders: string
  products: string
  topicNames: TopicNames
  /** Random per run, logged: a failure can be reproduced with the same seed. */
  seed: number
  /** --users-topic/--orders-topic/--products-topic for both commands. */
  topicArgs: string[]
  /** A new consumer group name, deleted when the test ends. */
  group(label?: string): string
  /** Creates the users (3 partitions) and orders (5) topics as cmd/produce would (RF 3, min ISR 2), or as many. */
  createTopics(partitions?: { users: number; orders: number }): Promise<void>
  /** Rows to delete from PostgreSQL when the test ends. */
  trackRows(userIds: Iterable<string>, orderIds: Iterable<string>, productIds?: Iterable<string>): void
}

const MIN_ISR = { 'min.insync.replicas': '2' }

/**
 * Names a test's topics and groups uniquely, and registers the cleanup that deletes the topics (with their .dlq),
 * the groups and the PostgreSQL rows of the test's entities when the test ends.
 */
export function pipelineTest(label: string): PipelineTestContext {
  const id = randomUUID().slice(0, 8)
  const users = `test-${label}-users-${id}`
  const orders = `test-${label}-orders-${id}`
  const products = `test-${label}-products-${id}`
  const seed = randomInt(2 ** 31)
  console.log(`[${label}] topics ${users}, ${orders}; seed ${seed}`)
  const groups: string[] = []
  const userIds = new Set<string>()
  const orderIds = new Set<string>()
  const productIds = new Set<string>()
  onTestFinished(async () => {
    const admin = kafka.admin()
    await admin.connect()
    try {
      const existing = new Set(await admin.listTopics())
      const topics = [users, orders, products, dlqTopicFor(users), dlqTopicFor(orders), dlqTopicFor(products)].filter(
        (t) => existing.has(t),
      )
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined)
      // A group still holding a killed member's session cannot be deleted yet; it expires with the broker's
      // offsets retention.
      for (const g of groups) await admin.deleteGroups([g]).catch(() => undefined)
    } finally {
      await admin.disconnect()
    }
    if (userIds.size + orderIds.size + productIds.size > 0) {
      // The owner's: the runtime role may not delete.
      const client = new pg.Client({ connectionString: pgOwnerUrl })
      await client.connect()
      try {
        await client.query('DELETE FROM orders WHERE id = ANY($1::uuid[]) OR user_id = ANY($2::uuid[])', [
          [...orderIds],
          [...userIds],
        ])
        await client.query('DELETE FROM users WHERE id = ANY($1::uuid[])', [[...userIds]])
        await client.query('DELETE FROM products WHERE id = ANY($1::uuid[])', [[...productIds]])
      } finally {
        await client.end()
      }
    }
  })
  return {
    users,
    orders,
    products,
    topicNames: { user: users, order: orders, product: products },
    seed,
    topicArgs: ['--users-topic', users, '--orders-topic', orders, '--products-topic', products],
    group: (g = 'group') => {
      const name = `test-${label}-${g}-${randomUUID().slice(0, 8)}`
      groups.push(name)
      return name
    },
    createTopics: async (partitions = { users: 3, orders: 5 }) => {
      // As the commands create theirs (ensureTopics waits for every partition's leader: kafkajs' own wait threw
      // UNKNOWN_TOPIC_OR_PARTITION on a just-created topic).
      await withAdmin((admin) =>
        ensureTopics(admin, [
          { topic: users, partitions: partitions.users, replicationFactor: 3, configs: MIN_ISR },
          { topic: orders, partitions: partitions.orders, replicationFactor: 3, configs: MIN_ISR },
          { topic: products, partitions: 3, replicationFactor: 3, configs: MIN_ISR },
        ]),
      )
    },
    trackRows: (u, o, p = []) => {
      for (const x of u) userIds.add(x)
      for (const x of o) orderIds.add(x)
      for (const x of p) productIds.add(x)
    },
  }
}

/** One Kafka record as read back by a test. */
export interface TopicRecord {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: Buffer | null
  headers: KafkaHeaders
}

/** Next offset of each partition of the topics ("topic/partition" -> offset; none for a topic not created yet). */
export async function topicEndOffsets(topics: string[]): Promise<Map<string, string>> {
  return withAdmin(async (admin) => {
    const existing = new Set(await admin.listTopics())
    const out = new Map<string, string>()
    for (const topic of topics.filter((t) => existing.has(t))) {
      for (const p of await admin.fetchTopicOffsets(topic)) out.set(`${topic}/${p.partition}`, p.high)
    }
    return out
  })
}

/**
 * A group's committed offsets ("topic/partition" -> offset; '-1' when none). A retriable answer (a coordinator still
 * loading its groups after a broker came back, or one that moved) is asked again for up to 30 s: kafkajs' admin does
 * not retry offset fetches itself.
 */
export async function committedOffsets(groupId: string, topics: string[]): Promise<Map<string, string>> {
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      return await withAdmin(async (admin) => {
        const out = new Map<string, string>()
        for (const t of await admin.fetchOffsets({ groupId, topics })) {
          for (const p of t.partitions) out.set(`${t.topic}/${p.partition}`, p.offset)
        }
        return out
      })
    } catch (err) {
      if ((err as { retriable?: boolean }).retriable !== true || Date.now() > deadline) throw err
      await sleep(500)
    }
  }
}

/** Messages covered by committed offsets, for a group that started at offset 0 of every partition. */
export const committedCount = (committed: Map<string, string>): number =>
  [...committed.values()].reduce((n, o) => n + Math.max(0, Number(o)), 0)

/**
 * Every record of the given topics, from the beginning up to the end offsets they have when called, read with a
 * throwaway consumer group (deleted afterwards).
 */
export async function readTopics(topics: string[], timeoutMs = 60_000): Promise<TopicRecord[]> {
  const ends = await topicEndOffsets(topics)
  const remaining = new Map([...ends].filter(([, end]) => end !== '0').map(([k, end]) => [k, BigInt(end)]))
  const records: TopicRecord[] = []
  if (remaining.size === 0) return records
  const groupId = `test-reader-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200, maxBytesPerPartition: 4_194_304 })
  await consumer.connect()
  try {
    await consumer.subscribe({ topics, fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`reading ${topics.join(', ')}: ${[...remaining.keys()].join(', ')} unfinished`)),
        timeoutMs,
      )
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const k = `${batch.topic}/${batch.partition}`
            const end = remaining.get(k)
            if (end === undefined) return
            for (const m of batch.messages) {
              if (BigInt(m.offset) >= end) break
              records.push({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key === null ? null : m.key.toString(),
                value: m.value,
                headers: m.headers ?? {},
              })
            }
            if (BigInt(batch.lastOffset()) + 1n >= end) remaining.delete(k)
            if (remaining.size === 0) {
              clearTimeout(timer)
              resolve()
            }
          },
        })
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
    const admin = kafka.admin()
    await admin.connect()
    await admin.deleteGroups([groupId]).catch(() => undefined)
    await admin.disconnect()
  }
  return records
}

/** A test's records decoded: the valid events and the records the pipeline must reject. */
export interface DecodedTopics {
  events: AnyEvent[]
  rejected: { record: TopicRecord; error: unknown }[]
  records: TopicRecord[]
}

/** Reads back everything in the test's entity topics and decodes it as the pipeline does. */
export async function readEvents(ctx: PipelineTestContext): Promise<DecodedTopics> {
  const records = await readTopics([ctx.users, ctx.orders, ctx.products])
  const events: AnyEvent[] = []
  const rejected: DecodedTopics['rejected'] = []
  for (const r of records) {
    try {
      events.push(decodeEvent(entityOfTopic(r.topic, ctx.topicNames), r.value))
    } catch (error) {
      rejected.push({ record: r, error })
    }
  }
  return { events, rejected, records }
}

/**
 * The rows PostgreSQL must hold after the events (applyEvents: the highest version wins, an order's deletion is
 * sticky, a user's deletion cascades, orders without a user are left out). Registers the ids for cleanup.
 */
export function expectedStateOf(ctx: PipelineTestContext, events: AnyEvent[]): ExpectedState {
  const state = applyEvents(events)
  ctx.trackRows(state.users.keys(), [...state.orders.keys(), ...state.orphanOrderIds], state.tables.products?.keys())
  return state
}

/**
 * A row in a canonical form, comparable across PostgreSQL and the reducer: timestamps as UTC ISO with milliseconds
 * (what the events carry), dates, uuids and numerics as text, integers as numbers. Driven by the entity definitions.
 */
export type CanonicalRow = Record<string, string | number | boolean | null>
export type CanonicalUser = CanonicalRow
export type CanonicalOrder = CanonicalRow

/** Every entity table's rows for a set of ids, by table name (users, orders, products...). */
export type Rows = Record<string, Map<string, CanonicalRow>> & {
  users: Map<string, CanonicalRow>
  orders: Map<string, CanonicalRow>
}

const iso = (text: string): string => new Date(text).toISOString()
const ruleOf = (spec: EntitySpec, column: string) => spec.fields.find((f) => f.column === column)?.rule

/** The expected state in the canonical form of {@link loadRows}, every entity table. */
export function canonicalExpected(state: ExpectedState): Rows {
  const out: Record<string, Map<string, CanonicalRow>> = {}
  for (const spec of ENTITIES) {
    const rows = new Map<string, CanonicalRow>()
    for (const [id, row] of state.tables[spec.table] ?? new Map()) {
      const c: CanonicalRow = { ...row }
      for (const f of spec.fields) {
        const v = row[f.column]
        if (v === undefined || v === null) continue
        if (f.rule.kind === 'timestamp') c[f.column] = iso(String(v))
        // numeric(p, s) prints s decimals; the amounts carry at most s, so toFixed(s) is exact.
        else if (f.rule.kind === 'money') c[f.column] = Number(v).toFixed(f.rule.scale)
      }
      rows.set(id, c)
    }
    out[spec.table] = rows
  }
  return out as Rows
}

// Timestamps as UTC ISO with milliseconds (what the events carry), dates and numerics as text: no driver parsing.
const TS = (col: string) => `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${col}`

/** The SELECT of an entity table's rows for a set of ids, every column the sink writes, in the canonical form. */
function canonicalSelect(spec: EntitySpec): string {
  const columns = EXPECTED_COLUMNS[spec.table].map((col) => {
    if (col === VERSION_COLUMN) return `${col}::int AS ${col}`
    const kind = ruleOf(spec, col)?.kind
    if (kind === 'timestamp') return TS(col)
    if (kind === 'int' || kind === 'boolean' || kind === 'text' || kind === 'enum') return col
    return `${col}::text AS ${col}`
  })
  return `SELECT ${columns.join(', ')} FROM ${spec.table} WHERE id = ANY($1::uuid[])`
}

/** The rows PostgreSQL holds for the given ids of each entity table (users, orders, products...), every column. */
export async function loadTables(ids: Record<string, Iterable<string>>): Promise<Rows> {
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  try {
    const out: Record<string, Map<string, CanonicalRow>> = {}
    for (const spec of ENTITIES) {
      const wanted = [...(ids[spec.table] ?? [])]
      const res = wanted.length === 0 ? { rows: [] } : await client.query<CanonicalRow>(canonicalSelect(spec), [wanted])
      out[spec.table] = new Map(res.rows.map((r) => [String(r.id), r]))
    }
    return out as Rows
  } finally {
    await client.end()
  }
}

/** The users and orders rows PostgreSQL holds for the given ids, every column. */
export const loadRows = (userIds: Iterable<string>, orderIds: Iterable<string>): Promise<Rows> =>
  loadTables({ users: userIds, orders: orderIds })

/** How many of the given ids have a row (progress of a running consumer). */
export async function countRows(userIds: string[], orderIds: string[]): Promise<number> {
  const client = new pg.Client({ connectionString: pgUrl })
  await client.connect()
  try {
    const { rows } = await client.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM users WHERE id = ANY($1::uuid[])) +
              (SELECT count(*) FROM orders WHERE id = ANY($2::uuid[])) AS n`,
      [userIds, orderIds],
    )
    return Number(rows[0]!.n)
  } finally {
    await client.end()
  }
}

/** How a table's rows compare with the rows it must hold. */
export interface RowComparison {
  /** Readable, one per row that differs. */
  problems: string[]
  /** Rows missing, or behind their expected version: a change not applied. */
  lost: number
  /** Rows that must not be there, or ahead of or beside their expected version: a change applied twice or late. */
  duplicates: number
}

/** Compares every column of every row (strictly: the two sides must be in the same form) and classifies the rest. */
export function compareRows<R extends object>(
  label: string,
  expected: Map<string, R>,
  actual: Map<string, R>,
): RowComparison {
  const out: RowComparison = { problems: [], lost: 0, duplicates: 0 }
  for (const [id, want] of expected) {
    const got = actual.get(id)
    if (got === undefined) {
      out.lost++
      out.problems.push(`${label} ${id}: missing`)
      continue
    }
    const w = want as Record<string, unknown>
    const g = got as Record<string, unknown>
    const cols = Object.keys(w).filter((c) => g[c] !== w[c])
    if (cols.length === 0) continue
    if (Number(g.version) < Number(w.version)) out.lost++
    else out.duplicates++
    out.problems.push(
      `${label} ${id}: ${cols.map((c) => `${c} expected ${String(w[c])}, got ${String(g[c])}`).join('; ')}`,
    )
  }
  for (const id of actual.keys()) {
    if (expected.has(id)) continue
    out.duplicates++
    out.problems.push(`${label} ${id}: present but not expected`)
  }
  return out
}

/**
 * Asserts that PostgreSQL holds exactly the expected rows of every entity table, every column, for every id of the
 * test's events, and no row whose referenced row never existed (an order whose user never existed). Returns the rows
 * it read.
 */
export async function expectRowsMatch(state: ExpectedState): Promise<Rows> {
  const want = canonicalExpected(state)
  const ids = Object.fromEntries(
    ENTITIES.map((s) => [s.table, [...want[s.table]!.keys(), ...(state.orphans[s.table] ?? [])]]),
  )
  const have = await loadTables(ids)
  const orphansPresent = ENTITIES.flatMap((s) =>
    [...(state.orphans[s.table] ?? [])].filter((id) => have[s.table]!.has(id)),
  )
  expect(orphansPresent, 'rows whose referenced row never existed must not be in PostgreSQL').toEqual([])
  const diff = ENTITIES.flatMap((s) => compareRows(s.table, want[s.table]!, have[s.table]!).problems)
  expect(diff.slice(0, 25), `${diff.length} differences between PostgreSQL and the expected state`).toEqual([])
  for (const s of ENTITIES) expect(have[s.table]!.size, s.table).toBe(want[s.table]!.size)
  return have
}

/** The DLQ records of a test's topics. */
export async function readDlq(ctx: PipelineTestContext): Promise<TopicRecord[]> {
  return readTopics([dlqTopicFor(ctx.users), dlqTopicFor(ctx.orders)])
}

/** A header value as text (kafkajs delivers Buffers). */
export function headerText(headers: KafkaHeaders, name: string): string | undefined {
  const v = headers[name]
  if (v === undefined) return undefined
  const one = Array.isArray(v) ? v.at(-1) : v
  return one === undefined ? undefined : one.toString()
}

/** Local ports of the process's TCP connections to PostgreSQL's port (its sockets, in /proc/<pid>/net/tcp*). */
export function postgresPortsOf(pid: number): number[] {
  const inodes = new Set<string>()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let link = ''
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`)
      } catch {
        // closed meanwhile
      }
      const m = /^socket:\[(\d+)\]$/.exec(link)
      if (m) inodes.add(m[1])
    }
  } catch {
    return []
  }
  const pgPort = (Number(process.env.PG_PORT ?? 5432) || 5432).toString(16).toUpperCase().padStart(4, '0')
  const ports: number[] = []
  for (const file of ['tcp', 'tcp6']) {
    let text = ''
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10) continue
      const [, local, remote, , , , , , , inode] = f
      if (inodes.has(inode) && remote.split(':')[1] === pgPort) ports.push(parseInt(local.split(':')[1], 16))
    }
  }
  return ports
}

// CPU per event of the path a partition worker runs, with no network: Kafka message bytes -> decode and validate ->
// the batch's reduction -> the SQL text and parameters the PostgreSQL sink would send, through the sink's own
// classes (PostgresBatchSink over PostgresSink) with the pg pool stubbed. Over a fixed, seeded set of events it
// prints the CPU (process.cpuUsage, every thread of the process) per 1,000 events, median of N runs.
//
//   node dist/bench/cpu-path.js [--events=N] [--runs=N] [--batch=N] [--seed=N] [--entities=user,order|all]
//                               [--boundary | --workers] [--tree=DIR]
//   node dist/bench/cpu-path.js --compare=DIR [--tree=NEW] [--rounds=N] ...   DIR's build against this one's (or
//                                                                              NEW's), alternating
//
// --tree runs another checkout's build (DIR/dist, e.g. a worktree of an older commit: `git worktree add DIR REF`,
// node_modules symlinked, `npx tsc -p tsconfig.build.json` there): the sink is imported from it, the events always
// come from this tree's generator, so both trees are fed the same bytes. --compare runs this tree and DIR's in
// alternating child processes (old, new, new, old, ...), each child `--runs` runs after two warm-up runs, and prints
// both medians and their ratio. Without --boundary or --workers: the path of --workers 0, in this thread.
// --boundary adds a structured clone of each batch and its result (what posting the messages as they are to a
// worker costs). --workers runs the batches through the tree's own PoolExecutor: one worker thread per partition,
// the partitions at once, the stubbed sink in each thread (cpu-path-sink.ts), the CPU of every thread counted.
// Keys and values are views into one buffer per round of batches, as kafkajs's are into a fetch response.
import { execFileSync } from 'node:child_process'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ENTITIES, encodeEvent } from '../internal/model/index.js'
import { positiveInt } from '../internal/config/index.js'
import { EventGenerator } from '../internal/producer/index.js'
import { stubPool, stubbedSink, type Sent } from './cpu-path-sink.js'

export { stubPool, type Sent }

const here = resolve(new URL('../..', import.meta.url).pathname)

const flag = (name: string): string | undefined =>
  process.argv
    .filter((a) => a.startsWith(`--${name}=`))
    .at(-1)
    ?.slice(name.length + 3)

/** One Kafka message as the harness replays it (what the engine hands the sink, bytes as Buffers). */
export interface PathMessage {
  topic: string
  partition: number
  offset: string
  key: Uint8Array
  value: Uint8Array
  headers: Record<string, never>
  timestamp: string
}

// A key's partition: any stable hash keeps an entity's events in one partition, in order, as Kafka's does.
function partitionOf(key: string, partitions: number): number {
  let h = 2166136261
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619)
  return (h >>> 0) % partitions
}

/**
 * `count` events of the seeded generator (a fixed clock, so the same bytes every time) of the given entities, as
 * per-partition batches of at most `batch` messages, in the order the partitions' fetches would hand them over.
 */
export function buildBatches(opts: { count: number; seed: number; batch: number; entities?: readonly string[] }) {
  const gen = new EventGenerator({ seed: opts.seed, clock: fixedClock() })
  const byPartition = new Map<string, PathMessage[]>()
  let n = 0
  while (n < opts.count) {
    const g = gen.next()
    if (opts.entities !== undefined && !opts.entities.includes(g.entity)) continue
    const spec = ENTITIES.find((s) => s.entity === g.entity)!
    const partition = partitionOf(g.key, spec.partitions)
    const id = `${g.topic}/${partition}`
    let list = byPartition.get(id)
    if (list === undefined) byPartition.set(id, (list = []))
    list.push({
      topic: g.topic,
      partition,
      offset: String(list.length),
      key: Buffer.from(g.key),
      value: encodeEvent(g.event),
      headers: {},
      timestamp: String(Date.parse(g.event.occurred_at)),
    })
    n++
  }
  const batches: PathMessage[][] = []
  const lists = [...byPartition.values()]
  for (let at = 0; lists.some((l) => at < l.length); at += opts.batch) {
    const round: PathMessage[][] = []
    for (const l of lists) if (at < l.length) round.push(l.slice(at, at + opts.batch))
    batches.push(...asOneFetch(round))
  }
  return batches
}

// The keys and values of one round of batches as views into one buffer, as kafkajs hands them over: slices of the
// fetch response that brought every partition's batch (what a structured clone of a batch copies whole).
function asOneFetch(round: PathMessage[][]): PathMessage[][] {
  const messages = round.flat()
  const response = Buffer.allocUnsafeSlow(messages.reduce((n, m) => n + m.key.length + m.value.length, 0))
  let at = 0
  const place = (b: Uint8Array): Buffer => {
    response.set(b, at)
    at += b.length
    return response.subarray(at - b.length, at)
  }
  return round.map((batch) => batch.map((m) => ({ ...m, key: place(m.key), value: place(m.value) })))
}

// A clock that starts at a fixed instant and moves 1 ms per reading.
function fixedClock(): () => Date {
  let ms = Date.UTC(2026, 0, 1)
  return () => new Date(ms++)
}

/** The part of a batch sink's answer the harness checks (the same in every tree). */
interface ResultLike {
  outcomes: { status: string; message?: string }[]
}

export interface BatchSinkLike {
  apply(messages: PathMessage[]): Promise<ResultLike>
}

// The events -> PostgreSQL batch sink of the build under `tree`, writing through the stubbed pool.
const loadSink = (tree: string, sent: Sent) => stubbedSink(tree, sent) as Promise<BatchSinkLike>

/**
 * CPU milliseconds per 1,000 events of one pass over `batches`. Throws if any event failed: a tree that rejected
 * the events would look fast for doing less.
 */
export async function onePass(sink: BatchSinkLike, batches: PathMessage[][], boundary = false): Promise<number> {
  let events = 0
  let failed: string | undefined
  const before = process.cpuUsage()
  for (const b of batches) {
    let result = await sink.apply(boundary ? structuredClone(b) : b)
    if (boundary) result = structuredClone(result)
    for (const o of result.outcomes) if (o.status !== 'ok') failed ??= o.message ?? o.status
    events += b.length
  }
  const used = process.cpuUsage(before)
  if (failed !== undefined) throw new Error(`an event failed in the sink: ${failed}`)
  return ((used.user + used.system) / 1000 / events) * 1000
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

const round = (x: number): number => Math.round(x * 100) / 100

interface ChildResult {
  tree: string
  events: number
  runs: number[]
  median: number
  statements: number
}

interface ExecutorLike {
  run(messages: PathMessage[], timeoutMs: number): Promise<ResultLike>
  close(): Promise<void>
}

/**
 * CPU milliseconds per 1,000 events of one pass through worker threads (--workers): the tree's own PoolExecutor,
 * one thread per partition, each partition's batches in order and the partitions at once, as the engine runs them;
 * the CPU of every thread of the process is counted.
 */
async function workersPass(executor: ExecutorLike, batches: PathMessage[][]): Promise<number> {
  const byPartition = new Map<string, PathMessage[][]>()
  for (const b of batches) {
    const id = `${b[0].topic}/${b[0].partition}`
    byPartition.set(id, [...(byPartition.get(id) ?? []), b])
  }
  let failed: string | undefined
  const before = process.cpuUsage()
  await Promise.all(
    [...byPartition.values()].map(async (queue) => {
      for (const b of queue) {
        const result = await executor.run(b, 60_000)
        for (const o of result.outcomes) if (o.status !== 'ok') failed ??= o.message ?? o.status
      }
    }),
  )
  const used = process.cpuUsage(before)
  if (failed !== undefined) throw new Error(`an event failed in the sink: ${failed}`)
  const events = batches.reduce((n, b) => n + b.length, 0)
  return ((used.user + used.system) / 1000 / events) * 1000
}

async function child(tree: string, batches: PathMessage[][], s: { runs: number; boundary: boolean; workers: boolean }) {
  const sent: Sent = { statements: 0, chars: 0 }
  const events = batches.reduce((n, b) => n + b.length, 0)
  let pass: () => Promise<number>
  let close = async (): Promise<void> => {}
  if (s.workers) {
    const { PoolExecutor } = (await import(pathToFileURL(join(tree, 'dist/internal/pipeline/executor.js')).href)) as {
      PoolExecutor: new (spec: { module: string; options: { tree: string } }, threads: number) => ExecutorLike
    }
    const threads = new Set(batches.map((b) => `${b[0].topic}/${b[0].partition}`)).size
    const executor = new PoolExecutor(
      { module: new URL('./cpu-path-sink.js', import.meta.url).href, options: { tree } },
      threads,
    )
    pass = () => workersPass(executor, batches)
    close = () => executor.close()
  } else {
    const sink = await loadSink(tree, sent)
    pass = () => onePass(sink, batches, s.boundary)
  }
  for (let i = 0; i < 2; i++) await pass() // warm-up: the JIT, the statement caches, the threads
  const results: number[] = []
  for (let i = 0; i < s.runs; i++) results.push(round(await pass()))
  await close()
  const r: ChildResult = { tree, events, runs: results, median: round(median(results)), statements: sent.statements }
  return r
}

function settings() {
  try {
    const entities = flag('entities') ?? 'user,order'
    return {
      events: positiveInt({ flag: 'events', value: flag('events'), default: 50_000 }),
      runs: positiveInt({ flag: 'runs', value: flag('runs'), default: 5 }),
      batch: positiveInt({ flag: 'batch', value: flag('batch'), default: 500 }),
      seed: positiveInt({ flag: 'seed', value: flag('seed'), default: 42 }),
      rounds: positiveInt({ flag: 'rounds', value: flag('rounds'), default: 3 }),
      entities: entities === 'all' ? undefined : entities.split(','),
      boundary: process.argv.includes('--boundary'),
      workers: process.argv.includes('--workers'),
      tree: resolve(flag('tree') ?? here),
      compare: flag('compare'),
    }
  } catch (err) {
    console.error(`cpu-path: ${(err as Error).message}`)
    process.exit(2)
  }
}

async function main(): Promise<void> {
  const s = settings()
  const batches = buildBatches({ count: s.events, seed: s.seed, batch: s.batch, entities: s.entities })
  if (s.compare === undefined) {
    const r = await child(s.tree, batches, s)
    console.log(JSON.stringify(r))
    return
  }
  // Alternating child processes: old, new, new, old, ... so drift on the machine hits both alike.
  const old = resolve(s.compare)
  const tree = s.tree // the new side: this checkout unless --tree names another
  const order: string[] = []
  for (let i = 0; i < s.rounds; i++) order.push(...(i % 2 === 0 ? [old, tree] : [tree, old]))
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--compare=') && !a.startsWith('--tree='))
  const out = new Map<string, number[]>([
    [old, []],
    [tree, []],
  ])
  for (const tree of order) {
    const line = execFileSync(process.execPath, [new URL(import.meta.url).pathname, ...args, `--tree=${tree}`], {
      encoding: 'utf8',
    })
    const r = JSON.parse(line.trim().split('\n').at(-1)!) as ChildResult
    out.get(tree)!.push(r.median)
    console.error(
      `${tree === old ? 'old' : 'new'} ${tree}: ${r.median} ms per 1,000 events (runs ${r.runs.join(', ')})`,
    )
  }
  const o = round(median(out.get(old)!))
  const n = round(median(out.get(tree)!))
  const report = {
    events: s.events,
    batch: s.batch,
    boundary: s.boundary,
    workers: s.workers,
    old: { tree: old, median: o, rounds: out.get(old) },
    new: { tree, median: n, rounds: out.get(tree) },
    ratio: round(n / o),
  }
  console.log(JSON.stringify(report))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main()

// The api section of the benchmark (bench/api.ts), its pure parts: percentiles, matching each PostgreSQL commit to
// the invalidation that announced it, and the markdown of the section (bench/report.ts includes it).
import type { CpuReport } from './cpu.js'

/** Nearest-rank percentiles of a sample (all 0 when it is empty). */
export interface Percentiles {
  count: number
  p50: number
  p95: number
  p99: number
  max: number
}

/** Nearest rank: the smallest value with at least p % of the sample at or below it. */
export function percentileOf(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export function percentiles(values: readonly number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (x: number) => Math.round(x * 10) / 10
  return {
    count: sorted.length,
    p50: round(percentileOf(sorted, 50)),
    p95: round(percentileOf(sorted, 95)),
    p99: round(percentileOf(sorted, 99)),
    max: round(sorted.at(-1) ?? 0),
  }
}

/**
 * Pairs each committed UPDATE of a row with the next invalidation announced for that row, in order (a row's changes
 * are applied and announced in commit order: one partition per key). The bench updates a row again only seconds
 * later, far more than the latency, so an announcement is never taken for a later commit's. Announcements of rows
 * with no commit waiting (the inserts, other writers' rows) are ignored.
 */
export class InvalidationMatcher {
  readonly #waiting = new Map<string, number[]>()
  readonly latenciesMs: number[] = []
  /** When each paired commit was met, by `<id>@<commit ms>`: joins this matcher's pairs with another's. */
  readonly metAt = new Map<string, number>()
  /** Every commit, in the order given. */
  readonly committedAt: [id: string, atMs: number][] = []
  #pending = 0

  /** The commit of a change of `id` at `atMs` (PostgreSQL's clock, epoch ms). */
  committed(id: string, atMs: number): void {
    const q = this.#waiting.get(id)
    if (q === undefined) this.#waiting.set(id, [atMs])
    else q.push(atMs)
    this.committedAt.push([id, atMs])
    this.#pending++
  }

  /** An invalidation of `id` received at `atMs` (the same machine's clock). */
  announced(id: string, atMs: number): void {
    const q = this.#waiting.get(id)
    const at = q?.shift()
    if (at === undefined) return
    if (q!.length === 0) this.#waiting.delete(id)
    this.#pending--
    this.latenciesMs.push(atMs - at)
    this.metAt.set(`${id}@${at}`, atMs)
  }

  /** Commits not announced (yet). */
  get pending(): number {
    return this.#pending
  }
}

/** The id in a Debezium change record's key ({"id": ...}, with or without a schema envelope). */
export function keyId(key: Buffer | null): string | undefined {
  if (key === null) return undefined
  try {
    const k = JSON.parse(key.toString()) as { id?: unknown; payload?: { id?: unknown } }
    const id = k.payload?.id ?? k.id
    return typeof id === 'string' ? id : undefined
  } catch {
    return undefined
  }
}

/** One autocannon run against node cmd/api. */
export interface ReadRun {
  /** What the run read: 'miss' (every request a row not cached yet), 'hit' (Redis, L1 off), 'l1'. */
  kind: string
  seconds: number
  connections: number
  requests: number
  requestsPerSec: number
  errors: number
  non2xx: number
  latencyMs: { p50: number; p99: number }
  /** How the API answered, from its counters: x-cache miss / hit / l1. */
  answered: { miss: number; hit: number; l1: number }
}

/** Invalidation latency at one paced change rate. */
export interface InvalidationRun {
  targetPerSec: number
  seconds: number
  changes: number
  achievedPerSec: number
  /** PostgreSQL commit (clock_timestamp() of the UPDATE) -> the key's invalidation received on cdc:invalidations. */
  commitToInvalidatedMs: Percentiles
  /** Commits whose invalidation did not arrive within the wait after the run. */
  unmatched: number
  /** cache-sync's own figure: source.ts_ms (Debezium's commit time) -> Redis acknowledged. */
  cacheSyncLatencyMs?: { p50: number; p95: number; p99: number }
  /** Debezium's leg: PostgreSQL commit -> the change's record in the topic (its CreateTime, Connect's producer). */
  commitToKafkaMs?: Percentiles
  /** cache-sync's leg: the record's CreateTime -> the key's invalidation received (changes paired on both legs). */
  kafkaToInvalidatedMs?: Percentiles
  /** CPU of every process over the run: cache-sync, the stack's servers, the bench (writer and subscriber). */
  cpu?: CpuReport
}

export interface ApiBenchResult {
  reads: ReadRun[]
  invalidation: InvalidationRun[]
}

const f = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x)
    ? '-'
    : Math.abs(x) < 100
      ? x.toFixed(1)
      : Math.round(x).toLocaleString('en-US')
/** The machine's cores, the denominator of the CPU shares (the bench machine has 2). */
const CORES = 2
const n = (x: number): string => Math.round(x).toLocaleString('en-US')

const READ_KIND: Record<string, string> = {
  miss: 'misses (every request a row not cached yet: lease, PostgreSQL, fill)',
  hit: 'Redis hits (`--l1-max 0`)',
  l1: 'L1 hits (`--l1-max 10000 --l1-ttl 1s`: a key goes to Redis once a second)',
}

/** The section's markdown lines (none when the run had no api section). */
export function renderApiSection(api: ApiBenchResult | undefined): string[] {
  if (api === undefined) return []
  const lines = [
    '## The cache: `node cmd/api` reads and invalidation latency',
    '',
    'Reads: autocannon against 127.0.0.1 for a fixed duration, `GET /users/<id>`, one API process; the answers ' +
      "are counted by the API's own counters (x-cache).",
    '',
    '| reads | connections | s | requests/s | p50 ms | p99 ms | answered miss / hit / l1 | errors + non-2xx |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...api.reads.map(
      (r) =>
        `| ${READ_KIND[r.kind] ?? r.kind} | ${r.connections} | ${r.seconds} | **${n(r.requestsPerSec)}** | ` +
        `${f(r.latencyMs.p50)} | ${f(r.latencyMs.p99)} | ${n(r.answered.miss)} / ${n(r.answered.hit)} / ` +
        `${n(r.answered.l1)} | ${r.errors + r.non2xx} |`,
    ),
    '',
  ]
  if (api.invalidation.length > 0) {
    lines.push(
      'Invalidation: psql-style UPDATEs of bench-owned users at a paced rate (one statement every 20 ms), ' +
        'node cmd/cache-sync in its default invalidate mode; latency = PostgreSQL commit (clock_timestamp() of ' +
        'the UPDATE) -> the key deleted in Redis, as received on cdc:invalidations (the same Lua script deletes the ' +
        'key and publishes), on the same clock. The API then answers the new value on its next read (with the L1 ' +
        'on, at most --l1-ttl later if the L1 copy missed the pub/sub message).',
      '',
      '| changes/s paced | achieved/s | changes | p50 ms | p95 ms | p99 ms | max ms | unmatched | cache-sync ts_ms -> Redis p50 / p95 / p99 |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...api.invalidation.map((x) => {
        const c = x.commitToInvalidatedMs
        const s = x.cacheSyncLatencyMs
        return (
          `| ${n(x.targetPerSec)} | ${n(x.achievedPerSec)} | ${n(x.changes)} | ${f(c.p50)} | **${f(c.p95)}** | ` +
          `${f(c.p99)} | ${f(c.max)} | ${x.unmatched} | ${s ? `${f(s.p50)} / ${f(s.p95)} / ${f(s.p99)}` : '-'} |`
        )
      }),
      '',
    )
    const split = api.invalidation.filter(
      (x) => x.commitToKafkaMs !== undefined && x.kafkaToInvalidatedMs !== undefined,
    )
    if (split.length > 0) {
      const pct = (p: Percentiles) => `${f(p.p50)} / ${f(p.p95)} / ${f(p.p99)}`
      lines.push(
        "Where the latency goes: each change's record in cdc.public.users, read back after the run, carries the " +
          "CreateTime Connect's producer gave it, which splits commit -> invalidated into Debezium's leg (WAL " +
          "decoding, its queue, the producer: commit -> record) and cache-sync's (fetch, batch, the Lua script, " +
          'the announcement: record -> invalidation received).',
        '',
        '| changes/s paced | commit -> record p50 / p95 / p99 ms | record -> invalidated p50 / p95 / p99 ms | paired |',
        '| --- | --- | --- | --- |',
        ...split.map(
          (x) =>
            `| ${n(x.targetPerSec)} | ${pct(x.commitToKafkaMs!)} | ${pct(x.kafkaToInvalidatedMs!)} | ` +
            `${n(x.kafkaToInvalidatedMs!.count)} |`,
        ),
        '',
      )
    }
    const cpu = api.invalidation.filter((x) => x.cpu !== undefined)
    if (cpu.length > 0) {
      const names = [...new Set(cpu.flatMap((x) => Object.keys(x.cpu!.ms)))]
      lines.push(
        'CPU over each run, per process (share of the 2 cores over the run: 100 % is both cores busy), from ' +
          '/proc/<pid>/stat; bench = this process (the writer and the subscriber).',
        '',
        `| changes/s paced | s | ${names.join(' | ')} | total |`,
        `| --- | --- | ${names.map(() => '---').join(' | ')} | --- |`,
        ...cpu.map((x) => {
          const r = x.cpu!
          const share = (ms: number | undefined) =>
            ms === undefined ? '-' : `${((ms / (r.seconds * 1000 * CORES)) * 100).toFixed(1)} %`
          const total = Object.values(r.ms).reduce((a, b) => a + b, 0)
          return `| ${n(x.targetPerSec)} | ${r.seconds.toFixed(1)} | ${names.map((k) => share(r.ms[k])).join(' | ')} | ${share(total)} |`
        }),
        '',
      )
    }
  }
  return lines
}

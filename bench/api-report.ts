// The api section of the benchmark (bench/api.ts), its pure parts: percentiles, matching each PostgreSQL commit to
// the invalidation that announced it, and the markdown of the section (bench/report.ts includes it).

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
  #pending = 0

  /** The commit of a change of `id` at `atMs` (PostgreSQL's clock, epoch ms). */
  committed(id: string, atMs: number): void {
    const q = this.#waiting.get(id)
    if (q === undefined) this.#waiting.set(id, [atMs])
    else q.push(atMs)
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
  }

  /** Commits not announced (yet). */
  get pending(): number {
    return this.#pending
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
  }
  return lines
}

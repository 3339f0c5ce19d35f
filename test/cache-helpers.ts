// The race checker's pieces (issue 16, point 2), shared by the cache tests that end with its final check: a writer
// that renames users with psql-style UPDATEs and records when each name was committed, the staleness of a read
// against those commits, and the final check itself (every key read through each API equals PostgreSQL).
import type pg from 'pg'
import { SETTINGS, readSetting } from '../internal/cli/index.js'
import { sleep } from './helpers.js'

/** What the cache tests connect to, as the commands read it (.env, the environment, the defaults). */
export const REDIS_URL = readSetting(SETTINGS.redisUrl, {})
/** node cmd/api's read-only PostgreSQL role. */
export const READER_URL = readSetting(SETTINGS.apiPgUrl, {})
/** The change topics cache-sync takes. */
export const TOPICS = readSetting(SETTINGS.cacheSyncTopics, {})

/** Nearest-rank percentile of an ascending array (0 when empty). */
export const percentile = (sorted: readonly number[], p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/** A read through the API: the key's index, the `<prefix> <seq>` name's seq it returned, and when. */
export interface Read {
  key: number
  seq: number
  startMs: number
  endMs: number
  cache: string
}

export interface RenameWriter {
  /** commits[key][seq] = PostgreSQL's clock just before the commit that set name '<prefix> <seq>' (seq 0: the insert). */
  commits: number[][]
  /** True until the last UPDATE has been committed. */
  writing(): boolean
  /** Resolves after the last UPDATE. */
  done: Promise<void>
  /** PostgreSQL's clock at the last commit. */
  lastWriteMs(): number
}

/**
 * Renames random users of `ids` to '<prefix> <seq>' with plain UPDATEs (as a DBA in psql would: not through our
 * events) at `writesPerSecond` for `writeMs`, recording each commit's time on PostgreSQL's clock.
 */
export function startRenameWriter(
  pool: pg.Pool,
  ids: readonly string[],
  o: { prefix: string; writeMs: number; writesPerSecond: number },
): RenameWriter {
  const commits: number[][] = ids.map(() => [0])
  let writing = true
  const done = (async () => {
    const start = Date.now()
    const end = start + o.writeMs
    const gapMs = 1_000 / o.writesPerSecond
    let n = 0
    try {
      while (Date.now() < end) {
        const key = Math.floor(Math.random() * ids.length)
        const seq = commits[key]!.length
        const r = await pool.query<{ at: number }>(
          `UPDATE users SET name = $2, modified_at = now() WHERE id = $1
           RETURNING (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS at`,
          [ids[key], `${o.prefix} ${seq}`],
        )
        commits[key]!.push(Number(r.rows[0]!.at))
        n++
        const next = start + (n + 1) * gapMs
        if (next > Date.now()) await sleep(next - Date.now())
      }
    } finally {
      writing = false
    }
  })()
  return { commits, writing: () => writing, done, lastWriteMs: () => Math.max(...commits.map((c) => c.at(-1)!)) }
}

/** How long the name a read returned had been superseded when the read began (0 if it had not). */
export const stalenessOf = (commits: number[][], r: Pick<Read, 'key' | 'seq' | 'startMs'>): number => {
  const next = commits[r.key]![r.seq + 1]
  return next !== undefined && next < r.startMs ? r.startMs - next : 0
}

/** Reads that returned a name not committed by the time they ended (must be none). */
export const readsFromTheFuture = (commits: number[][], reads: readonly Read[]): Read[] =>
  reads.filter((r) => commits[r.key]![r.seq] === undefined || commits[r.key]![r.seq]! > r.endMs)

/**
 * The final check of point 2: polls until every key read through each API equals PostgreSQL's row, or `deadlineMs`
 * (epoch) passes. settledAtMs is when it first held (-1: never); mismatches are the last round's differences.
 */
export async function untilApiEqualsPg(
  pool: pg.Pool,
  apiUrls: readonly string[],
  ids: readonly string[],
  deadlineMs: number,
): Promise<{ settledAtMs: number; mismatches: string[] }> {
  for (;;) {
    const r = await pool.query<{ id: string; name: string }>('SELECT id, name FROM users WHERE id = ANY($1)', [ids])
    const want = new Map(r.rows.map((row) => [row.id, row.name]))
    // All keys at once: with a slowed fill each miss takes the fill delay.
    const mismatches = (
      await Promise.all(
        apiUrls.flatMap((url, i) =>
          ids.map(async (id) => {
            const body = (await (await fetch(`${url}/users/${id}`)).json()) as { name?: string }
            return body.name === want.get(id) ? [] : [`instance ${i} ${id}: ${body.name} != ${want.get(id)}`]
          }),
        ),
      )
    ).flat()
    if (mismatches.length === 0) return { settledAtMs: Date.now(), mismatches }
    if (Date.now() > deadlineMs) return { settledAtMs: -1, mismatches }
    await sleep(250)
  }
}

/** Sums one counter of each API's /metrics. */
export async function sumCounter(apiUrls: readonly string[], name: string): Promise<number> {
  let sum = 0
  for (const url of apiUrls) {
    const text = await (await fetch(`${url}/metrics`)).text()
    sum += Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 'NaN')
  }
  return sum
}

// The demo's check of the cache: every key cache-sync announced during the run (the rows the demo changed, and any
// other writer's in that window) read through node cmd/api, which is what users see, against PostgreSQL read with the
// API's own statement (internal/cache resourcesOf). Both sides are then PostgreSQL's JSON, compared as parsed values
// (key order aside). Redis itself is not compared: in invalidate mode it holds versions, not rows, and a refreshed
// row is Debezium's JSON (epoch days for dates), so only what the API serves is comparable.
import { resourcesOf, type Resource } from '../cache/index.js'

/** One table's (or list's) keys read through the API. */
export interface CacheTableCheck {
  /** The name in the keys: users, orders, user-orders. */
  name: string
  keys: number
  hit: number
  l1: number
  miss: number
  /** Keys whose API answer differs from PostgreSQL (after one re-read: see checkThroughApi). */
  differing: number
  /** The first few differences, for the summary. */
  problems: string[]
}

export interface CacheCheck {
  /** Every key read agrees with PostgreSQL, and there was at least one (no announcement: cache-sync saw nothing). */
  matches: boolean
  tables: CacheTableCheck[]
}

/** The name a resource's keys carry (cdc:<name>:<id>): users, orders, user-orders. */
export const keyNameOf = (r: Pick<Resource, 'keyOf'>): string => r.keyOf('').split(':')[1] ?? ''

/** Parsed JSON with its object keys sorted, as text: two answers are equal when these are. */
export function canonicalJson(text: string | null): string {
  if (text === null) return 'null'
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v
  return JSON.stringify(sort(JSON.parse(text)))
}

/** An API answer against PostgreSQL's row (null: none; the API answers 404). undefined when they agree. */
export function differenceOf(api: { status: number; body: string }, truth: string | null): string | undefined {
  if (truth === null) return api.status === 404 ? undefined : `API ${api.status}, PostgreSQL has no row`
  if (api.status !== 200) return `API ${api.status}, PostgreSQL has the row`
  return canonicalJson(api.body) === canonicalJson(truth) ? undefined : `API ${api.body} != PostgreSQL ${truth}`
}

export interface CheckIo {
  /** GET a path of the API: status, body, x-cache. */
  get(path: string): Promise<{ status: number; body: string; cache: string }>
  /** PostgreSQL's answer to a resource's statement for an id (`row`, null for none). */
  truth(resource: Resource, id: string): Promise<string | null>
  sleep(ms: number): Promise<void>
}

/**
 * Reads every announced id of every resource through the API and compares it with PostgreSQL. A key that differs is
 * read again after `settleMs` (a change may have landed between the two reads: the stream is quiet, but other
 * writers share the database); it counts as differing only if it still does.
 */
export async function checkThroughApi(
  announced: ReadonlyMap<string, ReadonlySet<string>>,
  io: CheckIo,
  o: { concurrency?: number; settleMs?: number; resources?: Resource[] } = {},
): Promise<CacheCheck> {
  const tables: CacheTableCheck[] = []
  for (const resource of o.resources ?? resourcesOf()) {
    const name = keyNameOf(resource)
    const ids = [...(announced.get(name) ?? [])]
    if (ids.length === 0) continue
    const t: CacheTableCheck = { name, keys: ids.length, hit: 0, l1: 0, miss: 0, differing: 0, problems: [] }
    const path = (id: string) => resource.route.replace(':id', id)
    const compare = async (id: string, count: boolean) => {
      const api = await io.get(path(id))
      if (count && (api.cache === 'hit' || api.cache === 'l1' || api.cache === 'miss')) t[api.cache]++
      return differenceOf(api, await io.truth(resource, id))
    }
    const suspects: string[] = []
    let next = 0
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!
        if ((await compare(id, true)) !== undefined) suspects.push(id)
      }
    }
    await Promise.all(Array.from({ length: o.concurrency ?? 8 }, worker))
    if (suspects.length > 0) await io.sleep(o.settleMs ?? 2_000)
    for (const id of suspects) {
      const d = await compare(id, false)
      if (d === undefined) continue
      t.differing++
      if (t.problems.length < 5) t.problems.push(`${path(id)}: ${d.slice(0, 300)}`)
    }
    tables.push(t)
  }
  return { matches: tables.length > 0 && tables.every((t) => t.differing === 0), tables }
}

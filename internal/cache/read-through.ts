// Cache-aside reads with leases: L1 (optional), then Redis, then PostgreSQL, filling Redis only under a lease.
import { randomUUID } from 'node:crypto'
import type { L1 } from './l1.js'
import type { Resource } from './resources.js'
import type { CacheStore } from './store.js'

/** Where an answer came from (the x-cache header). */
export type CacheSource = 'hit' | 'miss' | 'l1'

/** One answer. `body` is JSON text, or null for a 404. */
export interface ReadResult {
  status: 200 | 404
  body: string | null
  source: CacheSource
}

/** What a read counts (internal/api's metrics map each to a counter). */
export type CacheEvent =
  | 'hit'
  | 'miss'
  | 'l1'
  | 'fill-written'
  | 'fill-refused'
  /** A miss that found another reader's lease: served from PostgreSQL without filling. */
  | 'lease-busy'
  | 'redis-error'

/** Reads what a resource's key caches from PostgreSQL: the row JSON (null: not there) and its parent id. */
export type Loader = (resource: Resource, id: string) => Promise<{ row: string | null; ref: string }>

export interface ReadThroughOptions {
  store: CacheStore
  load: Loader
  /** How long a lease is good for: a reader that died holding one blocks fills of the key this long at most. */
  leaseMs: number
  /** The least time a filled row lives (cache-sync's invalidation replaces it before; this bounds a missed one). */
  fillTtlMs: number
  l1?: L1 | undefined
  onEvent?: (event: CacheEvent, err?: unknown) => void
  /** Tests: runs after PostgreSQL answered and before the fill is sent (a slow fill, deterministically). */
  beforeFill?: (key: string) => Promise<void>
}

/**
 * The read path of node cmd/api.
 *
 * 1. L1 (when on): a copy younger than --l1-ttl that no invalidation evicted -> 'l1'.
 * 2. Redis, one script (READ_SCRIPT): a row -> 'hit'; a versioned tombstone -> 404 'hit' (cache-sync wrote it for
 *    a deleted row; a row re-created later is a newer change that replaces it, so this 404 is exactly as fresh as
 *    any hit); nothing -> the reader takes the key's lease in the same step.
 * 3. PostgreSQL (read-only role), then, holding the lease, FILL_SCRIPT writes the row only if the lease is still
 *    there: any change cache-sync applied since the lease was taken replaced the key and took the lease with it,
 *    so the fill, which may have read PostgreSQL before that change, is refused ('fill-refused').
 *    A miss that finds another reader's unexpired lease reads PostgreSQL and does not fill ('lease-busy'): no wait
 *    is added to its latency, and the holder fills.
 * Redis failing (down, a timeout): the answer comes from PostgreSQL, nothing is filled, 'redis-error' is counted.
 */
export class ReadThrough {
  readonly #o: ReadThroughOptions

  constructor(options: ReadThroughOptions) {
    this.#o = options
  }

  async read(resource: Resource, id: string): Promise<ReadResult> {
    const o = this.#o
    const key = resource.keyOf(id)
    const cached = o.l1?.get(key)
    if (cached !== undefined) {
      o.onEvent?.('l1')
      return { ...cached, source: 'l1' }
    }
    const epoch = o.l1?.mark() ?? 0
    let lookup: Awaited<ReturnType<CacheStore['lookup']>> | undefined
    try {
      lookup = await o.store.lookup(key, randomUUID(), o.leaseMs)
    } catch (err) {
      o.onEvent?.('redis-error', err)
    }
    if (lookup?.kind === 'hit' || lookup?.kind === 'gone') {
      o.onEvent?.('hit')
      const entry =
        lookup.kind === 'hit' ? { status: 200 as const, body: lookup.row } : { status: 404 as const, body: null }
      o.l1?.remember(key, epoch, entry)
      return { ...entry, source: 'hit' }
    }
    let loaded: { row: string | null; ref: string }
    try {
      loaded = await o.load(resource, id)
    } catch (err) {
      if (lookup?.kind === 'lease') await o.store.release(key, lookup.token).catch(() => undefined)
      throw err
    }
    o.onEvent?.('miss')
    const result: ReadResult =
      loaded.row === null
        ? { status: 404, body: null, source: 'miss' }
        : { status: 200, body: loaded.row, source: 'miss' }
    if (lookup?.kind === 'busy') o.onEvent?.('lease-busy')
    if (lookup?.kind !== 'lease') return result
    // Not there: nothing to cache (a row that never existed or whose tombstone expired); the lease goes back.
    if (loaded.row === null) {
      await o.store.release(key, lookup.token).catch((err: unknown) => o.onEvent?.('redis-error', err))
      return result
    }
    await o.beforeFill?.(key)
    let written = false
    try {
      written = await o.store.fill(key, lookup.token, loaded.row, o.fillTtlMs, loaded.ref)
      o.onEvent?.(written ? 'fill-written' : 'fill-refused')
    } catch (err) {
      o.onEvent?.('redis-error', err)
    }
    if (written) o.l1?.remember(key, epoch, { status: result.status, body: result.body })
    return result
  }
}

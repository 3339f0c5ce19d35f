// The optional in-process cache in front of Redis (node cmd/api --l1-max, --l1-ttl): a bounded LRU with a short TTL,
// evicted by the invalidations cache-sync publishes and emptied by a purge.
import { LRUCache } from 'lru-cache'

/** What is kept of an answer: its status and body. */
export interface L1Entry {
  status: 200 | 404
  body: string | null
}

/**
 * The L1. A read that found a value in Redis stores it only if no invalidation (of any key) and no purge arrived
 * while it was reading: the invalidation of its key could have been announced between Redis answering and the
 * store, and storing then would keep the old value until the TTL. One counter for every key keeps this exact at the
 * price of fewer L1 fills while changes stream in.
 */
export class L1 {
  readonly #lru: LRUCache<string, L1Entry>
  #epoch = 0
  #suspended = false

  constructor(o: { max: number; ttlMs: number }) {
    this.#lru = new LRUCache<string, L1Entry>({ max: o.max, ttl: o.ttlMs, ttlAutopurge: false })
  }

  get(key: string): L1Entry | undefined {
    return this.#suspended ? undefined : this.#lru.get(key)
  }

  /** The epoch to give {@link remember} after reading Redis. */
  mark(): number {
    return this.#epoch
  }

  /** Stores `entry` unless an invalidation or a purge came after `since`; true when stored. */
  remember(key: string, since: number, entry: L1Entry): boolean {
    if (since !== this.#epoch || this.#suspended) return false
    this.#lru.set(key, entry)
    return true
  }

  /** An invalidation of `key` arrived. */
  evict(key: string): void {
    this.#epoch++
    this.#lru.delete(key)
  }

  /** A purge, or the invalidations' subscription lost (some may have been missed): drop everything. */
  clear(): number {
    this.#epoch++
    const n = this.#lru.size
    this.#lru.clear()
    return n
  }

  /**
   * The invalidations' subscription is down (nothing would evict a copy): empty, and neither served nor filled
   * until {@link resume}.
   */
  suspend(): void {
    this.clear()
    this.#suspended = true
  }

  /** Subscribed again: used again, from empty (what was announced meanwhile was missed). */
  resume(): void {
    this.clear()
    this.#suspended = false
  }

  get suspended(): boolean {
    return this.#suspended
  }

  get size(): number {
    return this.#lru.size
  }
}

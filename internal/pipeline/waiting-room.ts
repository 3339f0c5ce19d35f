import type { SourceMessage } from './types.js'

/** A message waiting in a partition's room: it failed retriably, or an earlier message of its key did. */
export interface Parked {
  message: SourceMessage
  /** The message key as text: the unit of per-key order. */
  key: string
  /** Failed tries so far (0: parked behind an earlier message of its key, not tried yet). */
  attempts: number
  firstFailureAt: number
  lastFailureAt: number
  /** Not retried before this time (ms since the epoch). */
  nextAt: number
  /** What its last failure waits for (an order: its user), as the sink named it; a delivery of it wakes the entry. */
  awaits?: string
  /**
   * Held before its first try until the topics it depends on have been applied past this time (its Kafka timestamp):
   * an order is not tried before the users produced before it have been written.
   */
  gate?: number
  bytes: number
}

/** The key of a message as text ('' for a null key: such messages share one lane of order). */
export function keyText(m: SourceMessage): string {
  const k = m.key
  return k === null ? '' : Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1')
}

const sizeOf = (m: SourceMessage): number => (m.value?.byteLength ?? 0) + (m.key?.byteLength ?? 0) + 64

/**
 * One partition's waiting room (the model of Confluent's parallel consumer): messages that must wait (an order
 * whose user has not arrived) leave their batch, which goes on; later messages of the same key wait behind them so
 * per-key order holds. The partition's committed offset is the room's low watermark, its first parked offset, so a
 * crash or a revocation forgets the room safely: everything from the watermark is delivered again, and the writes
 * are version-guarded. Parked messages are kept in offset order (they enter in the order the partition delivers).
 */
export class WaitingRoom {
  readonly #byOffset = new Map<string, Parked>()
  readonly #byKey = new Map<string, Parked[]>()
  #bytes = 0
  // What the engine asks of the keys' first entries after every batch, computed once per change of the room.
  #heads: { nextDueAt: number; lowestGate: number; gated: boolean; awaited: Set<string> } | undefined

  #summary() {
    if (this.#heads !== undefined) return this.#heads
    const h = { nextDueAt: Infinity, lowestGate: Infinity, gated: false, awaited: new Set<string>() }
    for (const lane of this.#byKey.values()) {
      const head = lane[0]
      h.nextDueAt = Math.min(h.nextDueAt, head.nextAt)
      if (head.gate !== undefined) {
        h.gated = true
        h.lowestGate = Math.min(h.lowestGate, head.gate)
      }
      if (head.awaits !== undefined) h.awaited.add(head.awaits)
    }
    return (this.#heads = h)
  }

  get size(): number {
    return this.#byOffset.size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** The first waiting message of this key, if any: a later one of the key must wait behind it. */
  headOf(key: string): Parked | undefined {
    return this.#byKey.get(key)?.[0]
  }

  /** The first parked offset: nothing at or after it may be committed. */
  lowestOffset(): string | undefined {
    for (const offset of this.#byOffset.keys()) return offset
    return undefined
  }

  /** Parks a message (in offset order), or updates the entry already parked for it. */
  park(entry: Parked): void {
    const offset = entry.message.offset
    this.#heads = undefined
    const existing = this.#byOffset.get(offset)
    if (existing !== undefined) {
      Object.assign(existing, entry, { bytes: existing.bytes })
      return
    }
    entry.bytes = sizeOf(entry.message)
    this.#byOffset.set(offset, entry)
    this.#bytes += entry.bytes
    const lane = this.#byKey.get(entry.key)
    if (lane) lane.push(entry)
    else this.#byKey.set(entry.key, [entry])
  }

  /** Takes a message out (applied, found stale, or dead-lettered). */
  remove(offset: string): Parked | undefined {
    const entry = this.#byOffset.get(offset)
    if (entry === undefined) return undefined
    this.#heads = undefined
    this.#byOffset.delete(offset)
    this.#bytes -= entry.bytes
    const lane = this.#byKey.get(entry.key)!
    lane.splice(lane.indexOf(entry), 1)
    if (lane.length === 0) this.#byKey.delete(entry.key)
    return entry
  }

  get(offset: string): Parked | undefined {
    return this.#byOffset.get(offset)
  }

  /**
   * The entries to try now, in offset order: every entry of each key whose first entry is due by its backoff, awaits
   * one of `delivered`, or is held by a gate that `progress` (the time its dependencies are applied up to) has passed.
   * A key's entries always go together, so its order holds in the sink's batch.
   */
  due(now: number, delivered?: ReadonlySet<string>, progress = Number.NEGATIVE_INFINITY): Parked[] {
    const keys = new Set<string>()
    for (const [key, lane] of this.#byKey) {
      const head = lane[0]
      if (
        head.nextAt <= now ||
        (head.awaits !== undefined && delivered?.has(head.awaits)) ||
        (head.gate !== undefined && head.gate < progress)
      ) {
        keys.add(key)
      }
    }
    if (keys.size === 0) return []
    const out: Parked[] = []
    for (const key of keys) out.push(...this.#byKey.get(key)!)
    return out.sort((a, b) => Number(a.message.offset) - Number(b.message.offset))
  }

  /** When the next entry falls due by its backoff (Infinity when the room is empty). */
  nextDueAt(): number {
    return this.#summary().nextDueAt
  }

  /** Whether the first entry of some key is held by a gate (it waits for other topics' progress). */
  gated(): boolean {
    return this.#summary().gated
  }

  /** Whether `progress` releases some held entry (see due). */
  releasedBy(progress: number): boolean {
    return this.#summary().lowestGate < progress
  }

  /** The Kafka timestamp of the first parked message (Infinity when empty). */
  lowestTimestamp(): number {
    for (const e of this.#byOffset.values()) return Number(e.message.timestamp)
    return Number.POSITIVE_INFINITY
  }

  /** What the room's entries wait for, for the engine's wake-up index. */
  awaited(): ReadonlySet<string> {
    return this.#summary().awaited
  }

  clear(): Parked[] {
    this.#heads = undefined
    const all = [...this.#byOffset.values()]
    this.#byOffset.clear()
    this.#byKey.clear()
    this.#bytes = 0
    return all
  }
}

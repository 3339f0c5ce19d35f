import { idOf, type EntitySpec } from './entities/index.js'
import type { AnyEvent } from './events.js'

/**
 * Folds items into one per key, in order: `combine(kept, next)` decides what is kept. The one per-key reducer of
 * the sinks (the PostgreSQL upsert batch, the Cassandra write plan).
 */
export function reducePerKey<T>(items: Iterable<T>, keyOf: (item: T) => string, combine: (kept: T, next: T) => T) {
  const byKey = new Map<string, T>()
  for (const item of items) {
    const key = keyOf(item)
    const kept = byKey.get(key)
    byKey.set(key, kept === undefined ? item : combine(kept, item))
  }
  return byKey
}

function later(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a
}

/**
 * Keeps one event per id, the highest version, carrying what applying them one by one would have kept: 'sticky'
 * fields are the OR of the batch's events, 'greatest' fields their maximum (the event itself when nothing needs
 * merging). Sorted by id so concurrent batches lock rows in the same order (fewer deadlocks).
 */
export function reduceEvents<E extends AnyEvent>(spec: EntitySpec, events: readonly E[]): E[] {
  const merged = spec.fields.filter((f) => f.merge !== undefined)
  const byId = reducePerKey(
    events,
    (e) => idOf(spec, e),
    (kept, e) => {
      const winner = e.version > kept.version ? e : kept
      if (merged.length === 0) return winner
      const a = kept as unknown as Record<string, unknown>
      const b = e as unknown as Record<string, unknown>
      const w = winner as unknown as Record<string, unknown>
      let out: Record<string, unknown> | undefined
      for (const f of merged) {
        const v =
          f.merge === 'sticky'
            ? Boolean(a[f.field]) || Boolean(b[f.field])
            : later(a[f.field] as string, b[f.field] as string)
        if (v !== w[f.field]) (out ??= { ...w })[f.field] = v
      }
      return (out ?? winner) as E
    },
  )
  // The ids sorted by UTF-16 code units (the default sort's order, as `<` compares), without a pair per entry.
  const ids = [...byId.keys()].sort()
  return ids.map((id) => byId.get(id)!)
}

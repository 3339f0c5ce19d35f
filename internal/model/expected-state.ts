import { ENTITIES, LAST_EVENT_COLUMN, VERSION_COLUMN, specOfEvent, type EntitySpec } from './entities/index.js'
import type { AnyEvent, OrderStatus } from './events.js'

/** A row as PostgreSQL must hold it: column -> value. */
export type EntityRow = Record<string, string | number | boolean>

/** A users row as PostgreSQL must hold it. */
export interface UserRow {
  id: string
  name: string
  dob: string
  created_at: string
  modified_at: string
  is_deleted: boolean
  version: number
  last_event_id: string
}

/** An orders row as PostgreSQL must hold it. */
export interface OrderRow {
  id: string
  status: OrderStatus
  user_id: string
  quantity: number
  total_amount: number
  placed_at: string
  modified_at: string
  is_deleted: boolean
  version: number
  last_event_id: string
}

/** What the tables must contain after a set of events, computed without SQL. */
export interface ExpectedState {
  /** Every entity table's rows, by table name and id. */
  tables: Record<string, Map<string, EntityRow>>
  /** Per table, the rows whose referenced row never existed: not in the table, they end in the DLQ. */
  orphans: Record<string, Set<string>>
  users: Map<string, UserRow>
  orders: Map<string, OrderRow>
  /** Orders whose user never existed (orphans.orders). */
  orphanOrderIds: Set<string>
}

interface Accumulator {
  latest: Record<string, unknown>
  // Per merged field: sticky (OR, as `t.is_deleted OR EXCLUDED.is_deleted`) or greatest (as GREATEST(...)).
  merged: Map<string, unknown>
}

function later(a: string, b: string): string {
  return Date.parse(b) > Date.parse(a) ? b : a
}

function merge(rule: 'sticky' | 'greatest', kept: unknown, value: unknown): unknown {
  return rule === 'sticky' ? Boolean(kept) || Boolean(value) : later(kept as string, value as string)
}

// The column flagging a soft delete (the deletedFlag field).
function deletedColumn(spec: EntitySpec): string | undefined {
  return spec.fields.find((f) => f.rule.kind === 'boolean' && f.rule.deletedFlag === true)?.column
}

/**
 * Folds events (in production order, one at a time, so a million need no list) into the expected table contents.
 * Mirrors the SQL, driven by the definitions: the highest version wins, lower or equal versions change nothing,
 * 'sticky' and 'greatest' fields merge across versions, a row referencing a deleted parent is deleted too (its
 * greatest fields take the parent's), and rows whose parent never existed are left out.
 */
export class ExpectedStateBuilder {
  private readonly byEntity = new Map<string, Map<string, Accumulator>>(ENTITIES.map((s) => [s.entity, new Map()]))

  /** Applies one event; returns false when it is stale (version not above the stored one). */
  apply(event: AnyEvent): boolean {
    const spec = specOfEvent(event)
    const e = event as unknown as Record<string, unknown>
    const rows = this.byEntity.get(spec.entity)!
    const id = e[spec.keyField] as string
    const stored = rows.get(id)
    if (stored === undefined) {
      const merged = new Map<string, unknown>()
      for (const f of spec.fields) if (f.merge !== undefined) merged.set(f.field, e[f.field])
      rows.set(id, { latest: e, merged })
      return true
    }
    if ((stored.latest.version as number) >= event.version) return false
    stored.latest = e
    for (const f of spec.fields) {
      if (f.merge !== undefined) stored.merged.set(f.field, merge(f.merge, stored.merged.get(f.field), e[f.field]))
    }
    return true
  }

  /** The rows as they must be now. */
  result(): ExpectedState {
    const tables: Record<string, Map<string, EntityRow>> = {}
    const orphans: Record<string, Set<string>> = {}
    // Parents come first in ENTITIES, so a reference finds its parent's final row.
    for (const spec of ENTITIES) {
      const out = new Map<string, EntityRow>()
      const missing = new Set<string>()
      const ref = spec.reference
      const parentSpec = ref && ENTITIES.find((s) => s.entity === ref.entity)
      const parentRows = parentSpec && tables[parentSpec.table]
      const parentDeleted = parentSpec && deletedColumn(parentSpec)
      for (const [id, acc] of this.byEntity.get(spec.entity)!) {
        const e = acc.latest
        let parent: EntityRow | undefined
        if (ref !== undefined) {
          parent = parentRows?.get(e[ref.field] as string)
          if (parent === undefined) {
            missing.add(id)
            continue
          }
        }
        const cascade = ref?.cascadeDelete === true && parentDeleted !== undefined && parent?.[parentDeleted] === true
        const row: EntityRow = { id }
        for (const f of spec.fields) {
          let v = (f.merge !== undefined ? acc.merged.get(f.field) : e[f.field]) as string | number | boolean
          if (cascade && f.merge === 'sticky') v = true
          if (cascade && f.merge === 'greatest') v = later(v as string, parent![f.column] as string)
          row[f.column] = v
        }
        row[VERSION_COLUMN] = e.version as number
        row[LAST_EVENT_COLUMN] = e.event_id as string
        out.set(id, row)
      }
      tables[spec.table] = out
      orphans[spec.table] = missing
    }
    return {
      tables,
      orphans,
      users: tables.users as unknown as Map<string, UserRow>,
      orders: tables.orders as unknown as Map<string, OrderRow>,
      orphanOrderIds: orphans.orders ?? new Set(),
    }
  }
}

/** The expected table contents after applying `events` in order. */
export function applyEvents(events: Iterable<AnyEvent>): ExpectedState {
  const builder = new ExpectedStateBuilder()
  for (const event of events) builder.apply(event)
  return builder.result()
}

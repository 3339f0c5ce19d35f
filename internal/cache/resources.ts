// What node cmd/api serves, derived from the entity definitions (internal/model/entities): one row of every entity's
// table, and for an entity that references another the list of a parent's rows. The Redis key of each is the key
// node cmd/cache-sync invalidates (internal/sinks/redis/plan.ts), and the SQL reads what the key caches. Pure: no I/O.
import { ENTITIES, specOf, type EntitySpec } from '../model/index.js'
import { listKey, listNameOf, rowKey } from '../sinks/redis/index.js'

/** One kind of GET the API answers. */
export interface Resource {
  /** Fastify route: /users/:id, /users/:id/orders. */
  route: string
  /** 'row' of a table, or 'list' of a parent's rows. */
  kind: 'row' | 'list'
  /** The table read (orders for /users/:id/orders). */
  table: string
  /** The key of an id. */
  keyOf(id: string): string
  /**
   * One statement, one snapshot, with $1 the id: `row` the JSON to serve (NULL when there is nothing: 404),
   * `ref` the row's parent id (stored in the key as cache-sync stores it, '' for none).
   */
  sql: string
}

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`

/** The column of a definition's reference (orders.user_id). */
function referenceColumn(spec: EntitySpec): string {
  const ref = spec.reference!
  return spec.fields.find((f) => f.field === ref.field)?.column ?? ref.field
}

/** The resources of every entity: rows of each table, then the lists. */
export function resourcesOf(entities: readonly EntitySpec[] = ENTITIES): Resource[] {
  const rows: Resource[] = entities.map((spec) => {
    const t = ident(spec.table)
    const ref = spec.reference === undefined ? "''" : `coalesce(t.${ident(referenceColumn(spec))}::text, '')`
    return {
      route: `/${spec.table}/:id`,
      kind: 'row',
      table: spec.table,
      keyOf: (id) => rowKey(spec.table, id),
      // row_to_json keeps the columns in table order; PostgreSQL's JSON of dates, timestamps and numerics.
      sql: `SELECT row_to_json(t)::text AS row, ${ref} AS ref FROM ${t} t WHERE t.id = $1`,
    }
  })
  const lists: Resource[] = entities.flatMap((spec) => {
    const list = listNameOf(spec)
    if (list === undefined) return []
    const parent = specOf(spec.reference!.entity)
    const col = ident(referenceColumn(spec))
    return [
      {
        route: `/${parent.table}/:id/${spec.table}`,
        kind: 'list' as const,
        table: spec.table,
        keyOf: (id: string) => listKey(list, id),
        // 404 for a parent that does not exist, [] for one without rows; in primary key order.
        sql:
          `SELECT CASE WHEN EXISTS (SELECT 1 FROM ${ident(parent.table)} p WHERE p.id = $1) ` +
          `THEN coalesce((SELECT json_agg(t ORDER BY t.id) FROM ${ident(spec.table)} t WHERE t.${col} = $1), '[]')::text ` +
          `END AS row, '' AS ref`,
      },
    ]
  })
  return [...rows, ...lists]
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The id as the keys hold it (lowercase, as cache-sync writes it), or undefined when it is not a UUID. */
export function normalizeId(id: string): string | undefined {
  return UUID.test(id) ? id.toLowerCase() : undefined
}

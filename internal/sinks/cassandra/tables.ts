// The Cassandra tables the CDC sink writes (cassandra-schema.cql), derived from the entity definitions, and the CQL
// it runs against them.
import { ENTITIES, LAST_EVENT_COLUMN, VERSION_COLUMN, cqlTypeOf, type EntitySpec } from '../../model/index.js'

/** The CQL types the sink writes. */
export type CqlType = 'uuid' | 'text' | 'date' | 'timestamp' | 'boolean' | 'bigint' | 'int' | 'decimal'

/** The PostgreSQL tables whose changes are replicated: every entity's (the registry in model/entities). */
export const SOURCE_TABLES: readonly string[] = ENTITIES.map((spec) => spec.table)
/** A replicated PostgreSQL table (one of SOURCE_TABLES). */
export type SourceTable = string

/** A Cassandra table written: an entity's own or one of its query tables (orders_by_user). */
export type TargetTable = string

/** The precision and scale of a PostgreSQL numeric(p, s) column: what a decimal replicated from it can be. */
export interface NumericSpec {
  precision: number
  scale: number
}

/** One Cassandra table: its primary key and every column with its type. */
export interface TableSpec {
  name: TargetTable
  partitionKey: readonly string[]
  clusteringKey: readonly string[]
  columns: Readonly<Record<string, CqlType>>
  /**
   * The PostgreSQL numeric(p, s) of its decimal columns (Cassandra's decimal has no bound): a change value no such
   * column could hold is rejected before it is parsed ("1e100000" would take a minute in BigDecimal.fromString).
   */
  numeric?: Readonly<Record<string, NumericSpec>>
}

// Every column of an entity's table with its CQL type, in the definition's order.
function entityColumns(spec: EntitySpec): Record<string, CqlType> {
  const columns: Record<string, CqlType> = { id: 'uuid' }
  for (const f of spec.fields) columns[f.column] = cqlTypeOf(f.rule)
  columns[VERSION_COLUMN] = 'bigint'
  columns[LAST_EVENT_COLUMN] = 'uuid'
  return columns
}

function numericOf(spec: EntitySpec): Record<string, NumericSpec> | undefined {
  const out: Record<string, NumericSpec> = {}
  for (const f of spec.fields) {
    if (f.rule.kind === 'money') out[f.column] = { precision: f.rule.precision, scale: f.rule.scale }
  }
  return Object.keys(out).length > 0 ? out : undefined
}

// A table's columns, primary key first (the order of the bound values).
function table(name: string, partitionKey: readonly string[], clusteringKey: readonly string[], spec: EntitySpec) {
  const all = entityColumns(spec)
  const columns: Record<string, CqlType> = {}
  for (const c of [...partitionKey, ...clusteringKey, ...Object.keys(all)]) columns[c] = all[c]
  const numeric = numericOf(spec)
  return { name, partitionKey, clusteringKey, columns, ...(numeric ? { numeric } : {}) } satisfies TableSpec
}

/** The Cassandra tables each source table's changes are written to: its own first, then its query tables. */
export const TARGETS_OF: Readonly<Record<SourceTable, readonly TableSpec[]>> = Object.fromEntries(
  ENTITIES.map((spec) => [
    spec.table,
    [
      table(spec.table, ['id'], [], spec),
      ...spec.queryTables.map((q) => table(q.name, q.partitionKey, q.clusteringKey, spec)),
    ],
  ]),
)

/** Every Cassandra table, with the same columns as PostgreSQL (table-creation.sql, cassandra-schema.cql). */
export const TABLES: Readonly<Record<TargetTable, TableSpec>> = Object.fromEntries(
  Object.values(TARGETS_OF)
    .flat()
    .map((t) => [t.name, t]),
)

/** The primary key columns of a table, partition key first. */
export const primaryKeyOf = (t: TableSpec): string[] => [...t.partitionKey, ...t.clusteringKey]

/** The column names of a table in a fixed order (the order of the bound values). */
export const columnsOf = (t: TableSpec): string[] => Object.keys(t.columns)

/**
 * INSERT of every column with an explicit write timestamp (the last bound value). Every column is written, nulls
 * included, so the row equals the change's after-image whatever the row held before.
 */
export function insertCql(keyspace: string, t: TableSpec): string {
  const columns = columnsOf(t)
  return (
    `INSERT INTO ${keyspace}.${t.name} (${columns.join(', ')}) ` +
    `VALUES (${columns.map(() => '?').join(', ')}) USING TIMESTAMP ?`
  )
}

/** DELETE of a whole row with an explicit write timestamp (the first bound value), then the primary key. */
export function deleteCql(keyspace: string, t: TableSpec): string {
  return `DELETE FROM ${keyspace}.${t.name} USING TIMESTAMP ? WHERE ${primaryKeyOf(t)
    .map((c) => `${c} = ?`)
    .join(' AND ')}`
}

// The Cassandra tables the CDC sink writes (cassandra-schema.cql) and the CQL it runs against them.

/** The CQL types the sink writes. */
export type CqlType = 'uuid' | 'text' | 'date' | 'timestamp' | 'boolean' | 'bigint' | 'int' | 'decimal'

/** The PostgreSQL tables whose changes are replicated. */
export const SOURCE_TABLES = ['users', 'orders'] as const
export type SourceTable = (typeof SOURCE_TABLES)[number]

/** The Cassandra tables written. */
export type TargetTable = 'users' | 'orders' | 'orders_by_user'

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

const orderColumns = {
  status: 'text',
  quantity: 'int',
  total_amount: 'decimal',
  placed_at: 'timestamp',
  modified_at: 'timestamp',
  is_deleted: 'boolean',
  version: 'bigint',
  last_event_id: 'uuid',
} as const

/** The three tables, with the same columns as PostgreSQL (table-creation.sql). */
export const TABLES: Readonly<Record<TargetTable, TableSpec>> = {
  users: {
    name: 'users',
    partitionKey: ['id'],
    clusteringKey: [],
    columns: {
      id: 'uuid',
      name: 'text',
      dob: 'date',
      created_at: 'timestamp',
      modified_at: 'timestamp',
      is_deleted: 'boolean',
      version: 'bigint',
      last_event_id: 'uuid',
    },
  },
  orders: {
    name: 'orders',
    partitionKey: ['id'],
    clusteringKey: [],
    columns: { id: 'uuid', user_id: 'uuid', ...orderColumns },
    numeric: { total_amount: { precision: 10, scale: 2 } },
  },
  // A user's orders in one partition: kept in step with orders by the sink (never by Cassandra).
  orders_by_user: {
    name: 'orders_by_user',
    partitionKey: ['user_id'],
    clusteringKey: ['id'],
    columns: { user_id: 'uuid', id: 'uuid', ...orderColumns },
    numeric: { total_amount: { precision: 10, scale: 2 } },
  },
}

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

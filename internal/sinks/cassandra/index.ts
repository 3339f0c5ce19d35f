export { CassandraBatchSink } from './batch-sink.js'
export type { CqlExecutor } from './batch-sink.js'
export { classifyCassandraError } from './classify.js'
export { checkCassandra, consistencyCode, createCassandraClient } from './client.js'
export type { CassandraCheck, CassandraClientOptions } from './client.js'
export { coerceRow, coerceValue } from './coerce.js'
export type { BoundValue } from './coerce.js'
export {
  CASSANDRA_OPTIONS,
  CONSISTENCY_LEVELS,
  DEFAULT_CONCURRENCY,
  DEFAULT_CONSISTENCY,
  parseTopicTables,
} from './options.js'
export { cassandraSinkModule } from './module.js'
export type { CassandraSinkOptions, ConsistencyName } from './options.js'
export { planWrites, prepareChange } from './plan.js'
export type { KeyPlan, PlannedChange, Write } from './plan.js'
export { SOURCE_TABLES, TABLES, TARGETS_OF, deleteCql, insertCql, primaryKeyOf } from './tables.js'
export type { CqlType, SourceTable, TableSpec, TargetTable } from './tables.js'
export { STREAMED_BAND, describeWriteTimestamp, writeTimestampOf } from './write-timestamp.js'
export { describeTable, parseQualifiedName, publicationTables, withPg } from './catalog.js'
export type { QualifiedName } from './catalog.js'
export {
  changeTopicOf,
  coerceDerivedValue,
  createTableCql,
  deriveTable,
  planDerivedWrites,
  prepareDerivedChange,
} from './derived.js'
export type { DerivedColumn, DerivedTable } from './derived.js'
export { PUBLICATION, createDerivedTables, pgFailure, resolveDerivedTables } from './derived-setup.js'
export { mapPgType } from './type-map.js'
export type { MappedType, PgColumnType, ValueKind } from './type-map.js'

export { classifyPgError } from './classify.js'
export { checkPostgres, postgresAddress } from './preflight.js'
export { PostgresSink, versionJumpError } from './sink.js'
export type { PostgresSinkOptions, SinkClient, SinkPool, WriteResult } from './sink.js'
export {
  EXPECTED_COLUMNS,
  SOFT_DELETE_TRIGGER,
  buildExistingQuery,
  buildLockParentsQuery,
  buildUpsert,
  reduceBatch,
} from './sql.js'
export type { Statement } from './sql.js'
export { postgresSinkModule } from './module.js'
export { PG_URL_OPTION, POSTGRES_OPTIONS } from './options.js'
export type { PostgresBatchSinkOptions } from './batch-sink.js'

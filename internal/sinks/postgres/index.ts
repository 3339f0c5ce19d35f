export { classifyPgError } from './classify.js'
export { checkPostgres, postgresAddress } from './preflight.js'
export { PostgresSink, missingReferenceError, versionJumpError } from './sink.js'
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

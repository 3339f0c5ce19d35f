// The PostgreSQL sink as a sink module (internal/pipeline SinkModule): what node cmd/consume names, and what each
// worker thread loads by this file's URL.
import type { Logger } from '../../log/index.js'
import type { BatchSink, SinkModule } from '../../pipeline/index.js'
import { PostgresBatchSink, type PostgresBatchSinkOptions } from './batch-sink.js'
import { POSTGRES_OPTIONS } from './options.js'
import { checkPostgres } from './preflight.js'

export const name = 'postgres'

export const optionsSchema = POSTGRES_OPTIONS

/** PostgreSQL answers, with the tables, columns, trigger and privileges the sink needs (see checkPostgres). */
export async function preflight(
  options: PostgresBatchSinkOptions,
  _log: Logger,
  context: { timeoutMs: number },
): Promise<void> {
  await checkPostgres({ connectionString: options.pgUrl, timeoutMs: context.timeoutMs })
}

export async function createBatchSink(options: PostgresBatchSinkOptions, log: Logger): Promise<BatchSink> {
  return new PostgresBatchSink(options, undefined, log)
}

/** The module, typed, with its URL for the engine (a worker thread imports it by that). */
export const postgresSinkModule: SinkModule<PostgresBatchSinkOptions> & { url: string } = {
  name,
  optionsSchema,
  preflight,
  createBatchSink,
  url: import.meta.url,
}

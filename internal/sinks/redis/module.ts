// The Redis cache sink as a sink module (internal/pipeline SinkModule): what node cmd/cache-sync names, and what
// each worker thread loads by this file's URL.
import { redactUrl } from '../../config/index.js'
import type { Logger } from '../../log/index.js'
import type { BatchSink, SinkModule } from '../../pipeline/index.js'
import { RedisBatchSink } from './batch-sink.js'
import { checkRedis } from './client.js'
import { REDIS_OPTIONS, type RedisSinkOptions } from './options.js'

export const name = 'redis'

export const optionsSchema = REDIS_OPTIONS

/** Redis answers PING within `timeoutMs` with the URL's credentials (else exit 3, or 2 for refused credentials). */
export async function preflight(options: RedisSinkOptions, log: Logger, context: { timeoutMs: number }): Promise<void> {
  const { version } = await checkRedis(options.redisUrl, context.timeoutMs)
  log.info({ redis: redactUrl(options.redisUrl), version, mode: options.mode }, 'Redis checked')
}

/**
 * A Redis that was stopped is back within a second of its start, and a retry costs one EVALSHA: retry a batch at
 * least every second, so cache-sync resumes within about a second of Redis returning (10 s, the engine's default,
 * left the cache stale up to 10 s longer after an outage: p99 staleness 28 s after a 20 s outage). The client's own
 * reconnection (client.ts) waits at most 2 s.
 */
export const SINK_DOWN_BACKOFF_MAX_MS = 1_000

export async function createBatchSink(options: RedisSinkOptions, log: Logger): Promise<BatchSink> {
  return new RedisBatchSink(options, undefined, undefined, log)
}

/** The module, typed, with its URL for the engine (a worker thread imports it by that). */
export const redisSinkModule: SinkModule<RedisSinkOptions> & { url: string } = {
  name,
  optionsSchema,
  preflight,
  createBatchSink,
  sinkDownBackoffMaxMs: SINK_DOWN_BACKOFF_MAX_MS,
  url: import.meta.url,
}

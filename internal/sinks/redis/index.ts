export { RedisBatchSink } from './batch-sink.js'
export { classifyRedisError } from './classify.js'
export { checkRedis, createRedisClient, reconnectDelayMs } from './client.js'
export type { RedisExecutor } from './client.js'
export { redisSinkModule } from './module.js'
export { DEFAULT_TOMBSTONE_TTL_MS, REDIS_OPTIONS, channelOf, parseCacheTopics, stackRedisUrl } from './options.js'
export type { RedisSinkOptions } from './options.js'
export {
  CACHE_MODES,
  INVALIDATION_CHANNEL,
  KEY_PREFIX,
  VERSION_DIGITS,
  listKey,
  listNameOf,
  planChange,
  rowJson,
  rowKey,
  truncatedKey,
  versionOf,
} from './plan.js'
export type { CacheAction, CacheMode, CachePlan } from './plan.js'
export { APPLY_SCRIPT, APPLY_SCRIPT_SHA1, TRUNCATE_SCRIPT, TRUNCATE_SCRIPT_SHA1, scriptArgs } from './script.js'

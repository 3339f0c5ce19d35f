// The cache-aside read side of the Redis cache (node cmd/api, node cmd/purge): leases, L1, purge.
export { L1, type L1Entry } from './l1.js'
export { PURGE_CHANNEL, acknowledgePurge, deleteByPrefix, purge, replyListOf } from './purge.js'
export type { PurgeAck, PurgeRequest, PurgeResult } from './purge.js'
export { ReadThrough } from './read-through.js'
export type { CacheEvent, CacheSource, Loader, ReadResult, ReadThroughOptions } from './read-through.js'
export { normalizeId, resourcesOf, type Resource } from './resources.js'
export { FILL_SCRIPT, READ_SCRIPT, RELEASE_SCRIPT, SCRIPTS } from './scripts.js'
export { RedisCacheStore, type CacheLookup, type CacheStore, type ScriptRunner } from './store.js'

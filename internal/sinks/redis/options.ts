import { configError, oneOf, positiveDuration, url, type Env, type Setting } from '../../config/index.js'
import { ENTITY_TABLES } from '../../model/index.js'
import type { OptionDef, OptionsSchema } from '../../pipeline/index.js'
import { truncatePolicyOption, type TruncatePolicy } from '../cassandra/options.js'
import { PG_URL_OPTION } from '../postgres/options.js'
import { CACHE_MODES, INVALIDATION_CHANNEL, type CacheMode } from './plan.js'

/**
 * How long a tombstone (and an invalidated row's version) stays: 24 h. Long enough to outlast any redelivery of
 * an older change of the row (an engine retry, a rebalance, a restart re-reading from the last commit, a DLQ replay
 * the next day), short enough that the keys of deleted rows do not pile up: after a bench deletes a million rows
 * they are gone a day later.
 */
export const DEFAULT_TOMBSTONE_TTL_MS = 24 * 3_600_000

/** Options of the CDC -> Redis cache sink (plain data: they are passed into worker threads). */
export interface RedisSinkOptions {
  /** redis://[:password@]host:port[/db] or rediss://. */
  redisUrl: string
  mode: CacheMode
  tombstoneTtlMs: number
  /** Change topic -> the PostgreSQL table (with an entity definition) it carries. */
  topics: Record<string, string>
  /** The pub/sub channel of the invalidations (default cdc:invalidations). */
  channel?: string
  /** PostgreSQL, asked for its WAL position to bound every change's LSN (as node cmd/replicate does). */
  pgUrl?: string
  /** Per-command timeout. Default 10 s. */
  commandTimeoutMs?: number
  /** What a TRUNCATE does (default apply). */
  onTruncate?: TruncatePolicy
}

/** The local stack's Redis: 127.0.0.1:REDIS_PORT with REDIS_PASSWORD (the stack's defaults 6379, cdc_redis). */
export function stackRedisUrl(env: Env): string {
  const port = env.REDIS_PORT === undefined || env.REDIS_PORT === '' ? '6379' : env.REDIS_PORT
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw configError(`REDIS_PORT must be a port: digits, 1 to 65535 (got '${port}')`)
  }
  const password = env.REDIS_PASSWORD === undefined || env.REDIS_PASSWORD === '' ? 'cdc_redis' : env.REDIS_PASSWORD
  return `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`
}

export const REDIS_OPTIONS = {
  redisUrl: {
    flag: 'redis-url',
    env: 'REDIS_URL',
    kind: 'string',
    fallback: (_, env) => stackRedisUrl(env),
    derivedFrom: ['REDIS_PORT', 'REDIS_PASSWORD'],
    defaultText: "the local stack's Redis: redis://:REDIS_PASSWORD@127.0.0.1:REDIS_PORT (6379)",
    parse: (s: Setting<string>) => url(s, ['redis:', 'rediss:']),
    doc: 'Redis connection URL',
  } satisfies OptionDef<string>,
  mode: {
    flag: 'mode',
    env: 'CACHE_MODE',
    kind: 'string',
    default: 'invalidate',
    parse: (s: Setting<CacheMode>) => oneOf(s, CACHE_MODES),
    doc: "invalidate: a change deletes the row's cached copy; refresh: it writes the new row (JSON of the after-image); both version-guarded",
  } satisfies OptionDef<CacheMode>,
  tombstoneTtlMs: {
    flag: 'tombstone-ttl',
    env: 'CACHE_TOMBSTONE_TTL',
    kind: 'duration',
    default: DEFAULT_TOMBSTONE_TTL_MS,
    parse: (s: Setting<number>) => {
      const ms = positiveDuration(s)
      if (ms < 1_000) throw configError(`--tombstone-ttl must be at least 1s (got ${ms} ms)`)
      return ms
    },
    doc: `how long a deleted row's versioned tombstone (and an invalidated row's version) is kept, refusing older changes`,
  } satisfies OptionDef<number>,
  pgUrl: PG_URL_OPTION,
  onTruncate: truncatePolicyOption(
    "a TRUNCATE in PostgreSQL: apply = drop the table's cached rows and its lists written before it and refuse " +
      'every older change of the table from then on, later changes kept; dlq = send it to the DLQ as UNSUPPORTED, ' +
      'change nothing',
  ),
} as const satisfies OptionsSchema<RedisSinkOptions>

/** The channel the sink announces on. */
export const channelOf = (o: Pick<RedisSinkOptions, 'channel'>): string => o.channel ?? INVALIDATION_CHANNEL

/**
 * Change topics -> the table each carries: 'topic' (the table is the last dot-separated part) or 'topic=table';
 * the table must have an entity definition.
 */
export function parseCacheTopics(entries: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const raw of entries) {
    const entry = raw.trim()
    const [topic, explicit] = entry.includes('=') ? entry.split('=', 2) : [entry, entry.split('.').at(-1)]
    const table = (explicit ?? '').trim()
    if (topic.trim() === '' || !ENTITY_TABLES.includes(table)) {
      throw configError(
        `--topics: '${entry}' must be a change topic of a table with an entity definition (${ENTITY_TABLES.join(', ')}): ` +
          '<prefix>.<schema>.<table>, or topic=<table>',
      )
    }
    out[topic.trim()] = table
  }
  return out
}

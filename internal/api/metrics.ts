// node cmd/api's Prometheus families (README: The cache).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { CacheEvent } from '../cache/index.js'

/** What the families read at scrape time. */
export interface ApiMetricsSource {
  redisUp(): boolean
  l1Size(): number
}

export interface ApiMetrics {
  count(event: CacheEvent): void
  purged(): void
  invalidation(): void
  /** The time of one answered request, by route and x-cache. */
  observe(route: string, cache: string, status: number, seconds: number): void
}

export function apiMetrics(registry: Registry, source: ApiMetricsSource): ApiMetrics {
  const registers = [registry]
  const counter = (name: string, help: string) => new Counter({ name, help, registers })
  const byEvent: Record<CacheEvent, Counter> = {
    hit: counter('cdc_api_cache_hits_total', 'Reads answered from Redis (a row, or a tombstone: 404)'),
    miss: counter('cdc_api_cache_misses_total', 'Reads answered from PostgreSQL'),
    l1: counter('cdc_api_l1_hits_total', 'Reads answered from the in-process L1'),
    'fill-written': counter('cdc_api_fills_written_total', 'Misses whose row was written to Redis under their lease'),
    'fill-refused': counter(
      'cdc_api_fills_refused_total',
      'Fills refused because their lease was gone: a change (or a purge) replaced the key while PostgreSQL was read',
    ),
    'lease-busy': counter(
      'cdc_api_lease_busy_total',
      "Misses that found another reader's lease and were served from PostgreSQL without filling",
    ),
    'redis-error': counter('cdc_api_redis_errors_total', 'Redis commands that failed (the read went to PostgreSQL)'),
  }
  const purges = counter('cdc_api_purges_total', 'Purge requests acknowledged (L1 emptied)')
  const invalidations = counter('cdc_api_invalidations_received_total', 'Invalidations received on the pub/sub channel')
  new Gauge({
    name: 'cdc_api_redis_up',
    help: '1 when the Redis connection is ready; 0: degraded, every read is served from PostgreSQL',
    registers,
    collect() {
      this.set(source.redisUp() ? 1 : 0)
    },
  })
  new Gauge({
    name: 'cdc_api_l1_entries',
    help: 'Entries in the in-process L1',
    registers,
    collect() {
      this.set(source.l1Size())
    },
  })
  const duration = new Histogram({
    name: 'cdc_api_request_duration_seconds',
    help: 'Time to answer a GET of a row or a list, by route and where the answer came from',
    labelNames: ['route', 'cache', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  })
  return {
    count: (event) => byEvent[event].inc(),
    purged: () => purges.inc(),
    invalidation: () => invalidations.inc(),
    observe: (route, cache, status, seconds) => duration.labels(route, cache, String(status)).observe(seconds),
  }
}

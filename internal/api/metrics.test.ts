import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { apiMetrics } from './metrics.js'

describe('apiMetrics', () => {
  it('counts each cache event, purges and invalidations, times requests, and reads the gauges at scrape time', async () => {
    const registry = new Registry()
    let up = true
    const m = apiMetrics(registry, { redisUp: () => up, l1Size: () => 7 })
    for (const e of [
      'hit',
      'hit',
      'miss',
      'l1',
      'fill-written',
      'fill-refused',
      'lease-busy',
      'redis-error',
    ] as const) {
      m.count(e)
    }
    m.purged()
    m.invalidation()
    m.invalidation()
    m.observe('/users/:id', 'hit', 200, 0.002)
    let text = await registry.metrics()
    expect(text).toMatch(/^cdc_api_cache_hits_total 2$/m)
    expect(text).toMatch(/^cdc_api_cache_misses_total 1$/m)
    expect(text).toMatch(/^cdc_api_l1_hits_total 1$/m)
    expect(text).toMatch(/^cdc_api_fills_written_total 1$/m)
    expect(text).toMatch(/^cdc_api_fills_refused_total 1$/m)
    expect(text).toMatch(/^cdc_api_lease_busy_total 1$/m)
    expect(text).toMatch(/^cdc_api_redis_errors_total 1$/m)
    expect(text).toMatch(/^cdc_api_purges_total 1$/m)
    expect(text).toMatch(/^cdc_api_invalidations_received_total 2$/m)
    expect(text).toMatch(/^cdc_api_l1_entries 7$/m)
    expect(text).toMatch(/^cdc_api_redis_up 1$/m)
    expect(text).toMatch(/^cdc_api_request_duration_seconds_count\{route="\/users\/:id",cache="hit",status="200"\} 1$/m)
    up = false
    text = await registry.metrics()
    expect(text).toMatch(/^cdc_api_redis_up 0$/m)
  })
})

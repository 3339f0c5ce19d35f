import { describe, expect, it } from 'vitest'
import { DEFAULT_SINK_DOWN_BACKOFF_MAX_MS } from '../../pipeline/index.js'
import { reconnectDelayMs } from './client.js'
import { SINK_DOWN_BACKOFF_MAX_MS, redisSinkModule } from './module.js'

describe("cache-sync's waits while Redis is down", () => {
  it('reconnects 100 ms doubling, never more than 1 s apart', () => {
    expect([0, 1, 2, 3, 4, 5, 50].map(reconnectDelayMs)).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000])
  })

  it("caps the engine's whole-batch backoff at 1 s (the default 10 s left the cache stale ~10 s after Redis returned)", () => {
    expect(SINK_DOWN_BACKOFF_MAX_MS).toBe(1_000)
    expect(redisSinkModule.sinkDownBackoffMaxMs).toBe(SINK_DOWN_BACKOFF_MAX_MS)
    expect(SINK_DOWN_BACKOFF_MAX_MS).toBeLessThan(DEFAULT_SINK_DOWN_BACKOFF_MAX_MS)
  })
})

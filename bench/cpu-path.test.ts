import { describe, expect, it } from 'vitest'
import { PostgresSink } from '../internal/sinks/postgres/index.js'
// The batch sink itself (the sink module's createBatchSink builds it with a real pool): what the harness times.
import { PostgresBatchSink } from '../internal/sinks/postgres/batch-sink.js'
import { buildBatches, median, onePass, stubPool, type Sent } from './cpu-path.js'

describe('cpu-path harness', () => {
  it('builds the same bytes from the same seed, per-partition batches of at most --batch, each key in one partition', () => {
    const a = buildBatches({ count: 2_000, seed: 7, batch: 100, entities: ['user', 'order'] })
    const b = buildBatches({ count: 2_000, seed: 7, batch: 100, entities: ['user', 'order'] })
    expect(a.flat().map((m) => Buffer.from(m.value).toString())).toEqual(
      b.flat().map((m) => Buffer.from(m.value).toString()),
    )
    expect(a.flat()).toHaveLength(2_000)
    expect(new Set(a.flat().map((m) => m.topic))).toEqual(new Set(['users', 'orders']))
    const partitionOfKey = new Map<string, string>()
    for (const batch of a) {
      expect(batch.length).toBeLessThanOrEqual(100)
      expect(new Set(batch.map((m) => `${m.topic}/${m.partition}`)).size).toBe(1)
      for (const m of batch) {
        const key = Buffer.from(m.key).toString()
        const where = `${m.topic}/${m.partition}`
        expect(partitionOfKey.get(key) ?? where).toBe(where)
        partitionOfKey.set(key, where)
      }
    }
  })

  it('runs every event through the real sink into the stubbed pool, which answers each upsert as all written', async () => {
    const sent: Sent = { statements: 0, chars: 0 }
    const sink = new PostgresBatchSink(
      { pgUrl: 'postgres://unused' },
      new PostgresSink({ pool: stubPool(sent) as never }),
    )
    const batches = buildBatches({ count: 1_000, seed: 7, batch: 200, entities: ['user', 'order'] })
    const results = await Promise.all(batches.slice(0, 1).map((b) => sink.apply(b)))
    expect(results[0].applied).toBeGreaterThan(0)
    expect(results[0].outcomes.every((o) => o.status === 'ok')).toBe(true)
    expect(await onePass(sink, batches, true)).toBeGreaterThan(0)
    // users: one upsert each; orders: BEGIN, the parents' lock, the upsert, COMMIT
    expect(sent.statements).toBeGreaterThanOrEqual(batches.length + 1)
    expect(sent.chars).toBeGreaterThan(1_000 * 36)
  })

  it('throws when the sink fails an event rather than timing less work', async () => {
    const sink = { apply: async () => ({ outcomes: [{ status: 'failed', message: 'order_total must be ...' }] }) }
    const batches = buildBatches({ count: 10, seed: 7, batch: 10 })
    await expect(onePass(sink, batches)).rejects.toThrow(/an event failed in the sink: order_total/)
  })

  it('takes the median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 3, 2])).toBe(2.5)
  })
})

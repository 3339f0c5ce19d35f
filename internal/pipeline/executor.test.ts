import { describe, expect, it } from 'vitest'
import { InlineExecutor, Slots } from './executor.js'

// A sink whose batches never finish (a hung database call).
const hungSink =
  'data:text/javascript,export async function createBatchSink() { return { ' +
  'apply: () => new Promise(() => {}), close: async () => {} } }'

describe('InlineExecutor', () => {
  it('fails a batch that outlives its task timeout as SINK_TIMEOUT, so the engine retries it', async () => {
    const executor = new InlineExecutor({ module: hungSink, options: {} })
    const started = Date.now()
    await expect(executor.run([], 50)).rejects.toMatchObject({ code: 'SINK_TIMEOUT' })
    expect(Date.now() - started).toBeLessThan(2_000)
    await executor.close()
  })
})

describe("Slots (the worker pool's queue)", () => {
  it('lets `size` callers in at once and the rest in arrival order as slots free', async () => {
    const slots = new Slots(2)
    const order: number[] = []
    const a = await slots.take()
    const b = await slots.take()
    const waiting = [3, 4].map((n) => slots.take().then((free) => (order.push(n), free)))
    await new Promise((r) => setTimeout(r, 5))
    expect(order).toEqual([])
    expect(slots.waiting).toBe(2)
    a()
    a() // freeing twice frees once
    const c = await waiting[0]
    expect(order).toEqual([3])
    b()
    await waiting[1]
    expect(order).toEqual([3, 4])
    c()
  })
})

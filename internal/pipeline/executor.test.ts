import { describe, expect, it } from 'vitest'
import { InlineExecutor } from './executor.js'

// A sink whose batches never finish (a hung database call).
const hungSink =
  'data:text/javascript,export async function createBatchSink() { return { ' +
  'apply: () => new Promise(() => {}), close: async () => {} } }'

describe('InlineExecutor', () => {
  it('fails a batch that outlives its task timeout as SINK_TIMEOUT, so the engine retries it', async () => {
    const executor = new InlineExecutor({ module: hungSink, options: {} })
    const started = Date.now()
    await expect(executor.run([], AbortSignal.timeout(50))).rejects.toMatchObject({ code: 'SINK_TIMEOUT' })
    expect(Date.now() - started).toBeLessThan(2_000)
    await executor.close()
  })
})

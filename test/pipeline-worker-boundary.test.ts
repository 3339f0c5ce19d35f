// A batch failure crossing the worker-thread boundary (--workers N): the error a sink throws in a worker reaches the
// engine with its code, retriable flag, details and cause chain (before, only code, message and flag crossed).
// Against dist/ (npm run build), so that the pool runs the real worker.js.
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { repoDir } from './helpers.js'

type Executors = typeof import('../internal/pipeline/executor.js')
type Errors = typeof import('../internal/errors/index.js')

const dist = (f: string) => pathToFileURL(`${repoDir}dist/${f}`).href

// A sink whose every batch fails as a whole: PostgreSQL went away (a driver error caused by a socket error).
const failingSink = (errorsUrl: string) =>
  'data:text/javascript,' +
  encodeURIComponent(
    `import { PipelineError } from '${errorsUrl}'
     export async function createBatchSink() {
       return {
         apply: async () => {
           const socket = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
           const driver = Object.assign(new Error('terminating connection', { cause: socket }), { code: '57P01' })
           throw new PipelineError('SINK_UNAVAILABLE', 'PostgreSQL went away', { cause: driver, details: { table: 'orders' } })
         },
         close: async () => {},
       }
     }`,
  )

describe('a batch failure across the worker boundary', () => {
  it('keeps its code, retriable flag, details and cause chain', async () => {
    const { PoolExecutor } = (await import(dist('internal/pipeline/executor.js'))) as Executors
    const { PipelineError } = (await import(dist('internal/errors/index.js'))) as Errors
    const executor = new PoolExecutor({ module: failingSink(dist('internal/errors/index.js')), options: {} }, 1)
    try {
      const err = await executor.run([], 30_000).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(PipelineError)
      expect(err).toMatchObject({ code: 'SINK_UNAVAILABLE', message: 'PostgreSQL went away', retriable: true })
      const e = err as InstanceType<typeof PipelineError>
      expect(e.details).toEqual({ table: 'orders' })
      const cause = e.cause as Error & { code?: string; cause?: Error & { code?: string } }
      expect(cause).toBeInstanceOf(Error)
      expect(cause).toMatchObject({ message: 'terminating connection', code: '57P01' })
      expect(cause.cause).toMatchObject({ message: 'read ECONNRESET', code: 'ECONNRESET' })
    } finally {
      await executor.close()
    }
  })
})

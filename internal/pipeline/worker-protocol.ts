// What the main thread and the partition worker threads share: how a sink is built from its spec, and the typed
// reply of a worker task. Its own module, so that worker.ts and executor.ts do not import each other.
import type { PipelineErrorData } from '../errors/index.js'
import { createLogger } from '../log/index.js'
import type { PackedResult } from './packed-batch.js'
import type { BatchSink, SinkModule, SinkSpec } from './types.js'

/** Builds the sink of `spec` in this thread, with its logger (the same way inline and in a worker thread). */
export async function loadSink(spec: SinkSpec): Promise<BatchSink> {
  const mod = (await import(spec.module)) as SinkModule
  const log = createLogger({
    level: spec.log?.level ?? 'info',
    pretty: spec.log?.pretty ?? false,
    name: spec.log?.name,
  })
  return mod.createBatchSink(spec.options, log.child({ module: `${mod.name ?? 'unnamed'}-sink` }))
}

/**
 * A batch that failed as a whole, as plain data: an Error thrown across the thread boundary would lose its code, its
 * retriable flag and its cause (structured clone keeps only message and stack).
 */
export interface WorkerFailure {
  failure: PipelineErrorData
}

/** What a worker task resolves to: the sink's result (packed), or the failure. */
export type WorkerReply = PackedResult | WorkerFailure

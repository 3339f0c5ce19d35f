// Entry point of the partition worker threads (piscina). Each worker builds its own sink (its own connections)
// from the spec in workerData, once, and applies the batches it is given.
import { workerData } from 'node:worker_threads'
import { toPipelineError } from '../errors/index.js'
import { loadSink } from './executor.js'
import type { BatchResult, BatchSink, SinkSpec, SourceMessage } from './types.js'

const { spec } = workerData as { spec: SinkSpec }
let sink: Promise<BatchSink> | undefined

/** A failure as plain data: an Error thrown across the thread boundary would lose its code and retriable flag. */
export interface WorkerFailure {
  failure: { code: string; message: string; retriable: boolean }
}

export default async function applyBatch(messages: SourceMessage[]): Promise<BatchResult | WorkerFailure> {
  try {
    sink ??= loadSink(spec)
    return await (await sink).apply(messages)
  } catch (err) {
    // A sink that failed to start is built again on the next batch.
    if (
      !(await sink?.then(
        () => true,
        () => false,
      ))
    )
      sink = undefined
    const e = toPipelineError(err)
    return { failure: { code: e.code, message: e.message, retriable: e.retriable } }
  }
}

// Entry point of the partition worker threads (piscina). Each worker builds its own sink (its own connections)
// from the spec in workerData, once, and applies the batches it is given.
import { workerData } from 'node:worker_threads'
import { toErrorData } from '../errors/index.js'
import type { BatchSink, SinkSpec, SourceMessage } from './types.js'
import { loadSink, type WorkerReply } from './worker-protocol.js'

const { spec } = workerData as { spec: SinkSpec }
let sink: Promise<BatchSink> | undefined

export default async function applyBatch(messages: SourceMessage[]): Promise<WorkerReply> {
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
    // Its code, retriable flag, details and cause chain, as plain data.
    return { failure: toErrorData(err) }
  }
}

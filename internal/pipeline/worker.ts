// Entry point of the partition worker threads (piscina). Each worker builds its own sink (its own connections)
// from the spec in workerData, once, and applies the batches it is given.
import { workerData } from 'node:worker_threads'
import { toErrorData } from '../errors/index.js'
import { packResult, unpackBatch, type PackedBatch } from './packed-batch.js'
import type { BatchSink, SinkSpec } from './types.js'
import { loadSink, type WorkerReply } from './worker-protocol.js'

const { spec } = workerData as { spec: SinkSpec }
let sink: Promise<BatchSink> | undefined

export default async function applyBatch(batch: PackedBatch): Promise<WorkerReply> {
  try {
    sink ??= loadSink(spec)
    return packResult(await (await sink).apply(unpackBatch(batch)))
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

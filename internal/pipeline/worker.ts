// Entry point of the partition worker threads (piscina). Each worker builds its own sink (its own connections)
// from the spec in workerData, once, and applies the batches it is given.
import { workerData } from 'node:worker_threads'
import { loadSink } from './executor.js'
import type { BatchResult, BatchSink, SinkSpec, SourceMessage } from './types.js'

const { spec } = workerData as { spec: SinkSpec }
let sink: Promise<BatchSink> | undefined

export default async function applyBatch(messages: SourceMessage[]): Promise<BatchResult> {
  sink ??= loadSink(spec)
  return (await sink).apply(messages)
}

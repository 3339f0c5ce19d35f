import { Piscina } from 'piscina'
import { PipelineError, ErrorCodes, errorMessage, fromErrorData } from '../errors/index.js'
import type { BatchResult, BatchSink, SinkSpec, SourceMessage } from './types.js'
import { packBatch, unpackResult } from './packed-batch.js'
import { loadSink, type WorkerReply } from './worker-protocol.js'

/** Runs batches against a sink: in worker threads (one per partition) or, for comparison, in the main thread. */
export interface BatchExecutor {
  /**
   * Applies a batch; past `timeoutMs` of its own work (time it waits for a free worker not counted) it fails as
   * SINK_TIMEOUT.
   */
  run(messages: SourceMessage[], timeoutMs: number): Promise<BatchResult>
  close(): Promise<void>
  /** Worker threads replaced so far (a task aborted past its timeout, or a worker that died); none inline. */
  readonly restarts?: number
}

/** --workers 0: the sink runs in the main thread. */
export class InlineExecutor implements BatchExecutor {
  #sink: Promise<BatchSink>

  constructor(spec: SinkSpec) {
    this.#sink = loadSink(spec)
    this.#sink.catch(() => undefined)
  }

  // The main thread cannot be taken from a sink call that hangs, but the batch can: past the signal it is retried
  // (a late completion of the abandoned call is harmless, the writes being idempotent).
  async run(messages: SourceMessage[], timeoutMs: number): Promise<BatchResult> {
    const sink = await this.#sink
    const signal = AbortSignal.timeout(timeoutMs)
    return new Promise<BatchResult>((resolve, reject) => {
      const onAbort = () =>
        reject(
          new PipelineError(ErrorCodes.SINK_TIMEOUT, `sink call timed out: ${errorMessage(signal.reason)}`, {
            cause: signal.reason,
          }),
        )
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      sink.apply(messages).then(
        (r) => {
          signal.removeEventListener('abort', onAbort)
          resolve(r)
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  async close(): Promise<void> {
    await (await this.#sink.catch(() => null))?.close()
  }
}

/** A FIFO of `size` slots: take() resolves when one is free; the function it returns frees it. */
export class Slots {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(size: number) {
    this.#free = size
  }

  async take(): Promise<() => void> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((r) => this.#waiting.push(r))
    let freed = false
    return () => {
      if (freed) return
      freed = true
      const next = this.#waiting.shift()
      if (next) next()
      else this.#free++
    }
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length
  }
}

/**
 * A piscina pool with exactly `threads` long-lived workers: the engine keeps one batch per partition in flight and
 * sizes the pool to the assigned partitions, so each partition effectively has its own thread. A task that
 * exceeds its time budget is aborted, which terminates that worker (piscina replaces it); the other partitions'
 * workers are untouched.
 */
export class PoolExecutor implements BatchExecutor {
  readonly threads: number
  restarts = 0
  #pool: Piscina
  // Partitions beyond the threads wait here, not in piscina's queue: a batch's timeout starts when a worker takes it.
  readonly #slots: Slots

  constructor(spec: SinkSpec, threads: number) {
    this.threads = threads
    this.#slots = new Slots(threads)
    this.#pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      // Never reap idle workers: each holds its sink's connections (piscina's default would close them).
      idleTimeout: 2 ** 31 - 1,
      concurrentTasksPerWorker: 1,
      // piscina's default ('sync') parks a worker's whole event loop between tasks: a sink's driver then cannot run
      // its timers and sockets while idle (cassandra-driver never reconnects after a node restart, because its
      // reconnection timer only fires during a task that fails at once). Workers here own long-lived connections.
      atomics: 'disabled',
      workerData: { spec },
    })
  }

  async run(messages: SourceMessage[], timeoutMs: number): Promise<BatchResult> {
    let reply: WorkerReply
    const free = await this.#slots.take()
    const signal = AbortSignal.timeout(timeoutMs)
    try {
      // Packed: the batch's bytes in one buffer moved to the worker, not the messages structured-cloned (each view's
      // whole fetch response copied with it). Packed per try: a retried batch is packed again from the messages.
      const { batch, transfer } = packBatch(messages)
      reply = (await this.#pool.run(batch, { signal, transferList: transfer })) as WorkerReply
    } catch (err) {
      // Either way piscina replaces the worker.
      this.restarts++
      if (signal.aborted) {
        throw new PipelineError(ErrorCodes.SINK_TIMEOUT, `worker task aborted: ${errorMessage(signal.reason)}`, {
          cause: err,
        })
      }
      // A worker that died (crash, out of memory) fails its task; piscina starts a new one.
      throw new PipelineError(ErrorCodes.WORKER_CRASH, `worker failed: ${errorMessage(err)}`, { cause: err })
    } finally {
      free()
    }
    // The sink's error as it was thrown in the worker: code, retriable flag, details and cause chain.
    if ('failure' in reply) throw fromErrorData(reply.failure)
    return unpackResult(reply)
  }

  async close(): Promise<void> {
    await this.#pool.close({ force: false })
  }
}

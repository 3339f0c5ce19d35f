import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs'
import type { Logger } from 'pino'
import { errorMessage, toPipelineError } from '../errors/index.js'
import { BatchProcessor, newStats, type DeadLetterWriter, type EngineStats } from './batch-processor.js'
import { InlineExecutor, PoolExecutor, type BatchExecutor } from './executor.js'
import type { RetryPolicy } from './retry.js'
import type { SinkSpec, SourceMessage } from './types.js'

export interface EngineOptions {
  kafka: Kafka
  groupId: string
  topics: string[]
  sink: SinkSpec
  /** Worker threads: 0 runs the sink in the main thread; 'auto' sizes the pool to the assigned partitions. */
  workers: number | 'auto'
  /** Retries of failing messages and of whole batches (see BatchProcessorOptions.retry). */
  retry: RetryPolicy
  deadLetters: DeadLetterWriter
  /** Exit cleanly after this long without a message (0: run until stopped). */
  idleTimeoutMs: number
  /** A batch that takes longer than this in a worker is aborted (the worker is replaced) and retried. */
  taskTimeoutMs: number
  fromBeginning: boolean
  log: Logger
  sessionTimeoutMs?: number
  maxBytesPerPartition?: number
}

const toSource = (topic: string, partition: number, m: KafkaMessage): SourceMessage => {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(',') : v.toString()
  }
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers, timestamp: m.timestamp }
}

/**
 * The consume engine shared by every pipeline: a kafkajs consumer group whose partitions are processed
 * concurrently, one batch in flight per partition (so per-key order holds), each batch applied by a sink in a
 * worker thread, transient failures retried with backoff, what cannot be applied sent to the DLQ, and the
 * partition's offset committed only after the sink and the DLQ have durably written everything the batch covers.
 */
export class Engine {
  readonly stats: EngineStats
  readonly #o: EngineOptions
  readonly #log: Logger
  readonly #consumer: Consumer
  readonly #processor: BatchProcessor
  #executor: BatchExecutor | undefined
  #assigned = 0
  #stopping = false
  #inFlight = 0
  // Partitions paused while their messages wait for others (see BatchProcessorOptions.deferAfterMs).
  #deferred = 0
  readonly #resumeTimers = new Set<NodeJS.Timeout>()
  #idleTimer: NodeJS.Timeout | undefined
  #done!: (reason: string) => void
  #failed!: (err: Error) => void
  readonly finished: Promise<string>

  constructor(options: EngineOptions) {
    this.#o = options
    this.#log = options.log.child({ module: 'engine', group: options.groupId })
    this.stats = newStats()
    this.finished = new Promise((resolve, reject) => {
      this.#done = resolve
      this.#failed = reject
    })
    this.#consumer = options.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: 3_000,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1_048_576,
      maxWaitTimeInMs: 100,
      retry: { retries: 10 },
    })
    this.#processor = new BatchProcessor({
      executor: () => this.#awaitExecutor(),
      retry: options.retry,
      deadLetters: options.deadLetters,
      taskTimeoutMs: options.taskTimeoutMs,
      stats: this.stats,
      log: this.#log,
      // A failure no retry fixes (a missing table, a rejected password): stop, and exit non-zero.
      onFatal: (err) => this.#failed(err),
    })
  }

  /** Connects, subscribes and starts consuming; resolves once running. */
  async start(): Promise<void> {
    const c = this.#consumer
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      const assigned = Object.values(payload.memberAssignment).reduce((n, ps) => n + ps.length, 0)
      this.#log.info({ assignment: payload.memberAssignment }, 'partitions assigned')
      void this.#resizeWorkers(assigned)
    })
    c.on(c.events.CRASH, ({ payload }) => {
      if (!payload.restart) this.#failed(toPipelineError(payload.error))
    })
    await c.connect()
    await c.subscribe({ topics: this.#o.topics, fromBeginning: this.#o.fromBeginning })
    if (this.#o.workers !== 'auto') this.#executor = this.#makeExecutor(this.#o.workers)
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      // Every partition may have its batch in flight at once; within a partition kafkajs hands out one at a time.
      partitionsConsumedConcurrently: 64,
      eachBatch: (payload) => this.#eachBatch(payload),
    })
    if (this.#o.idleTimeoutMs > 0) {
      this.#idleTimer = setInterval(() => {
        const idleMs = Date.now() - this.stats.lastMessageAt
        if (idleMs >= this.#o.idleTimeoutMs && this.#inFlight === 0 && this.#deferred === 0) {
          void this.stop(`idle for ${Math.round(idleMs / 1000)} s`)
        }
      }, 250)
      this.#idleTimer.unref()
    }
  }

  /** Stops fetching, lets in-flight batches finish or abandons them uncommitted, closes. Idempotent. */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#stopping) return this.finished.then(() => undefined)
    this.#stopping = true
    clearInterval(this.#idleTimer)
    for (const t of this.#resumeTimers) clearTimeout(t)
    this.#log.info({ reason, inFlight: this.#inFlight }, 'stopping: no new fetches, draining in-flight batches')
    try {
      // kafkajs waits for running eachBatch calls; ours return promptly once #stopping is set (retries abandon).
      await this.#consumer.stop()
      await this.#consumer.disconnect()
    } catch (err) {
      this.#log.warn({ err }, 'consumer did not close cleanly')
    }
    await this.#executor?.close().catch((err: unknown) => this.#log.warn({ err }, 'worker pool did not close cleanly'))
    this.#done(reason)
  }

  #makeExecutor(threads: number): BatchExecutor {
    return threads === 0 ? new InlineExecutor(this.#o.sink) : new PoolExecutor(this.#o.sink, threads)
  }

  // 'auto': one worker per assigned partition. On a rebalance kafkajs has already waited for in-flight batches,
  // so the old pool is idle and can be swapped.
  async #resizeWorkers(assigned: number): Promise<void> {
    if (this.#o.workers !== 'auto' || assigned === this.#assigned || assigned === 0) return
    this.#assigned = assigned
    const old = this.#executor
    this.#executor = this.#makeExecutor(assigned)
    this.#log.info({ workers: assigned }, 'worker pool sized to the assigned partitions')
    await old?.close().catch(() => undefined)
  }

  async #eachBatch(p: EachBatchPayload): Promise<void> {
    const { batch } = p
    if (batch.isEmpty() || this.#stopping) return
    this.#inFlight++
    try {
      this.stats.lastMessageAt = Date.now()
      if (this.stats.firstMessageAt === 0) this.stats.firstMessageAt = this.stats.lastMessageAt
      this.stats.received += batch.messages.length
      this.stats.batches++
      const messages = batch.messages.map((m) => toSource(batch.topic, batch.partition, m))
      const outcome = await this.#processor.process(messages, {
        heartbeat: () => p.heartbeat(),
        gone: () => this.#stopping || !p.isRunning() || p.isStale(),
      })
      if (outcome.kind === 'abandoned') {
        this.stats.abandoned += batch.messages.length
        this.#log.info({ topic: batch.topic, partition: batch.partition }, 'batch abandoned uncommitted')
        return
      }
      let next = (BigInt(batch.lastOffset()) + 1n).toString()
      let done = batch.messages.length
      if (outcome.kind === 'deferred') {
        // Done up to the first unresolved message: commit that far, fetch again from there after the wait.
        next = outcome.from.offset
        const resolved = batch.messages.filter((m) => BigInt(m.offset) < BigInt(next))
        done = resolved.length
        this.stats.abandoned += batch.messages.length - done
        if (done > 0) p.resolveOffset(resolved[done - 1].offset)
        this.#defer(p, outcome.delayMs)
      } else p.resolveOffset(batch.lastOffset())
      // Through the group, not consumer.commitOffsets: that one retries against the coordinator kafkajs cached, and
      // after the coordinator moved (its broker restarted, or a preferred-leader election moved it) it keeps asking
      // the old one for about a minute (NOT_COORDINATOR) while every partition waits. Thrown out of eachBatch, that
      // error makes kafkajs rejoin the group, which finds the new coordinator; the batch is fetched again and finds
      // its writes already applied, so it counts as abandoned here and as processed when its commit succeeds. (Once
      // stop() has begun, consumer.commitOffsets would also silently do nothing, its runner no longer running.)
      try {
        await p.commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }],
        })
      } catch (err) {
        this.stats.abandoned += done
        this.#log.warn(
          { topic: batch.topic, partition: batch.partition, err: errorMessage(err) },
          'commit failed: the batch will be delivered again (its writes are idempotent)',
        )
        throw err
      }
      this.stats.commits++
      this.stats.lastMessageAt = Date.now()
    } finally {
      this.#inFlight--
    }
  }

  // Pauses the batch's partition for a while (its other partitions and brokers keep being fetched), then resumes it.
  #defer(p: EachBatchPayload, delayMs: number): void {
    const resume = p.pause()
    this.#deferred++
    const timer = setTimeout(() => {
      this.#deferred--
      this.#resumeTimers.delete(timer)
      resume()
    }, delayMs)
    this.#resumeTimers.add(timer)
  }

  async #awaitExecutor(): Promise<BatchExecutor> {
    while (!this.#executor) await new Promise((r) => setTimeout(r, 10))
    return this.#executor
  }
}

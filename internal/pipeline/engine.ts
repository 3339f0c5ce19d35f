import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs'
import type { Logger } from 'pino'
import { ErrorCodes, errorMessage, toPipelineError, type ErrorCode } from '../errors/index.js'
import { InlineExecutor, PoolExecutor, type BatchExecutor } from './executor.js'
import { computeBackoffMs, type RetryPolicy } from './retry.js'
import type { SinkSpec, SourceMessage } from './types.js'

/** A message the engine gave up on, with why: what the DLQ receives. */
export interface DeadLetter {
  message: SourceMessage
  code: ErrorCode
  error: string
  attempts: number
  firstFailureAt: Date
  lastFailureAt: Date
}

/** Where dead letters go. send() resolves only once they are durably written (acks=all). */
export interface DeadLetterWriter {
  send(letters: DeadLetter[]): Promise<void>
}

export interface EngineOptions {
  kafka: Kafka
  groupId: string
  topics: string[]
  sink: SinkSpec
  /** Worker threads: 0 runs the sink in the main thread; 'auto' sizes the pool to the assigned partitions. */
  workers: number | 'auto'
  /**
   * Bounds the retries of a message the sink reports as failed but retriable (an order whose user has not arrived);
   * past them it goes to the DLQ. A failure of the whole batch (database down, worker died) is not the messages'
   * fault: it is retried with the same backoff, capped, until it succeeds or the engine stops.
   */
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

/** Counters of a run, for the summary and the benchmark. */
export interface EngineStats {
  received: number
  applied: number
  stale: number
  deadLettered: number
  retries: number
  batches: number
  commits: number
  startedAt: number
  /** When the first batch arrived (0 before), and when the last batch was fetched or committed. */
  firstMessageAt: number
  lastMessageAt: number
  latenciesMs: number[]
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
  #consumer: Consumer
  #executor: BatchExecutor | undefined
  #assigned = 0
  #stopping = false
  #inFlight = 0
  #idleTimer: NodeJS.Timeout | undefined
  #done!: (reason: string) => void
  #failed!: (err: Error) => void
  readonly finished: Promise<string>

  constructor(options: EngineOptions) {
    this.#o = options
    this.#log = options.log.child({ module: 'engine', group: options.groupId })
    const now = Date.now()
    this.stats = {
      received: 0,
      applied: 0,
      stale: 0,
      deadLettered: 0,
      retries: 0,
      batches: 0,
      commits: 0,
      startedAt: now,
      firstMessageAt: 0,
      lastMessageAt: now,
      latenciesMs: [],
    }
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
        if (idleMs >= this.#o.idleTimeoutMs && this.#inFlight === 0) {
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
      const finished = await this.#applyWithRetries(messages, p)
      if (!finished) {
        this.#log.info({ topic: batch.topic, partition: batch.partition }, 'batch abandoned uncommitted')
        return
      }
      const next = (BigInt(batch.lastOffset()) + 1n).toString()
      p.resolveOffset(batch.lastOffset())
      await this.#consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }])
      this.stats.commits++
      this.stats.lastMessageAt = Date.now()
    } finally {
      this.#inFlight--
    }
  }

  // True when every message ended applied, stale or dead-lettered; false when abandoned (stopping or revoked).
  async #applyWithRetries(messages: SourceMessage[], p: EachBatchPayload): Promise<boolean> {
    const gone = () => this.#stopping || !p.isRunning() || p.isStale()
    const failures = new Map<SourceMessage, { attempts: number; first: Date; last: Date }>()
    let pending = messages
    let batchFailures = 0
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (gone()) return false
      const executor = await this.#awaitExecutor()
      let outcomes
      try {
        const signal = AbortSignal.timeout(this.#o.taskTimeoutMs)
        const result = await executor.run(pending, signal)
        outcomes = result.outcomes
        this.stats.applied += result.applied
        this.stats.stale += result.stale
        for (const ms of result.latenciesMs) this.stats.latenciesMs.push(ms)
        batchFailures = 0
      } catch (err) {
        const e = toPipelineError(err)
        if (e.code === ErrorCodes.CONFIG_ERROR) {
          // A missing table or a rejected password is not transient and not the messages' fault: stop, non-zero.
          this.#failed(e)
          return false
        }
        // The whole batch failed (database down, worker died or timed out): retry it, never dead-letter it.
        batchFailures++
        const delayMs = this.#delayMs(batchFailures)
        const where = { topic: pending[0].topic, partition: pending[0].partition }
        this.#log.warn(
          { err: e.message, code: e.code, ...where, attempt: batchFailures, delayMs },
          'batch failed, retrying',
        )
        this.stats.retries += pending.length
        if (!(await this.#sleepHeartbeating(delayMs, p, gone))) return false
        attempt--
        continue
      }
      const now = new Date()
      const retry: SourceMessage[] = []
      const dead: DeadLetter[] = []
      outcomes.forEach((o, i) => {
        const m = pending[i]
        if (o.status === 'failed') {
          const f = failures.get(m) ?? { attempts: 0, first: now, last: now }
          f.attempts++
          f.last = now
          failures.set(m, f)
          const exhausted =
            f.attempts >= this.#o.retry.attempts ||
            now.getTime() - f.first.getTime() + this.#delayMs(f.attempts) > this.#o.retry.maxElapsedMs
          if (o.retriable && !exhausted) retry.push(m)
          else {
            const letter = {
              message: m,
              code: o.code,
              error: o.message,
              attempts: f.attempts,
              firstFailureAt: f.first,
              lastFailureAt: f.last,
            }
            dead.push(letter)
          }
        }
      })
      if (dead.length > 0) {
        // If the DLQ cannot be written this throws: nothing is committed and the batch comes again.
        await this.#o.deadLetters.send(dead)
        this.stats.deadLettered += dead.length
        for (const d of dead) {
          this.#log.warn(
            { topic: d.message.topic, partition: d.message.partition, offset: d.message.offset, code: d.code },
            `sent to DLQ: ${d.error}`,
          )
        }
      }
      if (retry.length > 0) {
        this.stats.retries += retry.length
        const delayMs = this.#delayMs(attempt)
        this.#log.debug({ count: retry.length, attempt, delayMs, code: failureCode(outcomes) }, 'retrying')
        if (!(await this.#sleepHeartbeating(delayMs, p, gone))) return false
      }
      pending = retry
    }
    return true
  }

  #delayMs(attempt: number): number {
    return computeBackoffMs(attempt, {
      baseMs: this.#o.retry.baseMs,
      maxMs: this.#o.retry.maxMs,
      factor: this.#o.retry.factor,
    })
  }

  async #awaitExecutor(): Promise<BatchExecutor> {
    while (!this.#executor) await new Promise((r) => setTimeout(r, 10))
    return this.#executor
  }

  // Waits between retries while keeping the group membership alive; false if the batch must be abandoned.
  async #sleepHeartbeating(ms: number, p: EachBatchPayload, gone: () => boolean): Promise<boolean> {
    const until = Date.now() + ms
    while (Date.now() < until) {
      if (gone()) return false
      await new Promise((r) => setTimeout(r, Math.min(500, until - Date.now())))
      try {
        await p.heartbeat()
      } catch (err) {
        this.#log.warn({ err: errorMessage(err) }, 'heartbeat failed during retry backoff (rebalance?)')
        return false
      }
    }
    return !gone()
  }
}

const failureCode = (outcomes: { status: string; code?: string }[]): string =>
  outcomes.find((o) => o.status === 'failed')?.code ?? ErrorCodes.UNKNOWN

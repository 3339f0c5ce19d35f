import type { Logger } from 'pino'
import { ErrorCodes, errorMessage, toPipelineError, type ErrorCode, type PipelineError } from '../errors/index.js'
import type { BatchExecutor } from './executor.js'
import { computeBackoffMs, type RetryPolicy } from './retry.js'
import { Reservoir } from './reservoir.js'
import type { SourceMessage } from './types.js'

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

/** Counters of a run, for the summary and the benchmark. */
export interface EngineStats {
  received: number
  /** Messages of batches given up uncommitted (stopping, partition revoked): they will be delivered again. */
  abandoned: number
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
  /** Event created -> durably written, sampled. */
  latencyMs: Reservoir
}

export const newStats = (now = Date.now()): EngineStats => ({
  received: 0,
  abandoned: 0,
  applied: 0,
  stale: 0,
  deadLettered: 0,
  retries: 0,
  batches: 0,
  commits: 0,
  startedAt: now,
  firstMessageAt: 0,
  lastMessageAt: now,
  latencyMs: new Reservoir(),
})

/**
 * How a batch ended: done (commit all of it); abandoned (commit nothing: stopping or revoked); or deferred: the
 * messages before `from` are done, and the partition should wait `delayMs` and deliver again from `from`.
 */
export type BatchOutcome =
  { kind: 'done' } | { kind: 'abandoned' } | { kind: 'deferred'; from: SourceMessage; delayMs: number }

/** What the processor needs from the consumer while it works on one partition's batch. */
export interface BatchControl {
  /** Keeps the group membership alive during long work. Throws when the member was kicked out. */
  heartbeat(): Promise<void>
  /** True when the batch must be abandoned uncommitted: the engine is stopping or the partition was revoked. */
  gone(): boolean
}

export interface BatchProcessorOptions {
  executor: () => Promise<BatchExecutor>
  /**
   * Bounds the retries of a message the sink reports as failed but retriable (an order whose user has not arrived);
   * past them it goes to the DLQ. A failure of the whole batch (database down, worker died) is not the messages'
   * fault: it is retried with its own backoff (200 ms doubling up to 10 s) until it succeeds or is abandoned.
   */
  retry: RetryPolicy
  deadLetters: DeadLetterWriter
  /** A batch that takes longer than this in a worker is aborted (the worker is replaced) and retried. */
  taskTimeoutMs: number
  stats: EngineStats
  log: Logger
  /** A failure no retry can fix (CONFIG_ERROR: a missing table, a rejected password): the engine stops. */
  onFatal: (err: PipelineError) => void
  /**
   * How long a batch may wait in place for its retriable failures (an order whose user has not arrived). Past it the
   * batch is deferred: kafkajs fetches a broker's partitions again only after all their batches returned, so a batch
   * waiting longer would hold back the very partitions (the users topic) that it waits for. Default 1 s.
   */
  deferAfterMs?: number
  /** How often to heartbeat while a batch is in a worker (default 3 s). */
  heartbeatIntervalMs?: number
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>
  random?: () => number
}

const DEAD_LETTERED_KEPT = 10_000

/**
 * Applies one partition's batch until every message is applied, found stale, or durably dead-lettered (then the
 * caller may commit), or until the batch must be abandoned (then nothing may be committed).
 */
export class BatchProcessor {
  readonly #o: BatchProcessorOptions
  readonly #sleep: (ms: number) => Promise<void>
  // Failures of messages still unresolved, by topic/partition/offset: they survive a deferral and its redelivery.
  readonly #failures = new Map<string, { attempts: number; first: Date; last: Date }>()
  // Messages already durably dead-lettered, by topic/partition/offset (the most recent DEAD_LETTERED_KEPT): when one
  // comes again (a deferred batch is fetched again from an earlier offset, or a commit failed), it is skipped
  // instead of written to the DLQ a second time. An offset names one record forever, so the skip is exact.
  readonly #deadLettered = new Set<string>()

  constructor(options: BatchProcessorOptions) {
    this.#o = options
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)))
  }

  /** Applies a batch; see {@link BatchOutcome} for what the caller commits. */
  async process(messages: SourceMessage[], ctl: BatchControl): Promise<BatchOutcome> {
    const { stats, log } = this.#o
    const failures = this.#failures
    const keyOf = (m: SourceMessage) => `${m.topic}/${m.partition}/${m.offset}`
    const started = Date.now()
    let pending = messages.filter((m) => !this.#deadLettered.has(keyOf(m)))
    let round = 0
    let batchFailures = 0
    while (pending.length > 0) {
      if (ctl.gone()) return { kind: 'abandoned' }
      const executor = await this.#o.executor()
      let result
      // kafkajs heartbeats only between batches: keep the membership alive while a long batch is in a worker.
      const ticker = setInterval(
        () => void ctl.heartbeat().catch(() => undefined),
        this.#o.heartbeatIntervalMs ?? 3_000,
      )
      try {
        result = await executor.run(pending, AbortSignal.timeout(this.#o.taskTimeoutMs))
      } catch (err) {
        const e = toPipelineError(err)
        if (e.code === ErrorCodes.CONFIG_ERROR) {
          this.#o.onFatal(e)
          return { kind: 'abandoned' }
        }
        // The whole batch failed (database down, worker died or timed out): retry it, never dead-letter it.
        batchFailures++
        const delayMs = this.#batchDelayMs(batchFailures)
        const where = { topic: pending[0].topic, partition: pending[0].partition }
        log.warn({ err: e.message, code: e.code, ...where, attempt: batchFailures, delayMs }, 'batch failed, retrying')
        stats.retries += pending.length
        if (!(await this.#wait(delayMs, ctl))) return { kind: 'abandoned' }
        continue
      } finally {
        clearInterval(ticker)
      }
      batchFailures = 0
      round++
      stats.applied += result.applied
      stats.stale += result.stale
      for (const ms of result.latenciesMs) stats.latencyMs.add(ms)

      const now = new Date()
      const retry: SourceMessage[] = []
      const dead: DeadLetter[] = []
      result.outcomes.forEach((o, i) => {
        const m = pending[i]
        if (o.status !== 'failed') {
          failures.delete(keyOf(m))
          return
        }
        const f = failures.get(keyOf(m)) ?? { attempts: 0, first: now, last: now }
        f.attempts++
        f.last = now
        failures.set(keyOf(m), f)
        const exhausted =
          f.attempts >= this.#o.retry.attempts ||
          now.getTime() - f.first.getTime() + this.#ceilingMs(f.attempts) > this.#o.retry.maxElapsedMs
        if (o.retriable && !exhausted) retry.push(m)
        else {
          failures.delete(keyOf(m))
          dead.push({
            message: m,
            code: o.code,
            error: o.message,
            attempts: f.attempts,
            firstFailureAt: f.first,
            lastFailureAt: f.last,
          })
        }
      })
      if (dead.length > 0) {
        // If the DLQ cannot be written this throws: nothing is committed and the batch comes again.
        await this.#o.deadLetters.send(dead)
        stats.deadLettered += dead.length
        for (const d of dead) {
          this.#deadLettered.add(keyOf(d.message))
          if (this.#deadLettered.size > DEAD_LETTERED_KEPT) {
            this.#deadLettered.delete(this.#deadLettered.values().next().value as string)
          }
          const where = { topic: d.message.topic, partition: d.message.partition, offset: d.message.offset }
          log.warn({ ...where, code: d.code, attempts: d.attempts }, `sent to DLQ: ${d.error}`)
        }
      }
      if (retry.length > 0) {
        stats.retries += retry.length
        const attempts = Math.max(...retry.map((m) => failures.get(keyOf(m))?.attempts ?? 1))
        const delayMs = this.#delayMs(attempts)
        if (Date.now() - started + delayMs > (this.#o.deferAfterMs ?? 1_000)) {
          // Everything before the first unresolved message is done; the rest comes again after the wait (the
          // messages after it that were applied meanwhile are applied again, harmlessly).
          log.debug({ count: retry.length, attempts, delayMs }, 'deferring a batch whose messages wait for others')
          return { kind: 'deferred', from: retry[0], delayMs }
        }
        log.debug({ count: retry.length, round, delayMs }, 'retrying failed messages of a batch')
        if (!(await this.#wait(delayMs, ctl))) return { kind: 'abandoned' }
      }
      pending = retry
    }
    return { kind: 'done' }
  }

  // A whole batch failing means the sink is down: back off further (200 ms doubling up to 10 s), without a bound.
  #batchDelayMs(attempt: number): number {
    return computeBackoffMs(attempt, { baseMs: 200, maxMs: 10_000, random: this.#o.random })
  }

  #delayMs(attempt: number): number {
    const r = this.#o.retry
    return computeBackoffMs(attempt, { baseMs: r.baseMs, maxMs: r.maxMs, factor: r.factor, random: this.#o.random })
  }

  // The longest the next wait could be: a message is dead-lettered when even that would overrun maxElapsedMs.
  #ceilingMs(attempt: number): number {
    const r = this.#o.retry
    return computeBackoffMs(attempt, { baseMs: r.baseMs, maxMs: r.maxMs, factor: r.factor, jitter: 'none' })
  }

  // Waits between retries while keeping the group membership alive; false if the batch must be abandoned.
  async #wait(ms: number, ctl: BatchControl): Promise<boolean> {
    let left = ms
    do {
      if (ctl.gone()) return false
      const chunk = Math.max(0, Math.min(500, left))
      await this.#sleep(chunk)
      left -= chunk
      try {
        await ctl.heartbeat()
      } catch (err) {
        this.#o.log.warn({ err: errorMessage(err) }, 'heartbeat failed during retry backoff (rebalance?)')
        return false
      }
    } while (left > 0)
    return !ctl.gone()
  }
}

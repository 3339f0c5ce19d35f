import type { Logger } from 'pino'
import { ErrorCodes, errorMessage, toPipelineError, type ErrorCode, type PipelineError } from '../errors/index.js'
import type { BatchExecutor } from './executor.js'
import { computeBackoffMs, type RetryPolicy } from './retry.js'
import { Reservoir } from './reservoir.js'
import type { BatchResult, MessageOutcome, SourceMessage } from './types.js'
import { keyText, type Parked, type WaitingRoom } from './waiting-room.js'

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
  /** Messages fetched from Kafka (a message delivered twice counts twice). */
  received: number
  /** Messages handed to the sink, counting every retry: handed / processed is the work amplification. */
  handed: number
  /** Messages done (applied, stale or dead-lettered) and committed: each message once. */
  processed: number
  /** Messages received but given up uncommitted (stopping, a rebalance, a failed commit): delivered again. */
  abandoned: number
  applied: number
  stale: number
  deadLettered: number
  /** Messages tried again: parked ones, and the messages of whole batches that failed. */
  retries: number
  /** Messages that entered a waiting room after a retriable failure, or behind one of their key. */
  parked: number
  /** Messages held untried until the topics they depend on caught up with them (see BatchProcessor.process). */
  held: number
  batches: number
  commits: number
  commitFailures: number
  startedAt: number
  /** When the first batch arrived (0 before), and when the last batch was fetched or committed. */
  firstMessageAt: number
  lastMessageAt: number
  /** Event created -> durably written, sampled. */
  latencyMs: Reservoir
}

export const newStats = (now = Date.now()): EngineStats => ({
  received: 0,
  handed: 0,
  processed: 0,
  abandoned: 0,
  applied: 0,
  stale: 0,
  deadLettered: 0,
  retries: 0,
  parked: 0,
  held: 0,
  batches: 0,
  commits: 0,
  commitFailures: 0,
  startedAt: now,
  firstMessageAt: 0,
  lastMessageAt: now,
  latencyMs: new Reservoir(),
})

/**
 * How a call ended: abandoned (nothing it did may be committed: stopping, revoked), or done: `resolved` are the
 * messages now applied, found stale or durably dead-lettered; every other message of the call waits in the room.
 * `provides` is what the applied messages delivered (see BatchResult.provides), to wake messages waiting for it.
 */
export type BatchOutcome =
  { kind: 'abandoned' } | { kind: 'done'; resolved: SourceMessage[]; provides: readonly string[] }

/** What the processor needs from the consumer while it works on one partition's messages. */
export interface BatchControl {
  /** Keeps the group membership alive during long work. Throws when the member was kicked out. */
  heartbeat(): Promise<void>
  /** True when the work must be abandoned uncommitted: the engine is stopping or the partition was revoked. */
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
   * A message whose value is larger than this (decoded: after the client decompressed it) is dead-lettered as
   * VALIDATION_ERROR without reaching the sink: the fetch limit bounds compressed bytes only, and a small gzipped
   * record can hold a huge value (default {@link DEFAULT_MAX_VALUE_BYTES}).
   */
  maxValueBytes?: number
  /** How often to heartbeat while a batch is in a worker (default 3 s). */
  heartbeatIntervalMs?: number
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>
  random?: () => number
  now?: () => number
}

const DEAD_LETTERED_KEPT = 10_000

/** Default of BatchProcessorOptions.maxValueBytes (and of --max-value-bytes): 1 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

/**
 * Applies one partition's messages, once each in normal operation: what applies is done, what cannot be applied is
 * dead-lettered, and what must wait (a retriable failure: an order whose user has not arrived) is parked in the
 * partition's waiting room, so the batch returns at once and the partition's later messages go on. A later message
 * whose key is parked waits behind it (per-key order). The engine retries parked messages when what they wait for
 * is delivered, or on their backoff ({@link BatchProcessor.retry}), and commits the room's low watermark.
 */
export class BatchProcessor {
  readonly #o: BatchProcessorOptions
  readonly #sleep: (ms: number) => Promise<void>
  readonly #now: () => number
  // Messages already durably dead-lettered, by topic/partition/offset (the most recent DEAD_LETTERED_KEPT): when one
  // comes again (a commit failed, the group rebalanced), it is skipped instead of written to the DLQ a second time.
  readonly #deadLettered = new Set<string>()

  constructor(options: BatchProcessorOptions) {
    this.#o = options
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)))
    this.#now = options.now ?? Date.now
  }

  /**
   * Applies a freshly fetched batch; messages that must wait are parked in `room`. `gate`, when given, is the time
   * the topics this one depends on have been applied up to: a message produced at or after it is held in the room
   * untried (its dependency, produced before it, may not be written yet) until they pass it, or for `gateMaxMs`.
   */
  async process(
    messages: SourceMessage[],
    room: WaitingRoom,
    ctl: BatchControl,
    gate?: { progress: number; maxMs: number },
  ): Promise<BatchOutcome> {
    const resolved: SourceMessage[] = []
    const send: SourceMessage[] = []
    const now = this.#now()
    for (const m of messages) {
      if (this.#deadLettered.has(dlqKey(m))) {
        resolved.push(m)
        continue
      }
      const key = keyText(m)
      const at = Number(m.timestamp)
      const head = room.headOf(key)
      if (head !== undefined) {
        room.park({ message: m, key, attempts: 0, firstFailureAt: now, lastFailureAt: now, nextAt: 0, bytes: 0 })
        if (head.gate !== undefined) this.#o.stats.held++
        else this.#o.stats.parked++
      } else if (gate !== undefined && !(at < gate.progress)) {
        const entry = { message: m, key, attempts: 0, firstFailureAt: now, lastFailureAt: now, bytes: 0 }
        room.park({ ...entry, nextAt: now + gate.maxMs, gate: at })
        this.#o.stats.held++
      } else send.push(m)
    }
    if (send.length === 0) return { kind: 'done', resolved, provides: [] }
    const result = await this.#applyChecked(send, ctl)
    if (result === undefined) return { kind: 'abandoned' }
    const settled = await this.#settle(send, result, room)
    return { kind: 'done', resolved: [...resolved, ...settled], provides: result.provides ?? [] }
  }

  /** Tries parked messages again (a key's entries together, in offset order); what resolves leaves the room. */
  async retry(entries: Parked[], room: WaitingRoom, ctl: BatchControl): Promise<BatchOutcome> {
    const messages = entries.map((e) => e.message)
    for (const e of entries) if (e.attempts > 0) this.#o.stats.retries++
    const result = await this.#applyChecked(messages, ctl)
    if (result === undefined) return { kind: 'abandoned' }
    return { kind: 'done', resolved: await this.#settle(messages, result, room), provides: result.provides ?? [] }
  }

  // #apply for the messages whose value is within maxValueBytes; the others fail as VALIDATION_ERROR (not
  // retriable: the DLQ) before the sink decodes them. Outcomes in the input order.
  async #applyChecked(messages: SourceMessage[], ctl: BatchControl): Promise<BatchResult | undefined> {
    const max = this.#o.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
    const tooLarge = messages.filter((m) => m.value !== null && m.value.byteLength > max)
    if (tooLarge.length === 0) return this.#apply(messages, ctl)
    const rest = messages.filter((m) => m.value === null || m.value.byteLength <= max)
    const result =
      rest.length === 0
        ? { outcomes: [], applied: 0, stale: 0, latenciesMs: [], provides: [] }
        : await this.#apply(rest, ctl)
    if (result === undefined) return undefined
    let next = 0
    const outcomes = messages.map((m): MessageOutcome => {
      if (m.value === null || m.value.byteLength <= max) return result.outcomes[next++]!
      return {
        status: 'failed',
        code: ErrorCodes.VALIDATION_ERROR,
        message: `value is ${m.value.byteLength} bytes, larger than the ${max} bytes allowed (--max-value-bytes)`,
        retriable: false,
      }
    })
    return { ...result, outcomes }
  }

  // Runs the messages through the sink until it answers; a whole-batch failure is retried, never dead-lettered.
  // undefined: abandoned.
  async #apply(messages: SourceMessage[], ctl: BatchControl): Promise<BatchResult | undefined> {
    const { stats, log } = this.#o
    let batchFailures = 0
    for (;;) {
      if (ctl.gone()) return undefined
      const executor = await this.#o.executor()
      // kafkajs heartbeats only between batches: keep the membership alive while a long batch is in a worker.
      const ticker = setInterval(
        () => void ctl.heartbeat().catch(() => undefined),
        this.#o.heartbeatIntervalMs ?? 3_000,
      )
      try {
        stats.handed += messages.length
        const result = await executor.run(messages, AbortSignal.timeout(this.#o.taskTimeoutMs))
        stats.applied += result.applied
        stats.stale += result.stale
        for (const ms of result.latenciesMs) stats.latencyMs.add(ms)
        return result
      } catch (err) {
        const e = toPipelineError(err)
        if (e.code === ErrorCodes.CONFIG_ERROR) {
          this.#o.onFatal(e)
          return undefined
        }
        // The whole batch failed (database down, worker died or timed out): retry it, never dead-letter it.
        batchFailures++
        const delayMs = this.#batchDelayMs(batchFailures)
        const where = { topic: messages[0].topic, partition: messages[0].partition }
        log.warn({ err: e.message, code: e.code, ...where, attempt: batchFailures, delayMs }, 'batch failed, retrying')
        stats.retries += messages.length
        if (!(await this.#wait(delayMs, ctl))) return undefined
      } finally {
        clearInterval(ticker)
      }
    }
  }

  // Sorts the sink's per-message outcomes: done, parked (or kept parked with one more attempt), or dead-lettered.
  // Returns the messages resolved. If the DLQ cannot be written this throws, and the dead letters stay unresolved.
  async #settle(messages: SourceMessage[], result: BatchResult, room: WaitingRoom): Promise<SourceMessage[]> {
    const { stats, log } = this.#o
    const now = this.#now()
    const resolved: SourceMessage[] = []
    const dead: DeadLetter[] = []
    result.outcomes.forEach((o, i) => {
      const m = messages[i]
      if (o.status !== 'failed') {
        resolved.push(m)
        return
      }
      const was = room.get(m.offset)
      const attempts = (was?.attempts ?? 0) + 1
      const first = was !== undefined && was.attempts > 0 ? was.firstFailureAt : now
      const exhausted =
        attempts >= this.#o.retry.attempts || now - first + this.#ceilingMs(attempts) > this.#o.retry.maxElapsedMs
      if (o.retriable && !exhausted) {
        if (was === undefined || was.gate !== undefined) {
          stats.parked++
          log.debug(
            { topic: m.topic, partition: m.partition, offset: m.offset, code: o.code, awaits: o.awaits },
            'parked in the waiting room: retrying when what it waits for arrives, or on its backoff',
          )
        }
        room.park({
          message: m,
          key: was?.key ?? keyText(m),
          attempts,
          firstFailureAt: first,
          lastFailureAt: now,
          nextAt: now + this.#delayMs(attempts),
          awaits: o.awaits,
          gate: undefined,
          bytes: 0,
        })
        return
      }
      dead.push({
        message: m,
        code: o.code,
        error: o.message,
        attempts,
        firstFailureAt: new Date(first),
        lastFailureAt: new Date(now),
      })
    })
    // Nothing leaves the room before the DLQ has the dead letters: if it cannot be written, this throws and the
    // call's messages are tried again (the applied ones are then found stale).
    if (dead.length > 0) {
      await this.#o.deadLetters.send(dead)
      stats.deadLettered += dead.length
      for (const d of dead) {
        resolved.push(d.message)
        this.#deadLettered.add(dlqKey(d.message))
        if (this.#deadLettered.size > DEAD_LETTERED_KEPT) {
          this.#deadLettered.delete(this.#deadLettered.values().next().value as string)
        }
        const where = { topic: d.message.topic, partition: d.message.partition, offset: d.message.offset }
        log.warn({ ...where, code: d.code, attempts: d.attempts }, `sent to DLQ: ${d.error}`)
      }
    }
    for (const m of resolved) room.remove(m.offset)
    return resolved
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

const dlqKey = (m: SourceMessage): string => `${m.topic}/${m.partition}/${m.offset}`

import { createHash } from 'node:crypto'
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
/** The message counts of a run: the engine's live figures and the final summary are the same fields. */
export interface MessageCounts {
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
  /** Messages deleted by retention before they were consumed (gaps between a committed offset and the log start). */
  lost: number
  /** Messages tried again: parked ones, and the messages of whole batches that failed. */
  retries: number
  /** Messages that entered a waiting room after a retriable failure, or behind one of their key. */
  parked: number
  /** Messages held untried until the topics they depend on caught up with them (see BatchProcessor.process). */
  held: number
  batches: number
  commits: number
}

/** The counts the engine keeps per topic (the metrics' labels); the run's totals are their sums. */
export type TopicCountName =
  | 'received'
  | 'handed'
  | 'processed'
  | 'abandoned'
  | 'applied'
  | 'stale'
  | 'deadLettered'
  | 'lost'
  | 'retries'
  | 'parked'
  | 'held'

/** One topic's counts, and its dead letters by error code. */
export type TopicCounts = Record<TopicCountName, number> & { deadLettersByCode: Record<string, number> }

/**
 * Timings the engine hands to whoever watches it (internal/metrics' histograms), once per batch or commit: the
 * counts themselves are read from the stats, so the summary and the metrics are the same numbers.
 */
export interface StatsObserver {
  /** A sink call answered: its topic, how many messages it carried, how long it took, and the applied messages'
   * event created -> durable latencies. */
  batchApplied(topic: string, size: number, seconds: number, latenciesMs: readonly number[]): void
  /** A commit request answered (ok or not) after `seconds`. */
  committed(seconds: number, ok: boolean): void
}

export interface EngineStats extends MessageCounts {
  /** The same counts per topic: every count above is added through {@link tally}, to both. */
  byTopic: Map<string, TopicCounts>
  /** Generations of the group this member joined (assignments received). */
  rebalances: number
  observer?: StatsObserver
  commitFailures: number
  startedAt: number
  /** When the first batch arrived (0 before), and when the last batch was fetched or committed. */
  firstMessageAt: number
  lastMessageAt: number
  /** Event created -> durably written, sampled. */
  latencyMs: Reservoir
}

// Every message count at zero: the run's totals and each topic's start from it.
const zeroCounts = (): Record<TopicCountName, number> => ({
  received: 0,
  handed: 0,
  processed: 0,
  abandoned: 0,
  applied: 0,
  stale: 0,
  deadLettered: 0,
  lost: 0,
  retries: 0,
  parked: 0,
  held: 0,
})

export const newStats = (now = Date.now()): EngineStats => ({
  ...zeroCounts(),
  batches: 0,
  commits: 0,
  byTopic: new Map(),
  rebalances: 0,
  commitFailures: 0,
  startedAt: now,
  firstMessageAt: 0,
  lastMessageAt: now,
  latencyMs: new Reservoir(),
})

const newTopicCounts = (): TopicCounts => ({ ...zeroCounts(), deadLettersByCode: {} })

/** One topic's counts (created at its first count). */
export function topicCounts(stats: EngineStats, topic: string): TopicCounts {
  let c = stats.byTopic.get(topic)
  if (c === undefined) stats.byTopic.set(topic, (c = newTopicCounts()))
  return c
}

/** Adds `n` to a count, in the run's total and in the topic's: the one way the counts change. */
export function tally(stats: EngineStats, topic: string, name: TopicCountName, n = 1): void {
  if (n === 0) return
  stats[name] += n
  topicCounts(stats, topic)[name] += n
}

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
   * fault: it is retried with its own backoff (200 ms doubling up to `sinkDownBackoffMaxMs`) until it succeeds or
   * is abandoned.
   */
  retry: RetryPolicy
  /**
   * The longest wait between two tries of a batch that failed as a whole (default
   * {@link DEFAULT_SINK_DOWN_BACKOFF_MAX_MS}): once the sink is back, the batch is applied at most this long later.
   */
  sinkDownBackoffMaxMs?: number
  deadLetters: DeadLetterWriter
  /** A batch that takes longer than this in a worker is aborted (the worker is replaced) and retried. */
  taskTimeoutMs: number
  stats: EngineStats
  log: Logger
  /**
   * A failure no retry can fix (CONFIG_ERROR: a missing table, a rejected password; SOURCE_CHANGED: changes from
   * another PostgreSQL cluster): the engine stops.
   */
  onFatal: (err: PipelineError) => void
  /**
   * A message whose value is larger than this (decoded: after the client decompressed it) is dead-lettered as
   * VALIDATION_ERROR without reaching the sink: the fetch limit bounds compressed bytes only, and a small gzipped
   * record can hold a huge value (default {@link DEFAULT_MAX_VALUE_BYTES}).
   */
  maxValueBytes?: number
  /** How often to heartbeat while a batch is in a worker (default 3 s). */
  heartbeatIntervalMs?: number
  /**
   * Whole-batch failures that a message may cause (a worker crash, a timeout) after which the batch is bisected to
   * find the message that fails alone (default {@link BISECT_AFTER_FAILURES}).
   */
  bisectAfter?: number
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>
  random?: () => number
  now?: () => number
}

/**
 * The longest wait between tries of a batch that failed as a whole, by default: 10 s, gentle on a database that is
 * restarting or recovering. A sink whose retry is one cheap command (Redis) sets less (SinkModule.sinkDownBackoffMaxMs).
 */
export const DEFAULT_SINK_DOWN_BACKOFF_MAX_MS = 10_000

/** Dead-lettered messages remembered (all partitions, the most recent), to skip them when delivered again. */
export const DEAD_LETTERED_KEPT = 10_000

/**
 * A batch that failed this many times as a whole with a failure a message may cause (SINK_TIMEOUT: the sink call
 * outlived --task-timeout; WORKER_CRASH: the worker thread died) is bisected: its halves are tried, in offset order,
 * and a half that fails is split again, until the message that fails alone is found and dead-lettered with that code;
 * the rest is applied. A failure no message causes (SINK_UNAVAILABLE: the database is down) is never bisected.
 */
export const BISECT_AFTER_FAILURES = 3

// Failures a single message can cause (so bisecting may isolate it).
const ISOLATABLE: ReadonlySet<ErrorCode> = new Set([ErrorCodes.SINK_TIMEOUT, ErrorCodes.WORKER_CRASH])

/** How many entries the processor keeps per partition (see {@link BatchProcessor.footprint}). */
export interface ProcessorFootprint {
  /** Partitions with remembered dead letters. */
  partitions: number
  /** Remembered dead letters, all partitions. */
  deadLettered: number
  /** Bisections in progress. */
  bisecting: number
}

type Try = { result: BatchResult } | { error: PipelineError } | undefined

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
  // Messages already durably dead-lettered, per partition (the most recent DEAD_LETTERED_KEPT in all): offset ->
  // fingerprint (timestamp, key and value hash). When one comes again (a commit failed, the group rebalanced), it is
  // skipped instead of written to the DLQ a second time; a different message at that offset (the topic was deleted
  // and created again) does not match its fingerprint and is processed. Dropped when the partition is revoked.
  readonly #deadLettered = new Map<string, Map<string, string>>()
  // The order they were remembered in, to forget the oldest beyond DEAD_LETTERED_KEPT (a queue: from #oldest on).
  #remembered: { kept: Map<string, string>; offset: string }[] = []
  #oldest = 0
  #rememberedCount = 0
  readonly #bisectAfter: number
  // Sink calls that answered, all partitions: a bisection dead-letters a message that timed out alone only once the
  // sink has answered some call since the bisection began (a database that hangs times every message out).
  #answered = 0
  #bisecting = 0

  constructor(options: BatchProcessorOptions) {
    this.#o = options
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)))
    this.#now = options.now ?? Date.now
    this.#bisectAfter = options.bisectAfter ?? BISECT_AFTER_FAILURES
  }

  /** Drops what is kept for partitions this member no longer holds (after a rebalance): `assigned` is topic -> partitions. */
  retain(assigned: Readonly<Record<string, readonly number[]>>): void {
    const keep = new Set(Object.entries(assigned).flatMap(([t, ps]) => ps.map((p) => partitionId(t, p))))
    for (const [id, kept] of this.#deadLettered) {
      if (keep.has(id)) continue
      this.#deadLettered.delete(id)
      this.#rememberedCount -= kept.size
      kept.clear()
    }
    if (this.#rememberedCount === 0) {
      this.#remembered = []
      this.#oldest = 0
    }
  }

  /** The entries the processor keeps (for tests and leak checks). */
  footprint(): ProcessorFootprint {
    let deadLettered = 0
    for (const m of this.#deadLettered.values()) deadLettered += m.size
    return { partitions: this.#deadLettered.size, deadLettered, bisecting: this.#bisecting }
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
    // One partition's messages: one lookup of its dead letters, then O(1) per message (a fingerprint is computed
    // only for a message at an offset that was dead-lettered).
    const dead =
      messages.length > 0 ? this.#deadLettered.get(partitionId(messages[0].topic, messages[0].partition)) : undefined
    for (const m of messages) {
      const was = dead?.get(m.offset)
      if (was !== undefined && was === fingerprint(m)) {
        resolved.push(m)
        continue
      }
      const key = keyText(m)
      const at = Number(m.timestamp)
      const head = room.headOf(key)
      if (head !== undefined) {
        room.park({ message: m, key, attempts: 0, firstFailureAt: now, lastFailureAt: now, nextAt: 0, bytes: 0 })
        tally(this.#o.stats, m.topic, head.gate !== undefined ? 'held' : 'parked')
      } else if (gate !== undefined && !(at < gate.progress)) {
        const entry = { message: m, key, attempts: 0, firstFailureAt: now, lastFailureAt: now, bytes: 0 }
        room.park({ ...entry, nextAt: now + gate.maxMs, gate: at })
        tally(this.#o.stats, m.topic, 'held')
      } else send.push(m)
    }
    if (send.length === 0) return { kind: 'done', resolved, provides: [] }
    const result = await this.#applyChecked(send, ctl)
    if (result === undefined) return { kind: 'abandoned' }
    const settled = await this.#settle(send, result, room, ctl)
    return { kind: 'done', resolved: [...resolved, ...settled], provides: result.provides ?? [] }
  }

  /** Tries parked messages again (a key's entries together, in offset order); what resolves leaves the room. */
  async retry(entries: Parked[], room: WaitingRoom, ctl: BatchControl): Promise<BatchOutcome> {
    const messages = entries.map((e) => e.message)
    for (const e of entries) if (e.attempts > 0) tally(this.#o.stats, e.message.topic, 'retries')
    const result = await this.#applyChecked(messages, ctl)
    if (result === undefined) return { kind: 'abandoned' }
    return { kind: 'done', resolved: await this.#settle(messages, result, room, ctl), provides: result.provides ?? [] }
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

  // Runs the messages through the sink until it answers; a whole-batch failure is retried, never dead-lettered,
  // except that one a message may cause (a crash, a timeout) bisects the batch after #bisectAfter of them.
  // undefined: abandoned.
  async #apply(messages: SourceMessage[], ctl: BatchControl): Promise<BatchResult | undefined> {
    let isolatable = 0
    for (let attempt = 1; ; attempt++) {
      const t = await this.#try(messages, ctl)
      if (t === undefined) return undefined
      if ('result' in t) return t.result
      if (ISOLATABLE.has(t.error.code) && ++isolatable >= this.#bisectAfter) return this.#bisect(messages, ctl)
      if (!(await this.#backOff(messages, t.error, attempt, ctl))) return undefined
    }
  }

  // One sink call. undefined: abandoned (gone, or a CONFIG_ERROR that stops the engine).
  async #try(messages: SourceMessage[], ctl: BatchControl): Promise<Try> {
    const { stats } = this.#o
    if (ctl.gone()) return undefined
    const executor = await this.#o.executor()
    // kafkajs heartbeats only between batches: keep the membership alive while a long batch is in a worker.
    const ticker = setInterval(() => void ctl.heartbeat().catch(() => undefined), this.#o.heartbeatIntervalMs ?? 3_000)
    try {
      const topic = messages[0].topic
      tally(stats, topic, 'handed', messages.length)
      const started = performance.now()
      const result = await executor.run(messages, this.#o.taskTimeoutMs)
      this.#answered++
      tally(stats, topic, 'applied', result.applied)
      tally(stats, topic, 'stale', result.stale)
      for (const ms of result.latenciesMs) stats.latencyMs.add(ms)
      stats.observer?.batchApplied(topic, messages.length, (performance.now() - started) / 1000, result.latenciesMs)
      return { result }
    } catch (err) {
      const e = toPipelineError(err)
      if (e.code === ErrorCodes.CONFIG_ERROR || e.code === ErrorCodes.SOURCE_CHANGED) {
        this.#o.onFatal(e)
        return undefined
      }
      return { error: e }
    } finally {
      clearInterval(ticker)
    }
  }

  // The whole call failed (database down, worker died or timed out): wait before trying it again. false: abandoned.
  async #backOff(messages: SourceMessage[], e: PipelineError, attempt: number, ctl: BatchControl): Promise<boolean> {
    const delayMs = this.#batchDelayMs(attempt)
    const where = { topic: messages[0].topic, partition: messages[0].partition, messages: messages.length }
    this.#o.log.warn({ err: e.message, code: e.code, ...where, attempt, delayMs }, 'batch failed, retrying')
    tally(this.#o.stats, messages[0].topic, 'retries', messages.length)
    return this.#wait(delayMs, ctl)
  }

  /**
   * Isolates the message(s) of a batch that make the sink call fail as a whole (a worker crash, a timeout): halves
   * are tried in offset order and a failing half is split again; a message that fails alone is dead-lettered at once
   * with the failure's code, before anything after it is tried, so no later message of its key is applied before it
   * is resolved. The other messages' outcomes are the sink's. A part that fails for another reason (the database
   * went down) is retried with backoff, not split. A message that times out alone is dead-lettered only if the sink
   * answered some call (any partition's) since the bisection began; else the sink itself may hang, and it is retried.
   * undefined: abandoned.
   */
  async #bisect(messages: SourceMessage[], ctl: BatchControl): Promise<BatchResult | undefined> {
    const { log } = this.#o
    const started = this.#now()
    const since = this.#answered
    const out: BatchResult = { outcomes: new Array(messages.length), applied: 0, stale: 0, latenciesMs: [] }
    const where = { topic: messages[0].topic, partition: messages[0].partition }
    log.warn(
      { ...where, messages: messages.length },
      'batch keeps failing as a whole: bisecting it to isolate the cause',
    )
    const firstFailureAt = new Date(started)
    this.#bisecting++
    try {
      // Parts still to do, next first; `failed`: it failed as a whole already (split it without trying it again).
      // `after`: the left half of the failed part this one is the right half of: if that one succeeds, this one must be
      // what failed (not tried as a whole, split at once).
      type Part = { from: number; to: number; failed: boolean; tries: number; after?: Part }
      const todo: Part[] = [{ from: 0, to: messages.length, failed: true, tries: this.#bisectAfter }]
      while (todo.length > 0) {
        const part = todo[0]
        const slice = messages.slice(part.from, part.to)
        let error: PipelineError | undefined
        if (!part.failed) {
          const t = await this.#try(slice, ctl)
          if (t === undefined) return undefined
          if ('result' in t) {
            merge(out, t.result, part.from)
            todo.shift()
            if (todo[0]?.after === part) todo[0].failed = true
            continue
          }
          part.tries++
          if (!ISOLATABLE.has(t.error.code)) {
            if (!(await this.#backOff(slice, t.error, part.tries, ctl))) return undefined
            continue
          }
          error = t.error
        }
        if (slice.length > 1) {
          const mid = part.from + Math.ceil(slice.length / 2)
          const left: Part = { from: part.from, to: mid, failed: false, tries: 0 }
          todo.splice(0, 1, left, { from: mid, to: part.to, failed: false, tries: 0, after: left })
          continue
        }
        if (error === undefined) {
          part.failed = false
          continue
        }
        // One message that fails alone.
        if (error.code === ErrorCodes.SINK_TIMEOUT && this.#answered === since) {
          log.warn(
            { ...where, offset: slice[0].offset },
            'a message times out alone, but the sink has answered nothing since: retrying it',
          )
          if (!(await this.#backOff(slice, error, part.tries, ctl))) return undefined
          continue
        }
        const m = slice[0]
        await this.#deadLetter(
          [
            {
              message: m,
              code: error.code,
              error: `failed alone after its batch failed as a whole: ${error.message}`,
              attempts: part.tries + this.#bisectAfter,
              firstFailureAt,
              lastFailureAt: new Date(this.#now()),
            },
          ],
          ctl,
        )
        // Resolved: durably in the DLQ (#settle counts it done, and does not send it again).
        out.outcomes[part.from] = { status: 'ok' }
        log.warn(
          { ...where, offset: m.offset, code: error.code, isolatedInMs: this.#now() - started },
          'isolated the message that fails its batch',
        )
        todo.shift()
      }
      return out
    } finally {
      this.#bisecting--
    }
  }

  // Sorts the sink's per-message outcomes: done, parked (or kept parked with one more attempt), or dead-lettered.
  // Returns the messages resolved. If the DLQ cannot be written this throws, and the dead letters stay unresolved.
  async #settle(
    messages: SourceMessage[],
    result: BatchResult,
    room: WaitingRoom,
    ctl: BatchControl,
  ): Promise<SourceMessage[]> {
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
          tally(stats, m.topic, 'parked')
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
      await this.#deadLetter(dead, ctl)
      for (const d of dead) resolved.push(d.message)
    }
    for (const m of resolved) room.remove(m.offset)
    return resolved
  }

  // Keeps at most DEAD_LETTERED_KEPT remembered dead letters in all: the oldest go first.
  #forgetOldest(): void {
    while (this.#rememberedCount > DEAD_LETTERED_KEPT && this.#oldest < this.#remembered.length) {
      const { kept, offset } = this.#remembered[this.#oldest++]
      // (an entry of a partition dropped since, or remembered again later, is no longer counted)
      if (kept.delete(offset)) this.#rememberedCount--
    }
    // Compacted now and then (amortised O(1)): consumed entries, and those of partitions dropped since.
    if (this.#oldest > DEAD_LETTERED_KEPT || this.#remembered.length - this.#oldest > 2 * DEAD_LETTERED_KEPT) {
      this.#remembered = this.#remembered.slice(this.#oldest).filter((e) => e.kept.has(e.offset))
      this.#oldest = 0
    }
  }

  // Writes dead letters (resolves once durable) and remembers them, unless the partition was revoked meanwhile.
  async #deadLetter(dead: DeadLetter[], ctl?: BatchControl): Promise<void> {
    const { stats, log } = this.#o
    await this.#o.deadLetters.send(dead)
    for (const d of dead) {
      tally(stats, d.message.topic, 'deadLettered')
      const byCode = topicCounts(stats, d.message.topic).deadLettersByCode
      byCode[d.code] = (byCode[d.code] ?? 0) + 1
    }
    for (const d of dead) {
      const m = d.message
      if (ctl?.gone() !== true) {
        const id = partitionId(m.topic, m.partition)
        let kept = this.#deadLettered.get(id)
        if (kept === undefined) this.#deadLettered.set(id, (kept = new Map()))
        if (!kept.has(m.offset)) {
          this.#remembered.push({ kept, offset: m.offset })
          this.#rememberedCount++
        }
        kept.set(m.offset, fingerprint(m))
        this.#forgetOldest()
      }
      log.warn(
        { topic: m.topic, partition: m.partition, offset: m.offset, code: d.code, attempts: d.attempts },
        `sent to DLQ: ${d.error}`,
      )
    }
  }

  // A whole batch failing means the sink is down: back off further (200 ms doubling up to the cap), without a bound
  // on the attempts.
  #batchDelayMs(attempt: number): number {
    const maxMs = Math.max(200, this.#o.sinkDownBackoffMaxMs ?? DEFAULT_SINK_DOWN_BACKOFF_MAX_MS)
    return computeBackoffMs(attempt, { baseMs: 200, maxMs, random: this.#o.random })
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

const partitionId = (topic: string, partition: number): string => `${topic}\0${partition}`

/** What tells a message from another at the same offset: its timestamp and a hash of its key and value. */
function fingerprint(m: SourceMessage): string {
  const h = createHash('sha1')
  h.update(`${m.key?.byteLength ?? -1}:${m.value?.byteLength ?? -1}:`)
  if (m.key !== null) h.update(m.key)
  if (m.value !== null) h.update(m.value)
  return `${m.timestamp}/${h.digest('base64')}`
}

// Puts a part's results into a bisected batch's, its outcomes at `from`.
function merge(into: BatchResult, part: BatchResult, from: number): void {
  part.outcomes.forEach((o, i) => (into.outcomes[from + i] = o))
  into.applied += part.applied
  into.stale += part.stale
  into.latenciesMs.push(...part.latenciesMs)
  if (part.provides !== undefined) (into.provides ??= []).push(...part.provides)
}

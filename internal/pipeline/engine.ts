import { availableParallelism } from 'node:os'
import type { Logger } from 'pino'
import { ErrorCodes, PipelineError, errorMessage, toPipelineError } from '../errors/index.js'
import type { BatchContext, CommitRequest, ConsumerGroup, KafkaAdmin, KafkaClient } from '../kafka/index.js'
import {
  BatchProcessor,
  newStats,
  tally,
  type BatchControl,
  type BatchOutcome,
  type DeadLetterWriter,
  type EngineStats,
  type ProcessorFootprint,
  type StatsObserver,
} from './batch-processor.js'
import { InlineExecutor, PoolExecutor, type BatchExecutor } from './executor.js'
import { computeBackoffMs, type RetryPolicy } from './retry.js'
import { toSource, type SinkSpec, type SourceMessage } from './types.js'
import { WaitingRoom } from './waiting-room.js'

export interface EngineOptions {
  kafka: KafkaClient
  groupId: string
  topics: string[]
  sink: SinkSpec
  /**
   * Worker threads: 0 runs the sink in the main thread; 'auto' sizes the pool to the assigned partitions, N is a
   * pool of N; either way at most `maxWorkers` threads, which the partitions share beyond it (each partition still
   * has one batch in flight at a time, in order).
   */
  workers: number | 'auto'
  /** The most worker threads (default {@link defaultMaxWorkers}: 2 per core). */
  maxWorkers?: number
  /**
   * What to do when a partition's committed offset is below its log start offset at assignment (retention deleted
   * messages the group never consumed): 'fail' (the default) stops the engine with a DATA_LOSS error (the command
   * exits 4); 'continue' logs and counts the gap and consumes from the log start. Either way it is logged at error
   * level with topic, partition and the range [from, to) lost.
   */
  onDataLoss?: DataLossPolicy
  /** Builds the executor of `threads` worker threads (0: inline); for tests. */
  makeExecutor?: (threads: number) => BatchExecutor
  /** Retries of failing messages and of whole batches (see BatchProcessorOptions.retry). */
  retry: RetryPolicy
  /** The longest wait between tries of a batch that failed as a whole (see BatchProcessorOptions). */
  sinkDownBackoffMaxMs?: number
  deadLetters: DeadLetterWriter
  /** Exit cleanly after this long without a message (0: run until stopped). */
  idleTimeoutMs: number
  /** A batch that takes longer than this in a worker is aborted (the worker is replaced) and retried. */
  taskTimeoutMs: number
  fromBeginning: boolean
  log: Logger
  sessionTimeoutMs?: number
  maxBytesPerPartition?: number
  /** A value larger than this, decompressed, is dead-lettered as VALIDATION_ERROR before the sink decodes it. */
  maxValueBytes?: number
  /** A partition whose waiting room holds this many messages (or bytes) is paused until it drains. */
  maxParkedMessages?: number
  maxParkedBytes?: number
  /**
   * Topics whose messages refer to another topic's (orders -> users): a message of the first is tried only once the
   * second has been applied past its Kafka timestamp, when this member holds all the second's partitions, so that
   * catching up on a backlog does not try orders before the users produced before them (each would fail once and
   * be tried again), live or catching up. A partition caught up with its log that has delivered nothing for 100 ms
   * counts as applied up to now. Without it (or when the group splits the topics between members) such a message
   * fails once, waits in the room and is woken by its user.
   */
  dependsOn?: Record<string, string[]>
  /** Told every batch's and commit's timings (the metrics' histograms); the counts are in {@link Engine.stats}. */
  observer?: StatsObserver
}

/** The engine's state as /readyz and the metrics' gauges see it. */
export interface EngineState {
  /** 'starting' before the group's first assignment, 'running' once assigned, 'stopping' once stop began. */
  phase: 'starting' | 'running' | 'stopping'
  /** This member's partitions, by topic (empty before the first assignment). */
  assignment: Readonly<Record<string, readonly number[]>>
  /** Partitions paused because their waiting room is full. */
  pausedPartitions: number
  /** Batches fetched and not yet applied, over all partitions. */
  inFlightBatches: number
  /** Messages waiting in the partitions' waiting rooms. */
  parkedMessages: number
  /** Worker threads of the executor (0: the sink runs in the main thread). */
  workerThreads: number
  /** Worker threads replaced so far (a batch past --task-timeout, a worker that died). */
  workerRestarts: number
  /**
   * Per assigned partition with work fetched and not done (a batch queued or being applied, messages waiting in
   * the room): the Kafka timestamp of its oldest such message, milliseconds since the epoch.
   */
  oldestUnprocessed: { topic: string; partition: number; timestamp: number }[]
}

/** How long a message may be held for the topics it depends on before it is tried anyway. */
const GATE_MAX_MS = 30_000
/** A dependency partition that delivered nothing this long after the group formed is taken as caught up (empty). */
const GATE_GRACE_MS = 1_000
/** A dependency partition caught up with its log that delivered nothing for this long is taken as applied up to now. */
const GATE_QUIET_MS = 100

export type DataLossPolicy = 'fail' | 'continue'
export const DATA_LOSS_POLICIES: readonly DataLossPolicy[] = ['fail', 'continue']

/** The default cap of worker threads: 2 per core (a batch's time is mostly spent waiting on the database). */
export const defaultMaxWorkers = (): number => 2 * availableParallelism()

/** Messages a partition lost to retention: its committed offset `from` was below its log start offset `to`. */
export interface DataGap {
  topic: string
  partition: number
  from: string
  to: string
}

/** The per-partition entries the engine keeps (for tests and leak checks): all 0 once nothing is assigned. */
export interface EngineFootprint extends ProcessorFootprint {
  lanes: number
  parked: number
  /** Watermarks queued for the next commit. */
  pendingCommits: number
}

/** Defaults of the waiting room's bounds, per partition. */
export const DEFAULT_MAX_PARKED_MESSAGES = 10_000
export const DEFAULT_MAX_PARKED_BYTES = 32 * 1024 * 1024

/** A consumed message as the sink gets it (see types.ts). */
export { toSource }

type CommitOffsets = (o: CommitRequest) => Promise<void>

/** One assigned partition's state in this generation of the group: its waiting room and what awaits a commit. */
interface Lane {
  readonly topic: string
  readonly partition: number
  /** False once the group rebalanced: the lane's work is then forgotten (Kafka delivers it again). */
  alive: boolean
  readonly room: WaitingRoom
  /** Done messages not committed yet, as runs of consecutive offsets that hold no parked message: last offset, count. */
  runs: { last: bigint; count: number }[]
  /** The last offset of the last batch applied. */
  next: string | undefined
  committed: bigint
  /** The partition's work (fresh batches and retries of parked messages) runs one piece at a time, in order. */
  chain: Promise<unknown>
  /** Batches fetched and not yet applied, the one being applied included. */
  queued: number
  /** The first offsets of those batches (and of any abandoned one): the commit stays below them. */
  pending: bigint[]
  /** The Kafka timestamp of the first message of each batch queued and not applied, by its first offset. */
  pendingAt: Map<bigint, number>
  busy: number
  timer: NodeJS.Timeout | undefined
  timerAt: number
  /** What other partitions delivered that this room's messages wait for: they are tried at once. */
  wake: Set<string>
  paused: boolean
  /** Held messages may be released: retry at once. */
  release: boolean
  /** The Kafka timestamp of the last message applied (-Infinity before the first batch). */
  lastTimestamp: number
  /** Whether the last batch applied reached the partition's high watermark, and when it was applied. */
  caughtUp: boolean
  appliedAt: number
}

/**
 * The consume engine shared by every pipeline: a consumer group (internal/kafka's port) whose partitions are processed
 * concurrently, one batch in flight per partition (so per-key order holds), each batch applied by a sink in a
 * worker thread or inline, transient failures retried with backoff, what cannot be applied sent to the DLQ.
 * Messages that must wait for others (an order before its user) wait in the partition's waiting room while the
 * partition goes on; the committed offset is the partition's low watermark (its first unresolved offset), and it is
 * committed only after the sink and the DLQ have durably written everything below it. Commits of all partitions are
 * gathered into one request that overlaps the next fetch.
 */
export class Engine {
  readonly stats: EngineStats
  readonly #o: EngineOptions
  readonly #log: Logger
  readonly #consumer: ConsumerGroup
  readonly #processor: BatchProcessor
  readonly #maxParked: number
  readonly #maxParkedBytes: number
  readonly #maxWorkers: number
  #executor: BatchExecutor | undefined
  #admin: KafkaAdmin | undefined
  // The data-loss check of the current generation (batches wait for it), and whether it found a gap to fail on.
  #gapCheck: Promise<void> | undefined
  #lost = false
  #assigned = 0
  #retiredRestarts = 0
  #everAssigned = false
  #stopping = false
  #inFlight = 0
  readonly #lanes = new Map<string, Lane>()
  // Watermarks waiting to be committed, by partition; one commit request carries them all.
  readonly #pending = new Map<string, { lane: Lane; offset: bigint }>()
  #flushing: Promise<void> | undefined
  #flushTimer: NodeJS.Timeout | undefined
  #commit: CommitOffsets | undefined
  // A failed commit: the next batch throws it, so that kafkajs rejoins the group (and finds a moved coordinator).
  #commitError: unknown
  #idleTimer: NodeJS.Timeout | undefined
  // For dependsOn: the partition count of every dependency topic, this member's assignment, and when it began.
  readonly #dependencies: ReadonlySet<string>
  readonly #partitionCounts = new Map<string, number>()
  #assignment: Record<string, number[]> = {}
  #joinedAt = 0
  #graceTimer: NodeJS.Timeout | undefined
  #quietTimer: NodeJS.Timeout | undefined
  #done!: (reason: string) => void
  #failed!: (err: Error) => void
  readonly finished: Promise<string>

  constructor(options: EngineOptions) {
    this.#o = options
    this.#log = options.log.child({ module: 'engine', group: options.groupId })
    this.#maxParked = options.maxParkedMessages ?? DEFAULT_MAX_PARKED_MESSAGES
    this.#maxParkedBytes = options.maxParkedBytes ?? DEFAULT_MAX_PARKED_BYTES
    this.#maxWorkers = Math.max(1, options.maxWorkers ?? defaultMaxWorkers())
    this.#dependencies = new Set(Object.values(options.dependsOn ?? {}).flat())
    this.stats = newStats()
    if (options.observer !== undefined) this.stats.observer = options.observer
    this.finished = new Promise((resolve, reject) => {
      this.#done = resolve
      this.#failed = reject
    })
    this.#consumer = options.kafka.consumerGroup({
      groupId: options.groupId,
      sessionTimeoutMs: options.sessionTimeoutMs ?? 30_000,
      heartbeatIntervalMs: 3_000,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1_048_576,
      maxWaitTimeMs: 100,
      retries: 10,
    })
    this.#processor = new BatchProcessor({
      executor: () => this.#awaitExecutor(),
      retry: options.retry,
      ...(options.sinkDownBackoffMaxMs === undefined ? {} : { sinkDownBackoffMaxMs: options.sinkDownBackoffMaxMs }),
      deadLetters: options.deadLetters,
      taskTimeoutMs: options.taskTimeoutMs,
      maxValueBytes: options.maxValueBytes,
      stats: this.stats,
      log: this.#log,
      // A failure no retry fixes (a missing table, a rejected password): stop, and exit non-zero.
      onFatal: (err) => this.#failed(err),
    })
  }

  /** Connects, subscribes and starts consuming; resolves once running. */
  async start(): Promise<void> {
    const c = this.#consumer
    c.onAssigned((memberAssignment) => {
      const assigned = Object.values(memberAssignment).reduce((n, ps) => n + ps.length, 0)
      this.#log.info({ assignment: memberAssignment }, 'partitions assigned')
      this.stats.rebalances++
      this.#everAssigned = true
      // A new generation fetches every partition again from its committed offset: what the lanes held is forgotten,
      // and so is what the processor keeps for partitions no longer assigned.
      this.#reset()
      this.#processor.retain(memberAssignment)
      this.#assignment = memberAssignment
      // Its partitions are not fetched before the check (kafkajs would reset an out-of-range offset to the earliest
      // and commit that, which erases the evidence): GROUP_JOIN is emitted before the generation's first fetch.
      const partitions = Object.entries(memberAssignment)
        .filter(([, ps]) => ps.length > 0)
        .map(([topic, ps]) => ({ topic, partitions: ps }))
      if (partitions.length > 0) c.pause(partitions)
      const check: Promise<void> = this.#checkGaps(memberAssignment).finally(() => {
        // A newer generation's check owns the partitions now.
        if (this.#gapCheck !== check) return
        this.#gapCheck = undefined
        if (!this.#lost && partitions.length > 0) c.resume(partitions)
      })
      this.#gapCheck = check
      this.#joinedAt = Date.now()
      clearTimeout(this.#graceTimer)
      this.#graceTimer = setTimeout(() => this.#releaseGated(), GATE_GRACE_MS + 10)
      void this.#resizeWorkers(assigned)
    })
    c.onCrash((error, restart) => {
      if (!restart) this.#failed(toPipelineError(error))
    })
    const dependencies = [...this.#dependencies]
    // Kept for the data-loss check at every assignment.
    const admin = (this.#admin = this.#o.kafka.admin())
    await admin.connect()
    if (dependencies.length > 0) {
      const { topics } = await admin.fetchTopicMetadata({ topics: dependencies })
      for (const t of topics) this.#partitionCounts.set(t.name, t.partitions.length)
    }
    await c.connect()
    await c.subscribe({ topics: this.#o.topics, fromBeginning: this.#o.fromBeginning })
    if (this.#o.workers !== 'auto') this.#executor = this.#makeExecutor(this.#o.workers)
    // Offsets are resolved and committed by the engine only.
    await c.run({
      // Every partition may have its batch in flight at once; within a partition kafkajs hands out one at a time.
      partitionsConsumedConcurrently: 64,
      eachBatch: (payload) => this.#eachBatch(payload),
    })
    if (this.#o.idleTimeoutMs > 0) {
      this.#idleTimer = setInterval(() => {
        const idleMs = Date.now() - this.stats.lastMessageAt
        if (idleMs >= this.#o.idleTimeoutMs && this.#quiet()) void this.stop(`idle for ${Math.round(idleMs / 1000)} s`)
      }, 250)
      this.#idleTimer.unref()
    }
  }

  /**
   * Stops fetching, lets in-flight work finish (waits and retries are abandoned), commits what is done, closes.
   * Parked messages stay uncommitted: the next member gets them again. Idempotent.
   */
  async stop(reason = 'stopped'): Promise<void> {
    if (this.#stopping) return this.finished.then(() => undefined)
    this.#stopping = true
    clearInterval(this.#idleTimer)
    clearTimeout(this.#graceTimer)
    clearTimeout(this.#quietTimer)
    for (const lane of this.#lanes.values()) clearTimeout(lane.timer)
    this.#log.info({ reason, inFlight: this.#inFlight }, 'stopping: no new fetches, draining in-flight batches')
    await this.idle()
    clearTimeout(this.#flushTimer)
    await this.#flushing
    await this.#flush()
    try {
      await this.#consumer.stop()
      await this.#consumer.disconnect()
    } catch (err) {
      this.#log.warn({ err }, 'consumer did not close cleanly')
    }
    this.#reset()
    this.#processor.retain({})
    await this.#gapCheck?.catch(() => undefined)
    await this.#admin?.disconnect().catch(() => undefined)
    await this.#executor?.close().catch((err: unknown) => this.#log.warn({ err }, 'worker pool did not close cleanly'))
    this.#done(reason)
  }

  /** Resolves once no batch is being handed over or applied, nor any parked message retried. */
  async idle(): Promise<void> {
    while (this.#inFlight > 0 || [...this.#lanes.values()].some((l) => l.busy > 0)) {
      await new Promise((r) => setTimeout(r, 5))
    }
  }

  /** What /readyz and the gauges report; cheap (a walk over the assigned partitions). */
  state(): EngineState {
    let paused = 0
    let queued = 0
    let parked = 0
    const oldest: EngineState['oldestUnprocessed'] = []
    for (const lane of this.#lanes.values()) {
      if (lane.paused) paused++
      queued += lane.queued
      parked += lane.room.size
      let at = lane.room.lowestTimestamp()
      for (const t of lane.pendingAt.values()) at = Math.min(at, t)
      if (Number.isFinite(at)) oldest.push({ topic: lane.topic, partition: lane.partition, timestamp: at })
    }
    const threads = this.#o.workers === 'auto' ? this.#assigned : Math.min(this.#o.workers, this.#maxWorkers)
    return {
      phase: this.#stopping ? 'stopping' : this.#everAssigned ? 'running' : 'starting',
      assignment: this.#assignment,
      pausedPartitions: paused,
      inFlightBatches: queued,
      parkedMessages: parked,
      workerThreads: threads,
      workerRestarts: this.#retiredRestarts + (this.#executor?.restarts ?? 0),
      oldestUnprocessed: oldest,
    }
  }

  /** The per-partition entries the engine and its processor keep now. */
  footprint(): EngineFootprint {
    let parked = 0
    for (const lane of this.#lanes.values()) parked += lane.room.size
    return { lanes: this.#lanes.size, parked, pendingCommits: this.#pending.size, ...this.#processor.footprint() }
  }

  /**
   * After an assignment, before any of its batches is processed: a partition whose committed offset is below its
   * log start offset lost [committed, log start) to retention unconsumed (kafkajs would only reset to the earliest
   * offset and log it once). Each gap is counted (stats.lost) and logged at error level; by default the engine then
   * fails with DATA_LOSS (its partitions stay paused and nothing is committed, so the next start finds the gap
   * again); with 'continue' it consumes from the log start. The check itself failing (a broker away) is logged and
   * does not stop consuming.
   */
  async #checkGaps(assignment: Record<string, number[]>): Promise<void> {
    const admin = this.#admin
    const topics = Object.keys(assignment).filter((t) => assignment[t].length > 0)
    if (admin === undefined || topics.length === 0) return
    let gaps: DataGap[] = []
    for (let attempt = 1; ; attempt++) {
      try {
        gaps = await findGaps(admin, this.#o.groupId, assignment)
        break
      } catch (err) {
        if (attempt >= 3 || this.#stopping) {
          this.#log.warn(
            { err: errorMessage(err) },
            'could not check the committed offsets against the log start offsets',
          )
          return
        }
        await new Promise((r) => setTimeout(r, 500 * attempt))
      }
    }
    if (gaps.length === 0) return
    const policy = this.#o.onDataLoss ?? 'fail'
    for (const g of gaps) {
      const lost = Number(BigInt(g.to) - BigInt(g.from))
      tally(this.stats, g.topic, 'lost', lost)
      this.#log.error(
        { ...g, lost, onDataLoss: policy },
        `data loss: ${g.topic}[${g.partition}] offsets ${g.from} to ${g.to} were deleted (retention) before this group consumed them`,
      )
      // From the log start (kafkajs would reset an out-of-range offset to the earliest or, not fromBeginning, the end).
      if (policy === 'continue') this.#consumer.seek({ topic: g.topic, partition: g.partition, offset: g.to })
    }
    if (policy === 'fail') {
      this.#lost = true
      const list = gaps.map((g) => `${g.topic}[${g.partition}] ${g.from}..${g.to}`).join(', ')
      this.#failed(
        new PipelineError(
          ErrorCodes.DATA_LOSS,
          `data loss: messages deleted by retention before they were consumed: ${list} (--on-data-loss continue to go on from the log start)`,
        ),
      )
    }
  }

  #quiet(): boolean {
    if (this.#inFlight > 0 || this.#pending.size > 0 || this.#flushing) return false
    for (const lane of this.#lanes.values()) if (lane.busy > 0 || lane.room.size > 0) return false
    return true
  }

  // Worker threads at most #maxWorkers (each holds its own sink and connections): beyond it partitions share them.
  #makeExecutor(threads: number): BatchExecutor {
    const n = Math.min(threads, this.#maxWorkers)
    if (n < threads)
      this.#log.info({ workers: n, asked: threads, maxWorkers: this.#maxWorkers }, 'worker threads capped')
    if (this.#o.makeExecutor !== undefined) return this.#o.makeExecutor(n)
    return n === 0 ? new InlineExecutor(this.#o.sink) : new PoolExecutor(this.#o.sink, n)
  }

  // 'auto': one worker per assigned partition, at most #maxWorkers. The old pool closes once the batches it still
  // runs have finished (their lanes were forgotten with the rebalance: their results are dropped, their writes are
  // idempotent).
  async #resizeWorkers(assigned: number): Promise<void> {
    if (this.#o.workers !== 'auto' || assigned === 0) return
    const threads = Math.min(assigned, this.#maxWorkers)
    if (threads === this.#assigned) return
    this.#assigned = threads
    const old = this.#executor
    this.#executor = this.#makeExecutor(threads)
    this.#retiredRestarts += old?.restarts ?? 0
    this.#log.info({ workers: threads, partitions: assigned }, 'worker pool sized to the assigned partitions')
    await old?.close().catch(() => undefined)
  }

  #lane(topic: string, partition: number): Lane {
    const id = `${topic}\0${partition}`
    let lane = this.#lanes.get(id)
    if (lane === undefined) {
      lane = {
        topic,
        partition,
        alive: true,
        room: new WaitingRoom(),
        runs: [],
        next: undefined,
        committed: -1n,
        chain: Promise.resolve(),
        queued: 0,
        pending: [],
        pendingAt: new Map(),
        busy: 0,
        timer: undefined,
        timerAt: Number.POSITIVE_INFINITY,
        wake: new Set(),
        paused: false,
        release: false,
        lastTimestamp: Number.NEGATIVE_INFINITY,
        caughtUp: false,
        appliedAt: 0,
      }
      this.#lanes.set(id, lane)
    }
    return lane
  }

  // Runs one piece of a partition's work after the previous one has finished.
  #serial<T>(lane: Lane, work: () => Promise<T>): Promise<T> {
    lane.busy++
    const run = lane.chain.then(work)
    lane.chain = run.catch(() => undefined)
    return run.finally(() => lane.busy--)
  }

  // Forgets every lane: after a rebalance (or at the end) Kafka delivers their uncommitted messages again.
  #reset(): void {
    for (const lane of this.#lanes.values()) {
      lane.alive = false
      clearTimeout(lane.timer)
      // Its runs stay with the forgotten lane: a commit of it still in flight may succeed (see #flush).
      tally(this.stats, lane.topic, 'abandoned', lane.room.size + lane.runs.reduce((n, r) => n + r.count, 0))
      lane.room.clear()
      if (lane.paused) this.#consumer.resume([{ topic: lane.topic, partitions: [lane.partition] }])
    }
    this.#lanes.clear()
    this.#pending.clear()
    this.#commitError = undefined
    // After kafkajs restarted its consumer the group is a new object: the next batch brings its commit.
    this.#commit = undefined
  }

  async #eachBatch(p: BatchContext): Promise<void> {
    const { batch } = p
    if (batch.isEmpty() || this.#stopping) return
    // Nothing of a new assignment is processed before its committed offsets were checked against retention.
    while (this.#gapCheck !== undefined) await this.#gapCheck
    if (this.#lost) {
      // Data was lost and the engine fails: process and commit nothing, and wait for the stop.
      while (!this.#stopping) await new Promise((r) => setTimeout(r, 20))
      return
    }
    if (this.#stopping) return
    this.#commit = (offsets) => p.commitOffsetsIfNecessary(offsets)
    if (this.#commitError !== undefined) {
      // Not processed: thrown, it makes kafkajs rejoin the group, and the batch comes again in the new generation.
      const err = this.#commitError
      this.#commitError = undefined
      throw err
    }
    this.#inFlight++
    try {
      const lane = this.#lane(batch.topic, batch.partition)
      // At most one batch waits behind the one being applied: kafkajs fetches the next while this one is applied,
      // and a partition that falls behind holds its broker's fetches back (backpressure).
      while (lane.queued >= 2 && lane.alive && !this.#stopping) await lane.chain
      if (!lane.alive || this.#stopping) return
      this.stats.lastMessageAt = Date.now()
      if (this.stats.firstMessageAt === 0) this.stats.firstMessageAt = this.stats.lastMessageAt
      tally(this.stats, batch.topic, 'received', batch.messages.length)
      this.stats.batches++
      const messages = batch.messages.map((m) => toSource(batch.topic, batch.partition, m))
      const first = BigInt(messages[0].offset)
      const caughtUp = BigInt(batch.lastOffset()) + 1n >= BigInt(batch.highWatermark)
      // The fetch moves on past the batch now; the commit stays below it until it is applied (lane.pending).
      p.resolveOffset(batch.lastOffset())
      lane.pending.push(first)
      lane.pendingAt.set(first, Number(messages[0].timestamp))
      lane.queued++
      void this.#serial(lane, () => this.#apply(lane, messages, caughtUp)).finally(() => lane.queued--)
    } finally {
      this.#inFlight--
    }
  }

  // Applies one fetched batch in its lane. A failure that is not the messages' (the DLQ cannot be written) is
  // retried with backoff: nothing past the batch is committed meanwhile.
  async #apply(lane: Lane, messages: SourceMessage[], caughtUp: boolean): Promise<void> {
    const ctl: BatchControl = { heartbeat: async () => undefined, gone: () => this.#stopping || !lane.alive }
    let outcome: BatchOutcome
    for (let attempt = 1; ; attempt++) {
      try {
        outcome = await this.#processor.process(messages, lane.room, ctl, this.#gate(lane.topic))
        break
      } catch (err) {
        const delayMs = computeBackoffMs(attempt, { baseMs: 200, maxMs: 10_000 })
        this.#log.warn(
          { topic: lane.topic, partition: lane.partition, err: errorMessage(err), attempt, delayMs },
          'batch failed, retrying',
        )
        const until = Date.now() + delayMs
        while (Date.now() < until && !ctl.gone()) await new Promise((r) => setTimeout(r, 50))
        if (ctl.gone()) return void tally(this.stats, lane.topic, 'abandoned', messages.length)
      }
    }
    if (outcome.kind === 'abandoned' || !lane.alive) {
      // Its pending entry stays: nothing at or after the batch is committed; it is delivered again.
      tally(this.stats, lane.topic, 'abandoned', messages.length)
      this.#log.info({ topic: lane.topic, partition: lane.partition }, 'batch abandoned uncommitted')
      return
    }
    const first = BigInt(messages[0].offset)
    lane.pending.splice(lane.pending.indexOf(first), 1)
    lane.pendingAt.delete(first)
    lane.next = messages[messages.length - 1].offset
    let run: { last: bigint; count: number } | undefined
    for (const m of messages) {
      if (lane.room.get(m.offset) !== undefined) run = undefined
      else if (run === undefined) lane.runs.push((run = { last: BigInt(m.offset), count: 1 }))
      else {
        run.last = BigInt(m.offset)
        run.count++
      }
    }
    lane.lastTimestamp = Number(messages[messages.length - 1].timestamp)
    lane.caughtUp = caughtUp
    lane.appliedAt = Date.now()
    this.#settled(lane, outcome)
    if (!lane.paused && (lane.room.size >= this.#maxParked || lane.room.bytes >= this.#maxParkedBytes)) {
      lane.paused = true
      this.#consumer.pause([{ topic: lane.topic, partitions: [lane.partition] }])
      this.#log.warn(
        { topic: lane.topic, partition: lane.partition, parked: lane.room.size, bytes: lane.room.bytes },
        'waiting room full: partition paused until it drains',
      )
    }
  }

  // After a batch or a retry: queue the new watermark for commit, wake what waited for this work, resume a
  // partition whose room drained, and schedule the room's next retry.
  #settled(lane: Lane, outcome: Extract<BatchOutcome, { kind: 'done' }>): void {
    this.stats.lastMessageAt = Date.now()
    // The first offset not done: the first parked one, the first of a batch not applied yet, or after the last.
    const low = lane.room.lowestOffset()
    let watermark = lane.pending[0] ?? (lane.next !== undefined ? BigInt(lane.next) + 1n : undefined)
    if (low !== undefined && (watermark === undefined || BigInt(low) < watermark)) watermark = BigInt(low)
    if (watermark !== undefined && watermark > lane.committed) {
      this.#pending.set(`${lane.topic}\0${lane.partition}`, { lane, offset: watermark })
      this.#flushSoon()
    }
    if (outcome.provides.length > 0) this.#wake(lane, outcome.provides)
    if (this.#dependencies.has(lane.topic) || lane.room.gated()) this.#releaseGated()
    if (lane.paused && lane.room.size < this.#maxParked && lane.room.bytes < this.#maxParkedBytes) {
      lane.paused = false
      this.#consumer.resume([{ topic: lane.topic, partitions: [lane.partition] }])
    }
    this.#scheduleRetry(lane)
  }

  #wake(from: Lane, provides: readonly string[]): void {
    let delivered: Set<string> | undefined
    for (const lane of this.#lanes.values()) {
      if (lane === from || lane.room.size === 0) continue
      delivered ??= new Set(provides)
      let woken = false
      for (const a of lane.room.awaited()) {
        if (delivered.has(a)) {
          lane.wake.add(a)
          woken = true
        }
      }
      if (woken) this.#scheduleRetry(lane)
    }
  }

  /**
   * The time up to which the topics `topic` depends on are applied (their slowest partition; a parked message holds
   * its partition at its timestamp), or undefined when it depends on nothing or this member lacks some of their
   * partitions (it cannot know how far those are).
   */
  #gate(topic: string): { progress: number; maxMs: number } | undefined {
    const deps = this.#o.dependsOn?.[topic]
    if (deps === undefined || deps.length === 0) return undefined
    let progress = Number.POSITIVE_INFINITY
    const graceOver = Date.now() - this.#joinedAt >= GATE_GRACE_MS
    for (const dep of deps) {
      const count = this.#partitionCounts.get(dep) ?? 0
      const mine = this.#assignment[dep] ?? []
      if (count === 0 || mine.length < count) return undefined
      for (const p of mine) progress = Math.min(progress, this.#progressOf(this.#lanes.get(`${dep}\0${p}`), graceOver))
    }
    return { progress, maxMs: GATE_MAX_MS }
  }

  /**
   * The Kafka timestamp up to which a dependency partition is applied: its last applied message, held back by a
   * message of it still waiting, and by batches fetched but not applied yet. A partition whose last batch reached its
   * high watermark and that has delivered nothing since for GATE_QUIET_MS is taken as caught up: applied up to now
   * (a partition that delivers nothing has nothing in flight, or its next fetch would have brought it by then).
   */
  #progressOf(lane: Lane | undefined, graceOver: boolean): number {
    if (lane === undefined) return graceOver ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY
    const waiting = lane.room.lowestTimestamp()
    if (lane.queued === 0 && waiting === Number.POSITIVE_INFINITY && lane.caughtUp) {
      if (Date.now() - lane.appliedAt >= GATE_QUIET_MS) return Number.POSITIVE_INFINITY
    }
    return Math.min(lane.lastTimestamp, waiting)
  }

  // A dependency made progress (or went quiet): retry the lanes whose held messages it may release; while some stay
  // held, look again once the dependencies could count as quiet.
  #releaseGated(): void {
    let holding = false
    for (const lane of this.#lanes.values()) {
      if (lane.room.size === 0 || !lane.room.gated()) continue
      const gate = this.#gate(lane.topic)
      if (gate === undefined || lane.room.releasedBy(gate.progress)) {
        lane.release = true
        this.#scheduleRetry(lane)
      } else holding = true
    }
    if (holding && this.#quietTimer === undefined && !this.#stopping) {
      this.#quietTimer = setTimeout(() => {
        this.#quietTimer = undefined
        this.#releaseGated()
      }, GATE_QUIET_MS)
    }
  }

  #scheduleRetry(lane: Lane): void {
    if (this.#stopping || !lane.alive) return
    const at = lane.wake.size > 0 || lane.release ? Date.now() : lane.room.nextDueAt()
    if (!Number.isFinite(at) || (lane.timer !== undefined && lane.timerAt <= at)) return
    clearTimeout(lane.timer)
    lane.timerAt = at
    lane.timer = setTimeout(() => this.#retry(lane), Math.max(0, at - Date.now()))
  }

  // Tries the room's due messages again, and those whose wait was delivered.
  #retry(lane: Lane): void {
    lane.timer = undefined
    lane.timerAt = Number.POSITIVE_INFINITY
    if (this.#stopping || !lane.alive) return
    const ctl: BatchControl = { heartbeat: async () => undefined, gone: () => this.#stopping || !lane.alive }
    void this.#serial(lane, async () => {
      const delivered = lane.wake
      lane.wake = new Set()
      lane.release = false
      // Held messages go once their dependencies caught up (or when this member cannot tell: no gate).
      const gate = this.#gate(lane.topic)
      const entries = lane.room.due(Date.now(), delivered, gate?.progress ?? Number.POSITIVE_INFINITY)
      if (entries.length === 0 || ctl.gone()) return
      let outcome: BatchOutcome
      try {
        outcome = await this.#processor.retry(entries, lane.room, ctl)
      } catch (err) {
        // The DLQ could not be written: the messages stay parked and are tried again on their backoff.
        this.#log.warn({ topic: lane.topic, partition: lane.partition, err: errorMessage(err) }, 'retry failed')
        return
      }
      if (outcome.kind === 'abandoned' || !lane.alive) return
      for (const m of outcome.resolved) lane.runs.push({ last: BigInt(m.offset), count: 1 })
      this.#settled(lane, outcome)
    }).finally(() => this.#scheduleRetry(lane))
  }

  #flushSoon(): void {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined))
  }

  // Commits every queued watermark in one request (through the group, see below); while it is in flight, newer
  // watermarks queue for the next one. Not awaited by the batches: the next fetch overlaps the commit.
  async #flush(): Promise<void> {
    while (this.#pending.size > 0 && this.#commit !== undefined) {
      const batch = [...this.#pending.values()]
      this.#pending.clear()
      const byTopic = new Map<string, { partition: number; offset: string }[]>()
      for (const { lane, offset } of batch) {
        const list = byTopic.get(lane.topic) ?? []
        list.push({ partition: lane.partition, offset: offset.toString() })
        byTopic.set(lane.topic, list)
      }
      const started = performance.now()
      try {
        // The group's own commit, not consumer.commitOffsets: that one retries against the coordinator kafkajs
        // cached, and after the coordinator moved it keeps asking the old one for about a minute (NOT_COORDINATOR).
        // Failed, the error is thrown out of the next batch, which makes kafkajs rejoin and find the new one.
        await this.#commit({ topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) })
      } catch (err) {
        this.stats.observer?.committed((performance.now() - started) / 1000, false)
        this.stats.commitFailures++
        for (const c of batch) {
          const id = `${c.lane.topic}\0${c.lane.partition}`
          if (c.lane.alive && !this.#pending.has(id)) this.#pending.set(id, c)
        }
        this.#commitError = err
        this.#log.warn(
          { err: errorMessage(err) },
          'commit failed: the group will rejoin, and what was not committed is delivered again (idempotent)',
        )
        if (!this.#stopping) {
          clearTimeout(this.#flushTimer)
          this.#flushTimer = setTimeout(() => this.#flushSoon(), 1_000)
        }
        return
      }
      this.#commitError = undefined
      this.stats.observer?.committed((performance.now() - started) / 1000, true)
      this.stats.commits++
      for (const { lane, offset } of batch) {
        if (offset > lane.committed) lane.committed = offset
        let count = 0
        lane.runs = lane.runs.filter((r) => (r.last < offset ? ((count += r.count), false) : true))
        tally(this.stats, lane.topic, 'processed', count)
        // A commit sent before a rebalance and accepted after the lane was forgotten: those messages are committed
        // (the new owner starts after them), so they count as processed, not as delivered again.
        if (!lane.alive) tally(this.stats, lane.topic, 'abandoned', -count)
      }
    }
  }

  async #awaitExecutor(): Promise<BatchExecutor> {
    while (!this.#executor) await new Promise((r) => setTimeout(r, 10))
    return this.#executor
  }
}

/** The assigned partitions whose committed offset (none yet: -1) is below their log start offset. */
export async function findGaps(
  admin: Pick<KafkaAdmin, 'fetchOffsets' | 'fetchTopicOffsets'>,
  groupId: string,
  assignment: Record<string, number[]>,
): Promise<DataGap[]> {
  const topics = Object.keys(assignment).filter((t) => assignment[t].length > 0)
  const committed = await admin.fetchOffsets({ groupId, topics })
  const gaps: DataGap[] = []
  for (const topic of topics) {
    const mine = new Set(assignment[topic])
    const low = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.low]))
    for (const p of committed.find((c) => c.topic === topic)?.partitions ?? []) {
      const start = low.get(p.partition)
      // A negative offset is none (-1), or a reset kafkajs committed (-2: earliest).
      if (!mine.has(p.partition) || start === undefined || !/^\d+$/.test(p.offset)) continue
      if (BigInt(p.offset) < BigInt(start)) gaps.push({ topic, partition: p.partition, from: p.offset, to: start })
    }
  }
  return gaps
}

// The metrics of one command process: one prom-client Registry, the process' defaults (CPU, memory, event-loop lag)
// and the command's own families. Counters are read from the live counters the commands keep for their summaries
// (collect() at scrape time), so a scrape and the summary are the same numbers and nothing is counted twice; the
// histograms are observed once per batch, commit or send.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { EngineState, EngineStats, StatsObserver, TopicCountName } from '../pipeline/index.js'

/** Seconds from the event's creation (consume) or PostgreSQL's commit (replicate) to durable in the sink. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const SIZE_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2000, 5000]

/** The outcome label of cdc_messages_total for each count of the engine. */
export const MESSAGE_OUTCOMES: Record<TopicCountName, string> = {
  received: 'received',
  handed: 'handed',
  applied: 'applied',
  stale: 'stale',
  deadLettered: 'dead_lettered',
  processed: 'processed',
  retries: 'retried',
  parked: 'parked',
  held: 'held',
  abandoned: 'abandoned',
  lost: 'lost',
}

/**
 * A new registry with the process' default metrics and a `cdc_info{program}` series (not `command`: the local stack's
 * discovery and compose's Prometheus put a `command` label on the target, which a scraped one would clash with).
 */
export function newRegistry(command: string): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  new Gauge({
    name: 'cdc_info',
    help: 'Always 1: the command this process runs (program)',
    labelNames: ['program'],
    registers: [registry],
  })
    .labels(command)
    .set(1)
  return registry
}

/** What the engine metrics read: the engine's stats and state once it exists (undefined before). */
export interface EngineSource {
  stats(): EngineStats | undefined
  state(): EngineState | undefined
}

/**
 * The engine's families (node cmd/consume, node cmd/replicate) on `registry`. Returns the observer to give the
 * engine (EngineOptions.observer) for the histograms.
 */
export function engineMetrics(registry: Registry, source: EngineSource): StatsObserver {
  const registers = [registry]
  new Counter({
    name: 'cdc_messages_total',
    help:
      'Messages by topic and outcome: received (fetched; a redelivery counts again), handed (to the sink, every try), ' +
      'applied, stale (changed nothing), dead_lettered, processed (done and committed), retried, parked (waited after ' +
      'a retriable failure), held (waited for the topics they depend on), abandoned (given up uncommitted: delivered ' +
      'again), lost (deleted by retention before consumed); the summary reports the same counts',
    labelNames: ['topic', 'outcome'],
    registers,
    collect() {
      this.reset()
      for (const [topic, c] of source.stats()?.byTopic ?? []) {
        for (const [name, outcome] of Object.entries(MESSAGE_OUTCOMES) as [TopicCountName, string][]) {
          this.inc({ topic, outcome }, Math.max(0, c[name]))
        }
      }
    },
  })
  new Counter({
    name: 'cdc_dead_letters_total',
    help: 'Messages written to <topic>.dlq, by source topic and error code',
    labelNames: ['topic', 'code'],
    registers,
    collect() {
      this.reset()
      for (const [topic, c] of source.stats()?.byTopic ?? []) {
        for (const [code, n] of Object.entries(c.deadLettersByCode)) this.inc({ topic, code }, n)
      }
    },
  })
  const plain = (name: string, help: string, read: (s: EngineStats) => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        const s = source.stats()
        this.reset()
        this.inc(s === undefined ? 0 : read(s))
      },
    })
  plain('cdc_batches_total', 'Batches fetched from Kafka and worked', (s) => s.batches)
  plain('cdc_commits_total', 'Offset commit requests that succeeded', (s) => s.commits)
  plain('cdc_commit_failures_total', 'Offset commit requests that failed (the group rejoins)', (s) => s.commitFailures)
  plain('cdc_rebalances_total', 'Assignments this member received (group generations joined)', (s) => s.rebalances)

  const gauge = (name: string, help: string, read: (s: EngineState) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const s = source.state()
        this.set(s === undefined ? 0 : read(s))
      },
    })
  gauge('cdc_partitions_assigned', 'Partitions assigned to this member', (s) =>
    Object.values(s.assignment).reduce((n, ps) => n + ps.length, 0),
  )
  gauge('cdc_partitions_paused', 'Partitions paused because their waiting room is full', (s) => s.pausedPartitions)
  gauge('cdc_batches_in_flight', 'Batches fetched and not yet applied', (s) => s.inFlightBatches)
  gauge('cdc_parked_messages', 'Messages waiting in the partitions waiting rooms', (s) => s.parkedMessages)
  gauge(
    'cdc_worker_threads',
    'Worker threads applying batches (0: the sink runs in the main thread)',
    (s) => s.workerThreads,
  )

  new Counter({
    name: 'cdc_worker_restarts_total',
    help: 'Worker threads replaced (a batch past --task-timeout, a worker that died)',
    registers,
    collect() {
      this.reset()
      this.inc(source.state()?.workerRestarts ?? 0)
    },
  })
  new Gauge({
    name: 'cdc_oldest_unprocessed_age_seconds',
    help:
      'Per partition with work fetched and not done (a batch queued or being applied, messages in the waiting ' +
      'room): now - the Kafka timestamp of its oldest such message',
    labelNames: ['topic', 'partition'],
    registers,
    collect() {
      this.reset()
      const now = Date.now()
      for (const o of source.state()?.oldestUnprocessed ?? []) {
        this.set({ topic: o.topic, partition: String(o.partition) }, Math.max(0, (now - o.timestamp) / 1000))
      }
    },
  })

  const latency = new Histogram({
    name: 'cdc_sink_latency_seconds',
    help:
      'Event created (consume) or PostgreSQL commit (replicate) -> durable in the sink, per applied message that ' +
      'carries the time (the latency percentiles of the summary)',
    labelNames: ['topic'],
    buckets: LATENCY_BUCKETS,
    registers,
  })
  const batchSize = new Histogram({
    name: 'cdc_batch_size_messages',
    help: 'Messages per sink call',
    labelNames: ['topic'],
    buckets: SIZE_BUCKETS,
    registers,
  })
  const applySeconds = new Histogram({
    name: 'cdc_batch_apply_seconds',
    help: 'Time of one sink call (a batch applied durably)',
    labelNames: ['topic'],
    buckets: DURATION_BUCKETS,
    registers,
  })
  const commitSeconds = new Histogram({
    name: 'cdc_commit_seconds',
    help: 'Time of one offset commit request',
    labelNames: ['result'],
    buckets: DURATION_BUCKETS,
    registers,
  })
  return {
    batchApplied(topic, size, seconds, latenciesMs) {
      batchSize.labels(topic).observe(size)
      applySeconds.labels(topic).observe(seconds)
      if (latenciesMs.length > 0) {
        const h = latency.labels(topic)
        for (const ms of latenciesMs) h.observe(ms / 1000)
      }
    },
    committed(seconds, ok) {
      commitSeconds.labels(ok ? 'ok' : 'failed').observe(seconds)
    },
  }
}

/** The live counts of node cmd/produce (the same object its summary prints). */
export interface ProduceSource {
  /** Acknowledged events per topic. */
  acknowledged(): Record<string, number>
  /** Events generated (handed to the producer). */
  generated(): number
  failed(): number
  resentPartitions(): number
  renewals(): number
}

/** node cmd/produce's families; returns the send-time histogram's observer (seconds, per batch). */
export function produceMetrics(registry: Registry, source: ProduceSource): (seconds: number) => void {
  const registers = [registry]
  new Counter({
    name: 'cdc_produce_events_total',
    help: 'Events by topic and outcome: acknowledged (every partition acknowledged by the brokers, acks=all)',
    labelNames: ['topic', 'outcome'],
    registers,
    collect() {
      this.reset()
      for (const [topic, n] of Object.entries(source.acknowledged())) this.inc({ topic, outcome: 'acknowledged' }, n)
    },
  })
  const plain = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset()
        this.inc(read())
      },
    })
  plain('cdc_produce_generated_total', 'Events generated and handed to the producer', source.generated)
  plain('cdc_produce_failed_total', 'Events of batches that could not be sent after retries', source.failed)
  plain('cdc_produce_resent_partitions_total', 'Partitions sent again because unacknowledged', source.resentPartitions)
  plain(
    'cdc_produce_producer_renewals_total',
    'Producers replaced because they could no longer deliver',
    source.renewals,
  )
  const send = new Histogram({
    name: 'cdc_produce_send_seconds',
    help: 'Time of one batch send until every partition acknowledged it (resends included)',
    buckets: DURATION_BUCKETS,
    registers,
  })
  return (seconds) => send.observe(seconds)
}

/** node cmd/replay-dlq's live counts per DLQ topic. */
export type ReplaySource = () => Record<string, { read: number; matched: number; replayed: number; invalid: number }>

/** node cmd/replay-dlq's families. */
export function replayMetrics(registry: Registry, source: ReplaySource): void {
  new Counter({
    name: 'cdc_replay_records_total',
    help: 'DLQ records by DLQ topic and outcome: read, matched (the --error-code filter), replayed, invalid (unreadable)',
    labelNames: ['topic', 'outcome'],
    registers: [registry],
    collect() {
      this.reset()
      for (const [topic, c] of Object.entries(source())) {
        for (const outcome of ['read', 'matched', 'replayed', 'invalid'] as const)
          this.inc({ topic, outcome }, c[outcome])
      }
    },
  })
}

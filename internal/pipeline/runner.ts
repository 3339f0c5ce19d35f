import type { Logger } from 'pino'
import { configError } from '../config/index.js'
import { errorMessage, isPipelineError } from '../errors/index.js'
import {
  VerifiedSender,
  connectPreflightAdmin,
  ensureTopics,
  type KafkaClient,
  type TopicSpec,
} from '../kafka/index.js'
import type { MessageCounts, TopicCounts } from './batch-processor.js'
import { KafkaDeadLetterWriter } from './dead-letter-writer.js'
import { dlqTopicFor } from './dlq.js'
import { Engine, type EngineOptions } from './engine.js'

/** The exit code of a run that stopped because messages were deleted by retention before it consumed them. */
export const DATA_LOSS_EXIT_CODE = 4
/** The exit code of a sink that stopped because its source changed (SOURCE_CHANGED: another PostgreSQL cluster). */
export const SOURCE_CHANGED_EXIT_CODE = 5

/** The final report of a pipeline run (printed by the commands, read by tests and the benchmark): the engine's
 * counts, and what they come to. */
export interface RunSummary extends MessageCounts {
  reason: string
  /** handed / processed: how much of the sink's work was work already done (1.00 = none). */
  amplification: number
  activeSeconds: number
  ratePerSec: number
  latencyMs: { p50: number; p95: number; p99: number }
  /** The counts per topic (their sums are the totals above), dead letters by error code: what the metrics export. */
  byTopic: Record<string, TopicCounts>
}

/** The layout of a `<topic>.dlq` topic: created so when missing; an existing one that is less durable is refused. */
export const DLQ_TOPIC_LAYOUT = { partitions: 3, replicationFactor: 3, minInsyncReplicas: 2 } as const

/** The spec of a source topic's DLQ topic; `retentionMs` -1 (the default) keeps dead letters forever. */
export function dlqTopicSpec(sourceTopic: string, retentionMs = -1): TopicSpec {
  return {
    topic: dlqTopicFor(sourceTopic),
    partitions: DLQ_TOPIC_LAYOUT.partitions,
    replicationFactor: DLQ_TOPIC_LAYOUT.replicationFactor,
    configs: {
      'min.insync.replicas': String(DLQ_TOPIC_LAYOUT.minInsyncReplicas),
      'retention.ms': String(retentionMs),
      'retention.bytes': '-1',
    },
  }
}

/** What {@link runPipeline} needs beyond the engine's own options. */
export type RunOptions = Omit<EngineOptions, 'deadLetters'> & {
  /** Retention of the DLQ topics: -1 (the default) keeps dead letters forever. */
  dlqRetentionMs?: number
  /** Checks the sink can work at all (reachable, schema present); throws a CONFIG_ERROR otherwise. */
  preflight?: () => Promise<void>
  /** Called once the engine runs, with a function that stops it cleanly (wire signals to it). */
  onStarted?: (stop: (reason: string) => void) => void
  /** The bound on the start-up check of Kafka (--connect-timeout; default DEFAULT_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number
  /** Called with the engine once it is built, before it starts (the metrics read its stats and state). */
  onEngine?: (engine: Engine) => void
}

/**
 * Runs one pipeline (events -> PostgreSQL, changes -> Cassandra, ...) end to end: fails fast with one clear
 * CONFIG_ERROR on an unreachable broker or missing topics, makes sure the DLQ topics exist, runs the engine until it
 * is stopped or goes idle, and returns the summary. Rejects when the engine failed (the caller exits non-zero).
 */
export async function runPipeline(
  kafka: KafkaClient,
  brokers: string[],
  o: RunOptions,
  log: Logger,
): Promise<RunSummary> {
  const admin = await connectPreflightAdmin(brokers, { timeoutMs: o.connectTimeoutMs })
  const dlqPartitions = new Map<string, number>()
  try {
    const existing = new Set(await admin.listTopics())
    const missing = o.topics.filter((t) => !existing.has(t))
    if (missing.length > 0) throw configError(`topic(s) ${missing.join(', ')} do not exist yet: nothing to consume`)
    // The sink first: a run that cannot start (exit 3) creates no DLQ topics.
    await o.preflight?.()
    // Dead letters are the only copy of what could not be applied: their topics must keep them (retention) and
    // survive a broker (RF, min ISR). One that is weaker is refused, not used: it would lose them silently.
    const dlqLog = log.child({ module: 'dlq' })
    for (const r of await ensureTopics(
      admin,
      o.topics.map((t) => dlqTopicSpec(t, o.dlqRetentionMs)),
    )) {
      if (r.weaker.length > 0) {
        throw configError(
          `DLQ topic ${r.topic} is less durable than required (${r.weaker.join(', ')}): raise it ` +
            `(kafka-configs.sh --alter --add-config for retention and min ISR, a reassignment for the replication ` +
            `factor) or delete it to have it created`,
        )
      }
      if (r.created) dlqLog.info({ topic: r.topic }, 'created DLQ topic')
      for (const d of r.differences) dlqLog.warn({ topic: r.topic }, `existing DLQ topic differs: ${d}`)
      dlqPartitions.set(r.topic, r.partitions)
    }
  } finally {
    await admin.disconnect()
  }

  // Compressed: a dead letter near the broker's 1 MB record limit still fits (see KafkaDeadLetterWriter). No retries
  // inside kafkajs: its own retry of a request whose write landed (a timeout, a leader moving) can write the letters
  // twice even when idempotent (six copies in one DLQ-leader run), unseen by the sender. Every failure reaches the
  // sender instead, which reads the DLQ back before it sends again. (Idempotence needs retries, and buys nothing
  // then: one request in flight keeps the order.)
  const dlqSender = new VerifiedSender(() => kafka.orderedProducer({ idempotent: false, retries: 0 }), {
    log: log.child({ module: 'dlq' }),
    compression: 'gzip',
  })
  await dlqSender.connect()
  const partitionsOf = (topic: string) => dlqPartitions.get(topic) ?? DLQ_TOPIC_LAYOUT.partitions
  // Reads the DLQ back before a resend, so that a letter whose acknowledgement was lost is not written twice.
  const dlqReadBack = kafka.partitionReader({
    groupPrefix: `${o.groupId}.dlq-read-back`,
    log: log.child({ module: 'dlq' }),
  })
  const engine = new Engine({
    ...o,
    deadLetters: new KafkaDeadLetterWriter(dlqSender, partitionsOf, log, dlqReadBack),
  })
  o.onEngine?.(engine)
  let failure: unknown
  let reason: string
  try {
    await engine.start()
    o.onStarted?.((why) => void engine.stop(why))
    log.info({ groupId: o.groupId, topics: o.topics, workers: o.workers }, 'consuming')
    reason = await engine.finished
  } catch (err) {
    failure = err
    reason = `failed: ${errorMessage(err)}`
    await engine.stop(reason).catch(() => undefined)
  }
  await dlqSender.disconnect().catch(() => undefined)
  await dlqReadBack.close().catch(() => undefined)

  const s = engine.stats
  const activeS = s.firstMessageAt === 0 ? 0 : (s.lastMessageAt - s.firstMessageAt) / 1000
  const summary: RunSummary = {
    reason,
    processed: s.processed,
    received: s.received,
    handed: s.handed,
    amplification: s.processed > 0 ? Number((s.handed / s.processed).toFixed(4)) : 0,
    abandoned: s.abandoned,
    parked: s.parked,
    held: s.held,
    applied: s.applied,
    stale: s.stale,
    deadLettered: s.deadLettered,
    lost: s.lost,
    retries: s.retries,
    batches: s.batches,
    commits: s.commits,
    activeSeconds: Number(activeS.toFixed(3)),
    // Events done per second of activity (each once): redeliveries do not inflate it.
    ratePerSec: activeS > 0 ? Math.round(s.processed / activeS) : 0,
    latencyMs: {
      p50: s.latencyMs.percentile(50),
      p95: s.latencyMs.percentile(95),
      p99: s.latencyMs.percentile(99),
    },
    byTopic: Object.fromEntries(
      [...s.byTopic].map(([t, c]) => [t, { ...c, deadLettersByCode: { ...c.deadLettersByCode } }]),
    ),
  }
  if (failure !== undefined) throw Object.assign(failure as Error, { summary })
  return summary
}

/** The summary as aligned text lines. */
export function formatRunSummary(title: string, s: RunSummary): string {
  const ms = (v: number) => (Number.isNaN(v) ? '-' : `${Math.round(v)} ms`)
  const rows: [string, string | number][] = [
    ['processed', s.processed],
    ['abandoned (redelivered)', s.abandoned],
    ['waited in the room', `${s.parked} after a failed try, ${s.held} held for other topics`],
    ['handed to the sink', `${s.handed} (${s.amplification.toFixed(2)}x)`],
    ['applied', s.applied],
    ['skipped as stale', s.stale],
    ['sent to DLQ', s.deadLettered],
    ['lost to retention', s.lost],
    ['retries', s.retries],
    ['rate', `${s.ratePerSec} events/s over ${s.activeSeconds.toFixed(1)} s`],
    ['latency p50/p95/p99', `${ms(s.latencyMs.p50)} / ${ms(s.latencyMs.p95)} / ${ms(s.latencyMs.p99)}`],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  return [`${title} (${s.reason})`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n') + '\n'
}

/**
 * Runs a pipeline command to its end and prints its summary (text, or one JSON line): exit code 0, or 1 when the
 * engine failed (4 when it failed on data loss, 5 when its source changed: one plain line on stderr says why and
 * what to do; the summary of what it did is printed all the same). A start-up failure is thrown.
 */
export async function reportRun(
  name: string,
  log: Logger,
  json: boolean,
  run: () => Promise<RunSummary>,
): Promise<number> {
  let summary: RunSummary
  let exitCode = 0
  try {
    summary = await run()
  } catch (err) {
    const partial = (err as { summary?: RunSummary }).summary
    if (!partial) throw err
    if (isPipelineError(err, 'SOURCE_CHANGED')) process.stderr.write(`${name}: ${err.message}\n`)
    else log.error({ err }, `${name} failed`)
    summary = partial
    exitCode = isPipelineError(err, 'DATA_LOSS')
      ? DATA_LOSS_EXIT_CODE
      : isPipelineError(err, 'SOURCE_CHANGED')
        ? SOURCE_CHANGED_EXIT_CODE
        : 1
  }
  process.stdout.write(json ? `${JSON.stringify(summary)}\n` : formatRunSummary(`${name} summary`, summary))
  return exitCode
}

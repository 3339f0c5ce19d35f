import { logLevel, type LogEntry } from 'kafkajs'
import type { Logger } from 'pino'
import { KafkajsClient } from './kafkajs-client.js'
import type { KafkaAdmin } from './ports.js'

/** Connection settings shared by every Kafka client of the pipeline. */
export interface KafkaClientOptions {
  brokers: string[]
  clientId: string
  logger?: Logger
  /** How long to wait for the first connection to a broker. */
  connectionTimeoutMs?: number
  /** How long to wait for the answer to a request (default 30 s). */
  requestTimeoutMs?: number
  /** Retries of a failed request or connection (default 8, about a minute in all). */
  retries?: number
}

const levelNames: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
}

let warningFilterInstalled = false
const KAFKAJS_REQUEST_QUEUE = /[\\/]kafkajs[\\/]src[\\/]network[\\/]requestQueue[\\/]/

/**
 * kafkajs 2.2.4 (the last release) schedules its request-queue check with a negative delay (throttledUntil -1 minus
 * now; kafkajs issue 1751, unfixed upstream). Node 24 warns about it on stderr, once per process
 * (TimeoutNegativeWarning): a line that is not JSON among the JSON log lines. Node runs such a timer after 1 ms, as
 * Node 20 and 22 silently do, so that warning alone, raised from kafkajs' request queue, is dropped.
 */
export function dropKafkajsNegativeTimeoutWarning(): void {
  if (warningFilterInstalled) return
  warningFilterInstalled = true
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: unknown } | undefined)?.type
    if (type === 'TimeoutNegativeWarning' && KAFKAJS_REQUEST_QUEUE.test(new Error().stack ?? '')) return
    emit(warning, ...rest)
  }) as typeof process.emitWarning
}

/**
 * Builds the pipeline's Kafka client (kafkajs behind the ports of ports.ts) whose own logs go through pino. kafkajs logs retriable protocol errors (a coordinator still
 * loading, a leader moving) at ERROR while it retries them itself, so they are lowered to warn here.
 */
export function createKafka(options: KafkaClientOptions): KafkajsClient {
  // kafkajs warns on every producer about its v2 partitioner change; we use its default (murmur2, like Java).
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
  dropKafkajsNegativeTimeoutWarning()
  const log = options.logger?.child({ module: 'kafkajs' })
  return new KafkajsClient({
    clientId: options.clientId,
    brokers: options.brokers,
    connectionTimeout: options.connectionTimeoutMs ?? 3_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    retry: { initialRetryTime: 200, retries: options.retries ?? 8, maxRetryTime: 10_000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        if (!log) return
        const { message, ...rest } = entry
        const name = levelNames[level] ?? 'info'
        const retriable = typeof rest.error === 'string' && /loading|not available|leader|rebalanc/i.test(rest.error)
        // We bound the idempotent producer's retries on purpose: a send that still fails ends the run.
        if (/Limiting retries for the idempotent producer/.test(message)) return
        log[name === 'error' && retriable ? 'warn' : name]({ kafkajs: rest }, message)
      },
  })
}

/** A topic the pipeline needs, with the settings it must have. */
export interface TopicSpec {
  topic: string
  partitions: number
  replicationFactor: number
  configs?: Record<string, string>
}

/** What ensureTopics found or did for one topic. */
export interface TopicReport {
  topic: string
  created: boolean
  /** Its partition count (the spec's when created). */
  partitions: number
  /** Human-readable differences between the existing topic and its spec (empty when it matches). */
  differences: string[]
  /**
   * The differences that make it less durable than its spec: a lower replication factor or min.insync.replicas, a
   * shorter retention.ms or smaller retention.bytes (-1, forever, being the longest). A subset of `differences`.
   */
  weaker: string[]
}

// -1 is "no limit" for retention.ms and retention.bytes.
const unlimited = (v: number) => (v < 0 ? Number.POSITIVE_INFINITY : v)
const WEAKER_IF: Record<string, (actual: number, expected: number) => boolean> = {
  'min.insync.replicas': (a, e) => a < e,
  'retention.ms': (a, e) => unlimited(a) < unlimited(e),
  'retention.bytes': (a, e) => unlimited(a) < unlimited(e),
}

/** How long and how often {@link waitForLeaders} asks. */
export interface LeaderWait {
  timeoutMs?: number
  intervalMs?: number
}

// Errors metadata answers with while a new topic's partitions settle on the brokers.
const SETTLING = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE', 'NOT_LEADER_OR_FOLLOWER'])

/**
 * Waits until every partition of the given (just created) topics has a leader in the cluster's metadata. Errors of
 * a topic still settling are asked again; any other error, or no leaders within the timeout (30 s), is thrown.
 */
export async function waitForLeaders(admin: KafkaAdmin, specs: TopicSpec[], o: LeaderWait = {}): Promise<void> {
  const deadline = Date.now() + (o.timeoutMs ?? 30_000)
  const topics = specs.map((s) => s.topic)
  let pending = 'no metadata yet'
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics })
      const unled = specs.flatMap((s) => {
        const parts = found.find((t) => t.name === s.topic)?.partitions ?? []
        const led = parts.filter((p) => p.leader !== undefined && p.leader >= 0).length
        return led < s.partitions ? [`${s.topic} ${led} of ${s.partitions} partitions led`] : []
      })
      if (unled.length === 0) return
      pending = unled.join(', ')
    } catch (err) {
      const type = (err as { type?: unknown }).type
      if (typeof type !== 'string' || !SETTLING.has(type)) throw err
      pending = `${type}: ${(err as Error).message}`
    }
    if (Date.now() >= deadline) throw new Error(`topics created but without leaders in time: ${pending}`)
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 200))
  }
}

/**
 * Creates the topics that are missing and reports how existing ones differ from their spec (partition count,
 * replication factor, configs), and which differences make them less durable. Existing topics are never altered:
 * changing partitions would move keys; the caller decides whether a weaker topic is acceptable.
 */
export async function ensureTopics(
  admin: KafkaAdmin,
  specs: TopicSpec[],
  options: LeaderWait = {},
): Promise<TopicReport[]> {
  const existing = new Set(await admin.listTopics())
  const missing = specs.filter((s) => !existing.has(s.topic))
  if (missing.length > 0) {
    await admin.createTopics({
      // kafkajs' own wait retries only LEADER_NOT_AVAILABLE; a broker that has not seen the new topic yet answers
      // UNKNOWN_TOPIC_OR_PARTITION ("This server does not host this topic-partition"), which ended a run.
      waitForLeaders: false,
      topics: missing.map((s) => ({
        topic: s.topic,
        numPartitions: s.partitions,
        replicationFactor: s.replicationFactor,
        configEntries: Object.entries(s.configs ?? {}).map(([name, value]) => ({ name, value })),
      })),
    })
    await waitForLeaders(admin, missing, options)
  }
  const present = specs.filter((s) => existing.has(s.topic))
  const reports: TopicReport[] = missing.map((s) => ({
    topic: s.topic,
    created: true,
    partitions: s.partitions,
    differences: [],
    weaker: [],
  }))
  if (present.length === 0) return reports
  const metadata = await admin.fetchTopicMetadata({ topics: present.map((s) => s.topic) })
  const configs = await admin.describeConfigs({
    includeSynonyms: false,
    resources: present.map((s) => ({ type: 2 /* TOPIC */, name: s.topic, configNames: Object.keys(s.configs ?? {}) })),
  })
  for (const spec of present) {
    const differences: string[] = []
    const weaker: string[] = []
    const meta = metadata.topics.find((t) => t.name === spec.topic)
    const partitions = meta?.partitions.length ?? 0
    if (partitions !== spec.partitions) differences.push(`partitions ${partitions} (expected ${spec.partitions})`)
    const rf = Math.min(...(meta?.partitions.map((p) => p.replicas.length) ?? [0]))
    if (rf !== spec.replicationFactor) {
      differences.push(`replication factor ${rf} (expected ${spec.replicationFactor})`)
      if (rf < spec.replicationFactor) weaker.push(differences.at(-1)!)
    }
    const entries = configs.resources.find((r) => r.resourceName === spec.topic)?.configEntries ?? []
    for (const [name, value] of Object.entries(spec.configs ?? {})) {
      const actual = entries.find((e) => e.configName === name)?.configValue
      if (actual === value) continue
      differences.push(`${name}=${actual ?? 'unset'} (expected ${value})`)
      const weakerIf = WEAKER_IF[name]
      if (weakerIf && (actual === undefined || weakerIf(Number(actual), Number(value))))
        weaker.push(differences.at(-1)!)
    }
    reports.push({ topic: spec.topic, created: false, partitions, differences, weaker })
  }
  return reports
}

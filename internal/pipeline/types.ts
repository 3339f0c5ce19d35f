import type { Env, Setting } from '../config/index.js'
import type { PipelineErrorData } from '../errors/index.js'
import type { ConsumedMessage, KafkaHeaders, PartitionedMessage } from '../kafka/index.js'
import type { Logger, LogLevel } from '../log/index.js'

/** A header's value: bytes as Kafka delivers them, or text the pipeline writes (the DLQ's x- headers). */
export type HeaderValue = Uint8Array | string

/** Record headers: a header repeated in the record is the list of its values, in record order. */
export type MessageHeaders = Record<string, HeaderValue | HeaderValue[] | undefined>

/**
 * The one message envelope of the pipeline, plain data: a Kafka record as the engine hands it to a sink (into
 * worker threads too), as a dead letter carries it to the DLQ writer, as replay reads it back from a DLQ. A record to
 * produce is its {@link OutgoingRecord} part.
 */
export interface Envelope {
  topic: string
  partition: number
  /** int64 as a decimal string. */
  offset: string
  key: Uint8Array | string | null
  value: Uint8Array | null
  headers?: MessageHeaders
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp?: string
}

/**
 * A record to produce, as the transport takes it (internal/kafka's PartitionedMessage; the partition is chosen on
 * send): the topic, key, value and headers of an {@link Envelope}, bytes as Buffers.
 */
export type OutgoingRecord = { topic: string; headers: KafkaHeaders } & Omit<
  PartitionedMessage,
  'partition' | 'headers'
>

/** An envelope's headers as the transport takes them: the same bytes as Buffers (views, no copy). */
export function outgoingHeaders(headers: MessageHeaders | undefined): KafkaHeaders {
  const out: KafkaHeaders = {}
  for (const [name, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue
    out[name] = Array.isArray(v) ? v.map(outgoingValue) : outgoingValue(v)
  }
  return out
}
const outgoingValue = (v: HeaderValue): Buffer | string => (typeof v === 'string' ? v : bufferOf(v))

/**
 * A consumed message's headers: bytes, never converted to text, and a header repeated in the record as the list of
 * its values in record order.
 */
export type SourceHeaders = Record<string, Uint8Array | Uint8Array[]>

/** The {@link Envelope} of a consumed message, as the engine hands it to a sink: bytes only, every field set. */
export interface SourceMessage extends Envelope {
  key: Uint8Array | null
  headers: SourceHeaders
  timestamp: string
}

const asBytes = (v: Buffer | string): Uint8Array => (typeof v === 'string' ? Buffer.from(v) : v)

/** A consumed record as the envelope; headers stay bytes, a repeated one stays repeated (DLQ, replay). */
export const toSource = (topic: string, partition: number, m: ConsumedMessage): SourceMessage => {
  const headers: SourceHeaders = {}
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    // A header with a null value (kafkajs gives null) cannot be produced again by kafkajs: it is left out.
    if (v !== undefined && v !== null) headers[k] = Array.isArray(v) ? v.map(asBytes) : asBytes(v)
  }
  return { topic, partition, offset: m.offset, key: m.key, value: m.value, headers, timestamp: m.timestamp }
}

/** A Buffer over the same bytes (no copy): Uint8Arrays come back from worker threads (structured clone) as views. */
export const bufferOf = (u: Uint8Array): Buffer =>
  Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)

/**
 * What became of one message of a batch: written (or already there), or failed and why (the failure as plain
 * data, errors/PipelineErrorData: code, message, retriable, details).
 */
export type MessageOutcome =
  | { status: 'ok' }
  | (PipelineErrorData & {
      status: 'failed'
      /**
       * For a retriable failure, what the message waits for, in the sink's own terms (an order: `user/<id>`). When
       * a batch of any partition `provides` it, the waiting message is tried again at once instead of on its backoff.
       */
      awaits?: string
    })

/** The failed outcome of a message, from the error that failed it (its code, message and retriable flag). */
export const failedOutcome = (err: {
  code: PipelineErrorData['code']
  message: string
  retriable: boolean
}): Extract<MessageOutcome, { status: 'failed' }> => ({
  status: 'failed',
  code: err.code,
  message: err.message,
  retriable: err.retriable,
})

/** A sink's answer for a batch: one outcome per message, in the input order. */
export interface BatchResult {
  outcomes: MessageOutcome[]
  /** Rows the batch inserted or moved forward. */
  applied: number
  /** Messages that changed nothing: replays, events older than the stored row, or folded into a later one. */
  stale: number
  /** For applied messages whose event says when it was created: milliseconds from creation to durable write. */
  latenciesMs: number[]
  /** What the batch made available to messages that wait for it (see MessageOutcome.awaits), e.g. `user/<id>`. */
  provides?: string[]
}

/**
 * A sink applies a batch of one partition's messages and reports per message. It must be durable when it returns
 * (the engine commits offsets right after), idempotent (redelivery is normal), and must not throw for bad input:
 * bad messages are reported as failed, not retriable. Throwing means the whole batch failed (retried as a unit).
 */
export interface BatchSink {
  apply(messages: SourceMessage[]): Promise<BatchResult>
  close(): Promise<void>
}

/** How a sink's logger is built, in whichever thread the sink runs: the command's level, format and name. */
export interface SinkLogSpec {
  level: LogLevel
  pretty: boolean
  name: string
}

/**
 * How to build a sink anywhere, including inside a worker thread: the URL of a {@link SinkModule}, its options
 * (plain data, already validated in the main thread) and how to build its logger.
 */
export interface SinkSpec {
  module: string
  options: Record<string, unknown>
  /** Without it, the sink logs at info level as JSON lines. */
  log?: SinkLogSpec
}

/** What an option's value looks like, for --help. */
export type OptionKind = 'number' | 'duration' | 'boolean' | 'string' | 'list'

/** Reads a validated option (flag > environment variable > default > fallback). */
export type OptionReader = <T>(def: OptionDef<T>) => T

/**
 * One option, in the settings table's style (internal/cli/settings.ts): its flag, environment variable, default,
 * validator and one-line doc. A sink declares its options so; the commands that run the sink list them as rows.
 */
export interface OptionDef<T> {
  /** Without dashes ('pg-url'). */
  flag: string
  /** The environment variable read when the flag is absent. */
  env?: string
  /** Used when neither flag nor variable is set (durations in milliseconds). */
  default?: T
  /**
   * Computes the value when neither flag, variable nor default gives one (a random seed, a terminal's format, an
   * address derived from the local stack's port variables in `env`).
   */
  fallback?: (get: OptionReader, env: Env) => T
  /** How --help and the README show the default when the default value itself does not say it. */
  defaultText?: string
  /** The variables the fallback derives the value from: --help adds the value they give when one is set. */
  derivedFrom?: readonly string[]
  kind: OptionKind
  /** Validates the value resolved from flag > variable > default; a bad one throws a CONFIG_ERROR naming it. */
  parse(setting: Setting<T>): T
  /** One line: what it does, for --help and the README. */
  doc: string
}

/** A sink's options read from flags: each option's definition (options the command computes are left out). */
export type OptionsSchema<O> = { readonly [K in keyof O]?: OptionDef<O[K]> }

/**
 * A sink: the module a command names (by its URL, so that a worker thread can load it) exporting these four. The
 * command validates the options once, in the main thread, against `optionsSchema` (a bad value: exit 2, the flag
 * named), runs `preflight` there before any worker starts, and every thread that applies batches calls
 * `createBatchSink` with the same plain options and a logger built from {@link SinkSpec.log}.
 */
export interface SinkModule<O = Record<string, unknown>> {
  /** Short name: the sink's logger is `module: <name>-sink`. */
  name: string
  optionsSchema: OptionsSchema<O>
  /** Checks the sink can work at all (reachable, schema present) within `timeoutMs`; throws UNREACHABLE or CONFIG_ERROR. */
  preflight(options: O, log: Logger, context: { timeoutMs: number }): Promise<void>
  createBatchSink(options: O, log: Logger): Promise<BatchSink>
  /**
   * The longest wait between tries of a batch that failed as a whole while the sink is down (default
   * DEFAULT_SINK_DOWN_BACKOFF_MAX_MS, 10 s): bounds how long after the sink returns the pipeline resumes.
   */
  sinkDownBackoffMaxMs?: number
}

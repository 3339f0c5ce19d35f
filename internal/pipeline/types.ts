import type { Env, Setting } from '../config/index.js'
import type { ErrorCode } from '../errors/index.js'
import type { Logger, LogLevel } from '../log/index.js'

/**
 * A message's headers as Kafka delivered them: bytes, never converted to text, and a header repeated in the record
 * as the list of its values in record order.
 */
export type SourceHeaders = Record<string, Uint8Array | Uint8Array[]>

/** One Kafka message as the engine hands it to a sink (plain data: it crosses into worker threads). */
export interface SourceMessage {
  topic: string
  partition: number
  offset: string
  key: Uint8Array | null
  value: Uint8Array | null
  headers: SourceHeaders
  timestamp: string
}

/** What became of one message of a batch: written (or already there), or failed and why. */
export type MessageOutcome =
  | { status: 'ok' }
  | {
      status: 'failed'
      code: ErrorCode
      message: string
      retriable: boolean
      /**
       * For a retriable failure, what the message waits for, in the sink's own terms (an order: `user/<id>`). When
       * a batch of any partition `provides` it, the waiting message is tried again at once instead of on its backoff.
       */
      awaits?: string
    }

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
}

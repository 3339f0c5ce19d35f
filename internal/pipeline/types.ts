import type { PipelineErrorData } from '../errors/index.js'

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

/**
 * How to build a sink anywhere, including inside a worker thread: the URL of a module that exports
 * `createBatchSink(options)`, and plain-data options for it.
 */
export interface SinkSpec {
  module: string
  options: Record<string, unknown>
}

/** The shape of a sink module named by a {@link SinkSpec}. */
export interface SinkModule {
  createBatchSink(options: Record<string, unknown>): Promise<BatchSink>
}

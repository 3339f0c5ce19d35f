import { ErrorCodes, PipelineError, toErrorData } from '../errors/index.js'
import {
  bufferOf,
  outgoingHeaders,
  type Envelope,
  type HeaderValue,
  type MessageHeaders,
  type OutgoingRecord,
} from './types.js'

export type { MessageHeaders }

/** The headers a DLQ message carries. */
export const DLQ_HEADERS = {
  originalTopic: 'x-original-topic',
  originalPartition: 'x-original-partition',
  originalOffset: 'x-original-offset',
  originalKey: 'x-original-key',
  errorCode: 'x-error-code',
  errorMessage: 'x-error-message',
  attempts: 'x-attempts',
  firstFailureAt: 'x-first-failure-at',
  lastFailureAt: 'x-last-failure-at',
  /** On a truncated copy only: what was cut (the record whole was larger than the DLQ topic takes). */
  truncated: 'x-truncated',
  /** On a truncated copy only: the original value's size in bytes. */
  originalValueBytes: 'x-original-value-bytes',
} as const

const RESERVED = new Set<string>(Object.values(DLQ_HEADERS))

/** Longest x-error-message kept; an error quoting a huge payload must not bloat every DLQ record. */
export const MAX_ERROR_MESSAGE_CHARS = 1000

/** The dead-letter topic of a source topic. */
export function dlqTopicFor(topic: string): string {
  return `${topic}.dlq`
}

/** Input of {@link buildDlqMessage}. */
export interface DlqInput {
  /** The consumed message that could not be applied. */
  original: Envelope
  /**
   * Why: a failure as plain data (errors/PipelineErrorData: a sink's outcome, a dead letter's) or a PipelineError;
   * anything else is recorded as UNKNOWN.
   */
  error: unknown
  /** Tries made, including the first. */
  attempts: number
  firstFailureAt: Date | string
  lastFailureAt: Date | string
}

/**
 * The record to produce to dlqTopicFor(original.topic): the original key (so one entity's failures stay together and
 * in order) and value bytes, unchanged (a replay after a fix sends exactly what was produced), with the headers.
 */
export type DlqMessage = OutgoingRecord

function iso(at: Date | string): string {
  return typeof at === 'string' ? at : at.toISOString()
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 3)}...`
}

const utf8 = (v: Uint8Array | string): string => (typeof v === 'string' ? v : bufferOf(v).toString('utf8'))

/** Builds the DLQ record: original key and value untouched, original headers kept, origin and error in x- headers. */
export function buildDlqMessage(input: DlqInput): DlqMessage {
  const { original } = input
  const error = toErrorData(input.error)
  const headers = outgoingHeaders(original.headers)
  // A replayed message that fails again gets fresh x- headers, not a stale mix.
  for (const name of RESERVED) delete headers[name]
  headers[DLQ_HEADERS.originalTopic] = original.topic
  headers[DLQ_HEADERS.originalPartition] = String(original.partition)
  headers[DLQ_HEADERS.originalOffset] = original.offset
  if (original.key !== null) headers[DLQ_HEADERS.originalKey] = utf8(original.key)
  headers[DLQ_HEADERS.errorCode] = error.code
  headers[DLQ_HEADERS.errorMessage] = truncate(error.message, MAX_ERROR_MESSAGE_CHARS)
  headers[DLQ_HEADERS.attempts] = String(input.attempts)
  headers[DLQ_HEADERS.firstFailureAt] = iso(input.firstFailureAt)
  headers[DLQ_HEADERS.lastFailureAt] = iso(input.lastFailureAt)
  const key = original.key === null || typeof original.key === 'string' ? original.key : bufferOf(original.key)
  const value = original.value === null ? null : bufferOf(original.value)
  return { topic: dlqTopicFor(original.topic), key, value, headers }
}

/** What a DLQ record says about its origin and failure. */
export interface DlqInfo {
  originalTopic: string
  originalPartition: number
  originalOffset: string
  originalKey: string | null
  errorCode: string
  errorMessage: string
  attempts: number
  firstFailureAt: string
  lastFailureAt: string
}

function text(value: HeaderValue | HeaderValue[] | undefined): string | undefined {
  const one = Array.isArray(value) ? value.at(-1) : value
  return one === undefined ? undefined : utf8(one)
}

/** Reads the x- headers of a DLQ record (values may be Buffers); VALIDATION_ERROR when one is missing or bad. */
export function parseDlqHeaders(headers: MessageHeaders | undefined): DlqInfo {
  const h = headers ?? {}
  const required = (name: string): string => {
    const value = text(h[name])
    if (value === undefined || value === '') {
      throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `DLQ header ${name} is missing`)
    }
    return value
  }
  const integer = (name: string, min: number): number => {
    const raw = required(name)
    const n = Number(raw)
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) {
      throw new PipelineError(
        ErrorCodes.VALIDATION_ERROR,
        `DLQ header ${name} must be an integer >= ${min} (got '${raw}')`,
      )
    }
    return n
  }
  const offset = required(DLQ_HEADERS.originalOffset)
  if (!/^\d+$/.test(offset)) {
    throw new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      `DLQ header ${DLQ_HEADERS.originalOffset} must be a non-negative integer (got '${offset}')`,
    )
  }
  return {
    originalTopic: required(DLQ_HEADERS.originalTopic),
    originalPartition: integer(DLQ_HEADERS.originalPartition, 0),
    originalOffset: offset,
    originalKey: text(h[DLQ_HEADERS.originalKey]) ?? null,
    errorCode: required(DLQ_HEADERS.errorCode),
    errorMessage: text(h[DLQ_HEADERS.errorMessage]) ?? '',
    attempts: integer(DLQ_HEADERS.attempts, 1),
    firstFailureAt: required(DLQ_HEADERS.firstFailureAt),
    lastFailureAt: required(DLQ_HEADERS.lastFailureAt),
  }
}

/** The headers to replay a DLQ record with: the original ones, without the DLQ's x- headers. */
export function replayHeaders(headers: MessageHeaders | undefined): MessageHeaders {
  const out: MessageHeaders = {}
  for (const [name, value] of Object.entries(headers ?? {})) if (!RESERVED.has(name)) out[name] = value
  return out
}

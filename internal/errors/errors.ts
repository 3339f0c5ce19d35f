/** Machine-readable error codes shared by every part of the pipeline. */
export const ErrorCodes = {
  DECODE_ERROR: 'DECODE_ERROR',
  VALIDATION_ERROR: 'VALIDATION_ERROR',
  MISSING_REFERENCE: 'MISSING_REFERENCE',
  SINK_UNAVAILABLE: 'SINK_UNAVAILABLE',
  SINK_TIMEOUT: 'SINK_TIMEOUT',
  /** A worker thread died while applying a batch (a crash, out of memory); piscina starts a new one. */
  WORKER_CRASH: 'WORKER_CRASH',
  SINK_CONFLICT: 'SINK_CONFLICT',
  SINK_REJECTED: 'SINK_REJECTED',
  /** A valid input the sink deliberately does not apply (e.g. a TRUNCATE change event): an operator must act. */
  UNSUPPORTED: 'UNSUPPORTED',
  CONFIG_ERROR: 'CONFIG_ERROR',
  /** A server the command needs (Kafka, PostgreSQL, Cassandra, Connect) could not be reached when it started. */
  UNREACHABLE: 'UNREACHABLE',
  /** Messages were deleted by retention (or deleteRecords) before the group consumed them: a gap in the data. */
  DATA_LOSS: 'DATA_LOSS',
  /**
   * A change that does not match the sink's table definition: a column the definition requires is absent from the
   * after-image (dropped or renamed in PostgreSQL), or a new column cannot be added. Not applied: never written as
   * null; the table's later changes follow it into the DLQ.
   */
  SCHEMA_MISMATCH: 'SCHEMA_MISMATCH',
  /**
   * The changes come from another PostgreSQL cluster than the one the store was replicated from (a restore, a
   * migration), or their LSNs went backwards: applying them would lose writes silently. The command stops.
   */
  SOURCE_CHANGED: 'SOURCE_CHANGED',
  UNKNOWN: 'UNKNOWN',
} as const

/** One of the {@link ErrorCodes} values. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

// Bad input and bad configuration never fix themselves; everything about the sink's availability may.
const RETRIABLE_BY_DEFAULT: Readonly<Record<ErrorCode, boolean>> = {
  DECODE_ERROR: false,
  VALIDATION_ERROR: false,
  MISSING_REFERENCE: true,
  SINK_UNAVAILABLE: true,
  SINK_TIMEOUT: true,
  WORKER_CRASH: true,
  SINK_CONFLICT: true,
  SINK_REJECTED: false,
  UNSUPPORTED: false,
  CONFIG_ERROR: false,
  UNREACHABLE: true,
  DATA_LOSS: false,
  SCHEMA_MISMATCH: false,
  SOURCE_CHANGED: false,
  UNKNOWN: true,
}

/** Options of {@link PipelineError}. */
export interface PipelineErrorOptions {
  /** The underlying error (driver error, SyntaxError, ...), kept as the standard `cause`. */
  cause?: unknown
  /** Overrides the code's default retriability. */
  retriable?: boolean
  /** Facts about the failure as plain data (a table, an offset, a driver's code), for logs and across threads. */
  details?: Readonly<Record<string, unknown>>
}

/** The one error type the pipeline throws: a code, a retriable flag and the original error as `cause`. */
export class PipelineError extends Error {
  readonly code: ErrorCode
  readonly retriable: boolean
  readonly details: Readonly<Record<string, unknown>> | undefined

  constructor(code: ErrorCode, message: string, options: PipelineErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined)
    this.name = 'PipelineError'
    this.code = code
    this.retriable = options.retriable ?? RETRIABLE_BY_DEFAULT[code]
    this.details = options.details
  }
}

/**
 * A {@link PipelineError} as plain data: what crosses a worker thread's boundary (structured clone), what a sink
 * reports for a failed message (MessageOutcome), what a dead letter's x-error-* headers say. JSON- and clone-safe.
 */
export interface PipelineErrorData {
  code: ErrorCode
  message: string
  retriable: boolean
  details?: Readonly<Record<string, unknown>>
  /** The cause chain, as plain data too. */
  cause?: ErrorData
}

/**
 * Any error of a cause chain as plain data: a PipelineError's (name 'PipelineError', with its code and retriable
 * flag) or another error's name, message and code (a driver's '57P01', Node's 'ECONNREFUSED').
 */
export interface ErrorData {
  name: string
  message: string
  code?: string | number
  retriable?: boolean
  details?: Readonly<Record<string, unknown>>
  cause?: ErrorData
}

/** Causes deeper than this are cut (a cause chain can be a cycle). */
const MAX_CAUSE_DEPTH = 8

const KNOWN_CODES = new Set<string>(Object.values(ErrorCodes))

/** Whether `code` is one of the {@link ErrorCodes}. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code)
}

/** True for plain failure data (not an Error): a known code, a message and a retriable flag. */
export function isPipelineErrorData(v: unknown): v is PipelineErrorData {
  if (typeof v !== 'object' || v === null || v instanceof Error) return false
  const d = v as Partial<PipelineErrorData>
  return isErrorCode(d.code) && typeof d.message === 'string' && typeof d.retriable === 'boolean'
}

function causeData(c: unknown, depth: number): ErrorData | undefined {
  if (c === undefined || depth >= MAX_CAUSE_DEPTH) return undefined
  let data: ErrorData
  if (c instanceof PipelineError) {
    data = { name: c.name, message: c.message, code: c.code, retriable: c.retriable }
    if (c.details !== undefined) data.details = c.details
  } else if (c instanceof Error) {
    data = { name: c.name, message: errorMessage(c) }
    const code = (c as { code?: unknown }).code
    if (typeof code === 'string' || typeof code === 'number') data.code = code
  } else if (isPipelineErrorData(c)) {
    return { name: 'PipelineError', ...c }
  } else {
    return { name: typeof c, message: String(c) }
  }
  const next = causeData((c as { cause?: unknown }).cause, depth + 1)
  if (next !== undefined) data.cause = next
  return data
}

/**
 * Any failure as plain data (a PipelineError as it is, anything else wrapped as UNKNOWN, or `code`), its cause
 * chain kept. Plain data passed in comes back as it is.
 */
export function toErrorData(err: unknown, code: ErrorCode = ErrorCodes.UNKNOWN): PipelineErrorData {
  if (isPipelineErrorData(err)) return err
  const e = toPipelineError(err, code)
  const data: PipelineErrorData = { code: e.code, message: e.message, retriable: e.retriable }
  if (e.details !== undefined) data.details = e.details
  const cause = causeData(e.cause, 0)
  if (cause !== undefined) data.cause = cause
  return data
}

function errorFrom(d: ErrorData): Error {
  const cause = d.cause === undefined ? {} : { cause: errorFrom(d.cause) }
  if (d.name === 'PipelineError' && isErrorCode(d.code)) {
    return new PipelineError(d.code, d.message, {
      ...cause,
      ...(d.retriable === undefined ? {} : { retriable: d.retriable }),
      ...(d.details === undefined ? {} : { details: d.details }),
    })
  }
  const e = new Error(d.message, cause)
  e.name = d.name
  if (d.code !== undefined) Object.assign(e, { code: d.code })
  return e
}

/** The PipelineError that `data` describes, its cause chain rebuilt as errors (the inverse of {@link toErrorData}). */
export function fromErrorData(data: PipelineErrorData): PipelineError {
  return new PipelineError(data.code, data.message, {
    retriable: data.retriable,
    ...(data.details === undefined ? {} : { details: data.details }),
    ...(data.cause === undefined ? {} : { cause: errorFrom(data.cause) }),
  })
}

/** Whether `code` is retriable unless told otherwise. */
export function isRetriableCode(code: ErrorCode): boolean {
  return RETRIABLE_BY_DEFAULT[code]
}

/** True for a PipelineError (optionally with the given code). */
export function isPipelineError(err: unknown, code?: ErrorCode): err is PipelineError {
  return err instanceof PipelineError && (code === undefined || err.code === code)
}

/** Only PipelineErrors flagged retriable are retried: anything else is a bug or bad input. */
export function isRetriable(err: unknown): boolean {
  return err instanceof PipelineError && err.retriable
}

/** Returns `err` if it is already a PipelineError (rebuilds it from its plain data), else wraps it with `code` (default UNKNOWN), keeping it as cause. */
export function toPipelineError(err: unknown, code: ErrorCode = ErrorCodes.UNKNOWN): PipelineError {
  if (err instanceof PipelineError) return err
  if (isPipelineErrorData(err)) return fromErrorData(err)
  return new PipelineError(code, errorMessage(err), { cause: err })
}

/** A printable message for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    // AggregateError (e.g. Node's happy-eyeballs connect) has an empty message; its parts say what failed.
    if (err.message === '' && err instanceof AggregateError && err.errors.length > 0) {
      return err.errors.map((e: unknown) => errorMessage(e)).join('; ')
    }
    return err.message || err.name
  }
  return String(err)
}

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
  UNKNOWN: true,
}

/** Options of {@link PipelineError}. */
export interface PipelineErrorOptions {
  /** The underlying error (driver error, SyntaxError, ...), kept as the standard `cause`. */
  cause?: unknown
  /** Overrides the code's default retriability. */
  retriable?: boolean
}

/** The one error type the pipeline throws: a code, a retriable flag and the original error as `cause`. */
export class PipelineError extends Error {
  readonly code: ErrorCode
  readonly retriable: boolean

  constructor(code: ErrorCode, message: string, options: PipelineErrorOptions = {}) {
    super(message, 'cause' in options ? { cause: options.cause } : undefined)
    this.name = 'PipelineError'
    this.code = code
    this.retriable = options.retriable ?? RETRIABLE_BY_DEFAULT[code]
  }
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

/** Returns `err` if it is already a PipelineError, else wraps it with `code` (default UNKNOWN), keeping it as cause. */
export function toPipelineError(err: unknown, code: ErrorCode = ErrorCodes.UNKNOWN): PipelineError {
  if (err instanceof PipelineError) return err
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

// What the sinks' error classifiers (sinks/postgres/classify.ts, sinks/cassandra/classify.ts) share: which socket
// errors mean "the server is down, restarting or unreachable", and how a classified driver error becomes a
// PipelineError.
import { PipelineError, type ErrorCode } from './errors.js'

/** Socket-level failures (Node's error codes): the server is down, restarting or unreachable. */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
])

/** The socket error code of `err` when it is one of {@link NETWORK_ERROR_CODES}, looking into an AggregateError. */
export function socketErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return code
  // Node's happy-eyeballs connect (localhost -> ::1 and 127.0.0.1) rejects with an AggregateError.
  if (err instanceof AggregateError) return err.errors.map(socketErrorCode).find((c) => c !== undefined)
  return undefined
}

/** A driver error's class: its code, a word for the message, and retriable when it differs from the code's. */
export interface Classified {
  code: ErrorCode
  what: string
  retriable?: boolean
}

/** The PipelineError of a classified driver error: "<server> <what>: <message>", the driver error as cause. */
export function classifiedError(server: string, found: Classified, message: string, cause: unknown): PipelineError {
  return new PipelineError(found.code, `${server} ${found.what}: ${message}`, {
    cause,
    ...(found.retriable === undefined ? {} : { retriable: found.retriable }),
  })
}

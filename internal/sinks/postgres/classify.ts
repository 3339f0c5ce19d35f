import {
  ErrorCodes,
  PipelineError,
  classifiedError,
  errorMessage,
  socketErrorCode,
  type Classified,
} from '../../errors/index.js'

// node-postgres reports these without a code.
const CONNECTION_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /not queryable/i,
  /connection error/i,
  /server closed the connection/i,
]

function fromSqlState(state: string): Classified | undefined {
  if (state === '40001' || state === '40P01') return { code: ErrorCodes.SINK_CONFLICT, what: 'conflict' }
  if (state === '57014' || state === '55P03') return { code: ErrorCodes.SINK_TIMEOUT, what: 'timeout' }
  if (state.startsWith('08') || state.startsWith('53') || ['57P01', '57P02', '57P03'].includes(state)) {
    return { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
  }
  // Integrity (23) and data (22) errors fail the same way every time: bad input, not a passing fault.
  if (state.startsWith('23') || state.startsWith('22'))
    return { code: ErrorCodes.SINK_REJECTED, what: 'rejected the write' }
  // Wrong password, missing database, table or column: the deployment is wrong; retrying cannot help.
  if (state.startsWith('28') || state === '3D000' || state === '42P01' || state === '42703') {
    return { code: ErrorCodes.CONFIG_ERROR, what: 'setup error' }
  }
  return undefined
}

/**
 * Maps a node-postgres (or socket) error to a PipelineError, keeping it as cause: connection trouble ->
 * SINK_UNAVAILABLE, serialization failure/deadlock -> SINK_CONFLICT, statement/lock timeout -> SINK_TIMEOUT (all
 * retriable); constraint and data errors -> SINK_REJECTED, auth/missing table -> CONFIG_ERROR (not retriable);
 * anything else UNKNOWN, retriable (the retry policy bounds it).
 */
export function classifyPgError(err: unknown): PipelineError {
  if (err instanceof PipelineError) return err
  const message = errorMessage(err)
  const state = (err as { code?: unknown } | null)?.code
  let found: Classified | undefined
  if (typeof state === 'string' && /^[0-9A-Z]{5}$/.test(state)) found = fromSqlState(state)
  if (found === undefined && socketErrorCode(err) !== undefined)
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
  if (found === undefined && /query read timeout/i.test(message))
    found = { code: ErrorCodes.SINK_TIMEOUT, what: 'timeout' }
  if (found === undefined && /after calling end on the pool/i.test(message)) {
    // Our own shutdown closed the pool: retrying would only delay the exit.
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'pool closed', retriable: false }
  }
  if (found === undefined && CONNECTION_MESSAGES.some((re) => re.test(message))) {
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
  }
  found ??= { code: ErrorCodes.UNKNOWN, what: 'error' }
  const suffix = typeof state === 'string' && state !== '' ? ` [${state}]` : ''
  return classifiedError('PostgreSQL', found, `${message}${suffix}`, err)
}

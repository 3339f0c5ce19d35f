import cassandra from 'cassandra-driver'
import {
  ErrorCodes,
  PipelineError,
  classifiedError,
  errorMessage,
  socketErrorCode,
  type Classified,
} from '../../errors/index.js'

const { errors } = cassandra
const codes = cassandra.types.responseErrorCodes

// An "invalid request" that means the deployment is wrong (no such keyspace, table or column), not the data.
const SCHEMA_MESSAGES = [
  /unconfigured table/i,
  /keyspace .* does not exist/i,
  /undefined column/i,
  /unknown identifier/i,
]

function fromResponse(code: number, message: string): Classified {
  switch (code) {
    case codes.unavailableException:
    case codes.overloaded:
    case codes.isBootstrapping:
    case codes.writeFailure:
    case codes.readFailure:
      return { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
    case codes.writeTimeout:
    case codes.readTimeout:
    case codes.truncateError:
      return { code: ErrorCodes.SINK_TIMEOUT, what: 'timeout' }
    case codes.badCredentials:
    case codes.unauthorized:
    case codes.syntaxError:
    case codes.configError:
    case codes.alreadyExists:
      return { code: ErrorCodes.CONFIG_ERROR, what: 'setup error' }
    case codes.invalid:
      if (SCHEMA_MESSAGES.some((re) => re.test(message))) return { code: ErrorCodes.CONFIG_ERROR, what: 'setup error' }
      return { code: ErrorCodes.SINK_REJECTED, what: 'rejected the write' }
    case codes.functionFailure:
      return { code: ErrorCodes.SINK_REJECTED, what: 'rejected the write' }
    default:
      // serverError, protocolError, unprepared (the driver prepares again): passing, the retry policy bounds them.
      return { code: ErrorCodes.UNKNOWN, what: 'error' }
  }
}

/**
 * A one-line description of a driver error. NoHostAvailableError's own message embeds each host's error with its
 * stack; this keeps the first line of each instead ('127.0.0.1:9042: connect ECONNREFUSED 127.0.0.1:9042').
 */
export function describeCassandraError(err: unknown): string {
  if (err instanceof errors.NoHostAvailableError) {
    const inner = Object.entries((err.innerErrors ?? {}) as Record<string, unknown>)
    if (inner.length > 0) {
      const parts = inner.map(([host, e]) => `${host}: ${errorMessage(e).split('\n')[0]}`)
      return `no host available (${parts.join('; ')})`
    }
    return errorMessage(err).split('\n')[0]
  }
  return errorMessage(err)
}

/**
 * Maps a cassandra-driver error to a PipelineError, keeping it as cause: no host available, unavailable, overloaded,
 * bootstrapping, write failure -> SINK_UNAVAILABLE; server or client timeouts -> SINK_TIMEOUT (all retriable: the
 * engine retries the whole batch with backoff); a value the server refuses -> SINK_REJECTED (not retriable: the
 * message goes to the DLQ); authentication, a missing keyspace/table/column, CQL the server cannot parse ->
 * CONFIG_ERROR (the pipeline stops); anything else UNKNOWN, retriable.
 */
export function classifyCassandraError(err: unknown): PipelineError {
  if (err instanceof PipelineError) return err
  const message = describeCassandraError(err)
  let found: Classified
  if (err instanceof errors.ResponseError) {
    found = fromResponse(err.code, message)
  } else if (err instanceof errors.NoHostAvailableError) {
    const inner = Object.values((err.innerErrors ?? {}) as Record<string, unknown>)
    if (inner.length > 0 && inner.every((e) => e instanceof errors.AuthenticationError)) {
      found = { code: ErrorCodes.CONFIG_ERROR, what: 'rejected the credentials' }
    } else if (/after shutdown/i.test(message)) {
      // Our own close(): retrying would only delay the exit.
      found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'client closed', retriable: false }
    } else {
      found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
    }
  } else if (err instanceof errors.OperationTimedOutError) {
    found = { code: ErrorCodes.SINK_TIMEOUT, what: 'timeout' }
  } else if (err instanceof errors.BusyConnectionError) {
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'busy' }
  } else if (err instanceof errors.AuthenticationError) {
    found = { code: ErrorCodes.CONFIG_ERROR, what: 'rejected the credentials' }
  } else if (err instanceof errors.ArgumentError || err instanceof TypeError || err instanceof RangeError) {
    // The driver could not encode a value (or was given bad arguments): the data, every time.
    found = { code: ErrorCodes.SINK_REJECTED, what: 'could not encode a value' }
  } else if (socketErrorCode(err) !== undefined) {
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
  } else {
    found = { code: ErrorCodes.UNKNOWN, what: 'error' }
  }
  return classifiedError('Cassandra', found, message, err)
}

import { ErrorReply, ClientClosedError } from 'redis'
import { ErrorCodes, PipelineError, classifiedError, errorMessage, type Classified } from '../../errors/index.js'

// Replies that mean "not now": the server is loading its data, busy with a script, read-only, out of memory.
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|OOM|NOREPLICAS)\b/
// Replies that mean the deployment is wrong: credentials, ACL rights.
const SETUP_REPLY = /^(NOAUTH|WRONGPASS|NOPERM)\b/

/**
 * Maps a node-redis error to a PipelineError, keeping it as cause: the connection refused, lost, closed while a
 * command was in flight, not open yet, or a timeout -> SINK_UNAVAILABLE / SINK_TIMEOUT (retriable: the engine
 * retries the batch with backoff and commits nothing meanwhile); a reply that says not now (LOADING, BUSY, OOM...)
 * -> SINK_UNAVAILABLE; bad credentials or missing rights -> CONFIG_ERROR (the pipeline stops); any other error
 * reply -> SINK_REJECTED (the message goes to the DLQ); the client closed by our own close() -> not retriable.
 */
export function classifyRedisError(err: unknown): PipelineError {
  if (err instanceof PipelineError) return err
  const message = errorMessage(err).split('\n')[0]!
  let found: Classified
  if (err instanceof ErrorReply) {
    if (SETUP_REPLY.test(message)) found = { code: ErrorCodes.CONFIG_ERROR, what: 'rejected the credentials' }
    else if (TRANSIENT_REPLY.test(message)) found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
    else found = { code: ErrorCodes.SINK_REJECTED, what: 'rejected the write' }
  } else if (err instanceof ClientClosedError) {
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'client closed', retriable: false }
  } else if (err instanceof Error && /timeout/i.test(err.name + ' ' + message)) {
    found = { code: ErrorCodes.SINK_TIMEOUT, what: 'timeout' }
  } else {
    // ClientOfflineError, SocketClosedUnexpectedlyError, DisconnectsClientError, ECONNREFUSED...: not reachable now.
    found = { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }
  }
  return classifiedError('Redis', found, message, err)
}

import { ErrorCodes, PipelineError, errorMessage, isPipelineError } from '../../errors/index.js'
import { PostgresSink } from './sink.js'

/** host:port of a PostgreSQL URL, for messages (never the user or password). */
export function postgresAddress(connectionString: string): string {
  try {
    const url = new URL(connectionString)
    return `${url.hostname}:${url.port || '5432'}`
  } catch {
    return 'the configured address'
  }
}

/**
 * Preflight of node cmd/consume, bounded by `timeoutMs`: PostgreSQL answers and has the tables and the trigger the
 * sink needs. Throws UNREACHABLE when it does not answer in time (down, a silent or wrong port), CONFIG_ERROR when it
 * answers but the setup is wrong (credentials, database, tables).
 */
export async function checkPostgres(o: { connectionString: string; timeoutMs: number }): Promise<void> {
  const where = postgresAddress(o.connectionString)
  const check = new PostgresSink({ connectionString: o.connectionString, connectionTimeoutMs: o.timeoutMs })
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PipelineError(ErrorCodes.SINK_TIMEOUT, `no answer within ${o.timeoutMs / 1000} s`)),
      o.timeoutMs,
    )
  })
  try {
    await Promise.race([check.checkSchema(), timedOut])
  } catch (err) {
    if (isPipelineError(err, 'CONFIG_ERROR')) throw err
    const message = errorMessage(err).replace(/^PostgreSQL (unavailable|timeout|error): /, '')
    const within = /time(out|d out)|no answer/i.test(message) ? ` within ${o.timeoutMs / 1000} s` : ''
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `cannot reach PostgreSQL at ${where}${within}: ${message} — is the stack up? npm run stack:status`,
      { cause: err },
    )
  } finally {
    clearTimeout(timer)
    void check.close().catch(() => undefined)
  }
}

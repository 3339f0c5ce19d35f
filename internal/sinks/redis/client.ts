import { createClient, type RedisClientType } from 'redis'
import { ErrorCodes, PipelineError, errorMessage, socketErrorCode } from '../../errors/index.js'
import { redactUrl } from '../../config/index.js'
import { classifyRedisError } from './classify.js'

/** The part of a node-redis client the sink uses (unit tests pass a fake). */
export interface RedisExecutor {
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>
  scriptLoad(script: string): Promise<string>
  /** One SCAN step: the next cursor ('0' when done) and the keys matching `match` in this page. */
  scan(cursor: string, match: string, count: number): Promise<{ cursor: string; keys: string[] }>
  close(): Promise<void>
}

/**
 * The wait before reconnection attempt `retries` (0 = the first): 100 ms doubling, at most 1 s, so a Redis that
 * came back is connected to within a second (with the engine's batch retry, also at most 1 s apart: module.ts,
 * cache-sync resumes within about 2 s of Redis returning).
 */
export const reconnectDelayMs = (retries: number): number => Math.min(100 * 2 ** Math.min(retries, 4), 1_000)

/**
 * A client for the sink: reconnects by itself (backoff {@link reconnectDelayMs}, forever), and fails a command at once
 * while disconnected (no offline queue): the batch fails as retriable and the engine backs off, rather than
 * commands piling up unseen. Errors of the connection are logged by `onError`, never thrown.
 */
export function createRedisClient(
  redisUrl: string,
  options: { commandTimeoutMs?: number; onError?: (err: unknown) => void } = {},
): RedisClientType {
  const client = createClient({
    url: redisUrl,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 10_000,
      reconnectStrategy: reconnectDelayMs,
    },
    ...(options.commandTimeoutMs === undefined ? {} : { commandOptions: { timeout: options.commandTimeoutMs } }),
  }) as unknown as RedisClientType
  client.on('error', (err: unknown) => options.onError?.(err))
  return client
}

/**
 * The start-up check: Redis answers PING within `timeoutMs` with these credentials. UNREACHABLE (exit 3) when it
 * does not answer, CONFIG_ERROR (exit 2) when it refuses the password.
 */
export async function checkRedis(redisUrl: string, timeoutMs: number): Promise<{ version: string }> {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: timeoutMs, reconnectStrategy: false } })
  client.on('error', () => undefined)
  const where = redactUrl(redisUrl)
  let timer: NodeJS.Timeout | undefined
  try {
    const check = (async () => {
      await client.connect()
      await client.ping()
      const info = await client.info('server')
      return { version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' }
    })()
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs)
    })
    return await Promise.race([check, timeout])
  } catch (err) {
    const e = classifyRedisError(err)
    if (e.code === ErrorCodes.CONFIG_ERROR) {
      throw new PipelineError(ErrorCodes.CONFIG_ERROR, `Redis at ${where} refused the connection: ${errorMessage(err)}`)
    }
    const code = socketErrorCode(err)
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `Redis is not reachable at ${where}${code === undefined ? '' : ` (${code})`}: ${errorMessage(err)}`,
    )
  } finally {
    clearTimeout(timer)
    client.destroy()
  }
}

// node cmd/purge: empties the Redis cache and every API instance's L1 now, and says how many instances acknowledged.
import { createClient, type RedisClientType } from 'redis'
import { hideBin } from 'yargs/helpers'
import { commandLine, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { loadDotEnv } from '../../internal/config/index.js'
import { ErrorCodes, PipelineError, errorMessage } from '../../internal/errors/index.js'
import { PURGE_CHANNEL, purge } from '../../internal/cache/index.js'
import { KEY_PREFIX, checkRedis } from '../../internal/sinks/redis/index.js'

const DESCRIPTION = `Purges the cache: deletes every key under ${KEY_PREFIX} in the Redis of --redis-url (SCAN + UNLINK,
never FLUSHDB: the Redis may be shared), then publishes a purge request on ${PURGE_CHANNEL}. Every node cmd/api
subscribed empties its in-process L1 and acknowledges; the command waits for one acknowledgement from each instance
the request reached (up to --timeout) and prints "purged on N instances" (and the keys deleted). The next reads are
misses. Versions and tombstones go with the keys: until the next change of a row, cache-sync refuses no older change
of it (harmless with --mode invalidate).

Exit codes: 0 every instance reached acknowledged (also when none was running); 1 fewer acknowledged within
--timeout (the keys are deleted all the same); 2 usage error; 3 Redis unreachable or refusing the password.`

runCommand('purge', async () => {
  loadDotEnv()
  const argv = await commandLine('purge', DESCRIPTION, hideBin(process.argv)).parseAsync()
  const get = readSettings('purge', argv)
  const redisUrl = get(S.redisUrl)
  await checkRedis(redisUrl, get(S.connectTimeout))
  const redis = createClient({ url: redisUrl, socket: { reconnectStrategy: false } }) as unknown as RedisClientType
  redis.on('error', () => undefined)
  try {
    await redis.connect()
    const r = await purge(redis, { timeoutMs: get(S.purgeTimeout) })
    const names = r.acks.map((a) => a.instance).join(', ')
    process.stdout.write(
      `purged on ${r.acks.length} instance${r.acks.length === 1 ? '' : 's'}` +
        `${r.acks.length < r.reached ? ` (of ${r.reached} reached; the others did not answer within --timeout)` : ''}` +
        `; ${r.deleted} key${r.deleted === 1 ? '' : 's'} deleted${names === '' ? '' : `; ${names}`}\n`,
    )
    return r.acks.length < r.reached ? 1 : 0
  } catch (err) {
    throw new PipelineError(ErrorCodes.UNREACHABLE, `Redis failed during the purge: ${errorMessage(err)}`, {
      cause: err,
    })
  } finally {
    redis.destroy()
  }
})

// node cmd/api: the cache-aside read API over the Redis cache node cmd/cache-sync keeps (README: The cache).
import { hideBin } from 'yargs/helpers'
import { commandLine, onShutdownSignals, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { loadDotEnv, redactUrl } from '../../internal/config/index.js'
import { startApi } from '../../internal/api/index.js'
import { createLogger } from '../../internal/log/index.js'
import { resourcesOf } from '../../internal/cache/index.js'

const DESCRIPTION = `A read API on 127.0.0.1 (Fastify): ${resourcesOf()
  .map((r) => `GET ${r.route.replace(':id', '<id>')}`)
  .join(', ')}, GET /healthz, GET /metrics.
Cache-aside with leases: a read looks in the in-process L1 (--l1-max, --l1-ttl; evicted by cache-sync's
invalidations on cdc:invalidations), then Redis; a miss takes the key's lease in the same Lua step, reads PostgreSQL
as the read-only role (--pg-url) and fills Redis only if the lease is still there: a change cache-sync applied
meanwhile replaced the key and cancelled the lease, so a slow fill never writes a value older than that change. A
miss that finds another reader's lease is served from PostgreSQL without filling. A deleted row's tombstone is a 404
from Redis. Every answer says where it came from: x-cache: l1 | hit | miss. Redis down: every read is served from
PostgreSQL, /healthz says "degraded" and cdc_api_redis_up is 0. node cmd/purge empties every instance's L1 (each
acknowledges) and the cache's keys. SIGINT/SIGTERM stop cleanly (a second one forces).`

runCommand('api', async () => {
  loadDotEnv()
  const argv = await commandLine('api', DESCRIPTION, hideBin(process.argv)).parseAsync()
  const get = readSettings('api', argv)
  const log = createLogger({
    level: get(S.logLevel),
    pretty: get(S.logFormat) === 'pretty',
    name: 'api',
  })
  const api = await startApi({
    host: get(S.apiHost),
    port: get(S.apiPort),
    redisUrl: get(S.redisUrl),
    pgUrl: get(S.apiPgUrl),
    leaseMs: get(S.leaseTtl),
    fillTtlMs: get(S.fillTtl),
    l1Max: get(S.l1Max),
    l1TtlMs: get(S.l1Ttl),
    redisTimeoutMs: get(S.redisTimeout),
    connectTimeoutMs: get(S.connectTimeout),
    log,
  })
  log.info(
    { url: api.url, redis: redactUrl(get(S.redisUrl)), l1: get(S.l1Max) > 0 ? get(S.l1Max) : 'off' },
    'API listening',
  )
  // The address on stdout alone, for scripts (and --port 0).
  process.stdout.write(`listening on ${api.url}\n`)
  await new Promise<void>((resolve) =>
    onShutdownSignals(
      () => resolve(),
      (line) => log.info(line),
      10_000,
    ),
  )
  await api.close()
  log.info('API stopped')
  log.flush()
  return 0
})

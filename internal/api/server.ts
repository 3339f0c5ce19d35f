// node cmd/api's HTTP server: Fastify on one port for the reads, /healthz and /metrics. Redis is the cache (leases,
// internal/cache), PostgreSQL the truth (a read-only role); the pub/sub channels evict the L1 and carry purges.
import { hostname } from 'node:os'
import Fastify, { type FastifyInstance } from 'fastify'
import pg from 'pg'
import type { RedisClientType } from 'redis'
import { configError, redactUrl } from '../config/index.js'
import { ErrorCodes, PipelineError, errorMessage, isPipelineError } from '../errors/index.js'
import type { Logger } from '../log/index.js'
import { newRegistry, registerPrometheusTarget } from '../metrics/index.js'
import {
  L1,
  PURGE_CHANNEL,
  ReadThrough,
  RedisCacheStore,
  acknowledgePurge,
  normalizeId,
  resourcesOf,
  type ReadThroughOptions,
  type Resource,
} from '../cache/index.js'
import {
  INVALIDATION_CHANNEL,
  checkRedis,
  classifyRedisError,
  createRedisClient,
  rowKey,
} from '../sinks/redis/index.js'
import { apiMetrics } from './metrics.js'

export interface ApiOptions {
  host: string
  /** 0: an ephemeral port (tests). */
  port: number
  redisUrl: string
  /** PostgreSQL as the read-only role. */
  pgUrl: string
  leaseMs: number
  fillTtlMs: number
  /** L1 entries; 0 = no L1. */
  l1Max: number
  l1TtlMs: number
  /** Per Redis command: a Redis that does not answer within it counts as down for that read. */
  redisTimeoutMs: number
  /** Start-up checks. */
  connectTimeoutMs: number
  log: Logger
  /** The Prometheus discovery folder (default: the local stack's, when it exists); null: none. */
  targetsDir?: string | null
  /** Tests: see ReadThroughOptions.beforeFill. */
  beforeFill?: ReadThroughOptions['beforeFill']
}

export interface ApiServer {
  url: string
  port: number
  /** Idempotent: stops listening, then closes Redis and PostgreSQL. */
  close(): Promise<void>
}

/** A name for this instance in purge acknowledgements. */
const instanceName = (port: number) => `${hostname()}:${process.pid}:${port}`

/**
 * Starts the API. PostgreSQL must answer at start (else UNREACHABLE, exit 3); Redis need not (the API starts
 * degraded and uses it once it is there), but refused credentials are a CONFIG_ERROR (exit 2).
 */
export async function startApi(o: ApiOptions): Promise<ApiServer> {
  const log = o.log
  const pool = new pg.Pool({ connectionString: o.pgUrl, max: 10, connectionTimeoutMillis: o.connectTimeoutMs })
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed; the pool replaces it'))
  try {
    await pool.query('SELECT 1')
  } catch (err) {
    await pool.end().catch(() => undefined)
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `PostgreSQL at ${redactUrl(o.pgUrl)} did not answer: ${errorMessage(err)}`,
      { cause: err },
    )
  }
  try {
    await checkRedis(o.redisUrl, o.connectTimeoutMs)
  } catch (err) {
    if (isPipelineError(err, 'CONFIG_ERROR')) {
      await pool.end().catch(() => undefined)
      throw err
    }
    log.warn({ err: errorMessage(err) }, 'Redis is not reachable: serving from PostgreSQL until it is (degraded)')
  }

  let lastRedisError = ''
  const onRedisError = (err: unknown) => {
    const text = classifyRedisError(err).message
    if (text !== lastRedisError) log.warn(text)
    lastRedisError = text
  }
  const redis: RedisClientType = createRedisClient(o.redisUrl, {
    commandTimeoutMs: o.redisTimeoutMs,
    onError: onRedisError,
  })
  redis.on('ready', () => {
    if (lastRedisError !== '') log.info('Redis connection ready again')
    lastRedisError = ''
  })
  redis.connect().catch(() => undefined)
  const subscriber = redis.duplicate()
  subscriber.on('error', () => undefined)

  const l1 = o.l1Max > 0 ? new L1({ max: o.l1Max, ttlMs: o.l1TtlMs }) : undefined
  // No copy in L1 while nothing can evict it: from start until subscribed, and whenever the subscription drops.
  l1?.suspend()
  const registry = newRegistry('api')
  const metrics = apiMetrics(registry, { redisUp: () => redis.isReady, l1Size: () => l1?.size ?? 0 })
  let port = o.port

  subscriber.on('end', () => l1?.suspend())
  subscriber.on('reconnecting', () => l1?.suspend())
  // Set once the first SUBSCRIBEs were answered: before that, a ready connection is not yet subscribed.
  let subscribed = false
  subscriber.on('ready', () => {
    // node-redis subscribes again by itself on a reconnect, before 'ready'; announcements sent meanwhile were missed.
    if (!subscribed) return
    log.info('invalidations subscribed again: L1 in use, from empty')
    l1?.resume()
  })
  subscriber.connect().then(
    async () => {
      await subscriber.subscribe(INVALIDATION_CHANNEL, (message) => {
        metrics.invalidation()
        try {
          const m = JSON.parse(message) as { table?: unknown; id?: unknown }
          if (typeof m.table === 'string' && typeof m.id === 'string') l1?.evict(rowKey(m.table, m.id))
          else l1?.clear()
        } catch {
          l1?.clear()
        }
      })
      await subscriber.subscribe(PURGE_CHANNEL, (message) => {
        const dropped = l1?.clear() ?? 0
        acknowledgePurge(redis, message, { instance: instanceName(port), dropped }).then(
          (request) => {
            metrics.purged()
            log.info({ request: request.id, dropped }, 'purge: L1 emptied, acknowledged')
          },
          (err: unknown) => log.warn({ err: errorMessage(err) }, 'purge request not acknowledged'),
        )
      })
      subscribed = true
      l1?.resume()
    },
    (err: unknown) => log.warn({ err: errorMessage(err) }, 'invalidations not subscribed: L1 off until they are'),
  )

  const reads = new ReadThrough({
    store: new RedisCacheStore(redis),
    load: async (resource: Resource, id: string) => {
      const res = await pool.query<{ row: string | null; ref: string }>({
        name: `api ${resource.route}`,
        text: resource.sql,
        values: [id],
      })
      return res.rows[0] ?? { row: null, ref: '' }
    },
    leaseMs: o.leaseMs,
    fillTtlMs: o.fillTtlMs,
    l1,
    onEvent: (event) => metrics.count(event),
    ...(o.beforeFill === undefined ? {} : { beforeFill: o.beforeFill }),
  })

  const app: FastifyInstance = Fastify({ logger: false, return503OnClosing: true })
  for (const resource of resourcesOf()) {
    app.get<{ Params: { id: string } }>(resource.route, async (request, reply) => {
      const started = performance.now()
      const id = normalizeId(request.params.id)
      if (id === undefined) return reply.code(400).send({ error: `not a UUID: ${request.params.id.slice(0, 60)}` })
      try {
        const r = await reads.read(resource, id)
        metrics.observe(resource.route, r.source, r.status, (performance.now() - started) / 1000)
        reply.header('x-cache', r.source).type('application/json; charset=utf-8')
        if (r.status === 404) return reply.code(404).send(`{"error":"not found: ${resource.table} of ${id}"}`)
        return reply.code(200).send(r.body)
      } catch (err) {
        log.warn({ err: errorMessage(err), route: resource.route }, 'PostgreSQL read failed')
        return reply.code(503).send({ error: `PostgreSQL read failed: ${errorMessage(err)}` })
      }
    })
  }
  app.get('/healthz', async (_request, reply) => {
    let postgres = 'up'
    try {
      await pool.query('SELECT 1')
    } catch {
      postgres = 'down'
    }
    const redisUp = redis.isReady
    const body = {
      status: postgres === 'down' ? 'down' : redisUp ? 'ok' : 'degraded',
      redis: redisUp ? 'up' : 'down',
      postgres,
      invalidations: subscriber.isReady ? 'subscribed' : 'not subscribed',
      l1: l1 === undefined ? 'off' : l1.suspended ? 'suspended' : `${l1.size} entries`,
      uptimeSeconds: Math.round(process.uptime()),
    }
    // Degraded still serves (from PostgreSQL): 200. Without PostgreSQL nothing can be answered right: 503.
    return reply.code(postgres === 'down' ? 503 : 200).send(body)
  })
  app.get('/metrics', async (_request, reply) => {
    reply.type(registry.contentType)
    return registry.metrics()
  })

  try {
    await app.listen({ host: o.host, port: o.port })
  } catch (err) {
    await Promise.allSettled([pool.end(), Promise.resolve(redis.destroy()), Promise.resolve(subscriber.destroy())])
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') throw configError(`--port ${o.port} is in use on ${o.host}: choose another`)
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      throw configError(`--host ${o.host} is not an address of this machine (${code})`)
    }
    throw err
  }
  const address = app.server.address()
  port = typeof address === 'object' && address !== null ? address.port : o.port
  const shownHost = o.host.includes(':') ? `[${o.host}]` : o.host
  // The local stack's Prometheus scrapes /metrics here (command="api"), as it does the engine commands.
  const target = registerPrometheusTarget('api', o.host, port, o.targetsDir)
  let closed: Promise<void> | undefined
  return {
    url: `http://${shownHost}:${port}`,
    port,
    close: () =>
      (closed ??= (async () => {
        target.remove()
        await app.close().catch(() => undefined)
        const quit = async (c: RedisClientType) => {
          if (c.isOpen) await c.close().catch(() => c.destroy())
          else c.destroy()
        }
        await Promise.allSettled([quit(subscriber), quit(redis), pool.end()])
      })()),
  }
}

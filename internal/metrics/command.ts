import type { Registry } from 'prom-client'
import type { Logger } from '../log/index.js'
import { newRegistry } from './registry.js'
import { startMetricsServer, type MetricsServer, type Readiness } from './server.js'

/** A command's metrics: its registry and endpoint, or nothing at all with --metrics-port 0. */
export interface CommandMetrics {
  registry: Registry
  server: MetricsServer
  /** Set what /readyz answers from now on. */
  setReadiness(r: () => Readiness): void
  /** Runs `fn` at close (before the endpoint stops). */
  onClose(fn: () => Promise<void> | void): void
  close(): Promise<void>
}

/**
 * Starts a command's metrics endpoint on host:port (port 0: metrics off, undefined returned); /readyz says
 * 'starting' until setReadiness. A port in use throws a CONFIG_ERROR naming --metrics-port (exit 2).
 */
export async function startCommandMetrics(o: {
  command: string
  host: string
  port: number
  log: Logger
  /** Tests: an ephemeral port even though `port` is 0. */
  ephemeral?: boolean
  targetsDir?: string | null
}): Promise<CommandMetrics | undefined> {
  if (o.port === 0 && o.ephemeral !== true) return undefined
  const registry = newRegistry(o.command)
  let readiness: () => Readiness = () => ({ ready: false, reason: 'starting: connecting to its servers' })
  const closers: (() => Promise<void> | void)[] = []
  const server = await startMetricsServer({
    command: o.command,
    host: o.host,
    port: o.port,
    registry,
    readiness: () => readiness(),
    ...(o.targetsDir === undefined ? {} : { targetsDir: o.targetsDir }),
  })
  o.log.info(
    { metrics: `${server.url}/metrics`, ...(server.targetFile ? { prometheusTarget: server.targetFile } : {}) },
    'metrics endpoint listening (/metrics, /healthz, /readyz)',
  )
  let closed: Promise<void> | undefined
  return {
    registry,
    server,
    setReadiness: (r) => (readiness = r),
    onClose: (fn) => void closers.push(fn),
    close: () =>
      (closed ??= (async () => {
        readiness = () => ({ ready: false, reason: 'stopped' })
        for (const fn of closers) await Promise.resolve(fn()).catch(() => undefined)
        await server.close()
      })()),
  }
}

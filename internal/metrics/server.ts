// The metrics endpoint of a command: GET /metrics (Prometheus text format), GET /healthz (the process and its event
// loop answer) and GET /readyz (200 when the command is doing its work; 503 with a JSON reason otherwise), on
// node:http: three routes need no framework. When the local stack's Prometheus is set up, the command registers
// itself in its file-based service discovery (README: Local stack, Metrics) and removes the file on exit.
import { mkdirSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { homedir } from 'node:os'
import path from 'node:path'
import type { Registry } from 'prom-client'
import { configError } from '../config/index.js'

/** What /readyz answers: ready, or why not. */
export type Readiness = { ready: true; detail?: Record<string, unknown> } | { ready: false; reason: string }

export interface MetricsServerOptions {
  /** The command's name: the discovery file is `<command>-<pid>.json`, labelled command=<command>. */
  command: string
  host: string
  /** 0 is an ephemeral port (tests); the commands turn metrics off with --metrics-port 0 before getting here. */
  port: number
  registry: Registry
  readiness: () => Readiness
  /** The folder of the local stack's pipeline targets; default `$CDC_STACK_HOME/conf/prometheus/targets/pipeline`,
   * used only when it exists (the stack's Prometheus was set up). */
  targetsDir?: string | null
}

export interface MetricsServer {
  /** The port it listens on. */
  port: number
  /** http://host:port */
  url: string
  /** The discovery file written, if any. */
  targetFile: string | undefined
  close(): Promise<void>
}

/** The folder the local stack's Prometheus discovers pipeline targets in. */
export function pipelineTargetsDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const home = env.CDC_STACK_HOME || path.join(homedir(), '.cache', 'cdc-pipeline')
  return path.join(home.replace(/^~(?=\/|$)/, homedir()), 'conf', 'prometheus', 'targets', 'pipeline')
}

/** Listens, or throws a CONFIG_ERROR naming --metrics-port/--metrics-host (exit 2) when it cannot. */
export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (url === '/metrics') {
      o.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': o.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
      )
    } else if (url === '/healthz') {
      json(res, 200, { status: 'ok', uptimeSeconds: Math.round(process.uptime()) })
    } else if (url === '/readyz') {
      const r = o.readiness()
      json(
        res,
        r.ready ? 200 : 503,
        r.ready ? { status: 'ready', ...r.detail } : { status: 'not ready', reason: r.reason },
      )
    } else {
      json(res, 404, { error: 'not found: GET /metrics, /healthz or /readyz' })
    }
  })
  server.keepAliveTimeout = 5_000
  await listen(server, o.host, o.port)
  const port = (server.address() as AddressInfo).port
  const shownHost = o.host.includes(':') ? `[${o.host}]` : o.host
  const target = registerPrometheusTarget(o.command, o.host, port, o.targetsDir)
  let closed: Promise<void> | undefined
  return {
    port,
    url: `http://${shownHost}:${port}`,
    targetFile: target.file,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        target.remove()
        server.close(() => resolve())
        server.closeAllConnections()
      })),
  }
}

/**
 * Registers host:port as `command` in the local stack's Prometheus file-based discovery when the stack's folder
 * exists (its Prometheus was set up): what startMetricsServer does, for a command serving /metrics on a server of
 * its own (node cmd/api). The file goes at remove() or at exit.
 */
export function registerPrometheusTarget(
  command: string,
  host: string,
  port: number,
  targetsDir?: string | null,
): { file: string | undefined; remove(): void } {
  const dir = targetsDir === undefined ? pipelineTargetsDir() : targetsDir
  const file = dir !== null && existsSync(dir) ? register(dir, command, host, port) : undefined
  const remove = () => {
    if (file !== undefined) rmSync(file, { force: true })
    process.removeListener('exit', remove)
  }
  process.once('exit', remove)
  return { file, remove }
}

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`)
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.removeListener('listening', onListening)
      if (err.code === 'EADDRINUSE') {
        reject(
          configError(
            `--metrics-port ${port} is in use on ${host}: another process listens there (another copy of the command?); ` +
              `choose another port, or --metrics-port 0 to turn metrics off`,
          ),
        )
      } else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
        reject(configError(`--metrics-host ${host} is not an address of this machine (${err.code})`))
      } else if (err.code === 'EACCES') {
        reject(configError(`--metrics-port ${port} may not be used by this user (EACCES): choose one above 1023`))
      } else reject(err)
    }
    const onListening = () => {
      server.removeListener('error', onError)
      resolve()
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen(port, host)
  })
}

// [{"targets": ["127.0.0.1:<port>"], "labels": {"command": "<command>"}}], written to a temporary name and renamed
// so that Prometheus never reads half a file. A wildcard host is scraped on loopback.
function register(dir: string, command: string, host: string, port: number): string | undefined {
  const address = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
  const file = path.join(dir, `${command}-${process.pid}.json`)
  try {
    mkdirSync(dir, { recursive: true })
    const target = `${address.includes(':') ? `[${address}]` : address}:${port}`
    writeFileSync(`${file}.tmp`, `${JSON.stringify([{ targets: [target], labels: { command } }])}\n`)
    renameSync(`${file}.tmp`, file)
    return file
  } catch {
    // The stack's folder not writable: the endpoint works all the same, Prometheus just does not find it.
    return undefined
  }
}

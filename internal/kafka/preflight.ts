import { connect } from 'node:net'
import { ErrorCodes, PipelineError, errorMessage } from '../errors/index.js'
import { createKafka } from './client.js'
import type { KafkaAdmin } from './ports.js'

/** How long the start-up checks wait for a server by default (--connect-timeout). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000

/** What one bootstrap address did with a Kafka ApiVersions request. */
export type ProbeResult =
  | { ok: true; broker: string }
  | {
      ok: false
      broker: string
      /** refused/unknown-host/no-tcp: nothing listens there; silent/not-kafka/closed: something does, not Kafka. */
      kind: 'refused' | 'unknown-host' | 'no-tcp' | 'silent' | 'not-kafka' | 'closed' | 'error'
      reason: string
    }

const API_VERSIONS = 18
const CORRELATION_ID = 0x0cdc
const CLIENT_ID = Buffer.from('cdc-preflight')

/** ApiVersions v0: every Kafka broker answers it, whatever versions it supports (KIP-511), before anything else. */
function apiVersionsRequest(): Buffer {
  const frame = Buffer.alloc(4 + 2 + 2 + 4 + 2 + CLIENT_ID.length)
  frame.writeInt32BE(frame.length - 4, 0)
  frame.writeInt16BE(API_VERSIONS, 4)
  frame.writeInt16BE(0, 6)
  frame.writeInt32BE(CORRELATION_ID, 8)
  frame.writeInt16BE(CLIENT_ID.length, 12)
  CLIENT_ID.copy(frame, 14)
  return frame
}

/** The first bytes of a non-Kafka answer, printable ('HTTP/1.1 400 Bad Request'). */
function shown(bytes: Buffer): string {
  const text = bytes
    .subarray(0, 40)
    .toString('latin1')
    .split(/[\r\n]/)[0]!
    .replace(/[^\x20-\x7e]/g, '.')
  return `'${text}'`
}

/**
 * Sends one ApiVersions request to `broker` (host:port) and waits for its answer until `deadline` (epoch ms). Says
 * what is there: nothing (refused, unknown host, no TCP connection), a listener that never answers, a server that
 * answers but not as Kafka (an HTTP port, PostgreSQL), or Kafka.
 */
export function probeKafka(broker: string, deadline: number, signal?: AbortSignal): Promise<ProbeResult> {
  const colon = broker.lastIndexOf(':')
  const host = broker.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  const port = Number(broker.slice(colon + 1))
  return new Promise((resolve) => {
    let connected = false
    let received = Buffer.alloc(0)
    const socket = connect({ host, port })
    const done = (result: ProbeResult) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(result)
    }
    const fail = (kind: Exclude<ProbeResult, { ok: true }>['kind'], reason: string) =>
      done({ ok: false, broker, kind, reason })
    const timer = setTimeout(
      () =>
        connected
          ? fail('silent', 'no answer to the API versions request')
          : fail('no-tcp', 'no TCP connection (connect timed out)'),
      Math.max(0, deadline - Date.now()),
    )
    signal?.addEventListener('abort', () => fail('error', 'not needed'), { once: true })
    socket.once('connect', () => {
      connected = true
      socket.write(apiVersionsRequest())
    })
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length < 8) return
      const size = received.readInt32BE(0)
      const correlationId = received.readInt32BE(4)
      if (correlationId === CORRELATION_ID && size >= 6 && size < 1 << 20) done({ ok: true, broker })
      else fail('not-kafka', `it answered the API versions request, but not as Kafka (${shown(received)})`)
    })
    socket.once('end', () => {
      if (received.length > 0) fail('not-kafka', `it answered, but not as Kafka (${shown(received)})`)
      else fail('closed', 'it closed the connection without answering the API versions request')
    })
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') fail('refused', 'connection refused')
      else if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') fail('unknown-host', `unknown host ${host}`)
      else if (err.code === 'ECONNRESET' && connected) fail('closed', 'connection reset by the server')
      else fail('error', errorMessage(err))
    })
  })
}

/** Resolves with the first bootstrap address that answers as Kafka, or with every failure when none does. */
async function firstKafka(brokers: string[], deadline: number): Promise<ProbeResult[]> {
  const others = new AbortController()
  return new Promise((resolve) => {
    const failures: ProbeResult[] = []
    for (const broker of brokers) {
      void probeKafka(broker, deadline, others.signal).then((r) => {
        if (r.ok) {
          others.abort()
          resolve([r])
        }
        failures.push(r)
        if (failures.length === brokers.length) resolve(brokers.map((b) => failures.find((f) => f.broker === b)!))
      })
    }
  })
}

/** The UNREACHABLE error of a preflight that found no Kafka broker at any bootstrap address. */
function unreachable(brokers: string[], failures: ProbeResult[], timeoutMs: number): PipelineError {
  const failed = failures.filter((f): f is Exclude<ProbeResult, { ok: true }> => !f.ok)
  const reasons = new Set(failed.map((f) => f.reason))
  const timedOut = failed.some((f) => f.kind === 'silent' || f.kind === 'no-tcp')
  const listening = failed.some((f) => ['silent', 'not-kafka', 'closed'].includes(f.kind))
  const what = reasons.size === 1 ? failed[0]!.reason : failed.map((f) => `${f.broker}: ${f.reason}`).join('; ')
  const within = timedOut ? ` within ${timeoutMs / 1000} s` : ''
  const hint = listening ? 'is it a Kafka listener? npm run stack:status' : 'is the stack up? npm run stack:up'
  return new PipelineError(
    ErrorCodes.UNREACHABLE,
    `cannot reach Kafka at ${brokers.join(',')}${within}: ${what} — ${hint}`,
  )
}

/** Options of {@link connectPreflightAdmin}. */
export interface PreflightOptions {
  /** The bound on the whole check (default {@link DEFAULT_CONNECT_TIMEOUT_MS}). */
  timeoutMs?: number
}

function isAuthError(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.name === 'KafkaJSSASLAuthenticationError') return true
  }
  return false
}

/**
 * An admin client for start-up checks, connected within `timeoutMs`: first one ApiVersions request to every bootstrap
 * address (so that a listener that never answers, or a port that is not Kafka's, is named at once), then the
 * kafkajs connection, quiet and with one retry. Throws one clear line: UNREACHABLE when no broker answered in time,
 * CONFIG_ERROR when one refused the credentials. The caller disconnects the admin.
 */
export async function connectPreflightAdmin(brokers: string[], options: PreflightOptions = {}): Promise<KafkaAdmin> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
  const deadline = Date.now() + timeoutMs
  const probed = await firstKafka(brokers, deadline)
  if (!probed.some((p) => p.ok)) throw unreachable(brokers, probed, timeoutMs)

  const remaining = Math.max(1, deadline - Date.now())
  const admin = createKafka({
    brokers,
    clientId: 'cdc-preflight',
    retries: 1,
    connectionTimeoutMs: Math.min(remaining, 3_000),
    requestTimeoutMs: remaining,
  }).admin()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), remaining)
  })
  try {
    await Promise.race([admin.connect(), timedOut])
  } catch (err) {
    await admin.disconnect().catch(() => undefined)
    const code = isAuthError(err) ? ErrorCodes.CONFIG_ERROR : ErrorCodes.UNREACHABLE
    throw new PipelineError(
      code,
      `cannot connect to Kafka at ${brokers.join(',')}: ${errorMessage(err)} — npm run stack:status`,
      { cause: err },
    )
  } finally {
    clearTimeout(timer)
  }
  return admin
}

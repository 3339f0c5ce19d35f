import { pino, type DestinationStream, type Level, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger } from 'pino'

/** Log levels accepted by {@link createLogger}, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** One of {@link LOG_LEVELS}. */
export type LogLevel = Level | 'silent'

/** How log records are written: one JSON object a line, or human-readable lines. */
export const LOG_FORMATS = ['json', 'pretty'] as const

/** One of {@link LOG_FORMATS}. */
export type LogFormat = (typeof LOG_FORMATS)[number]

/** The format when none is chosen: pretty for a person at a terminal, JSON lines for everything else. */
export function defaultLogFormat(): LogFormat {
  return process.stderr.isTTY === true ? 'pretty' : 'json'
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel
  /** Human-readable output; defaults to whether stderr is a terminal (JSON lines otherwise). */
  pretty?: boolean
  /** Where to write; defaults to stderr, so that stdout carries only a command's result. Tests pass a stream. */
  destination?: DestinationStream
  /** Bound to every record (e.g. the command name). */
  name?: string
}

/**
 * Secrets never reach the logs: the value of a key named like one of these (any case), or ending in "password"
 * (database.password, PG_APP_PASSWORD), is censored at any depth of a record, its bindings and a logged error.
 */
export const SECRET_KEYS = ['password', 'pgUrl', 'connectionString'] as const

const CENSOR = '[redacted]'
const SECRET = new Set<string>(SECRET_KEYS.map((k) => k.toLowerCase()))
// Deeper than this a record is cut (pino would still serialise it): nobody logs that on purpose.
const MAX_DEPTH = 64

function isSecretKey(key: string): boolean {
  const k = key.toLowerCase()
  return SECRET.has(k) || k.endsWith('password')
}

/**
 * A copy of `value` with the value of every secret key (see {@link SECRET_KEYS}) replaced by '[redacted]', however
 * deep; `value` itself is left alone. Walks plain objects and arrays; values with a toJSON (dates, buffers) and
 * errors pass as they are (pino serialises an error's own fields; {@link createLogger} redacts those too).
 */
export function redactSecrets(value: unknown): unknown {
  const seen = new WeakSet<object>()
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v !== 'object' || v === null) return v
    if (v instanceof Error || typeof (v as { toJSON?: unknown }).toJSON === 'function') return v
    if (seen.has(v)) return '[Circular]'
    if (depth >= MAX_DEPTH) return '[too deep]'
    seen.add(v)
    let out: unknown
    if (Array.isArray(v)) out = v.map((item) => walk(item, depth + 1))
    else {
      const copy: Record<string, unknown> = {}
      for (const [k, item] of Object.entries(v)) copy[k] = isSecretKey(k) ? CENSOR : walk(item, depth + 1)
      out = copy
    }
    seen.delete(v)
    return out
  }
  return walk(value, 0)
}

/** Builds the process's one logger; modules take `log.child({ module })` from it. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const usePretty = options.pretty ?? defaultLogFormat() === 'pretty'
  const base = {
    level: options.level ?? 'info',
    // Every record, the bindings (here and in redactChildren) and a logged error go through redactSecrets
    // (fast-redact's paths have a fixed depth: a password one level deeper than listed was logged).
    formatters: {
      log: (record: Record<string, unknown>) => redactSecrets(record) as Record<string, unknown>,
      bindings: (bindings: Record<string, unknown>) => redactSecrets(bindings) as Record<string, unknown>,
    },
    serializers: { err: (err: Error) => redactSecrets(pino.stdSerializers.err(err)) },
    ...(options.name === undefined ? {} : { name: options.name }),
  }
  // Synchronous writes to fd 2: nothing is lost when a command exits right after its last record.
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true })
  if (!usePretty) return redactChildren(pino(base, destination))
  // In-process pretty stream rather than a transport: no extra thread, and sync so nothing is lost at exit.
  const stream = pretty({
    colorize: options.destination === undefined && process.stderr.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: true,
    destination,
  })
  return redactChildren(pino(base, stream))
}

/**
 * pino applies formatters.bindings to the root's bindings only, not to a child's: every child (and its children,
 * which inherit the method) redacts its bindings before pino sees them.
 */
function redactChildren(logger: Logger): Logger {
  const child = logger.child
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings) as typeof bindings, options)
  } as Logger['child']
  return logger
}

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

/** Secrets never reach the logs: these paths are censored wherever a config object gets logged. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'pgUrl',
  '*.pgUrl',
  '*.*.pgUrl',
  'connectionString',
  '*.connectionString',
  '*.*.connectionString',
]

/** Builds the process's one logger; modules take `log.child({ module })` from it. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const usePretty = options.pretty ?? defaultLogFormat() === 'pretty'
  const base = {
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(options.name === undefined ? {} : { name: options.name }),
  }
  // Synchronous writes to fd 2: nothing is lost when a command exits right after its last record.
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true })
  if (!usePretty) return pino(base, destination)
  // In-process pretty stream rather than a transport: no extra thread, and sync so nothing is lost at exit.
  const stream = pretty({
    colorize: options.destination === undefined && process.stderr.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: true,
    destination,
  })
  return pino(base, stream)
}

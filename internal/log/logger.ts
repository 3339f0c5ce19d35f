import { pino, type DestinationStream, type Level, type Logger } from 'pino'
import pretty from 'pino-pretty'

export type { Logger } from 'pino'

/** Log levels accepted by {@link createLogger}, most verbose first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** One of {@link LOG_LEVELS}. */
export type LogLevel = Level | 'silent'

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  level?: LogLevel
  /** Human-readable output; defaults to whether stdout is a TTY (JSON lines otherwise). */
  pretty?: boolean
  /** Where to write; defaults to stdout. Tests pass a stream. */
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
  const usePretty = options.pretty ?? process.stdout.isTTY === true
  const base = {
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(options.name === undefined ? {} : { name: options.name }),
  }
  if (!usePretty) return options.destination === undefined ? pino(base) : pino(base, options.destination)
  // In-process pretty stream rather than a transport: no extra thread, and sync so nothing is lost at exit.
  const stream = pretty({
    colorize: options.destination === undefined && process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    sync: true,
    ...(options.destination === undefined ? {} : { destination: options.destination }),
  })
  return pino(base, stream)
}

import { readFileSync } from 'node:fs'
import yargs, { type Argv } from 'yargs'
import { isPipelineError, errorMessage } from '../errors/index.js'
import { configError } from '../config/index.js'
import { DATA_LOSS_EXIT_CODE, SOURCE_CHANGED_EXIT_CODE, type OptionDef } from '../pipeline/index.js'
import { helpText, readSetting, settingsOf, type CommandName, type SettingDef, type SettingReader } from './settings.js'

/** Exit codes of the commands. */
export const ExitCodes = {
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  dataLoss: DATA_LOSS_EXIT_CODE,
  sourceChanged: SOURCE_CHANGED_EXIT_CODE,
  forced: 130,
} as const

/** What each exit code means, for --help and the README. */
export const EXIT_CODE_DOCS: readonly (readonly [code: number, meaning: string])[] = [
  [ExitCodes.ok, 'ok'],
  [ExitCodes.failure, 'runtime failure (a batch that cannot be sent, a failed engine, stores that differ)'],
  [
    ExitCodes.usage,
    'usage error: an unknown flag, a bad or missing value, topics or tables that do not exist, a --metrics-port in use',
  ],
  [ExitCodes.unreachable, 'a dependency (Kafka, PostgreSQL, Cassandra, Connect, Redis) unreachable at start'],
  [
    ExitCodes.dataLoss,
    'consume, replicate, cache-sync: retention deleted messages the group had not consumed (see --on-data-loss)',
  ],
  [
    ExitCodes.sourceChanged,
    'replicate: changes from another PostgreSQL cluster, or LSNs gone backwards (a restore, a migration): re-snapshot',
  ],
  [ExitCodes.forced, 'forced by a second signal (or by a clean stop that took too long)'],
]

/** The exit code of a command that failed with `err`. */
export function exitCodeOf(err: unknown): number {
  if (isPipelineError(err, 'CONFIG_ERROR')) return ExitCodes.usage
  if (isPipelineError(err, 'UNREACHABLE')) return ExitCodes.unreachable
  if (isPipelineError(err, 'DATA_LOSS')) return ExitCodes.dataLoss
  if (isPipelineError(err, 'SOURCE_CHANGED')) return ExitCodes.sourceChanged
  return ExitCodes.failure
}

/**
 * Runs a command's main function: a misuse or startup failure prints one clear line (no stack trace) and exits
 * with its code (2 usage, 3 unreachable, 1 otherwise); the main function's own resolved code is the exit code
 * otherwise. The process exits as soon as main has finished (everything closed, the summary printed): a timer or
 * socket a client library left behind (kafkajs after it restarted a crashed consumer, for one) must not keep a
 * finished command alive.
 */
export function runCommand(name: string, main: () => Promise<number>): void {
  const exit = (code: number) => {
    process.exitCode = code
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
  }
  main().then(exit, (err: unknown) => {
    const message = isPipelineError(err) ? err.message : errorMessage(err)
    process.stderr.write(`${name}: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
    if (!isPipelineError(err) && process.env.DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    exit(exitCodeOf(err))
  })
}

/**
 * SIGINT/SIGTERM: the first asks `stop` to finish cleanly (stop fetching, drain, commit, close); a second one, or
 * `forceAfterMs` without an exit, forces the process out with 130.
 */
export function onShutdownSignals(
  stop: (signal: string) => void,
  write: (line: string) => void,
  forceAfterMs = 60_000,
): void {
  let stopping = false
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      write(`${signal} again: forcing exit`)
      process.exit(ExitCodes.forced)
    }
    stopping = true
    write(`${signal}: stopping cleanly (send it again to force)`)
    setTimeout(() => {
      write(`still stopping after ${forceAfterMs / 1000} s: forcing exit`)
      process.exit(ExitCodes.forced)
    }, forceAfterMs).unref()
    stop(signal)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
}

/** Aligned "label  value" lines for a final summary. */
export function formatSummary(title: string, rows: [string, string | number][]): string {
  const width = Math.max(...rows.map(([k]) => k.length))
  return [title, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)].join('\n') + '\n'
}

/** The version in package.json. */
export function packageVersion(): string {
  // dist/internal/cli/cli.js or internal/cli/cli.ts: the first package.json above.
  for (let dir = new URL('.', import.meta.url); dir.pathname !== '/'; dir = new URL('..', dir)) {
    try {
      return (JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { version: string }).version
    } catch {
      // Not here: one level up.
    }
  }
  return 'unknown'
}

const EPILOGUE = [
  'Flags win over environment variables, which win over the defaults. A duration is a number with a unit',
  '(500ms, 10s, 2m, 1h) or a bare number of seconds; a boolean is --flag, --no-flag or --flag=true/false',
  '(yes/no, 1/0, on/off).',
  '',
  'Exit codes:',
  ...EXIT_CODE_DOCS.map(([code, meaning]) => `  ${String(code).padEnd(4)} ${meaning}`),
].join('\n')

/** Adds table rows to a yargs instance: every value is kept as typed (the table's validators parse it). */
export function withSettings<T>(y: Argv<T>, rows: readonly SettingDef<unknown>[]): Argv<T> {
  for (const row of rows) {
    // No yargs type: a boolean keeps what was typed (--dry-run=yes), and --help shows the table's own labels.
    y = y.option(row.flag, {
      describe: helpText(row, process.env),
      ...(row.kind === 'boolean' ? {} : { requiresArg: true }),
    })
  }
  return y
}

/**
 * yargs for a command, with the command's own rows of the settings table (withEngineFlags adds the engine's): strict
 * (an unknown flag, a stray argument or a flag without its value is an error), --help that lists every flag with
 * its kind, environment variable and default and the exit codes, --version, and parse failures turned into one
 * CONFIG_ERROR line instead of yargs' usage dump.
 */
export function commandLine(name: CommandName, description: string, argv: string[]): Argv {
  const y = yargs(argv)
    .scriptName(`node cmd/${name}`)
    .usage(`$0 [options]\n\n${description}`)
    .strict()
    .parserConfiguration({
      // Flags are read by their dashed names; without this, an unknown --foo-bar is reported twice (foo-bar, fooBar).
      'camel-case-expansion': false,
      // Values stay text for the validators: yargs would read --count 0x10 as 16 and --count abc as NaN.
      'parse-numbers': false,
      'parse-positional-numbers': false,
    })
    .version('version', 'Show the version', packageVersion())
    .help('help')
    .alias('help', 'h')
    .epilogue(EPILOGUE)
    .wrap(Math.min(120, process.stdout.columns ?? 120))
    .fail((message, err) => {
      // yargs' own parse errors (YError) are usage errors; anything else was thrown by our code and goes on as is.
      if (err !== undefined && err !== null && err.name !== 'YError') throw err
      const text = message ?? errorMessage(err)
      const missing = /^Not enough arguments following: (.+)$/.exec(text)
      throw configError(`${missing ? `--${missing[1]} needs a value` : text} (see node cmd/${name} --help)`)
    })
  return withSettings(y, settingsOf(name, 'own'))
}

/**
 * Validates every setting of `command` now (flag > environment variable > default), so that a bad value is
 * reported before anything connects, and returns the reader of the validated values.
 */
export function readSettings(
  command: CommandName,
  argv: Readonly<Record<string, unknown>>,
  env: Readonly<Record<string, string | undefined>> = process.env,
): SettingReader {
  const values = new Map<OptionDef<unknown>, unknown>()
  const get: SettingReader = <T>(def: OptionDef<T>): T => {
    const key = def as OptionDef<unknown>
    if (!values.has(key)) values.set(key, readSetting(def, argv, env))
    return values.get(key) as T
  }
  for (const row of settingsOf(command)) get(row)
  return get
}

import yargs, { type Argv } from 'yargs'
import { isPipelineError, errorMessage } from '../errors/index.js'
import { configError } from '../config/index.js'

/** Exit codes of the commands. */
export const ExitCodes = { ok: 0, failure: 1, usage: 2, forced: 130 } as const

/**
 * Runs a command's main function: a misuse or startup failure prints one clear line (no stack trace) and exits
 * non-zero; the main function's own resolved code is the exit code otherwise. The process exits as soon as main has
 * finished (everything closed, the summary printed): a timer or socket a client library left behind (kafkajs after
 * it restarted a crashed consumer, for one) must not keep a finished command alive.
 */
export function runCommand(name: string, main: () => Promise<number>): void {
  const exit = (code: number) => {
    process.exitCode = code
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
  }
  main().then(exit, (err: unknown) => {
    const message = isPipelineError(err) ? err.message : errorMessage(err)
    process.stderr.write(`${name}: ${message}\n`)
    if (!isPipelineError(err) && process.env.DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`)
    exit(isPipelineError(err, 'CONFIG_ERROR') ? ExitCodes.usage : ExitCodes.failure)
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

/**
 * yargs for a command: strict (an unknown flag or a stray argument is an error), --help that lists every flag with
 * its environment variable and default, and parse failures turned into one CONFIG_ERROR line instead of yargs'
 * usage dump.
 */
export function commandLine(name: string, description: string, argv: string[]): Argv {
  return (
    yargs(argv)
      .scriptName(`node cmd/${name}`)
      .usage(`$0 [options]\n\n${description}`)
      .strict()
      // Flags are read by their dashed names; without this, an unknown --foo-bar is reported twice (foo-bar, fooBar).
      .parserConfiguration({ 'camel-case-expansion': false })
      .version(false)
      .help('help')
      .alias('help', 'h')
      .wrap(Math.min(120, process.stdout.columns ?? 120))
      .fail((message, err) => {
        throw err ?? configError(`${message} (see node cmd/${name} --help)`)
      })
  )
}

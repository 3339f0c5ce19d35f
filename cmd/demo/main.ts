// npm run demo (node cmd/demo): the whole pipeline in one command on the local stack, with a summary.
import { hideBin } from 'yargs/helpers'
import { commandLine, ExitCodes, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { loadDotEnv } from '../../internal/config/index.js'
import { formatDemoReport, runDemo } from '../../internal/demo/index.js'

const DESCRIPTION = `Brings the local stack up when needed, starts the consumer (into PostgreSQL), the CDC sink (into
Cassandra), cache-sync (into Redis) and the read API, produces events at a paced rate while they run (a live line per
stage on a terminal), waits until the stream goes quiet, then compares PostgreSQL with Cassandra row for row and
reads every key cache-sync announced through the API against PostgreSQL, and prints a summary: counts, work
amplification, live latency percentiles, MATCH or MISMATCH per table. Exits non-zero when they do not match. Progress goes to stderr, the
summary to stdout.`

async function main(): Promise<number> {
  loadDotEnv()
  const get = readSettings('demo', await commandLine('demo', DESCRIPTION, hideBin(process.argv)).parseAsync())
  let live = false
  const report = await runDemo({
    // dist/cmd/demo/main.js -> the repository root.
    root: new URL('../../..', import.meta.url).pathname,
    rate: get(S.demoRate),
    durationMs: get(S.demoDuration),
    seed: get(S.seed),
    quietMs: get(S.quiet),
    // The commands the demo starts read these from the environment too; the demo reads them to follow and compare.
    brokers: get(S.brokers),
    pgUrl: get(S.pgUrl),
    cassandraContactPoints: get(S.cassandraContactPoints),
    cassandraLocalDc: get(S.cassandraLocalDc),
    keyspace: get(S.cassandraKeyspace),
    say: (line) => {
      // A live line in progress is finished first.
      process.stderr.write(`${live ? '\n' : ''}${line}\n`)
      live = false
    },
    progress: process.stderr.isTTY
      ? (line) => {
          process.stderr.write(`\r\x1b[2K  ${line}`)
          live = true
        }
      : undefined,
  })
  // The summary starts on a line of its own even after a live line.
  if (live) process.stderr.write('\n')
  // The psql hint names the database the demo used (the local stack's, wherever .env put it).
  process.stdout.write(formatDemoReport(report, get(S.pgUrl)))
  return report.comparison.matches && report.cache.matches ? ExitCodes.ok : ExitCodes.failure
}

runCommand('demo', main)

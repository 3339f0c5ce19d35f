// npm run demo (node cmd/demo): the whole pipeline in one command on the local stack, with a summary.
import { hideBin } from 'yargs/helpers'
import { commandLine, ExitCodes, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { loadDotEnv } from '../../internal/config/index.js'
import { formatDemoReport, runDemo } from '../../internal/demo/index.js'

const DESCRIPTION = `Brings the local stack up when needed, produces events, consumes them into PostgreSQL and replicates
the changes into Cassandra until the stream goes quiet, then compares PostgreSQL with Cassandra row for row and
prints a summary. Exits non-zero when they do not match. Progress goes to stderr, the summary to stdout.`

async function main(): Promise<number> {
  loadDotEnv()
  const get = readSettings('demo', await commandLine('demo', DESCRIPTION, hideBin(process.argv)).parseAsync())
  const report = await runDemo({
    // dist/cmd/demo/main.js -> the repository root.
    root: new URL('../../..', import.meta.url).pathname,
    events: get(S.events),
    seed: get(S.seed),
    quietMs: get(S.quiet),
    // The commands the demo runs read these from the environment too; the demo reads them to compare the stores.
    pgUrl: get(S.pgUrl),
    cassandraContactPoints: get(S.cassandraContactPoints),
    cassandraLocalDc: get(S.cassandraLocalDc),
    keyspace: get(S.cassandraKeyspace),
    say: (line) => process.stderr.write(`${line}\n`),
  })
  process.stdout.write(formatDemoReport(report))
  return report.comparison.matches ? ExitCodes.ok : ExitCodes.failure
}

runCommand('demo', main)

// npm run demo (node cmd/demo): the whole pipeline in one command on the local stack, with a summary.
import { randomInt } from 'node:crypto'
import { hideBin } from 'yargs/helpers'
import { commandLine, ExitCodes, runCommand } from '../../internal/cli/index.js'
import {
  brokerList,
  loadDotEnv,
  nonEmptyString,
  nonNegativeInt,
  positiveInt,
  postgresUrl,
} from '../../internal/config/index.js'
import { formatDemoReport, runDemo } from '../../internal/demo/index.js'

const DESCRIPTION = `Brings the local stack up when needed, starts the consumer (into PostgreSQL) and the CDC sink (into
Cassandra), produces events at a paced rate while they run (a live line per stage on a terminal), waits until the
stream goes quiet, then compares PostgreSQL with Cassandra row for row and prints a summary: counts, work
amplification, live latency percentiles. Exits non-zero when they do not match.`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('demo', DESCRIPTION, hideBin(process.argv))
    .option('rate', { type: 'string', describe: 'events per second the producer is paced at', default: '2000' })
    .option('duration', { type: 'string', describe: 'seconds to produce for', default: '10' })
    .option('seed', { type: 'string', describe: 'generator seed [default: random, printed]' })
    .option('quiet', { type: 'string', describe: 'seconds without messages after which consuming stops', default: '5' })
    .parseAsync()
  let live = false
  const report = await runDemo({
    // dist/cmd/demo/main.js -> the repository root.
    root: new URL('../../..', import.meta.url).pathname,
    rate: positiveInt({ flag: 'rate', value: argv.rate }),
    durationSeconds: positiveInt({ flag: 'duration', value: argv.duration }),
    brokers: brokerList({
      flag: 'brokers',
      env: 'KAFKA_BROKERS',
      default: '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094',
    }),
    seed: argv.seed === undefined ? randomInt(2 ** 31) : nonNegativeInt({ flag: 'seed', value: argv.seed }),
    quietSeconds: positiveInt({ flag: 'quiet', value: argv.quiet }),
    pgUrl: postgresUrl({ flag: 'pg-url', env: 'PG_URL', default: 'postgres://cdc_app:cdc_app@127.0.0.1:5432/cdc_db' }),
    cassandraContactPoints: nonEmptyString({
      flag: 'cassandra-contact-points',
      env: 'CASSANDRA_CONTACT_POINTS',
      default: '127.0.0.1:9042',
    }).split(','),
    cassandraLocalDc: nonEmptyString({ flag: 'cassandra-local-dc', env: 'CASSANDRA_LOCAL_DC', default: 'datacenter1' }),
    keyspace: nonEmptyString({ flag: 'cassandra-keyspace', env: 'CASSANDRA_KEYSPACE', default: 'cdc_keyspace' }),
    say: (line) => {
      // A live line in progress is finished first.
      process.stdout.write(`${live ? '\n' : ''}${line}\n`)
      live = false
    },
    progress: process.stdout.isTTY
      ? (line) => {
          process.stdout.write(`\r\x1b[2K  ${line}`)
          live = true
        }
      : undefined,
  })
  process.stdout.write(formatDemoReport(report))
  return report.comparison.matches ? ExitCodes.ok : ExitCodes.failure
}

runCommand('demo', main)

// node cmd/replay-dlq: produce dead-lettered messages back to the topics they came from, after a fix.
import { hideBin } from 'yargs/helpers'
import { commandLine, ExitCodes, formatSummary, runCommand } from '../../internal/cli/index.js'
import { brokerList, configError, loadDotEnv } from '../../internal/config/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger, LOG_LEVELS, type LogLevel } from '../../internal/log/index.js'
import { parseErrorCodeFilter, replayDlq } from '../../internal/pipeline/index.js'

const DESCRIPTION = `Replays dead letters: reads <topic>.dlq from the beginning up to its end at start, and produces each
record whose x-error-code passes --error-code back to its x-original-topic with its original key, value and headers
(idempotent acks=all producer; header x-replayed-from-dlq-partition/-offset added). Records stay in the DLQ.
Replaying is idempotent in effect: the PostgreSQL upserts are version-guarded, so an event already applied changes
nothing, and replaying twice is harmless. Typical use: fix the cause (e.g. create the missing user), then
  node cmd/replay-dlq --topic orders --error-code MISSING_REFERENCE`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('replay-dlq', DESCRIPTION, hideBin(process.argv))
    .option('brokers', {
      type: 'string',
      describe: 'Kafka bootstrap servers host:port,... [env KAFKA_BROKERS] [default: the local stack]',
    })
    .option('topic', {
      type: 'string',
      array: true,
      describe:
        'source topic whose <topic>.dlq to replay; repeatable or comma-separated [default: the users and orders topics, env USERS_TOPIC/ORDERS_TOPIC or users,orders]',
    })
    .option('error-code', {
      type: 'string',
      array: true,
      describe:
        'replay only records with this x-error-code (DECODE_ERROR, VALIDATION_ERROR, MISSING_REFERENCE, SINK_REJECTED, ...); repeatable or comma-separated [default: all]',
    })
    .option('dry-run', {
      type: 'boolean',
      describe: 'list and count the matching records, produce nothing',
      default: false,
    })
    .option('summary-json', {
      type: 'boolean',
      describe: 'print the final summary as one JSON line instead of text',
      default: false,
    })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, describe: 'log level [env LOG_LEVEL]' })
    .parseAsync()

  const env = process.env
  const brokers = brokerList({
    flag: 'brokers',
    value: argv.brokers,
    env: 'KAFKA_BROKERS',
    default: '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094',
  })
  const defaultTopics = [env.USERS_TOPIC || 'users', env.ORDERS_TOPIC || 'orders']
  const given = (argv.topic ?? []).flatMap((t) => String(t).split(',')).map((t) => t.trim())
  if (given.some((t) => t === '')) throw configError('--topic must be a non-empty topic name')
  const topics = [...new Set(given.length > 0 ? given : defaultTopics)]
  const bad = topics.find((t) => t.endsWith('.dlq'))
  if (bad !== undefined) throw configError(`--topic names the source topic, not its DLQ (got '${bad}')`)
  const errorCodes = parseErrorCodeFilter(argv['error-code']?.map(String))
  const dryRun = argv['dry-run']
  const log = createLogger({ level: (argv['log-level'] ?? env.LOG_LEVEL ?? 'info') as LogLevel, name: 'replay-dlq' })

  // An unreachable cluster: one clear line now rather than a minute of client retries.
  await (await connectPreflightAdmin(brokers)).disconnect()
  const kafka = createKafka({ brokers, clientId: 'cdc-replay-dlq', logger: log })
  const stats = await replayDlq({
    kafka,
    topics,
    errorCodes,
    dryRun,
    log,
    onMatch: dryRun
      ? (r, info) =>
          process.stdout.write(
            `${r.topic}/${r.partition}@${r.offset} <- ${info.originalTopic}/${info.originalPartition}@${info.originalOffset}` +
              ` key=${info.originalKey ?? '-'} ${info.errorCode} (attempts ${info.attempts}): ${info.errorMessage}\n`,
          )
      : undefined,
  })
  if (argv['summary-json']) {
    process.stdout.write(`${JSON.stringify({ ...stats, dryRun })}\n`)
  } else {
    process.stdout.write(
      formatSummary(`replay-dlq summary${dryRun ? ' (dry run: nothing produced)' : ''}`, [
        ['read', stats.read],
        ['matched', stats.matched],
        ['replayed', stats.replayed],
        ['unreadable', stats.invalid],
        ...Object.entries(stats.byTopic).map(([t, s]): [string, string] => [
          `  ${t}`,
          `read ${s.read}, matched ${s.matched}, replayed ${s.replayed}`,
        ]),
      ]),
    )
  }
  return ExitCodes.ok
}

runCommand('replay-dlq', main)

// node cmd/replay-dlq: produce dead-lettered messages back to the topics they came from, after a fix.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  ExitCodes,
  formatSummary,
  readSettings,
  runCommand,
  SETTINGS as S,
} from '../../internal/cli/index.js'
import { configError, loadDotEnv } from '../../internal/config/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { replayMetrics, startCommandMetrics } from '../../internal/metrics/index.js'
import { replayDlq, type ReplayStats } from '../../internal/pipeline/index.js'

const DESCRIPTION = `Replays dead letters: reads <topic>.dlq from the beginning up to its end at start, and produces each
record whose x-error-code passes --error-code back to its x-original-topic with its original key, value and headers
(idempotent acks=all producer; header x-replayed-from-dlq-partition/-offset added). Records stay in the DLQ.
Replaying is idempotent in effect: the PostgreSQL upserts are version-guarded, so an event already applied changes
nothing, and replaying twice is harmless. Typical use: fix the cause (e.g. create the missing user), then
  node cmd/replay-dlq --topic orders --error-code MISSING_REFERENCE`

async function main(): Promise<number> {
  loadDotEnv()
  const get = readSettings(
    'replay-dlq',
    await commandLine('replay-dlq', DESCRIPTION, hideBin(process.argv)).parseAsync(),
  )
  const brokers = get(S.brokers)
  const topics = [...new Set(get(S.replayTopics))]
  const bad = topics.find((t) => t.endsWith('.dlq'))
  if (bad !== undefined) throw configError(`--topic names the source topic, not its DLQ (got '${bad}')`)
  const errorCodes = get(S.errorCodes)
  const dryRun = get(S.dryRun)
  const log = createLogger({ level: get(S.logLevel), pretty: get(S.logFormat) === 'pretty', name: 'replay-dlq' })

  // The endpoint first: a port in use is a usage error, named before anything connects.
  const metrics = await startCommandMetrics({
    command: 'replay-dlq',
    host: get(S.metricsHost),
    port: get(S.replayMetricsPort),
    log,
  })
  const live: ReplayStats = { read: 0, matched: 0, replayed: 0, invalid: 0, byTopic: {} }
  if (metrics !== undefined) {
    replayMetrics(metrics.registry, () => live.byTopic)
  }
  try {
    return await replay()
  } finally {
    await metrics?.close()
  }

  async function replay(): Promise<number> {
    // An unreachable cluster: one clear line now rather than a minute of client retries.
    await (await connectPreflightAdmin(brokers, { timeoutMs: get(S.connectTimeout) })).disconnect()
    const kafka = createKafka({ brokers, clientId: 'cdc-replay-dlq', logger: log })
    metrics?.setReadiness(() => ({ ready: true }))
    const stats = await replayDlq({
      stats: live,
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
    if (get(S.summaryJson)) {
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
}

runCommand('replay-dlq', main)

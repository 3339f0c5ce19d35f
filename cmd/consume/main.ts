// node cmd/consume: the consumer group that sinks user and order events into PostgreSQL, each partition worked
// independently, committing offsets only after the database has committed.
import { hideBin } from 'yargs/helpers'
import {
  commandLine,
  engineSettings,
  onShutdownSignals,
  readSettings,
  runCommand,
  withEngineFlags,
  SETTINGS as S,
} from '../../internal/cli/index.js'
import { configError, loadDotEnv } from '../../internal/config/index.js'
import { allTopics } from '../../internal/model/index.js'
import { connectPreflightAdmin, createKafka } from '../../internal/kafka/index.js'
import { createLogger } from '../../internal/log/index.js'
import { reportRun, runPipeline } from '../../internal/pipeline/index.js'
import { checkPostgres } from '../../internal/sinks/postgres/index.js'

const DESCRIPTION = `Consumes the users and orders topics in a consumer group and writes them into PostgreSQL: every
assigned partition worked concurrently (in the main thread, or one worker thread each with --workers auto, up to --max-workers),
batched version-guarded upserts in one transaction per batch; an order fetched before its user waits in its
partition's waiting room while the partition goes on; offsets committed only after the transaction. Transient failures are retried with exponential backoff and jitter; what cannot be
applied goes to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await withEngineFlags(commandLine('consume', DESCRIPTION, hideBin(process.argv))).parseAsync()
  const get = readSettings('consume', argv)
  const brokers = get(S.brokers)
  const pgUrl = get(S.pgUrl)
  const groupId = get(S.consumeGroup)
  const topicNames = { user: get(S.usersTopic), order: get(S.ordersTopic), product: get(S.productsTopic) }
  const topics = get(S.consumeTopics)
  for (const t of topics) {
    if (!allTopics(topicNames).includes(t)) {
      throw configError(`--topics may only name the entity topics ${allTopics(topicNames).join(', ')} (got '${t}')`)
    }
  }
  const engine = engineSettings(argv)
  const log = createLogger({ level: engine.logLevel, pretty: engine.logFormat === 'pretty', name: 'consume' })

  // Kafka first, within --connect-timeout: an unreachable broker is named before anything else starts.
  await (await connectPreflightAdmin(brokers, { timeoutMs: engine.connectTimeoutMs })).disconnect()
  const sinkOptions = { pgUrl, topics: topicNames }
  const kafka = createKafka({ brokers, clientId: 'cdc-consume', logger: log })
  return reportRun('consume', log, engine.summaryJson, () =>
    runPipeline(
      kafka,
      brokers,
      {
        kafka,
        groupId,
        topics,
        sink: {
          module: new URL('../../internal/sinks/postgres/batch-sink.js', import.meta.url).href,
          options: sinkOptions,
        },
        ...engine.options,
        connectTimeoutMs: engine.connectTimeoutMs,
        // Orders refer to users: while catching up, an order is tried once the users before it are written.
        dependsOn: { [topicNames.order]: [topicNames.user] },
        log,
        preflight: () => checkPostgres({ connectionString: pgUrl, timeoutMs: engine.connectTimeoutMs }),
        onStarted: (stop) => onShutdownSignals(stop, (line) => log.info(line)),
      },
      log,
    ),
  )
}

runCommand('consume', main)

// node cmd/consume: the consumer group that sinks user and order events into PostgreSQL, each partition worked
// independently, committing offsets only after the database has committed.
import { runSinkCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { configError } from '../../internal/config/index.js'
import { allTopics } from '../../internal/model/index.js'
import { postgresSinkModule } from '../../internal/sinks/postgres/index.js'

const DESCRIPTION = `Consumes the users and orders topics in a consumer group and writes them into PostgreSQL: every
assigned partition worked concurrently (in the main thread, or one worker thread each with --workers auto, up to --max-workers),
batched version-guarded upserts in one transaction per batch; an order fetched before its user waits in its
partition's waiting room while the partition goes on; offsets committed only after the transaction. Transient failures are retried with exponential backoff and jitter; what cannot be
applied goes to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

runSinkCommand({
  name: 'consume',
  description: DESCRIPTION,
  sink: postgresSinkModule,
  group: S.consumeGroup,
  clientId: 'cdc-consume',
  metricsPort: S.consumeMetricsPort,
  plan: (get) => {
    const topicNames = { user: get(S.usersTopic), order: get(S.ordersTopic), product: get(S.productsTopic) }
    const topics = get(S.consumeTopics)
    for (const t of topics) {
      if (!allTopics(topicNames).includes(t)) {
        throw configError(`--topics may only name the entity topics ${allTopics(topicNames).join(', ')} (got '${t}')`)
      }
    }
    // Orders refer to users: while catching up, an order is tried once the users before it are written.
    return { topics, options: { topics: topicNames }, dependsOn: { [topicNames.order]: [topicNames.user] } }
  },
})

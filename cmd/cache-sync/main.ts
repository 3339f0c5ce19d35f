// node cmd/cache-sync: the consumer group that keeps the Redis cache consistent with Debezium's change topics
// (cdc.public.users, orders, products), through the same consume engine as node cmd/replicate.
import { runSinkCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { parseCacheTopics, redisSinkModule } from '../../internal/sinks/redis/index.js'

const DESCRIPTION = `Consumes Debezium's change topics in a consumer group and keeps the Redis cache consistent with
PostgreSQL: --mode invalidate (the default) deletes each changed row's cached copy, --mode refresh writes the new row;
either way one Lua script per change refuses a change older than the key's version (its LSN), leaves a versioned
tombstone after a delete (--tombstone-ttl), invalidates the lists the row is in (cdc:user-orders:<user_id>, the old
and the new user's) and announces every key on the pub/sub channel cdc:invalidations. Offsets are committed only
after Redis acknowledged. Redis unavailable: the batch is retried with exponential backoff, at most 1 s apart, until it is back.
A TRUNCATE drops the table's keys written before it (--on-truncate). Undecodable changes go to <topic>.dlq with the reason. SIGINT/SIGTERM stop cleanly (a second one forces).`

runSinkCommand({
  name: 'cache-sync',
  description: DESCRIPTION,
  sink: redisSinkModule,
  group: S.cacheSyncGroup,
  clientId: 'cdc-cache-sync',
  metricsPort: S.cacheSyncMetricsPort,
  plan: (get) => {
    const topics = parseCacheTopics(get(S.cacheSyncTopics))
    return { topics: Object.keys(topics), options: { topics } }
  },
})

// node cmd/replicate: the consumer group that replicates Debezium's change events (cdc.public.users,
// cdc.public.orders) into Cassandra, through the same consume engine as node cmd/consume.
import { runSinkCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { cassandraSinkModule, parseTopicTables, resolveDerivedTables } from '../../internal/sinks/cassandra/index.js'

const DESCRIPTION = `Consumes Debezium's change topics in a consumer group and replicates every change into Cassandra
(users, orders, orders_by_user; with --tables, any other table, its Cassandra table derived from the PostgreSQL
catalog and created if missing): every assigned partition worked concurrently (in the main thread, or one worker
thread each with --workers auto), prepared statements with bounded
concurrency, every write stamped USING TIMESTAMP from the change's PostgreSQL LSN so that redeliveries and replays
converge and a late change never overwrites a newer one. Offsets are committed only after Cassandra acknowledged
the writes. Cassandra unavailable: the batch is retried with exponential backoff until it is back. Undecodable
changes go to <topic>.dlq with the reason. A column added in PostgreSQL is added to the Cassandra table(s) and
written; a column the table requires missing from a change (dropped or renamed) goes to the DLQ as SCHEMA_MISMATCH,
with the table's later changes, never written as null. The PostgreSQL cluster is recorded in
<keyspace>.replication_source: changes from another one (or LSNs gone backwards) stop replicate with exit code 5 and
the recovery (re-snapshot, docs/faults.md). SIGINT/SIGTERM stop cleanly (a second one forces).`

runSinkCommand({
  name: 'replicate',
  description: DESCRIPTION,
  sink: cassandraSinkModule,
  group: S.replicateGroup,
  clientId: 'cdc-replicate',
  metricsPort: S.replicateMetricsPort,
  // The slot Debezium reads: its retained WAL and lag in bytes, and whether it has a reader.
  slotsOf: (options) => options.pgUrl,
  plan: (get) => {
    const topicTables = parseTopicTables(get(S.replicateTopics))
    return { topics: Object.keys(topicTables), options: { topics: topicTables } }
  },
  // --tables: the tables without an entity definition, each one's definition derived from PostgreSQL's catalog.
  resolve: async (options, get, { log, timeoutMs }) => {
    const tables = get(S.replicateTables)
    if (tables.length === 0) return {}
    const derived = await resolveDerivedTables(
      options.pgUrl!,
      tables,
      get(S.topicPrefix),
      Object.keys(options.topics),
      timeoutMs,
    )
    for (const t of Object.values(derived)) {
      if (t.problem !== undefined)
        log.warn({ table: `${t.schema}.${t.table}` }, `${t.problem}: its changes go to the DLQ`)
    }
    return Object.keys(derived).length === 0 ? {} : { topics: Object.keys(derived), options: { derived } }
  },
})

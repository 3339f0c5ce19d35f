// Every setting of every command, once: its flag, environment variable, default, validator, one-line doc and the
// commands that take it. The yargs options, the --help text and the README's configuration tables are generated
// from this table (test/readme-config.test.ts holds the README to it).
import { randomInt } from 'node:crypto'
import {
  bool,
  brokerList,
  configError,
  duration,
  formatDuration,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  positiveDuration,
  positiveInt,
  postgresUrl,
  redactUrl,
  resolveSetting,
  stackAddresses,
  type Env,
  type Setting,
} from '../config/index.js'
import { DEFAULT_CONNECT_TIMEOUT_MS } from '../kafka/index.js'
import { errorMessage, type ErrorCode } from '../errors/index.js'
import { LOG_FORMATS, LOG_LEVELS, defaultLogFormat, type LogFormat, type LogLevel } from '../log/index.js'
import {
  DATA_LOSS_POLICIES,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_MAX_PARKED_BYTES,
  DEFAULT_MAX_PARKED_MESSAGES,
  MISSING_REFERENCE_RETRY_POLICY,
  defaultMaxWorkers,
  parseErrorCodeFilter,
  type DataLossPolicy,
  type OptionDef,
  type OptionKind,
  type OptionReader,
} from '../pipeline/index.js'
import { DEFAULT_MIX, DEFAULT_TOPIC_LAYOUT, type OperationMix } from '../producer/index.js'
import { ENTITY_TABLES, allTopics, type TopicNames } from '../model/index.js'
import { CASSANDRA_OPTIONS } from '../sinks/cassandra/index.js'
import { REDIS_OPTIONS } from '../sinks/redis/index.js'
import { PG_URL_OPTION } from '../sinks/postgres/index.js'

/** The commands (node cmd/<name>). */
export const COMMANDS = [
  'produce',
  'consume',
  'replicate',
  'cache-sync',
  'replay-dlq',
  'demo',
  'cdc-add-table',
  'resnapshot',
  'api',
  'purge',
] as const
export type CommandName = (typeof COMMANDS)[number]

/** What a value looks like, for --help. */
export type SettingKind = OptionKind

/** Reads a validated setting (see {@link readSetting}). */
export type SettingReader = OptionReader

/**
 * One row of the table: an option (flag, environment variable, default, validator, doc; a sink declares its own in
 * its options.ts) and the commands that take it.
 */
export interface SettingDef<T> extends OptionDef<T> {
  commands: readonly CommandName[]
  /** Set by the engine of node cmd/consume and node cmd/replicate (withEngineFlags adds these to a command). */
  engine?: true
}

const setting = <T>(def: SettingDef<T>): SettingDef<T> => def

/** Splits 'a,b' (or a repeated flag) into trimmed entries; an empty entry is an error. */
function list(s: Setting<string[]>): string[] {
  const r = resolveSetting(s, true)
  const entries = (Array.isArray(r.raw) ? r.raw : [r.raw]).flatMap((v) => String(v).split(',')).map((v) => v.trim())
  if (typeof r.raw === 'boolean' || entries.some((e) => e === '')) {
    throw configError(`${r.label} must be a comma-separated list of non-empty names (got ${JSON.stringify(r.raw)})`)
  }
  return entries
}

/** --mix: three non-negative weights CREATE,UPDATE,DELETE, not all 0. */
function mix(s: Setting<OperationMix>): OperationMix {
  const r = resolveSetting(s)
  if (r.origin === 'default' && s.default !== undefined) return s.default
  const parts = String(r.raw)
    .split(',')
    .map((p) => p.trim())
  const nums = parts.map((p) => (/^\d+(\.\d+)?$/.test(p) ? Number(p) : Number.NaN))
  if (parts.length !== 3 || nums.some((n) => !Number.isFinite(n)) || nums.every((n) => n === 0)) {
    throw configError(`${r.label} must be three non-negative weights CREATE,UPDATE,DELETE, not all 0 (got '${r.raw}')`)
  }
  return { create: nums[0]!, update: nums[1]!, delete: nums[2]! }
}

const KAFKA_COMMANDS = ['produce', 'consume', 'replicate', 'cache-sync', 'replay-dlq'] as const

/**
 * The default metrics port of each command that serves metrics (compose's Prometheus scrapes these). node cmd/api
 * serves /metrics on its HTTP port (--port), so its entry is that port's default.
 */
export const DEFAULT_METRICS_PORTS = {
  consume: 9464,
  replicate: 9465,
  'replay-dlq': 9466,
  produce: 9467,
  'cache-sync': 9468,
  api: 8088,
} as const

/** A TCP port, 0 to 65535. */
function port(s: Setting<number>): number {
  const n = nonNegativeInt(s)
  if (n > 65_535) throw configError(`${resolveSetting(s).label} must be a port: 0 to 65535 (got ${n})`)
  return n
}

const metricsPort = (command: Exclude<keyof typeof DEFAULT_METRICS_PORTS, 'api'>): SettingDef<number> => ({
  flag: 'metrics-port',
  kind: 'number',
  default: DEFAULT_METRICS_PORTS[command],
  parse: port,
  doc: 'port of the Prometheus /metrics, /healthz and /readyz endpoint; 0 = off (README: Observability)',
  commands: [command],
})
const ENGINE_COMMANDS = ['consume', 'replicate', 'cache-sync'] as const

/** The table. The order of its rows is the order of --help and of the README tables. */
// The topic of each entity as the settings give it (the definitions' defaults for any other).
const entityTopics = (get: SettingReader): TopicNames => ({
  user: get(SETTINGS.usersTopic),
  order: get(SETTINGS.ordersTopic),
  product: get(SETTINGS.productsTopic),
})

export const SETTINGS = {
  demoRate: setting({
    flag: 'rate',
    kind: 'number',
    default: 2_000,
    parse: positiveInt,
    doc: 'events per second the producer is paced at, while the consumer and the CDC sink run',
    commands: ['demo'],
  }),
  demoDuration: setting({
    flag: 'duration',
    kind: 'duration',
    default: 10_000,
    parse: positiveDuration,
    doc: 'how long to produce for',
    commands: ['demo'],
  }),
  count: setting({
    flag: 'count',
    kind: 'number',
    default: 10_000,
    parse: nonNegativeInt,
    doc: 'events to produce; 0 = no limit (then set --duration or stop with Ctrl-C)',
    commands: ['produce'],
  }),
  rate: setting({
    flag: 'rate',
    kind: 'number',
    default: 0,
    parse: nonNegativeNumber,
    doc: 'events per second; 0 = as fast as the cluster takes them',
    commands: ['produce'],
  }),
  duration: setting({
    flag: 'duration',
    kind: 'duration',
    default: 0,
    parse: duration,
    doc: 'stop producing after this long; 0 = no limit',
    commands: ['produce'],
  }),
  seed: setting({
    flag: 'seed',
    kind: 'number',
    fallback: () => randomInt(2 ** 31),
    defaultText: 'random, printed',
    parse: nonNegativeInt,
    doc: 'generator seed: the same seed gives the same events',
    commands: ['produce', 'demo'],
  }),
  quiet: setting({
    flag: 'quiet',
    kind: 'duration',
    default: 5_000,
    parse: positiveDuration,
    doc: 'how long without messages after which consuming stops',
    commands: ['demo'],
  }),
  batchSize: setting({
    flag: 'batch-size',
    kind: 'number',
    default: 2_000,
    parse: positiveInt,
    doc: 'events per produce request',
    commands: ['produce'],
  }),
  mix: setting({
    flag: 'mix',
    kind: 'list',
    default: DEFAULT_MIX,
    parse: mix,
    doc: 'relative weights of CREATE,UPDATE,DELETE',
    commands: ['produce'],
  }),
  brokers: setting<string[]>({
    flag: 'brokers',
    env: 'KAFKA_BROKERS',
    kind: 'list',
    // The local stack's brokers, wherever .env moved them: the stack reads the same variables.
    fallback: (_, env) => stackAddresses(env).brokers,
    derivedFrom: ['KAFKA_PORT_BASE'],
    defaultText: 'the local stack: 127.0.0.1 at KAFKA_PORT_BASE, +1, +2 (9092,9093,9094)',
    parse: brokerList,
    doc: 'Kafka bootstrap servers host:port,...',
    commands: [...KAFKA_COMMANDS, 'cdc-add-table', 'resnapshot'],
  }),
  pgUrl: setting({ ...PG_URL_OPTION, commands: ['consume', 'replicate', 'cache-sync'] }),
  consumeGroup: setting({
    flag: 'group',
    kind: 'string',
    default: 'cdc-postgres-sink',
    parse: nonEmptyString,
    doc: 'consumer group id',
    commands: ['consume'],
  }),
  replicateGroup: setting({
    flag: 'group',
    kind: 'string',
    default: 'cdc-cassandra-sink',
    parse: nonEmptyString,
    doc: 'consumer group id',
    commands: ['replicate'],
  }),
  cacheSyncGroup: setting({
    flag: 'group',
    kind: 'string',
    default: 'cdc-redis-cache',
    parse: nonEmptyString,
    doc: 'consumer group id',
    commands: ['cache-sync'],
  }),
  usersTopic: setting({
    flag: 'users-topic',
    env: 'USERS_TOPIC',
    kind: 'string',
    default: 'users',
    parse: nonEmptyString,
    doc: 'topic of user events',
    commands: ['produce', 'consume'],
  }),
  ordersTopic: setting({
    flag: 'orders-topic',
    env: 'ORDERS_TOPIC',
    kind: 'string',
    default: 'orders',
    parse: nonEmptyString,
    doc: 'topic of order events',
    commands: ['produce', 'consume'],
  }),
  productsTopic: setting({
    flag: 'products-topic',
    env: 'PRODUCTS_TOPIC',
    kind: 'string',
    default: 'products',
    parse: nonEmptyString,
    doc: 'topic of product events',
    commands: ['produce', 'consume'],
  }),
  consumeTopics: setting<string[]>({
    flag: 'topics',
    kind: 'list',
    fallback: (get): string[] => allTopics(entityTopics(get)),
    defaultText: 'all',
    parse: list,
    doc: 'which entity topics (users, orders, ...) to consume, comma-separated',
    commands: ['consume'],
  }),
  replicateTopics: setting<string[]>({
    flag: 'topics',
    kind: 'list',
    default: ENTITY_TABLES.map((table) => `cdc.public.${table}`),
    defaultText: 'cdc.public.<table> of every entity',
    parse: list,
    doc: "change topics; each carries the table its last part names (<prefix>.<schema>.users), or say 'topic=users'",
    commands: ['replicate'],
  }),
  cacheSyncTopics: setting<string[]>({
    flag: 'topics',
    kind: 'list',
    default: ENTITY_TABLES.map((table) => `cdc.public.${table}`),
    defaultText: 'cdc.public.<table> of every entity',
    parse: list,
    doc: "change topics of tables with an entity definition; each carries the table its last part names, or say 'topic=users'",
    commands: ['cache-sync'],
  }),
  replicateTables: setting<string[]>({
    flag: 'tables',
    env: 'REPLICATE_TABLES',
    kind: 'list',
    default: [],
    defaultText: 'none',
    parse: (s) => (resolveSetting(s).origin === 'default' ? [] : list(s)),
    doc: "tables without an entity definition to replicate too, schema.table,...; 'publication' = every table of cdc_pub; each one's Cassandra table is derived from the catalog (docs/type-mapping.md)",
    commands: ['replicate'],
  }),
  topicPrefix: setting({
    flag: 'topic-prefix',
    env: 'DEBEZIUM_TOPIC_PREFIX',
    kind: 'string',
    default: 'cdc',
    parse: nonEmptyString,
    doc: "Debezium's topic.prefix: a table's change topic is <prefix>.<schema>.<table>",
    commands: ['replicate', 'cdc-add-table'],
  }),
  pgOwnerUrl: setting({
    flag: 'pg-owner-url',
    env: 'PG_OWNER_URL',
    kind: 'string',
    fallback: (_, env) =>
      `postgres://cdc_owner:${encodeURIComponent(env.PG_OWNER_PASSWORD || 'cdc_owner')}@127.0.0.1:${env.PG_PORT || '5432'}/cdc_db`,
    derivedFrom: ['PG_PORT', 'PG_OWNER_PASSWORD'],
    defaultText:
      "the local stack's cdc_db as its owner: postgres://cdc_owner:PG_OWNER_PASSWORD@127.0.0.1:PG_PORT/cdc_db",
    parse: postgresUrl,
    doc: 'PostgreSQL as the role that owns the table and the publication cdc_pub (it adds the table and grants the rights)',
    commands: ['cdc-add-table'],
  }),
  connectUrl: setting({
    flag: 'connect-url',
    env: 'CONNECT_URL',
    kind: 'string',
    fallback: (_, env) => stackAddresses(env).connectUrl,
    derivedFrom: ['CONNECT_PORT'],
    defaultText: 'the local stack: http://127.0.0.1:CONNECT_PORT (8083)',
    parse: nonEmptyString,
    doc: "Kafka Connect's REST API",
    commands: ['cdc-add-table', 'resnapshot'],
  }),
  connectorName: setting({
    flag: 'connector',
    env: 'CONNECTOR_NAME',
    kind: 'string',
    default: 'cdc-postgres',
    parse: nonEmptyString,
    doc: 'the Debezium connector whose table.include.list gets the table',
    commands: ['cdc-add-table'],
  }),
  changeTopicPartitions: setting({
    flag: 'partitions',
    env: 'DEBEZIUM_TOPIC_PARTITIONS',
    kind: 'number',
    default: 3,
    parse: positiveInt,
    doc: 'partitions of the change topic when created (as stack:up creates cdc.public.users)',
    commands: ['cdc-add-table'],
  }),
  changeTopicRf: setting({
    flag: 'replication-factor',
    env: 'DEBEZIUM_TOPIC_RF',
    kind: 'number',
    default: 3,
    parse: positiveInt,
    doc: 'replication factor of the change topic when created (min.insync.replicas 2 when it is 3 or more)',
    commands: ['cdc-add-table'],
  }),
  resnapshotTables: setting<string[]>({
    flag: 'table',
    kind: 'list',
    fallback: () => [],
    defaultText: 'none (required)',
    parse: list,
    doc: 'the tables to re-snapshot: users, orders, products or schema.table; repeatable or comma-separated',
    commands: ['resnapshot'],
  }),
  resnapshotWhere: setting<string | undefined>({
    flag: 'where',
    kind: 'string',
    fallback: () => undefined,
    defaultText: 'every row',
    parse: nonEmptyString,
    doc: "an SQL condition on the table's columns (Debezium's additional-conditions): only those rows are read again; no reconcile pass then",
    commands: ['resnapshot'],
  }),
  resnapshotWait: setting({
    flag: 'wait',
    kind: 'boolean',
    default: true,
    parse: bool,
    doc: 'wait until Debezium reports the snapshot completed, then run the reconcile pass; --no-wait only signals',
    commands: ['resnapshot'],
  }),
  resnapshotWaitTimeout: setting({
    flag: 'wait-timeout',
    kind: 'duration',
    default: 30 * 60_000,
    parse: positiveDuration,
    doc: 'how long --wait waits for the snapshot to complete (then exit 1; the snapshot goes on)',
    commands: ['resnapshot'],
  }),
  resnapshotPgUrl: setting({
    ...PG_URL_OPTION,
    doc: 'PostgreSQL as the runtime role cdc_app: inserts the signal into public.debezium_signal, checks the publication, reads the ids the reconcile pass keeps',
    commands: ['resnapshot'],
  }),
  resnapshotConnector: setting({
    flag: 'connector',
    env: 'CONNECTOR_NAME',
    kind: 'string',
    default: 'cdc-postgres',
    parse: nonEmptyString,
    doc: 'the Debezium connector that must be RUNNING to take the signal',
    commands: ['resnapshot'],
  }),
  notificationTopic: setting({
    flag: 'notification-topic',
    kind: 'string',
    default: 'cdc.notifications',
    parse: nonEmptyString,
    doc: "the topic of Debezium's notifications (configure-debezium.sh's notification.sink.topic.name), read by --wait",
    commands: ['resnapshot'],
  }),
  replayTopics: setting<string[]>({
    flag: 'topic',
    kind: 'list',
    fallback: (get): string[] => allTopics(entityTopics(get)),
    defaultText: 'every entity topic (USERS_TOPIC, ORDERS_TOPIC, PRODUCTS_TOPIC)',
    parse: list,
    doc: 'source topics whose <topic>.dlq to replay; repeatable or comma-separated',
    commands: ['replay-dlq'],
  }),
  errorCodes: setting<Set<ErrorCode> | undefined>({
    flag: 'error-code',
    kind: 'list',
    fallback: () => undefined,
    defaultText: 'all',
    parse: (s) => parseErrorCodeFilter(list({ flag: s.flag, value: s.value })),
    doc: 'replay only records with this x-error-code (MISSING_REFERENCE, DECODE_ERROR, ...); repeatable or comma-separated',
    commands: ['replay-dlq'],
  }),
  dryRun: setting({
    flag: 'dry-run',
    kind: 'boolean',
    default: false,
    parse: bool,
    doc: 'list and count the matching records, produce nothing',
    commands: ['replay-dlq'],
  }),
  // The Cassandra sink's own options (internal/sinks/cassandra/options.ts).
  cassandraContactPoints: setting({
    ...CASSANDRA_OPTIONS.contactPoints,
    commands: ['replicate', 'cdc-add-table', 'resnapshot'],
  }),
  cassandraKeyspace: setting({ ...CASSANDRA_OPTIONS.keyspace, commands: ['replicate', 'cdc-add-table', 'resnapshot'] }),
  cassandraLocalDc: setting({
    ...CASSANDRA_OPTIONS.localDataCenter,
    commands: ['replicate', 'cdc-add-table', 'resnapshot'],
  }),
  consistency: setting({ ...CASSANDRA_OPTIONS.consistency, commands: ['replicate'] }),
  concurrency: setting({ ...CASSANDRA_OPTIONS.concurrency, commands: ['replicate'] }),
  onTruncate: setting({ ...CASSANDRA_OPTIONS.onTruncate, commands: ['replicate'] }),
  // The Redis cache sink's own options (internal/sinks/redis/options.ts).
  redisUrl: setting({ ...REDIS_OPTIONS.redisUrl, commands: ['cache-sync', 'api', 'purge'] }),
  cacheMode: setting({ ...REDIS_OPTIONS.mode, commands: ['cache-sync'] }),
  tombstoneTtl: setting({ ...REDIS_OPTIONS.tombstoneTtlMs, commands: ['cache-sync'] }),
  cacheOnTruncate: setting({ ...REDIS_OPTIONS.onTruncate, commands: ['cache-sync'] }),
  // node cmd/api (README: The cache).
  apiHost: setting({
    flag: 'host',
    env: 'API_HOST',
    kind: 'string',
    default: '127.0.0.1',
    parse: nonEmptyString,
    doc: 'address the HTTP API binds (reads, /healthz, /metrics)',
    commands: ['api'],
  }),
  apiPort: setting({
    flag: 'port',
    env: 'API_PORT',
    kind: 'number',
    default: DEFAULT_METRICS_PORTS.api,
    parse: port,
    doc: 'port of the HTTP API; 0 = any free port (printed)',
    commands: ['api'],
  }),
  apiPgUrl: setting({
    flag: 'pg-url',
    env: 'PG_READER_URL',
    kind: 'string',
    fallback: (_, env) =>
      `postgres://cdc_reader:${encodeURIComponent(env.PG_READER_PASSWORD || 'cdc_reader')}@127.0.0.1:${env.PG_PORT || '5432'}/cdc_db`,
    derivedFrom: ['PG_PORT', 'PG_READER_PASSWORD'],
    defaultText:
      "the local stack's cdc_db as the read-only role: postgres://cdc_reader:PG_READER_PASSWORD@127.0.0.1:PG_PORT/cdc_db",
    parse: postgresUrl,
    doc: 'PostgreSQL the misses read, as a role that may only SELECT',
    commands: ['api'],
  }),
  leaseTtl: setting({
    flag: 'lease-ttl',
    env: 'CACHE_LEASE_TTL',
    kind: 'duration',
    default: 10_000,
    parse: positiveDuration,
    doc: "how long a miss's lease on a key is good for: a reader that died holding one delays that key's next fill this long at most",
    commands: ['api'],
  }),
  fillTtl: setting({
    flag: 'fill-ttl',
    env: 'CACHE_FILL_TTL',
    kind: 'duration',
    default: 3_600_000,
    parse: positiveDuration,
    doc: "the least time a filled row stays in Redis (cache-sync's invalidation removes it before; this bounds one that was missed)",
    commands: ['api'],
  }),
  l1Max: setting({
    flag: 'l1-max',
    env: 'CACHE_L1_MAX',
    kind: 'number',
    default: 10_000,
    parse: nonNegativeInt,
    doc: 'entries of the in-process L1 (LRU) in front of Redis, evicted by the invalidations; 0 = no L1',
    commands: ['api'],
  }),
  l1Ttl: setting({
    flag: 'l1-ttl',
    env: 'CACHE_L1_TTL',
    kind: 'duration',
    default: 1_000,
    parse: positiveDuration,
    doc: 'how long an L1 copy is served at most',
    commands: ['api'],
  }),
  redisTimeout: setting({
    flag: 'redis-timeout',
    env: 'CACHE_REDIS_TIMEOUT',
    kind: 'duration',
    default: 1_000,
    parse: positiveDuration,
    doc: 'time a Redis command may take before the read is served from PostgreSQL instead (counted as a Redis error)',
    commands: ['api'],
  }),
  purgeTimeout: setting({
    flag: 'timeout',
    kind: 'duration',
    default: 5_000,
    parse: positiveDuration,
    doc: 'how long to wait for the acknowledgements of the API instances the purge reached',
    commands: ['purge'],
  }),
  usersPartitions: setting({
    flag: 'users-partitions',
    kind: 'number',
    default: DEFAULT_TOPIC_LAYOUT.usersPartitions,
    parse: positiveInt,
    doc: 'partitions of the users topic when created',
    commands: ['produce'],
  }),
  ordersPartitions: setting({
    flag: 'orders-partitions',
    kind: 'number',
    default: DEFAULT_TOPIC_LAYOUT.ordersPartitions,
    parse: positiveInt,
    doc: 'partitions of the orders topic when created',
    commands: ['produce'],
  }),
  replicationFactor: setting({
    flag: 'replication-factor',
    kind: 'number',
    default: 3,
    parse: positiveInt,
    doc: 'replication factor of created topics',
    commands: ['produce'],
  }),
  minInsyncReplicas: setting({
    flag: 'min-insync-replicas',
    kind: 'number',
    default: 2,
    parse: positiveInt,
    doc: 'min.insync.replicas of created topics',
    commands: ['produce'],
  }),
  progress: setting({
    flag: 'progress',
    kind: 'boolean',
    fallback: () => process.stderr.isTTY === true,
    defaultText: 'on a terminal',
    parse: bool,
    doc: 'live progress line on stderr (consume, replicate: processed, rate, lag, DLQ, latency p95)',
    commands: ['produce', 'consume', 'replicate', 'cache-sync'],
  }),
  workers: setting<number | 'auto'>({
    flag: 'workers',
    kind: 'string',
    default: 0,
    parse: (s) => {
      const { raw } = resolveSetting(s)
      return raw === 'auto' ? 'auto' : nonNegativeInt({ flag: s.flag, value: raw })
    },
    doc:
      'worker threads: 0 = the sink runs in the main thread (the default: on 2 cores measured faster and cheaper, ' +
      'see bench/results); auto = one thread per assigned partition (isolation, more cores); N = a pool of N ' +
      'threads the partitions share; either way at most --max-workers',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  maxWorkers: setting({
    flag: 'max-workers',
    kind: 'number',
    fallback: () => defaultMaxWorkers(),
    defaultText: '2 x CPU cores',
    parse: positiveInt,
    doc:
      'most worker threads, whatever --workers and the partition count say: beyond it the partitions share them ' +
      "(each partition's batches still in order, one at a time); each thread has its own sink: one PostgreSQL " +
      'connection (in the main thread the sink holds at most 16, whatever the partition count)',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  onDataLoss: setting<DataLossPolicy>({
    flag: 'on-data-loss',
    kind: 'string',
    default: 'fail',
    parse: (s) => oneOf(s, DATA_LOSS_POLICIES),
    doc:
      "when retention deleted messages of an assigned partition past the group's committed offset (never consumed): " +
      'fail = log the gap and exit 4; continue = log and count it, consume from the log start',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  idleTimeout: setting({
    flag: 'idle-timeout',
    kind: 'duration',
    default: 0,
    parse: duration,
    doc: 'exit cleanly after this long without messages; 0 = run until signalled',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  fromBeginning: setting({
    flag: 'from-beginning',
    kind: 'boolean',
    default: true,
    parse: bool,
    doc: 'where a group without committed offsets starts: true = earliest, false = latest',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  retryAttempts: setting({
    flag: 'retry-attempts',
    kind: 'number',
    default: 0,
    parse: nonNegativeInt,
    doc: 'tries of a retriably failing message (e.g. its user not there yet) before the DLQ; 0 = bounded by --retry-max-time only',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  retryMaxTime: setting({
    flag: 'retry-max-time',
    kind: 'duration',
    default: MISSING_REFERENCE_RETRY_POLICY.maxElapsedMs,
    parse: duration,
    doc: "time from a message's first failure after which it goes to the DLQ",
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  maxParked: setting({
    flag: 'max-parked',
    kind: 'number',
    default: DEFAULT_MAX_PARKED_MESSAGES,
    parse: positiveInt,
    doc: "messages that may wait in a partition's waiting room (e.g. orders fetched before their user) before the partition is paused until it drains",
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  maxParkedBytes: setting({
    flag: 'max-parked-bytes',
    kind: 'number',
    default: DEFAULT_MAX_PARKED_BYTES,
    parse: positiveInt,
    doc: "bytes of messages that may wait in a partition's waiting room before it is paused",
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  maxValueBytes: setting({
    flag: 'max-value-bytes',
    kind: 'number',
    default: DEFAULT_MAX_VALUE_BYTES,
    parse: positiveInt,
    doc: 'largest message value taken, after decompression; a larger one goes to the DLQ as VALIDATION_ERROR before it is parsed (a small gzipped record can hold a huge value)',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  dlqRetention: setting({
    flag: 'dlq-retention',
    kind: 'duration',
    default: 0,
    defaultText: '0 (forever)',
    parse: duration,
    doc: 'retention.ms of the <topic>.dlq topics created; 0 = forever (-1); an existing DLQ topic that keeps less, or has a lower RF or min ISR, is refused at start',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  taskTimeout: setting({
    flag: 'task-timeout',
    kind: 'duration',
    default: 60_000,
    parse: positiveDuration,
    doc: 'time a worker may spend on one batch before it is replaced and the batch retried',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  sessionTimeout: setting({
    flag: 'session-timeout',
    kind: 'duration',
    default: 30_000,
    parse: positiveDuration,
    doc: 'time before the group gives up on a member that stopped heartbeating (a crashed process)',
    commands: ENGINE_COMMANDS,
    engine: true,
  }),
  consumeMetricsPort: setting(metricsPort('consume')),
  replicateMetricsPort: setting(metricsPort('replicate')),
  replayMetricsPort: setting(metricsPort('replay-dlq')),
  produceMetricsPort: setting(metricsPort('produce')),
  cacheSyncMetricsPort: setting(metricsPort('cache-sync')),
  metricsHost: setting({
    flag: 'metrics-host',
    kind: 'string',
    default: '127.0.0.1',
    parse: nonEmptyString,
    doc: 'address the metrics endpoint binds; 0.0.0.0 for every interface (compose Prometheus in a container)',
    commands: KAFKA_COMMANDS,
  }),
  summaryJson: setting({
    flag: 'summary-json',
    kind: 'boolean',
    default: false,
    parse: bool,
    doc: 'print the final summary as one JSON line instead of text',
    commands: ['consume', 'replicate', 'cache-sync', 'replay-dlq'],
  }),
  connectTimeout: setting({
    flag: 'connect-timeout',
    kind: 'duration',
    default: DEFAULT_CONNECT_TIMEOUT_MS,
    parse: positiveDuration,
    doc: 'how long the start-up checks wait for Kafka, PostgreSQL, Cassandra and Redis to answer (then exit 3)',
    commands: [...KAFKA_COMMANDS, 'cdc-add-table', 'resnapshot', 'api', 'purge'],
  }),
  logLevel: setting<LogLevel>({
    flag: 'log-level',
    env: 'LOG_LEVEL',
    kind: 'string',
    default: 'info',
    parse: (s) => oneOf(s, LOG_LEVELS),
    doc: `log level: ${LOG_LEVELS.join(', ')}`,
    commands: [...KAFKA_COMMANDS, 'api'],
  }),
  logFormat: setting<LogFormat>({
    flag: 'log-format',
    env: 'LOG_FORMAT',
    kind: 'string',
    fallback: () => defaultLogFormat(),
    defaultText: 'pretty on a terminal, else json',
    parse: (s) => oneOf(s, LOG_FORMATS),
    doc: 'log records on stderr: json (one object a line) or pretty',
    commands: [...KAFKA_COMMANDS, 'api'],
  }),
} as const

/** The rows of `command`, in table order: its own first, then the engine's (the order yargs adds them in). */
export function settingsOf(command: CommandName, which: 'all' | 'own' | 'engine' = 'all'): SettingDef<unknown>[] {
  const rows = (Object.values(SETTINGS) as SettingDef<unknown>[]).filter((r) => r.commands.includes(command))
  const own = rows.filter((r) => !r.engine)
  const engine = rows.filter((r) => r.engine)
  return which === 'own' ? own : which === 'engine' ? engine : [...own, ...engine]
}

/** The default as --help and the README show it ('10000', '60s', 'the local stack's cdc_db'), or undefined. */
export function defaultText(def: SettingDef<unknown>): string | undefined {
  if (def.defaultText !== undefined) return def.defaultText
  const d = def.default
  if (d === undefined) return undefined
  if (def.kind === 'duration' && typeof d === 'number') return formatDuration(d)
  if (typeof d === 'object' && d !== null) return Object.values(d).join(',')
  return String(d)
}

/**
 * The --help description of a row: its doc, then [kind] [env X] [default: Y] on a line of their own. A default
 * derived from variables that `env` sets says what it is now ('...; now 127.0.0.1:19092,...'), password hidden.
 */
export function helpText(def: SettingDef<unknown>, env?: Env): string {
  let shown = defaultText(def)
  const derivedFrom = def.derivedFrom?.filter((v) => (env?.[v] ?? '') !== '') ?? []
  if (shown !== undefined && env !== undefined && def.fallback !== undefined && derivedFrom.length > 0) {
    let now: string
    try {
      now = redactUrl([def.fallback(() => undefined as never, env)].flat().join(','))
    } catch (err) {
      now = `invalid: ${errorMessage(err)}`
    }
    shown = `${shown}; with ${derivedFrom.map((v) => `${v}=${v.includes('PASSWORD') ? '***' : env[v]}`).join(' ')}: ${now}`
  }
  const extras = [
    `[${def.kind}]`,
    def.env === undefined ? undefined : `[env ${def.env}]`,
    shown === undefined ? undefined : `[default: ${shown}]`,
  ]
  return `${def.doc}\n${extras.filter((p) => p !== undefined).join(' ')}`
}

/** The README's configuration table of a command, as markdown lines. */
export function readmeTable(command: CommandName): string[] {
  // Flags and <placeholders> as code, or markdown would take <topic> for an HTML tag.
  const cell = (text: string) =>
    text.replaceAll('|', '\\|').replace(/(?<![\w`])(--[a-z][a-z0-9-]*|\S*<[a-z]+>\S*)/g, (m) => {
      const [, lead, code, trail] = /^(\(*)(.*?)([),;:]*)$/.exec(m)!
      return `${lead}\`${code}\`${trail}`
    })
  return [
    '| flag | env | default | meaning |',
    '| --- | --- | --- | --- |',
    ...settingsOf(command).map((r) =>
      `| \`--${r.flag}\` | ${r.env === undefined ? '' : `\`${r.env}\``} | ${cell(defaultText(r) ?? '')} | ${cell(r.doc)} |`.replace(
        /  +/g,
        ' ',
      ),
    ),
  ]
}

/**
 * Resolves one setting (flag > environment variable > default > fallback) and validates it. The flag's value comes
 * from `argv` when the row is among the command's flags; a row the command has no flag for (demo's PG_URL) is read
 * from the environment and its default alone.
 */
export function readSetting<T>(def: OptionDef<T>, argv: Readonly<Record<string, unknown>>, env?: Env): T {
  const value = argv[def.flag]
  if (value === false && def.kind !== 'boolean') {
    throw configError(`--no-${def.flag} is not a flag: --${def.flag} takes a value`)
  }
  const present =
    (value !== undefined && value !== null) ||
    (def.env !== undefined && ((env ?? process.env)[def.env] ?? '') !== '') ||
    def.default !== undefined
  if (!present && def.fallback !== undefined) {
    return def.fallback((d) => readSetting(d, argv, env), env ?? process.env)
  }
  return def.parse({
    flag: def.flag,
    value,
    ...(def.env === undefined ? {} : { env: def.env }),
    ...(def.default === undefined ? {} : { default: def.default }),
    ...(env === undefined ? {} : { environment: env }),
  })
}

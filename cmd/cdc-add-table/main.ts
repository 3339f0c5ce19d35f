// node cmd/cdc-add-table schema.table (npm run cdc:add-table -- public.NAME): makes a table replicable by node
// cmd/replicate --tables, idempotently. Every step checks first and changes only what is missing.
import { hideBin } from 'yargs/helpers'
import { commandLine, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { configError, loadDotEnv } from '../../internal/config/index.js'
import { errorMessage, ErrorCodes, PipelineError } from '../../internal/errors/index.js'
import { connectPreflightAdmin, ensureTopics } from '../../internal/kafka/index.js'
import {
  PUBLICATION,
  changeTopicOf,
  createDerivedTables,
  describeTable,
  parseQualifiedName,
  pgFailure,
  withPg,
} from '../../internal/sinks/cassandra/index.js'

const DESCRIPTION = `Adds a PostgreSQL table to the CDC pipeline, idempotently (a second run changes nothing):
  1. reads its columns and primary key from the catalog (the table must exist and be owned by --pg-owner-url's role);
  2. REPLICA IDENTITY FULL, SELECT for cdc_debezium, SELECT, INSERT, UPDATE for cdc_app;
  3. creates its change topic <prefix>.<schema>.<table> (--partitions, --replication-factor, min.insync.replicas 2);
  4. adds it to the connector's table.include.list through Connect's REST API (every other setting kept) and waits
     until the connector's task runs with it;
  5. adds it to the publication cdc_pub (after 4: no change reaches Debezium before its filter lets it through);
  6. creates its Cassandra table, derived from the catalog (docs/type-mapping.md).
A column of a type without a Cassandra mapping is named in a warning: the table is added, and node cmd/replicate
sends its changes to the DLQ with that reason. Then: node cmd/replicate --tables schema.table (or --tables publication).

Usage: node cmd/cdc-add-table schema.table [options]`

const say = (line: string): void => void process.stdout.write(`cdc-add-table: ${line}\n`)

interface ConnectorConfig {
  [key: string]: string
}

async function connectRequest(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `Kafka Connect at ${new URL(url).origin} unreachable: ${errorMessage(err)}`,
      {
        cause: err,
      },
    )
  }
}

async function connectorConfig(base: string, name: string, timeoutMs: number): Promise<ConnectorConfig> {
  const res = await connectRequest(`${base}/connectors/${encodeURIComponent(name)}/config`, {}, timeoutMs)
  if (res.status === 404)
    throw configError(`connector ${name} is not registered at ${base} (npm run stack:up registers it)`)
  if (!res.ok) throw new PipelineError(ErrorCodes.UNREACHABLE, `Kafka Connect at ${base} answered HTTP ${res.status}`)
  return (await res.json()) as ConnectorConfig
}

const includeListOf = (config: ConnectorConfig): string[] =>
  (config['table.include.list'] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')

// Until the connector and its task are RUNNING with the table in the task's own config (a PUT restarts the task).
async function waitForTask(base: string, name: string, entry: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + Math.max(timeoutMs, 120_000)
  let last = 'no answer'
  // A restarted task can report RUNNING before the old one is gone, or fail a moment later: 3 s of it in a row.
  let runningFor = 0
  while (Date.now() < deadline) {
    const tasks = await connectRequest(`${base}/connectors/${encodeURIComponent(name)}/tasks`, {}, timeoutMs)
    const status = await connectRequest(`${base}/connectors/${encodeURIComponent(name)}/status`, {}, timeoutMs)
    if (tasks.ok && status.ok) {
      const t = (await tasks.json()) as { config: ConnectorConfig }[]
      const s = (await status.json()) as { connector: { state: string }; tasks: { state: string; trace?: string }[] }
      const failed = s.tasks.find((x) => x.state === 'FAILED')
      if (failed)
        throw new PipelineError(
          ErrorCodes.CONFIG_ERROR,
          `connector ${name}'s task FAILED: ${(failed.trace ?? '').split('\n')[0]}`,
        )
      const configured = t.length > 0 && t.every((x) => includeListOf(x.config).includes(entry))
      const running =
        s.connector.state === 'RUNNING' && s.tasks.length > 0 && s.tasks.every((x) => x.state === 'RUNNING')
      runningFor = configured && running ? runningFor + 1 : 0
      if (runningFor >= 3) return
      last = `connector ${s.connector.state}, tasks ${s.tasks.map((x) => x.state).join(',') || 'none'}, configured ${configured}`
    }
    await new Promise((r) => setTimeout(r, 1_000))
  }
  throw new PipelineError(ErrorCodes.CONFIG_ERROR, `connector ${name} did not run with ${entry} in time (${last})`)
}

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('cdc-add-table', DESCRIPTION, hideBin(process.argv))
    // Unknown flags stay errors; the one positional is the table.
    .strict(false)
    .strictOptions()
    .parseAsync()
  const get = readSettings('cdc-add-table', argv)
  const positional = argv._.map(String)
  if (positional.length !== 1) {
    throw configError(
      `give exactly one table, schema.table (got ${positional.length}; see node cmd/cdc-add-table --help)`,
    )
  }
  const name = parseQualifiedName(positional[0])
  const full = `${name.schema}.${name.table}`
  const pgOwnerUrl = get(S.pgOwnerUrl)
  const connectUrl = get(S.connectUrl).replace(/\/+$/, '')
  const connector = get(S.connectorName)
  const topicPrefix = get(S.topicPrefix)
  const partitions = get(S.changeTopicPartitions)
  const rf = get(S.changeTopicRf)
  const brokers = get(S.brokers)
  const timeoutMs = get(S.connectTimeout)
  const cassandra = {
    contactPoints: get(S.cassandraContactPoints),
    localDataCenter: get(S.cassandraLocalDc),
    keyspace: get(S.cassandraKeyspace),
    consistency: 'LOCAL_QUORUM' as const,
    connectTimeoutMs: timeoutMs,
  }
  if (name.schema === 'public' && (name.table === 'users' || name.table === 'orders')) {
    throw configError(`${full} has an entity definition: it is replicated already`)
  }
  const topic = changeTopicOf(topicPrefix, name.schema, name.table)

  // Connect first: an unreachable one (or a connector that is not there) is named before anything is changed.
  await connectorConfig(connectUrl, connector, timeoutMs)

  // 1-2: the catalog, and the table's rights (as its owner).
  const table = await withPg(
    pgOwnerUrl,
    async (db) => {
      const t = await describeTable(db, name)
      await db.query(`ALTER TABLE ${full} REPLICA IDENTITY FULL`)
      await db.query(`GRANT SELECT ON ${full} TO cdc_debezium`)
      await db.query(`GRANT SELECT, INSERT, UPDATE ON ${full} TO cdc_app`)
      return t
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw pgFailure(err, pgOwnerUrl)
  })
  say(
    `${full}: ${table.columns.length} columns, primary key (${table.primaryKey.join(', ')}); REPLICA IDENTITY FULL, rights granted`,
  )
  if (table.problem !== undefined)
    process.stderr.write(`cdc-add-table: warning: ${table.problem}: node cmd/replicate sends them to the DLQ\n`)

  // 3: the change topic, laid out as stack:up lays out cdc.public.users.
  const admin = await connectPreflightAdmin(brokers, { timeoutMs })
  try {
    const [report] = await ensureTopics(admin, [
      {
        topic,
        partitions,
        replicationFactor: rf,
        configs: { 'cleanup.policy': 'delete', ...(rf >= 3 ? { 'min.insync.replicas': '2' } : {}) },
      },
    ])
    say(
      `topic ${topic}: ${report.created ? 'created' : 'exists'}${report.differences.length > 0 ? ` (${report.differences.join('; ')})` : ''}`,
    )
  } finally {
    await admin.disconnect()
  }

  // 4: the connector's include list (PUT of the whole config, every other setting as it was).
  const config = await connectorConfig(connectUrl, connector, timeoutMs)
  const list = includeListOf(config)
  if (list.includes(full)) say(`connector ${connector}: ${full} already in table.include.list`)
  else {
    const next = { ...config, 'table.include.list': [...list, full].join(',') }
    const res = await connectRequest(
      `${connectUrl}/connectors/${encodeURIComponent(connector)}/config`,
      { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(next) },
      timeoutMs,
    )
    if (!res.ok)
      throw configError(
        `connector ${connector}: PUT config answered HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`,
      )
    say(`connector ${connector}: ${full} added to table.include.list`)
  }
  await waitForTask(connectUrl, connector, full, timeoutMs)

  // 5: the publication (owned by cdc_owner: stack/postgres/publication.sql).
  const added = await withPg(
    pgOwnerUrl,
    async (db) => {
      const found = await db.query(
        'SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3',
        [PUBLICATION, name.schema, name.table],
      )
      if (found.rowCount !== 0) return false
      await db.query(`ALTER PUBLICATION ${PUBLICATION} ADD TABLE ${full}`)
      return true
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw pgFailure(err, pgOwnerUrl)
  })
  say(`publication ${PUBLICATION}: ${added ? `${full} added` : `already has ${full}`}`)

  // 6: the Cassandra table.
  const created = await createDerivedTables(cassandra, [table])
  say(created.length > 0 ? `Cassandra table ${created[0]} ensured` : `no Cassandra table: ${table.problem}`)
  return 0
}

runCommand('cdc-add-table', main)

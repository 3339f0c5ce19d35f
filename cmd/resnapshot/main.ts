// node cmd/resnapshot --table users (npm run resnapshot -- --table users): re-reads tables from PostgreSQL with a
// Debezium incremental snapshot, which repairs Cassandra (write-timestamp.ts), then deletes from Cassandra the rows
// PostgreSQL does not have (a snapshot emits no deletes).
import { randomUUID } from 'node:crypto'
import cassandra from 'cassandra-driver'
import { hideBin } from 'yargs/helpers'
import { commandLine, readSettings, runCommand, SETTINGS as S } from '../../internal/cli/index.js'
import { configError, loadDotEnv } from '../../internal/config/index.js'
import { errorMessage, ErrorCodes, PipelineError } from '../../internal/errors/index.js'
import { createKafka } from '../../internal/kafka/index.js'
import {
  SnapshotWatch,
  checkConnectorConfig,
  checkConnectorStatus,
  checkPublished,
  parseTables,
  qualified,
  reconcileTable,
  reconcileTargets,
  signalData,
  writeTimeColumns,
  type ReconcileStores,
  type ReconcileTarget,
} from '../../internal/resnapshot/index.js'
import {
  PUBLICATION,
  createCassandraClient,
  describeTable,
  pgFailure,
  withPg,
  type QualifiedName,
} from '../../internal/sinks/cassandra/index.js'

const DESCRIPTION = `Re-snapshots tables through Debezium and repairs Cassandra:
  1. checks that the connector is RUNNING with the signal table (and, for --wait, the notifications) in its config
     (Connect's REST API), and that every table is in the publication cdc_pub;
  2. inserts an execute-snapshot signal (type incremental) into public.debezium_signal and prints its id: Debezium
     reads the tables again in chunks while it keeps streaming, and node cmd/replicate (running as usual) writes
     the rows; they win over any older write and lose to any later change (README, "Write timestamps");
  3. with --wait (the default), reads Debezium's notifications until the snapshot is completed;
  4. then, without --where, a reconcile pass: every Cassandra row of the tables (orders: orders and orders_by_user)
     whose key PostgreSQL does not have is deleted USING TIMESTAMP of its own WRITETIME, so that any newer write
     still wins. Counts are printed per Cassandra table.
The snapshot rows reach Cassandra through replicate: run the reconcile once replicate has caught up if it was not
running. Exit 0 when done, 1 when the snapshot did not complete in --wait-timeout or a table's scan failed.

Usage: node cmd/resnapshot --table users [--table orders] [--where "SQL condition"] [options]`

const say = (line: string): void => void process.stdout.write(`resnapshot: ${line}\n`)

async function connectRequest(url: string, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    throw new PipelineError(
      ErrorCodes.UNREACHABLE,
      `Kafka Connect at ${new URL(url).origin} unreachable: ${errorMessage(err)}`,
      { cause: err },
    )
  }
}

/**
 * The connector and its task must be RUNNING, or the signal would wait (or be lost with a new slot), and registered
 * with the signal table (and the notifications --wait reads).
 */
async function checkConnector(
  base: string,
  name: string,
  notificationTopic: string | undefined,
  timeoutMs: number,
): Promise<void> {
  const res = await connectRequest(`${base}/connectors/${encodeURIComponent(name)}/status`, timeoutMs)
  if (res.status === 404) {
    throw new PipelineError(ErrorCodes.UNREACHABLE, `connector ${name} is not registered at ${base} (npm run stack:up)`)
  }
  if (!res.ok) throw new PipelineError(ErrorCodes.UNREACHABLE, `Kafka Connect at ${base} answered HTTP ${res.status}`)
  checkConnectorStatus(name, await res.json())
  const config = await connectRequest(`${base}/connectors/${encodeURIComponent(name)}/config`, timeoutMs)
  if (!config.ok) {
    throw new PipelineError(ErrorCodes.UNREACHABLE, `Kafka Connect at ${base} answered HTTP ${config.status}`)
  }
  checkConnectorConfig(name, await config.json(), notificationTopic)
}

async function targetsOf(pgUrl: string, t: QualifiedName, timeoutMs: number): Promise<ReconcileTarget[]> {
  const full = qualified(t)
  if (full === 'public.users' || full === 'public.orders') return reconcileTargets(t)
  const d = await withPg(pgUrl, (db) => describeTable(db, t), timeoutMs).catch((err: unknown) => {
    throw isConfig(err) ? err : pgFailure(err, pgUrl)
  })
  return reconcileTargets(t, d)
}

const isConfig = (err: unknown): boolean => err instanceof PipelineError && err.code === ErrorCodes.CONFIG_ERROR

/** Waits for the notification that the snapshot of `signalId` completed; prints its progress. */
async function waitForSnapshot(
  brokers: string[],
  topic: string,
  signalId: string,
  timeoutMs: number,
  connectTimeoutMs: number,
): Promise<{ completed: boolean; failedScans: string[] }> {
  const kafka = createKafka({ clientId: 'cdc-resnapshot', brokers, connectionTimeoutMs: connectTimeoutMs })
  const admin = kafka.admin()
  const reader = kafka.partitionReader({ groupPrefix: 'cdc-resnapshot' })
  const deadline = Date.now() + timeoutMs
  const watch = new SnapshotWatch(signalId, say)
  await admin.connect().catch((err: unknown) => {
    throw new PipelineError(ErrorCodes.UNREACHABLE, `Kafka at ${brokers.join(',')} unreachable: ${errorMessage(err)}`)
  })
  try {
    // The notifications carry the signal's id: reading the topic from its start finds ours wherever it is. Debezium
    // creates the topic with its first notification.
    const position = new Map<number, bigint>()
    while (Date.now() < deadline) {
      if ((await admin.listTopics()).includes(topic)) {
        const ends = (await reader.endOffsets([topic], connectTimeoutMs)).get(topic) ?? new Map<number, string>()
        const ranges = [...ends]
          .map(([partition, to]) => ({ topic, partition, from: String(position.get(partition) ?? 0n), to }))
          .filter((r) => BigInt(r.to) > BigInt(r.from))
        const records = ranges.length === 0 ? [] : await reader.read(ranges, Math.max(connectTimeoutMs, 30_000))
        for (const r of ranges) position.set(r.partition, BigInt(r.to))
        // One signal's notifications share a key, so a partition, whose order is theirs.
        records.sort((a, b) => a.partition - b.partition || (BigInt(a.offset) < BigInt(b.offset) ? -1 : 1))
        for (const record of records) {
          const end = watch.feed(record.value?.toString())
          if (end !== undefined) return { completed: end === 'completed', failedScans: watch.failedScans }
        }
      }
      await new Promise((r) => setTimeout(r, 1_000))
    }
    return { completed: false, failedScans: watch.failedScans }
  } finally {
    await reader.close().catch(() => undefined)
    await admin.disconnect().catch(() => undefined)
  }
}

/** The two stores as the reconcile pass reads and writes them. */
function stores(client: cassandra.Client, pgUrl: string, timeoutMs: number): ReconcileStores {
  return {
    scan: (select, onRow) =>
      new Promise<void>((resolve, reject) => {
        client.eachRow(
          select,
          [],
          { prepare: true, autoPage: true, fetchSize: 5_000 },
          (_n, row: cassandra.types.Row) => onRow((c) => row.get(c) as unknown),
          (err) => (err ? reject(err) : resolve()),
        )
      }),
    pgRows: (sql) =>
      withPg(pgUrl, async (db) => (await db.query(sql)).rows.map((r) => Object.values(r)), timeoutMs).catch(
        (err: unknown) => {
          throw pgFailure(err, pgUrl)
        },
      ),
    execute: async (cql, params) => void (await client.execute(cql, params, { prepare: true })),
  }
}

async function reconcile(
  client: cassandra.Client,
  keyspace: string,
  target: ReconcileTarget,
  pgUrl: string,
  timeoutMs: number,
): Promise<{ scanned: number; deleted: number }> {
  const cols = await client.execute(
    'SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
    [keyspace, target.table],
  )
  if (cols.rows.length === 0) throw configError(`Cassandra has no table ${keyspace}.${target.table}`)
  const columns = writeTimeColumns(cols.rows as never)
  return reconcileTable(stores(client, pgUrl, timeoutMs), keyspace, target, columns, BigInt(Date.now()) * 1000n)
}

async function main(): Promise<number> {
  loadDotEnv()
  const argv = await commandLine('resnapshot', DESCRIPTION, hideBin(process.argv)).parseAsync()
  const get = readSettings('resnapshot', argv)
  const tables = parseTables(get(S.resnapshotTables))
  const where = get(S.resnapshotWhere)
  const data = signalData(tables, where)
  const pgUrl = get(S.resnapshotPgUrl)
  const connectUrl = get(S.connectUrl).replace(/\/+$/, '')
  const connector = get(S.resnapshotConnector)
  const timeoutMs = get(S.connectTimeout)
  const wait = get(S.resnapshotWait)

  await checkConnector(connectUrl, connector, wait ? get(S.notificationTopic) : undefined, timeoutMs)

  // The tables must be in the publication (Debezium reads them through it), then the signal.
  const signalId = randomUUID()
  await withPg(
    pgUrl,
    async (db) => {
      const res = await db.query<{ schemaname: string; tablename: string }>(
        'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
        [PUBLICATION],
      )
      checkPublished(tables, new Set(res.rows.map((r) => `${r.schemaname}.${r.tablename}`)), PUBLICATION)
      await db.query("INSERT INTO public.debezium_signal (id, type, data) VALUES ($1, 'execute-snapshot', $2)", [
        signalId,
        data,
      ])
    },
    timeoutMs,
  ).catch((err: unknown) => {
    throw isConfig(err) ? err : pgFailure(err, pgUrl)
  })
  say(
    `signal ${signalId}: incremental snapshot of ${tables.map(qualified).join(', ')}${where ? ` where ${where}` : ''}`,
  )
  if (!wait) return 0

  const waitTimeout = get(S.resnapshotWaitTimeout)
  const { completed, failedScans } = await waitForSnapshot(
    get(S.brokers),
    get(S.notificationTopic),
    signalId,
    waitTimeout,
    timeoutMs,
  )
  if (!completed) {
    process.stderr.write(
      `resnapshot: the snapshot of signal ${signalId} did not complete within ${waitTimeout / 1000} s (it goes on in Debezium); no reconcile pass\n`,
    )
    return 1
  }
  if (failedScans.length > 0) {
    process.stderr.write(`resnapshot: a table's scan did not succeed (${failedScans.join('; ')}); no reconcile pass\n`)
    return 1
  }
  if (where !== undefined) {
    say('--where given: no reconcile pass (it would need the same condition on the Cassandra rows)')
    return 0
  }

  const keyspace = get(S.cassandraKeyspace)
  const client = createCassandraClient({
    contactPoints: get(S.cassandraContactPoints),
    localDataCenter: get(S.cassandraLocalDc),
    keyspace: undefined,
    consistency: 'LOCAL_QUORUM',
    connectTimeoutMs: timeoutMs,
    requestTimeoutMs: 60_000,
  })
  try {
    await client.connect().catch((err: unknown) => {
      throw new PipelineError(ErrorCodes.UNREACHABLE, `Cassandra unreachable: ${errorMessage(err)}`, { cause: err })
    })
    for (const t of tables) {
      for (const target of await targetsOf(pgUrl, t, timeoutMs)) {
        const r = await reconcile(client, keyspace, target, pgUrl, timeoutMs)
        say(`reconcile ${keyspace}.${target.table}: ${r.scanned} rows read, ${r.deleted} not in PostgreSQL deleted`)
      }
    }
  } finally {
    await client.shutdown().catch(() => undefined)
  }
  return 0
}

runCommand('resnapshot', main)

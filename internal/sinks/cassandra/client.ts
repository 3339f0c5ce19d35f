import cassandra from 'cassandra-driver'
import { configError } from '../../config/index.js'
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import { describeCassandraError } from './classify.js'
import type { ConsistencyName } from './options.js'
import { TABLES, type CqlType } from './tables.js'

const { consistencies } = cassandra.types

/** The driver's consistency code of a level name. */
export function consistencyCode(name: ConsistencyName): number {
  const codes: Record<ConsistencyName, number> = {
    LOCAL_QUORUM: consistencies.localQuorum,
    LOCAL_ONE: consistencies.localOne,
    QUORUM: consistencies.quorum,
    ONE: consistencies.one,
    TWO: consistencies.two,
    THREE: consistencies.three,
    EACH_QUORUM: consistencies.eachQuorum,
    ALL: consistencies.all,
  }
  return codes[name]
}

// Here rather than in batch-sink.ts: schema-evolve.ts, source-identity.ts and derived-setup.ts take one too, and
// importing it from the sink that imports them made an import cycle (test/readme-diagram.test.ts).
/** The part of a cassandra-driver Client the sink uses (unit tests pass a fake). */
export interface CqlExecutor {
  execute(
    query: string,
    params: unknown[],
    options: { prepare: boolean; fetchSize?: number; pageState?: string },
  ): Promise<unknown>
  shutdown(): Promise<void>
}

/** What a Cassandra client of the pipeline needs. */
export interface CassandraClientOptions {
  contactPoints: string[]
  localDataCenter: string
  keyspace?: string
  consistency: ConsistencyName
  connectTimeoutMs?: number
  requestTimeoutMs?: number
}

/**
 * A cassandra-driver client: int64 as bigint (exact LSN-based timestamps), prepared and idempotent statements by
 * default (every write carries its own timestamp, so a retry cannot apply twice), and reconnection at most 5 s
 * apart so the sink notices within seconds that a restarted node is back (the driver's default backs off to 10 min).
 */
export function createCassandraClient(o: CassandraClientOptions): cassandra.Client {
  return new cassandra.Client({
    contactPoints: o.contactPoints,
    localDataCenter: o.localDataCenter,
    ...(o.keyspace === undefined ? {} : { keyspace: o.keyspace }),
    applicationName: 'cdc-replicate',
    encoding: { useBigIntAsLong: true },
    queryOptions: { consistency: consistencyCode(o.consistency), prepare: true, isIdempotent: true },
    socketOptions: { connectTimeout: o.connectTimeoutMs ?? 5_000, readTimeout: o.requestTimeoutMs ?? 12_000 },
    policies: { reconnection: new cassandra.policies.reconnection.ExponentialReconnectionPolicy(500, 5_000, false) },
  })
}

// The driver's type codes that satisfy each column type the sink writes.
const CQL_TYPE_CODES: Record<CqlType, number[]> = {
  uuid: [cassandra.types.dataTypes.uuid],
  text: [cassandra.types.dataTypes.text, cassandra.types.dataTypes.varchar],
  date: [cassandra.types.dataTypes.date],
  timestamp: [cassandra.types.dataTypes.timestamp],
  boolean: [cassandra.types.dataTypes.boolean],
  bigint: [cassandra.types.dataTypes.bigint],
  int: [cassandra.types.dataTypes.int],
  decimal: [cassandra.types.dataTypes.decimal],
}

const SCHEMA_HINT = 'apply cassandra-schema.cql (npm run stack:up does)'

/** What the preflight found. */
export interface CassandraCheck {
  /** The keyspace's replication settings (e.g. { class: ..., replication_factor: '1' }). */
  replication: Record<string, string>
}

/**
 * Preflight of the replicate command: Cassandra answers at the contact points in the given data center, the keyspace
 * exists, and each table the sink writes has its primary key and every column with the expected type, the
 * connection bounded by `connectTimeoutMs`. Throws one error that says what is wrong and what to do: UNREACHABLE when
 * no node answered, CONFIG_ERROR when one did but the setup is wrong (data center, credentials, schema).
 */
export async function checkCassandra(
  o: Omit<CassandraClientOptions, 'keyspace'> & { keyspace: string },
): Promise<CassandraCheck> {
  const where = `${o.contactPoints.join(',')} (data center ${o.localDataCenter})`
  const timeoutMs = o.connectTimeoutMs ?? 5_000
  const client = createCassandraClient({ ...o, keyspace: undefined, connectTimeoutMs: timeoutMs })
  let timer: NodeJS.Timeout | undefined
  try {
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CheckTimeout()), timeoutMs)
    })
    try {
      await Promise.race([client.connect(), timedOut])
    } catch (err) {
      // cassandra-driver 4.10 leaves the control connection's socket open when the first node answers but the
      // initialisation fails (e.g. a wrong data center): close it, or the process cannot exit.
      const internals = client as unknown as { controlConnection?: { connection?: { close(): void } | null } }
      internals.controlConnection?.connection?.close()
      if (err instanceof CheckTimeout) {
        throw new PipelineError(
          ErrorCodes.UNREACHABLE,
          `Cassandra is not reachable at ${where} within ${timeoutMs / 1000} s: no answer to the CQL handshake — ` +
            'is it a Cassandra native transport port? npm run stack:status',
        )
      }
      // No node answered at all (refused, timed out): unreachable. One answered and refused us (a wrong data center,
      // credentials): misconfigured.
      const code = isUnreachable(err) ? ErrorCodes.UNREACHABLE : ErrorCodes.CONFIG_ERROR
      throw new PipelineError(code, `Cassandra is not reachable at ${where}: ${describeCassandraError(err)}`, {
        cause: err,
      })
    }
    clearTimeout(timer)
    const ks = client.metadata.keyspaces[o.keyspace]
    if (!ks) throw configError(`keyspace ${o.keyspace} does not exist in Cassandra at ${where}: ${SCHEMA_HINT}`)
    for (const spec of Object.values(TABLES)) {
      const table = await client.metadata.getTable(o.keyspace, spec.name)
      if (!table) throw configError(`table ${o.keyspace}.${spec.name} does not exist in Cassandra: ${SCHEMA_HINT}`)
      const partition = table.partitionKeys.map((c) => c.name)
      const clustering = table.clusteringKeys.map((c) => c.name)
      if (partition.join() !== spec.partitionKey.join() || clustering.join() !== spec.clusteringKey.join()) {
        throw configError(
          `table ${o.keyspace}.${spec.name} has primary key ((${partition.join(', ')}), ${clustering.join(', ')}); ` +
            `the sink needs ((${spec.partitionKey.join(', ')})${spec.clusteringKey.map((c) => `, ${c}`).join('')}): ${SCHEMA_HINT}`,
        )
      }
      const problems: string[] = []
      for (const [column, type] of Object.entries(spec.columns)) {
        const found = table.columns.find((c) => c.name === column)
        if (!found) problems.push(`${column} is missing`)
        else if (!CQL_TYPE_CODES[type].includes(found.type.code)) problems.push(`${column} is not of type ${type}`)
      }
      if (problems.length > 0) {
        throw configError(`table ${o.keyspace}.${spec.name}: ${problems.join(', ')}: ${SCHEMA_HINT}`)
      }
    }
    // strategyOptions is there at run time but missing from the driver's typings.
    const options = (ks as { strategyOptions?: Record<string, string> }).strategyOptions ?? {}
    return { replication: { class: ks.strategy, ...options } }
  } finally {
    clearTimeout(timer)
    // Bounded too: shutting down a client whose node never answered may wait on that node.
    await Promise.race([client.shutdown().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())])
  }
}

class CheckTimeout extends Error {}

function isUnreachable(err: unknown): boolean {
  if (err instanceof cassandra.errors.OperationTimedOutError) return true
  if (!(err instanceof cassandra.errors.NoHostAvailableError)) return false
  const inner = Object.values((err.innerErrors ?? {}) as Record<string, unknown>)
  return inner.every((e) => !(e instanceof cassandra.errors.AuthenticationError))
}

// Which PostgreSQL cluster the keyspace replicates, and the checks that stop replicate when changes come from another
// one (or from a WAL that went backwards): every write's timestamp is its change's LSN (write-timestamp.ts), and the
// LSNs of another cluster, or of a cluster restored to an earlier point, are unrelated to the timestamps Cassandra
// holds. Their changes would lose to them and Cassandra would silently stop changing.
//
// Debezium's change events do not say which cluster they come from: the source block has the database name, the
// connector's topic prefix, lsn and txId, none of which changes when the cluster behind the same host and database
// name is replaced by a restore. So:
// - The keyspace records the cluster: cdc_keyspace.replication_source, one row ('postgresql') holding PostgreSQL's
//   system identifier (pg_control_system(), set by initdb, kept by physical copies), its timeline
//   (pg_control_checkpoint(), raised by every promotion and point-in-time recovery) and the highest WAL position seen.
//   The first replicate to start records it (an LWT: concurrent starts agree on one row).
// - At start-up and every IDENTITY_RECHECK_MS while it runs, replicate asks the PostgreSQL it reads (--pg-url, the
//   one Debezium reads) and compares: another system identifier (a restore from a logical dump, a migration), or a
//   WAL position more than the tolerance below the one recorded (a restore of an older physical backup), stops it.
//   A higher timeline with the WAL going on (a standby promoted) is recorded and logged.
// - A change event may carry the cluster itself, in the header cdc.pg.system_identifier (configure-debezium.sh sets
//   it with Kafka Connect's InsertHeader from the identifier it reads at registration): one from another cluster
//   stops replicate. A literal is only as fresh as the registration, which is why the check above exists too.
// - Per key, a change whose LSN is more than the tolerance below the one this process applied to the same key
//   stops replicate (a PostgreSQL replaced under a running pipeline). Snapshot rows and DLQ replays are exempt: both
//   legitimately carry old LSNs.
//
// The stop is SOURCE_CHANGED (exit code 5) with one message naming the recovery: re-snapshot (docs/faults.md).
import pg from 'pg'
import { ErrorCodes, PipelineError, errorMessage } from '../../errors/index.js'
import type { Logger } from '../../log/index.js'
import type { CqlExecutor } from './client.js'
import { formatLsn } from './lsn-bound.js'

/** The record header that names the PostgreSQL cluster a change event comes from (its system identifier). */
export const SOURCE_IDENTITY_HEADER = 'cdc.pg.system_identifier'
/** The Cassandra table of replication metadata (in the sink's keyspace). */
export const SOURCE_TABLE = 'replication_source'
/** Its one row: the PostgreSQL cluster the keyspace replicates. */
export const SOURCE_KEY = 'postgresql'
/** How often a running sink asks PostgreSQL for its identity again (and so notices a replaced cluster). */
export const IDENTITY_RECHECK_MS = 30_000
/**
 * How far an LSN may go backwards (below the recorded WAL position, or below the LSN applied to the same key) before
 * replicate stops: 4 GiB. Debezium re-sends after a restart what follows the slot's confirmed position, which Connect
 * advances at each offset flush (every 60 s): at the rates the pipeline is benchmarked at (up to ~20 MB of WAL per
 * second, everything in the cluster included) that is about 1.2 GB. A smaller step back is not told from a re-send.
 */
export const LSN_BACKWARDS_TOLERANCE_BYTES = 4n << 30n

/** A PostgreSQL cluster, as it answers. */
export interface PgIdentity {
  systemIdentifier: string
  timeline: number
  /** pg_current_wal_lsn() in bytes. */
  walLsn: bigint
}

/** What the keyspace recorded. */
export interface RecordedSource {
  systemIdentifier: string
  timeline: number
  lsnSeen: bigint
}

export type PgIdentityReader = () => Promise<PgIdentity>

const IDENTITY_SQL = `SELECT s.system_identifier::text AS sysid, c.timeline_id AS tli,
  (pg_current_wal_lsn() - '0/0')::text AS lsn FROM pg_control_system() s, pg_control_checkpoint() c`

/** Asks `pgUrl` for its identity, with its own pool of one connection (closed when idle). */
export function pgIdentityReader(pgUrl: string): { read: PgIdentityReader; close: () => Promise<void> } {
  const pool = new pg.Pool({
    connectionString: pgUrl,
    max: 1,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 10_000,
    statement_timeout: 10_000,
    query_timeout: 15_000,
    application_name: 'cdc-replicate-identity',
  })
  pool.on('error', () => undefined)
  return {
    read: async () => {
      const { rows } = await pool.query<{ sysid: string; tli: number; lsn: string }>(IDENTITY_SQL)
      return { systemIdentifier: rows[0].sysid, timeline: Number(rows[0].tli), walLsn: BigInt(rows[0].lsn) }
    },
    close: () => pool.end(),
  }
}

/** CREATE TABLE IF NOT EXISTS of the replication metadata. */
export const sourceTableCql = (keyspace: string): string =>
  `CREATE TABLE IF NOT EXISTS ${keyspace}.${SOURCE_TABLE} (source text PRIMARY KEY, system_identifier text, ` +
  'timeline int, lsn_seen bigint, recorded_at timestamp, updated_at timestamp)'

/** The recovery every SOURCE_CHANGED names. */
export function recoveryText(keyspace: string): string {
  return (
    'Stopped before writing any of it. Recovery: re-snapshot Cassandra from the cluster replicated now ' +
    '(docs/faults.md, "changes from another PostgreSQL cluster"): stop the connector, truncate the Cassandra tables, ' +
    `DELETE FROM ${keyspace}.${SOURCE_TABLE} WHERE source = '${SOURCE_KEY}', drop the connector's offsets and ` +
    'resume it (a fresh slot and snapshot), then start replicate again'
  )
}

/** The SOURCE_CHANGED error: `what` happened, and the recovery. */
export function sourceChanged(what: string, keyspace: string, details?: Record<string, unknown>): PipelineError {
  return new PipelineError(
    ErrorCodes.SOURCE_CHANGED,
    `${what}: its LSNs are unrelated to the write timestamps in Cassandra, and its changes would be lost silently. ` +
      recoveryText(keyspace),
    details === undefined ? {} : { details },
  )
}

const MAX_LSN = (1n << 63n) - 1n

/** Compares PostgreSQL's answer with the record; undefined when they agree (or the record may follow). */
export function compareIdentity(
  where: string,
  keyspace: string,
  recorded: RecordedSource,
  current: PgIdentity,
): PipelineError | undefined {
  const rec = `${keyspace}.${SOURCE_TABLE}`
  if (current.systemIdentifier !== recorded.systemIdentifier) {
    return sourceChanged(
      `PostgreSQL at ${where} is cluster ${current.systemIdentifier} (timeline ${current.timeline}), but ` +
        `${keyspace} was replicated from cluster ${recorded.systemIdentifier} (${rec}): a restore or a migration to ` +
        'another cluster',
      keyspace,
      { recorded: recorded.systemIdentifier, current: current.systemIdentifier },
    )
  }
  if (current.walLsn + LSN_BACKWARDS_TOLERANCE_BYTES < recorded.lsnSeen) {
    return sourceChanged(
      `PostgreSQL at ${where} (cluster ${current.systemIdentifier}, timeline ${current.timeline}) is at WAL position ` +
        `${formatLsn(current.walLsn)}, more than ${LSN_BACKWARDS_TOLERANCE_BYTES >> 30n} GiB below ` +
        `${formatLsn(recorded.lsnSeen)} already replicated from it (${rec}): restored to an earlier point`,
      keyspace,
    )
  }
  if (current.timeline < recorded.timeline) {
    return sourceChanged(
      `PostgreSQL at ${where} is on timeline ${current.timeline}, below timeline ${recorded.timeline} already ` +
        `replicated from cluster ${current.systemIdentifier} (${rec}): an older copy of the cluster`,
      keyspace,
    )
  }
  return undefined
}

interface SourceRow {
  system_identifier?: string | null
  timeline?: number | null
  lsn_seen?: bigint | number | null
}

const rowsOf = (res: unknown): SourceRow[] => (res as { rows?: SourceRow[] }).rows ?? []
const recordedOf = (r: SourceRow): RecordedSource => ({
  systemIdentifier: String(r.system_identifier),
  timeline: Number(r.timeline ?? 0),
  lsnSeen: BigInt(r.lsn_seen ?? 0),
})

/**
 * Records `current` as the keyspace's source when nothing is recorded, else compares them (compareIdentity) and
 * moves the record on (a higher timeline, a higher WAL position). Returns the record; throws SOURCE_CHANGED.
 */
export async function checkSource(
  client: CqlExecutor,
  keyspace: string,
  where: string,
  current: PgIdentity,
  log?: Logger,
): Promise<RecordedSource> {
  const select = `SELECT system_identifier, timeline, lsn_seen FROM ${keyspace}.${SOURCE_TABLE} WHERE source = ?`
  let rows = rowsOf(await client.execute(select, [SOURCE_KEY], { prepare: true }))
  if (rows.length === 0 || rows[0].system_identifier == null) {
    const res = await client.execute(
      `INSERT INTO ${keyspace}.${SOURCE_TABLE} (source, system_identifier, timeline, lsn_seen, recorded_at, ` +
        'updated_at) VALUES (?, ?, ?, ?, toTimestamp(now()), toTimestamp(now())) IF NOT EXISTS',
      [SOURCE_KEY, current.systemIdentifier, current.timeline, current.walLsn],
      { prepare: true },
    )
    const applied = rowsOf(res)[0] as { '[applied]'?: boolean } | undefined
    if (applied?.['[applied]'] !== false) {
      log?.info(
        {
          systemIdentifier: current.systemIdentifier,
          timeline: current.timeline,
          table: `${keyspace}.${SOURCE_TABLE}`,
        },
        'PostgreSQL cluster recorded as the source of the keyspace',
      )
      return { systemIdentifier: current.systemIdentifier, timeline: current.timeline, lsnSeen: current.walLsn }
    }
    rows = rowsOf(await client.execute(select, [SOURCE_KEY], { prepare: true }))
  }
  const recorded = recordedOf(rows[0])
  const problem = compareIdentity(where, keyspace, recorded, current)
  if (problem !== undefined) throw problem
  if (current.timeline > recorded.timeline || current.walLsn > recorded.lsnSeen) {
    if (current.timeline > recorded.timeline) {
      log?.warn(
        { systemIdentifier: current.systemIdentifier, from: recorded.timeline, to: current.timeline },
        'PostgreSQL moved to a new timeline (a standby promoted, or a point-in-time recovery): recorded',
      )
    }
    const next = {
      ...recorded,
      timeline: Math.max(recorded.timeline, current.timeline),
      lsnSeen: current.walLsn > recorded.lsnSeen ? current.walLsn : recorded.lsnSeen,
    }
    await client.execute(
      `UPDATE ${keyspace}.${SOURCE_TABLE} SET timeline = ?, lsn_seen = ?, updated_at = toTimestamp(now()) ` +
        'WHERE source = ?',
      [next.timeline, next.lsnSeen > MAX_LSN ? MAX_LSN : next.lsnSeen, SOURCE_KEY],
      { prepare: true },
    )
    return next
  }
  return recorded
}

/** host:port of a PostgreSQL URL, for messages (never the credentials). */
export function pgWhere(url: string): string {
  try {
    const u = new URL(url)
    return `${u.hostname}:${u.port || '5432'}`
  } catch {
    return 'PostgreSQL'
  }
}

/** The cluster a record's header names, or undefined without the header. */
export function headerIdentity(headers: Readonly<Record<string, Uint8Array | Uint8Array[]>>): string | undefined {
  const v = headers[SOURCE_IDENTITY_HEADER]
  if (v === undefined) return undefined
  const last = Array.isArray(v) ? v.at(-1) : v
  return last === undefined ? undefined : Buffer.from(last).toString('utf8').trim()
}

/**
 * Per key, the highest LSN this process applied; a change more than the tolerance below it is a WAL that went
 * backwards. Bounded: past `maxKeys` the oldest keys are forgotten (a check that cannot fire, never a false stop).
 */
export class LsnRegression {
  readonly #applied = new Map<string, bigint>()
  readonly #maxKeys: number
  readonly #tolerance: bigint

  constructor(maxKeys = 200_000, tolerance = LSN_BACKWARDS_TOLERANCE_BYTES) {
    this.#maxKeys = maxKeys
    this.#tolerance = tolerance
  }

  /** The LSN applied to `key` that `lsn` is too far behind, if it is. */
  behind(key: string, lsn: bigint): bigint | undefined {
    const applied = this.#applied.get(key)
    return applied !== undefined && lsn + this.#tolerance < applied ? applied : undefined
  }

  applied(key: string, lsn: bigint): void {
    const had = this.#applied.get(key)
    if (had !== undefined && had >= lsn) return
    this.#applied.delete(key)
    this.#applied.set(key, lsn)
    if (this.#applied.size > this.#maxKeys) this.#applied.delete(this.#applied.keys().next().value!)
  }
}

/** Reports a failure to ask PostgreSQL for its identity while running (checked again at the next batch). */
export function identityUnavailable(where: string, err: unknown): string {
  return `cannot ask PostgreSQL at ${where} for its identity: ${errorMessage(err)} (asked again at the next batch)`
}

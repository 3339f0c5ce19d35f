import {
  configError,
  nonEmptyString,
  oneOf,
  positiveInt,
  resolveSetting,
  stackAddresses,
  type Setting,
} from '../../config/index.js'
import type { OptionDef, OptionsSchema } from '../../pipeline/index.js'
import { PG_URL_OPTION } from '../postgres/options.js'
import type { DerivedTable } from './derived.js'
import { SOURCE_TABLES, type SourceTable } from './tables.js'

/** Consistency levels a write may use. ANY is left out: a hint alone is not a durable write to commit offsets on. */
export const CONSISTENCY_LEVELS = [
  'LOCAL_QUORUM',
  'LOCAL_ONE',
  'QUORUM',
  'ONE',
  'TWO',
  'THREE',
  'EACH_QUORUM',
  'ALL',
] as const
export type ConsistencyName = (typeof CONSISTENCY_LEVELS)[number]

/**
 * LOCAL_QUORUM: a write is acknowledged once a majority of the local data center's replicas have it, so the offsets
 * committed after it survive the loss of a node (RF 3: 2 of 3). With replication factor 1 (the local stack) a quorum
 * is that one replica: the same as LOCAL_ONE, so the one default fits both.
 */
export const DEFAULT_CONSISTENCY: ConsistencyName = 'LOCAL_QUORUM'

/** Writes in flight per sink (per worker thread). */
export const DEFAULT_CONCURRENCY = 32

/** What the sink does with a TRUNCATE (op t): apply it (truncate.ts), or send it to the DLQ as UNSUPPORTED. */
export const TRUNCATE_POLICIES = ['apply', 'dlq'] as const
export type TruncatePolicy = (typeof TRUNCATE_POLICIES)[number]
/** apply: Cassandra follows PostgreSQL, as for every other change (a TRUNCATE deletes what was written before it). */
export const DEFAULT_TRUNCATE_POLICY: TruncatePolicy = 'apply'

/** --on-truncate of a sink (replicate's, cache-sync's), with what each policy does there. */
export const truncatePolicyOption = (doc: string): OptionDef<TruncatePolicy> => ({
  flag: 'on-truncate',
  env: 'ON_TRUNCATE',
  kind: 'string',
  default: DEFAULT_TRUNCATE_POLICY,
  parse: (s) => oneOf(s, TRUNCATE_POLICIES),
  doc,
})

/** Options of the CDC -> Cassandra batch sink (plain data: they are passed into worker threads). */
export interface CassandraSinkOptions {
  /** 'host' or 'host:port'. */
  contactPoints: string[]
  localDataCenter: string
  keyspace: string
  consistency: ConsistencyName
  /** Writes in flight at once. */
  concurrency: number
  /** Change topic -> the PostgreSQL table it carries (e.g. { 'cdc.public.users': 'users' }). */
  topics: Record<string, SourceTable>
  /** Change topic -> the definition of a table without an entity definition, derived from the catalog (derived.ts). */
  derived?: Record<string, DerivedTable>
  /** Per-request timeout of the driver. Default 12 s. */
  requestTimeoutMs?: number
  /**
   * PostgreSQL, asked for its current WAL position to bound every change's source.lsn (lsn-bound.ts). Without it,
   * LSNs are only checked to be below 2^62.
   */
  pgUrl?: string
  /** What a TRUNCATE does (default apply). */
  onTruncate?: TruncatePolicy
}

// Unquoted CQL identifiers: the keyspace name is part of the statements' text.
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,47}$/

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(\d{1,5}))?$/

/** 'host[:port],...' (port 9042 when omitted), each entry checked. */
function contactPoints(s: Setting<string[]>): string[] {
  const r = resolveSetting(s)
  const rule = 'must be a comma-separated list of host or host:port'
  const text = Array.isArray(r.raw) ? r.raw.join(',') : r.raw
  if (typeof text !== 'string') throw configError(`${r.label} ${rule}`)
  const entries = text.split(',').map((e) => e.trim())
  for (const e of entries) {
    const m = HOST_PORT.exec(e)
    const port = m?.[4] === undefined ? 9042 : Number(m[4])
    if (m === null || port < 1 || port > 65535) throw configError(`${r.label} ${rule}; '${e}' is not`)
  }
  return entries
}

/**
 * The options of the Cassandra sink that come from flags, validated once in the main thread (the topic -> table
 * map comes from the command's --topics). A worker thread gets them as they are.
 */
export const CASSANDRA_OPTIONS = {
  contactPoints: {
    flag: 'cassandra-contact-points',
    env: 'CASSANDRA_CONTACT_POINTS',
    kind: 'list',
    fallback: (_, env) => stackAddresses(env).cassandraContactPoints,
    derivedFrom: ['CASSANDRA_PORT'],
    defaultText: 'the local stack: 127.0.0.1:CASSANDRA_PORT (9042)',
    parse: contactPoints,
    doc: 'Cassandra nodes host[:port],...',
  } satisfies OptionDef<string[]>,
  keyspace: {
    flag: 'cassandra-keyspace',
    env: 'CASSANDRA_KEYSPACE',
    kind: 'string',
    default: 'cdc_keyspace',
    parse: (s) => {
      const keyspace = nonEmptyString(s)
      if (IDENTIFIER.test(keyspace)) return keyspace
      throw configError(`${resolveSetting(s).label} must be a CQL identifier: letters, digits, _ (got '${keyspace}')`)
    },
    doc: 'keyspace holding users, orders, orders_by_user',
  } satisfies OptionDef<string>,
  localDataCenter: {
    flag: 'cassandra-local-dc',
    env: 'CASSANDRA_LOCAL_DC',
    kind: 'string',
    default: 'datacenter1',
    parse: nonEmptyString,
    doc: 'the data center the driver treats as local',
  } satisfies OptionDef<string>,
  consistency: {
    flag: 'consistency',
    env: 'CASSANDRA_CONSISTENCY',
    kind: 'string',
    default: DEFAULT_CONSISTENCY,
    parse: (s) => {
      // Compared case-insensitively: --consistency local_one is LOCAL_ONE.
      const r = resolveSetting(s)
      const found = CONSISTENCY_LEVELS.find((c) => typeof r.raw === 'string' && c === r.raw.trim().toUpperCase())
      if (found !== undefined) return found
      throw configError(`${r.label} must be one of ${CONSISTENCY_LEVELS.join(', ')} (got ${JSON.stringify(r.raw)})`)
    },
    doc: `write consistency: ${CONSISTENCY_LEVELS.join(', ')}; LOCAL_QUORUM is one replica at RF 1, two of three at RF 3`,
  } satisfies OptionDef<ConsistencyName>,
  concurrency: {
    flag: 'concurrency',
    kind: 'number',
    default: DEFAULT_CONCURRENCY,
    parse: positiveInt,
    doc: 'Cassandra writes in flight per partition batch',
  } satisfies OptionDef<number>,
  pgUrl: PG_URL_OPTION,
  onTruncate: truncatePolicyOption(
    'a TRUNCATE in PostgreSQL: apply = delete every Cassandra row of the table (and its query tables) written ' +
      'before it, later changes kept; dlq = send it to the DLQ as UNSUPPORTED, delete nothing',
  ),
} as const satisfies OptionsSchema<CassandraSinkOptions>

/**
 * Change topics -> the table each carries. An entry is 'topic' (the table is the topic's last dot-separated part,
 * as Debezium names topics <prefix>.<schema>.<table>) or 'topic=table'.
 */
export function parseTopicTables(entries: readonly string[]): Record<string, SourceTable> {
  const out: Record<string, SourceTable> = {}
  for (const raw of entries) {
    const entry = raw.trim()
    const [topic, explicit] = entry.includes('=') ? entry.split('=', 2) : [entry, entry.split('.').at(-1)]
    const table = (explicit ?? '').trim()
    if (topic.trim() === '' || !SOURCE_TABLES.includes(table as SourceTable)) {
      throw configError(
        `--topics: '${entry}' must be a change topic of table ${SOURCE_TABLES.join(' or ')} ` +
          `(<prefix>.<schema>.users, or topic=users)`,
      )
    }
    out[topic.trim()] = table as SourceTable
  }
  return out
}

import { configError } from '../../config/index.js'
import { LOG_LEVELS, type LogLevel } from '../../log/index.js'
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
  logLevel?: LogLevel
  logPretty?: boolean
}

// Unquoted CQL identifiers: the keyspace name is part of the statements' text.
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,47}$/

/** Checks options coming from a command or across a worker boundary; throws CONFIG_ERROR naming the field. */
export function validateSinkOptions(raw: Record<string, unknown>): CassandraSinkOptions {
  const o = raw as Partial<CassandraSinkOptions>
  if (!Array.isArray(o.contactPoints) || o.contactPoints.length === 0 || o.contactPoints.some((c) => !c)) {
    throw configError('cassandra sink: contactPoints must be a non-empty list of host or host:port')
  }
  if (typeof o.localDataCenter !== 'string' || o.localDataCenter === '') {
    throw configError('cassandra sink: localDataCenter must be a non-empty string')
  }
  if (typeof o.keyspace !== 'string' || !IDENTIFIER.test(o.keyspace)) {
    throw configError(`cassandra sink: keyspace must be a CQL identifier (got '${String(o.keyspace)}')`)
  }
  const consistency = o.consistency ?? DEFAULT_CONSISTENCY
  if (!CONSISTENCY_LEVELS.includes(consistency)) {
    throw configError(`cassandra sink: consistency must be one of ${CONSISTENCY_LEVELS.join(', ')}`)
  }
  const concurrency = o.concurrency ?? DEFAULT_CONCURRENCY
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw configError('cassandra sink: concurrency must be a positive integer')
  }
  const topics = o.topics
  const derived = o.derived ?? {}
  if (typeof derived !== 'object' || derived === null || Array.isArray(derived)) {
    throw configError('cassandra sink: derived must map change topics to derived table definitions')
  }
  if (
    typeof topics !== 'object' ||
    topics === null ||
    Object.keys(topics).length + Object.keys(derived).length === 0 ||
    Object.values(topics).some((t) => !SOURCE_TABLES.includes(t))
  ) {
    throw configError(`cassandra sink: topics must map each change topic to one of ${SOURCE_TABLES.join(', ')}`)
  }
  if (o.pgUrl !== undefined && (typeof o.pgUrl !== 'string' || o.pgUrl === '')) {
    throw configError('cassandra sink: pgUrl must be a PostgreSQL connection URL')
  }
  if (o.logLevel !== undefined && !LOG_LEVELS.includes(o.logLevel)) {
    throw configError(`cassandra sink: logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  }
  return {
    ...o,
    contactPoints: o.contactPoints,
    localDataCenter: o.localDataCenter,
    keyspace: o.keyspace,
    consistency,
    concurrency,
    topics,
  }
}

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

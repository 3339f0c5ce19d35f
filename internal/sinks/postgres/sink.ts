import pg from 'pg'

import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { Logger } from '../../log/index.js'
import { idOf, specOf, type AnyEvent, type EntitySpec, type Entity, type EventOf } from '../../model/index.js'
import { classifyPgError } from './classify.js'
import {
  EXPECTED_COLUMNS,
  SCHEMA_QUERY,
  SOFT_DELETE_TRIGGER,
  TRIGGER_QUERY,
  buildExistingQuery,
  buildLockParentsQuery,
  buildUpsert,
  reduceBatch,
  exceedsVersionJump,
  MAX_VERSION_JUMP,
  type Statement,
} from './sql.js'

/** The part of a pg.PoolClient the sink uses (tests pass a fake). */
export interface SinkClient {
  query(statement: Statement | string): Promise<{ rows: unknown[] }>
  release(err?: Error | boolean): void
  on(event: 'error', listener: (err: Error) => void): unknown
  removeListener(event: 'error', listener: (err: Error) => void): unknown
}

/** The part of a pg.Pool the sink uses (tests pass a fake). */
export interface SinkPool {
  connect(): Promise<SinkClient>
  on(event: 'error', listener: (err: Error) => void): unknown
  end(): Promise<void>
}

/** Options of {@link PostgresSink}. Give either `connectionString` or `pool`. */
export interface PostgresSinkOptions {
  connectionString?: string
  /** A ready pool (not ended by close(): its owner ends it). */
  pool?: SinkPool
  /** Connections of the pool this sink creates; one batch holds one. Default 2. */
  poolSize?: number
  /** Server-side limit per statement (57014 -> SINK_TIMEOUT). Default 30 s. */
  statementTimeoutMs?: number
  /** Limit for opening a connection. Default 10 s. */
  connectionTimeoutMs?: number
  applicationName?: string
  log?: Logger
}

/** What one batch did. Counts are per entity id after in-batch reduction. */
export interface WriteResult<E extends AnyEvent = AnyEvent> {
  /** Rows inserted or moved forward. */
  applied: number
  /** The ids of those rows. */
  appliedIds: ReadonlySet<string>
  /** Ids whose row was already at the event's version or later (replays, late events). */
  stale: number
  /** Events folded into a later event of the same id in this batch. */
  superseded: number
  /** Events whose referenced row (an order's user) does not exist yet: nothing was written for them (retry, DLQ). */
  missingRefs: E[]
  /**
   * Events not written because their version is more than MAX_VERSION_JUMP ahead of the row's (see
   * versionJumpError): bad input. Events of the same id folded into one of them were not written either.
   */
  rejected?: { event: E; error: PipelineError }[]
}

const SCHEMA_HINT = 'apply table-creation.sql (npm run stack:up does)'

/** The VALIDATION_ERROR of an event whose version is too far ahead of its row's (MAX_VERSION_JUMP). */
export function versionJumpError(version: number, stored: number | undefined): PipelineError {
  return new PipelineError(
    ErrorCodes.VALIDATION_ERROR,
    `version ${version} is more than ${MAX_VERSION_JUMP} ahead of the row's version ` +
      `(${stored ?? 'none: no row yet'}): written, it would freeze the row`,
  )
}

// Stored versions of rows by id (bigint columns come back as text).
function versionsOf(rows: unknown[]): Map<string, number> {
  return new Map((rows as { id: string; version: string | number }[]).map((r) => [r.id, Number(r.version)]))
}

/**
 * Writes batches of events into PostgreSQL idempotently: one checked-out client and one transaction per batch,
 * upserts that only move rows forward, orders without their user reported rather than failed. Errors come out as
 * PipelineErrors via classifyPgError, the driver error kept as cause.
 */
export class PostgresSink {
  private readonly pool: SinkPool
  private readonly ownsPool: boolean
  private readonly log: Logger | undefined
  private closing: Promise<void> | undefined

  constructor(options: PostgresSinkOptions) {
    if (options.pool !== undefined) {
      this.pool = options.pool
      this.ownsPool = false
    } else {
      if (options.connectionString === undefined) {
        throw new PipelineError(ErrorCodes.CONFIG_ERROR, 'PostgresSink needs a connectionString or a pool')
      }
      const statementTimeoutMs = options.statementTimeoutMs ?? 30_000
      this.pool = new pg.Pool({
        connectionString: options.connectionString,
        max: options.poolSize ?? 2,
        connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
        statement_timeout: statementTimeoutMs,
        // Client-side backstop for a server that stops answering (network partition): a bit above the server's.
        query_timeout: statementTimeoutMs + 5_000,
        application_name: options.applicationName ?? 'cdc-pipeline',
        keepAlive: true,
      })
      this.ownsPool = true
    }
    const log = options.log
    this.log = log
    // Without a listener, an idle client's error (server restart) would crash the process.
    this.pool.on('error', (err) => log?.warn({ err }, 'idle PostgreSQL connection failed; the pool replaces it'))
  }

  /**
   * Writes one batch in one transaction: users with their one upsert (a statement is a transaction of its own), orders
   * with the share lock of their users and the upsert between BEGIN and COMMIT. Throws a PipelineError
   * (SINK_UNAVAILABLE, SINK_TIMEOUT, SINK_CONFLICT, SINK_REJECTED, ...) and writes nothing if any statement fails.
   * Re-running a batch is safe: the upserts are idempotent, which also covers a COMMIT whose outcome was lost with
   * the connection.
   */
  async writeBatch<E extends Entity>(entity: E, events: readonly EventOf<E>[]): Promise<WriteResult<EventOf<E>>> {
    if (events.length === 0) return { applied: 0, appliedIds: new Set(), stale: 0, superseded: 0, missingRefs: [] }
    if (this.closing !== undefined) {
      throw new PipelineError(ErrorCodes.SINK_UNAVAILABLE, 'PostgreSQL sink is closed', { retriable: false })
    }
    const client = await this.connect()
    let discard: Error | undefined
    let open = false
    try {
      const spec = specOf(entity)
      // A row with a reference is written with the share lock of its parents, in one transaction; otherwise the
      // upsert is a transaction of its own.
      if (spec.reference === undefined) return await this.writeEntity(client, spec, events, async () => {})
      await client.query('BEGIN')
      open = true
      return await this.writeEntity(client, spec, events, async () => {
        await client.query('COMMIT')
        open = false
      })
    } catch (err) {
      const e = classifyPgError(err)
      if (open) {
        try {
          await client.query('ROLLBACK')
        } catch {
          // The connection itself is broken: discard it rather than return it to the pool.
          discard = err instanceof Error ? err : new Error(String(err))
        }
      } else if (e.code === ErrorCodes.SINK_UNAVAILABLE || e.code === ErrorCodes.SINK_TIMEOUT) {
        // No transaction to roll back, but the connection may be what failed: do not reuse it.
        discard = err instanceof Error ? err : new Error(String(err))
      }
      throw e
    } finally {
      client.release(discard)
    }
  }

  // A checked-out client has no listener of the pool's: when the server ends its connection (a restart) while it is
  // in use, its 'error' event would crash the process. The statement in flight fails too, and the batch is retried.
  private async connect(): Promise<SinkClient> {
    let client: SinkClient
    try {
      client = await this.pool.connect()
    } catch (err) {
      throw classifyPgError(err)
    }
    const onError = (err: Error) =>
      this.log?.warn({ err: err.message }, 'PostgreSQL connection failed while in use; the batch is retried')
    client.on('error', onError)
    const release = client.release.bind(client)
    client.release = (err) => {
      client.removeListener('error', onError)
      release(err)
    }
    return client
  }

  // The lock (with a reference) and the upsert, then `commit`; the existence query after it: only this partition
  // writes these rows' versions, so it reads the same after the commit, with no lock held meanwhile.
  private async writeEntity<E extends AnyEvent>(
    client: SinkClient,
    spec: EntitySpec,
    events: readonly E[],
    commit: () => Promise<void>,
  ): Promise<WriteResult<E>> {
    const reduced = reduceBatch(spec, events)
    const ref = spec.reference
    if (ref !== undefined) {
      const parents = reduced.map((e) => (e as unknown as Record<string, string>)[ref.field])
      await client.query(buildLockParentsQuery(specOf(ref.entity), parents))
    }
    const { rows } = await client.query(buildUpsert(spec, reduced))
    await commit()
    const written = new Set((rows as { id: string }[]).map((r) => r.id))
    const notWritten = reduced.filter((e) => !written.has(idOf(spec, e)))
    let stale = 0
    const missing = new Set<string>()
    const rejected: { event: E; error: PipelineError }[] = []
    if (notWritten.length > 0) {
      // Not written means stale (row already at this version or later), too far ahead of the row
      // (MAX_VERSION_JUMP) or, with a reference, skipped by the JOIN (no parent row).
      const existing = await client.query(
        buildExistingQuery(
          spec,
          notWritten.map((e) => idOf(spec, e)),
        ),
      )
      const versions = versionsOf(existing.rows)
      for (const e of notWritten) {
        const id = idOf(spec, e)
        const stored = versions.get(id)
        if (stored !== undefined && stored >= e.version) stale++
        else if (exceedsVersionJump(e.version, stored))
          rejected.push({ event: e, error: versionJumpError(e.version, stored) })
        else if (ref !== undefined) missing.add(id)
        else stale++
      }
    }
    const missingRefs = missing.size === 0 ? [] : events.filter((e) => missing.has(idOf(spec, e)))
    return {
      applied: written.size,
      appliedIds: written,
      stale,
      // Folded into a later event of their id that was written or found stale; the events of a row whose parent is
      // missing are none of these: they are tried again, and counted when they resolve.
      superseded: events.length - missingRefs.length - (reduced.length - missing.size),
      missingRefs,
      ...(rejected.length > 0 ? { rejected } : {}),
    }
  }

  /** Checks that every entity table exists with the expected columns and the soft-delete trigger; CONFIG_ERROR if not. */
  async checkSchema(): Promise<void> {
    const client = await this.connect()
    try {
      const { rows } = await client.query(SCHEMA_QUERY)
      for (const table of Object.keys(EXPECTED_COLUMNS)) {
        const present = new Set(
          (rows as { table_name: string; column_name: string }[])
            .filter((r) => r.table_name === table)
            .map((r) => r.column_name),
        )
        if (present.size === 0)
          throw new PipelineError(ErrorCodes.CONFIG_ERROR, `table ${table} is missing: ${SCHEMA_HINT}`)
        const lacking = EXPECTED_COLUMNS[table].filter((c) => !present.has(c))
        if (lacking.length > 0) {
          throw new PipelineError(
            ErrorCodes.CONFIG_ERROR,
            `table ${table} lacks column${lacking.length > 1 ? 's' : ''} ${lacking.join(', ')}: ${SCHEMA_HINT}`,
          )
        }
      }
      const trigger = await client.query({
        name: 'cdc_check_trigger_v1',
        text: TRIGGER_QUERY,
        values: [SOFT_DELETE_TRIGGER],
      })
      if (trigger.rows.length === 0) {
        throw new PipelineError(
          ErrorCodes.CONFIG_ERROR,
          `trigger ${SOFT_DELETE_TRIGGER} on users is missing: ${SCHEMA_HINT}`,
        )
      }
    } catch (err) {
      throw classifyPgError(err)
    } finally {
      client.release()
    }
  }

  /** Ends the pool this sink created (a given pool is left to its owner). Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.ownsPool ? this.pool.end() : Promise.resolve()
    return this.closing
  }
}

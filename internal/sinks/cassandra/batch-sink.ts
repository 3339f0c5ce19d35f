import type cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError, errorMessage, show, toPipelineError } from '../../errors/index.js'
import { createLogger, type Logger } from '../../log/index.js'
import { decodeChange, type DecodedChange, type RowChange, type TruncateChange } from '../../model/index.js'
import { REPLAYED_FROM_DLQ_OFFSET } from '../../pipeline/replay.js'
import {
  failedOutcome,
  type BatchResult,
  type BatchSink,
  type MessageOutcome,
  type SourceMessage,
} from '../../pipeline/types.js'
import { classifyCassandraError } from './classify.js'
import {
  planDerivedWrites,
  prepareDerivedChange,
  quoteCql,
  type CqlWrite,
  type DerivedChange,
  type DerivedKeyPlan,
  type DerivedTable,
} from './derived.js'
import { describeTable, withPg } from './catalog.js'
import { createCassandraClient, type CqlExecutor } from './client.js'
import { LsnBound, formatLsn, pgWalPositionReader, type WalPositionReader } from './lsn-bound.js'
import {
  SchemaState,
  absentColumns,
  absentMismatch,
  newColumns,
  unaddableMismatch,
  type MismatchContext,
} from './schema-drift.js'
import { ensureColumn } from './schema-evolve.js'
import {
  IDENTITY_RECHECK_MS,
  LSN_BACKWARDS_TOLERANCE_BYTES,
  LsnRegression,
  SOURCE_IDENTITY_HEADER,
  SOURCE_TABLE,
  checkSource,
  headerIdentity,
  identityUnavailable,
  pgIdentityReader,
  pgWhere,
  sourceChanged,
  type PgIdentity,
  type PgIdentityReader,
  type RecordedSource,
} from './source-identity.js'
import { DEFAULT_TRUNCATE_POLICY, type CassandraSinkOptions, type TruncatePolicy } from './options.js'
import { planWrites, prepareChange, type KeyPlan, type PlannedChange, type Write } from './plan.js'
import {
  SOURCE_TABLES,
  TABLES,
  TARGETS_OF,
  columnsOf,
  deleteCql,
  insertCql,
  primaryKeyOf,
  type SourceTable,
  type TargetTable,
} from './tables.js'
import { applyTruncate, targetOfDerived, targetOfSpec, type TruncateTarget } from './truncate.js'
import { writeTimestampOf } from './write-timestamp.js'

/** A table's definition from PostgreSQL's catalog (undefined: no catalog to ask). */
export type CatalogReader = (schema: string, table: string) => Promise<DerivedTable | undefined>

export type { CqlExecutor } from './client.js'

interface KeyState {
  plan: KeyPlan | DerivedKeyPlan
  error?: PipelineError
  doneAt: number
}

/**
 * Applies a batch of Debezium change events to Cassandra and reports per message.
 *
 * - Every write carries USING TIMESTAMP from the change's LSN (write-timestamp.ts), so redeliveries, replays and
 *   restarts converge and an older change never overwrites a newer one.
 * - The batch is reduced per primary key to its newest change (plan.ts); the writes of all keys run concurrently,
 *   at most `concurrency` at a time (order between keys does not matter, and within a key the timestamps decide).
 * - Tombstones are skipped (stale). A TRUNCATE (op t) with onTruncate 'apply' (the default) deletes every row of
 *   the table's Cassandra tables written before it (truncate.ts), as a barrier: the batch's changes before it are
 *   written first, those after it after it, and a later change of the table from before it is dropped as stale.
 *   With 'dlq' it goes to the DLQ as UNSUPPORTED and nothing is deleted.
 * - A message that cannot be decoded or does not fit the tables fails alone (DLQ). Cassandra unavailable, a timeout
 *   or an overloaded node throws a retriable error: the engine retries the whole batch with backoff, and commits
 *   nothing meanwhile. A missing table throws CONFIG_ERROR: the pipeline stops.
 * - A change whose source.lsn is beyond PostgreSQL's current WAL position (plus a margin, lsn-bound.ts) is
 *   dead-lettered: its write timestamp would freeze the row. Checked when the sink has a PostgreSQL URL (pgUrl).
 * - Schema changes (schema-drift.ts): a column in an after-image that the table does not have (ADD COLUMN in
 *   PostgreSQL) is looked up in PostgreSQL's catalog, added to the table's Cassandra tables (query tables included)
 *   and written from then on; a column the table requires that is absent from an after-image (DROP, RENAME) is never
 *   written as null: SCHEMA_MISMATCH, and the table's later changes follow it into the DLQ.
 * - The source (source-identity.ts): PostgreSQL's system identifier and timeline are checked against the keyspace's
 *   record before the first batch and every 30 s, a change event's cdc.pg.system_identifier header against it, and
 *   every change's LSN against the one applied to the same row; another cluster or a WAL gone backwards throws
 *   SOURCE_CHANGED: the engine stops (exit code 5) before writing any of the batch.
 * - latenciesMs: PostgreSQL commit (source.ts_ms) -> the key's writes acknowledged, for streamed changes.
 */
export class CassandraBatchSink implements BatchSink {
  readonly #o: CassandraSinkOptions
  readonly #client: CqlExecutor
  readonly #cql: Record<'insert' | 'delete', Record<TargetTable, string>>
  #log: Logger | undefined
  readonly #warned = new Set<string>()
  /** Table and column of the obsolete columns already logged (#obsoleteOnce). */
  readonly #obsolete = new Set<string>()
  readonly #lsnBound: LsnBound | undefined
  readonly #closeWal: (() => Promise<void>) | undefined
  #closing: Promise<void> | undefined
  readonly #onTruncate: TruncatePolicy
  /** Per change topic, the write timestamp of the latest TRUNCATE this sink applied. */
  readonly #truncatedAt = new Map<string, bigint>()
  readonly #schema = new SchemaState()
  readonly #identity: PgIdentityReader | undefined
  readonly #closeIdentity: (() => Promise<void>) | undefined
  #recorded: RecordedSource | undefined
  #identityCheckedAt = 0
  readonly #regression = new LsnRegression()
  readonly #describe: CatalogReader

  /**
   * `client` replaces the real driver in unit tests, `walPosition` the query of PostgreSQL's WAL position (without
   * it, the sink asks options.pgUrl; without either, LSNs are not bounded). `log` gets the sink's warnings
   * (without it, a logger at info level). `catalog` replaces reading a table's definition from PostgreSQL's
   * catalog (for a column added there; without it, options.pgUrl is asked), `identity` asking PostgreSQL which
   * cluster it is (source-identity.ts; without it, options.pgUrl is asked; without either, it is not checked).
   */
  constructor(
    options: CassandraSinkOptions,
    client?: CqlExecutor,
    walPosition?: WalPositionReader,
    log?: Logger,
    catalog?: CatalogReader,
    identity?: PgIdentityReader,
  ) {
    this.#o = options
    this.#log = log
    const pgUrl = options.pgUrl
    if (identity !== undefined) this.#identity = identity
    else if (pgUrl !== undefined) {
      const reader = pgIdentityReader(pgUrl)
      this.#identity = reader.read
      this.#closeIdentity = reader.close
    }
    this.#describe =
      catalog ??
      (pgUrl === undefined
        ? async () => undefined
        : (schema, table) => withPg(pgUrl, (db) => describeTable(db, { schema, table })))
    this.#onTruncate = options.onTruncate ?? DEFAULT_TRUNCATE_POLICY
    if (walPosition !== undefined) this.#lsnBound = new LsnBound(walPosition)
    else if (options.pgUrl !== undefined) {
      const reader = pgWalPositionReader(options.pgUrl)
      this.#lsnBound = new LsnBound(reader.read)
      this.#closeWal = reader.close
    }
    this.#client =
      client ??
      (createCassandraClient({
        contactPoints: options.contactPoints,
        localDataCenter: options.localDataCenter,
        keyspace: options.keyspace,
        consistency: options.consistency,
        requestTimeoutMs: options.requestTimeoutMs,
      }) as cassandra.Client as unknown as CqlExecutor)
    const ks = options.keyspace
    const names: TargetTable[] = Object.keys(TABLES)
    this.#cql = {
      insert: Object.fromEntries(names.map((t) => [t, insertCql(ks, TABLES[t])])) as Record<TargetTable, string>,
      delete: Object.fromEntries(names.map((t) => [t, deleteCql(ks, TABLES[t])])) as Record<TargetTable, string>,
    }
  }

  async apply(messages: SourceMessage[]): Promise<BatchResult> {
    const ticket = this.#lsnBound?.arrived() ?? 0
    await this.#checkIdentity()
    this.#checkHeaders(messages)
    const outcomes: MessageOutcome[] = messages.map(() => ({ status: 'ok' }))
    const result: BatchResult = { outcomes, applied: 0, stale: 0, latenciesMs: [] }
    const decoded: (DecodedChange | undefined)[] = messages.map((m, index) => {
      try {
        if (this.#o.derived?.[m.topic] === undefined) this.#tableOf(m.topic)
        return decodeChange(m.value, m.key)
      } catch (err) {
        outcomes[index] = failedOutcome(toPipelineError(err, ErrorCodes.DECODE_ERROR))
        return undefined
      }
    })
    // A TRUNCATE applied is a barrier: the changes before it in the batch are written first, those after it after.
    let segment: number[] = []
    for (let index = 0; index < messages.length; index++) {
      const change = decoded[index]
      if (change?.kind === 'truncate' && this.#onTruncate === 'apply') {
        await this.#applyRows(messages, decoded, segment, result, ticket)
        segment = []
        await this.#truncate(messages[index], change, index, result, ticket)
      } else segment.push(index)
    }
    await this.#applyRows(messages, decoded, segment, result, ticket)
    return result
  }

  // Applies a TRUNCATE (truncate.ts): every partition of the table's Cassandra tables deleted at its write timestamp.
  async #truncate(
    m: SourceMessage,
    change: TruncateChange,
    index: number,
    result: BatchResult,
    ticket: number,
  ): Promise<void> {
    const { outcomes } = result
    const derived = this.#o.derived?.[m.topic]
    let timestamp: bigint
    try {
      timestamp = writeTimestampOf(change)
    } catch (err) {
      outcomes[index] = failedOutcome(toPipelineError(err, ErrorCodes.VALIDATION_ERROR))
      return
    }
    const lsn = change.source.lsn!
    if (this.#lsnBound !== undefined) {
      // A truncate stamped beyond PostgreSQL's WAL would delete, and then shadow, every later change of the table.
      const ceiling = await this.#lsnBound.ceiling(ticket, lsn)
      if (lsn > ceiling) {
        outcomes[index] = failedOutcome(this.#lsnBound.beyond(lsn, ceiling))
        return
      }
    }
    let targets: TruncateTarget[]
    let name: string
    if (derived !== undefined) {
      if (derived.problem !== undefined) {
        outcomes[index] = failedOutcome(new PipelineError(ErrorCodes.UNSUPPORTED, derived.problem))
        return
      }
      targets = [targetOfDerived(derived)]
      name = `${derived.schema}.${derived.table}`
    } else {
      const table = this.#tableOf(m.topic)
      targets = TARGETS_OF[table].map(targetOfSpec)
      name = `${change.source.schema ?? 'public'}.${change.source.table ?? table}`
    }
    const started = Date.now()
    try {
      const deleted = await applyTruncate(this.#client, this.#o.keyspace, targets, timestamp, this.#o.concurrency)
      this.#logger().info(
        { table: name, lsn: String(lsn), deleted, ms: Date.now() - started },
        'TRUNCATE applied: every Cassandra row written before it deleted',
      )
    } catch (err) {
      const e = classifyCassandraError(err)
      // Retriable (or CONFIG_ERROR): the engine retries the batch; deleting again at the same timestamp is harmless.
      if (e.retriable || e.code === ErrorCodes.CONFIG_ERROR) throw e
      outcomes[index] = failedOutcome(e)
      return
    }
    const previous = this.#truncatedAt.get(m.topic)
    if (previous === undefined || timestamp > previous) this.#truncatedAt.set(m.topic, timestamp)
    result.applied++
  }

  // The row changes at `indexes` (no truncate among them, or truncates sent to the DLQ), planned per key and written.
  async #applyRows(
    messages: SourceMessage[],
    decoded: (DecodedChange | undefined)[],
    indexes: number[],
    result: BatchResult,
    ticket: number,
  ): Promise<void> {
    if (indexes.length === 0) return
    const { outcomes } = result
    await this.#addNewColumns(messages, decoded, indexes)
    const prepared: [SourceTable, PlannedChange][] = []
    const preparedDerived: [string, DerivedChange][] = []
    const changes: (RowChange | undefined)[] = []
    for (const index of indexes) {
      const m = messages[index]
      const change = decoded[index]
      if (change === undefined) continue
      try {
        const derived = this.#o.derived?.[m.topic]
        if (change.kind === 'tombstone') {
          result.stale++
          continue
        }
        if (change.kind === 'truncate') {
          const what =
            derived !== undefined
              ? `${derived.schema}.${derived.table}`
              : `${change.source.schema ?? 'public'}.${change.source.table ?? this.#tableOf(m.topic)}`
          const targets =
            derived !== undefined ? derived.target : TARGETS_OF[this.#tableOf(m.topic)].map((t) => t.name).join(' and ')
          outcomes[index] = failedOutcome(
            new PipelineError(
              ErrorCodes.UNSUPPORTED,
              `TRUNCATE of ${what} (lsn ${change.source.lsn}) is not replicated: truncate ` +
                `${this.#o.keyspace}.${targets} by hand if Cassandra should follow (--on-truncate dlq)`,
            ),
          )
          continue
        }
        const mismatch = this.#schemaMismatch(m.topic, change)
        if (mismatch !== undefined) {
          outcomes[index] = failedOutcome(mismatch)
          continue
        }
        if (derived !== undefined) {
          const d = prepareDerivedChange(this.#withAdded(m.topic, derived, change), index, change)
          if (this.#beforeTruncate(m.topic, d.timestamp)) {
            result.stale++
            continue
          }
          preparedDerived.push([m.topic, d])
        } else {
          const table = this.#tableOf(m.topic)
          const p = prepareChange(table, index, change, this.#schema.added(m.topic))
          if (this.#beforeTruncate(m.topic, p.timestamp)) {
            result.stale++
            continue
          }
          prepared.push([table, p])
        }
        changes[index] = change
      } catch (err) {
        outcomes[index] = failedOutcome(toPipelineError(err, ErrorCodes.DECODE_ERROR))
      }
    }

    let ceiling: bigint | undefined
    if (this.#lsnBound !== undefined && prepared.length + preparedDerived.length > 0) {
      // prepareChange refused changes without an LSN: every one here has one.
      const highest = [...prepared, ...preparedDerived].reduce(
        (max, [, p]) => (p.change.source.lsn! > max ? p.change.source.lsn! : max),
        0n,
      )
      ceiling = await this.#lsnBound.ceiling(ticket, highest)
    }
    const derivedByTopic = new Map<string, DerivedChange[]>()
    for (const [topic, d] of preparedDerived) {
      const lsn = d.change.source.lsn!
      if (ceiling !== undefined && lsn > ceiling) {
        outcomes[d.index] = failedOutcome(this.#lsnBound!.beyond(lsn, ceiling))
        changes[d.index] = undefined
        continue
      }
      const list = derivedByTopic.get(topic)
      if (list) list.push(d)
      else derivedByTopic.set(topic, [d])
    }
    const byTable = new Map<SourceTable, PlannedChange[]>()
    for (const [table, planned] of prepared) {
      const lsn = planned.change.source.lsn!
      if (ceiling !== undefined && lsn > ceiling) {
        outcomes[planned.index] = failedOutcome(this.#lsnBound!.beyond(lsn, ceiling))
        changes[planned.index] = undefined
        continue
      }
      const list = byTable.get(table)
      if (list) list.push(planned)
      else byTable.set(table, [planned])
    }

    const plans: (KeyPlan | DerivedKeyPlan)[] = []
    for (const [table, list] of byTable) plans.push(...planWrites(table, list))
    for (const [topic, list] of derivedByTopic) {
      plans.push(...planDerivedWrites(this.#o.keyspace, this.#o.derived![topic], list))
    }
    this.#checkRegression(messages, changes, plans)
    const states = await this.#write(plans)
    for (const s of states) {
      if (s.plan.warning) this.#warnOnce(s.plan.warning)
      if (s.error) {
        for (const i of s.plan.indexes) outcomes[i] = failedOutcome(s.error)
        continue
      }
      result.applied++
      result.stale += s.plan.indexes.length - 1
      const lsn = s.plan.winner.change.source.lsn
      if (lsn !== null) this.#regression.applied(`${messages[s.plan.winner.index].topic}\u0000${s.plan.id}`, lsn)
      for (const i of s.plan.indexes) {
        const change = changes[i]
        if (change && change.op !== 'r' && change.source.tsMs !== null) {
          result.latenciesMs.push(s.doneAt - change.source.tsMs)
        }
      }
    }
  }

  // A change of a table this sink applied a TRUNCATE of, from before that truncate: the truncate deleted it.
  #beforeTruncate(topic: string, timestamp: bigint): boolean {
    const at = this.#truncatedAt.get(topic)
    return at !== undefined && timestamp < at
  }

  // What a topic's table requires and where it goes, for schema checks (schema-drift.ts).
  #schemaOf(topic: string, change: RowChange): { required: string[]; targets: string[]; context: MismatchContext } {
    const derived = this.#o.derived?.[topic]
    const ks = this.#o.keyspace
    if (derived !== undefined) {
      return {
        required: derived.columns.map((c) => c.name),
        targets: [derived.target],
        context: { table: `${derived.schema}.${derived.table}`, targets: `${ks}.${derived.target}`, topic },
      }
    }
    const table = this.#tableOf(topic)
    const [own, ...query] = TARGETS_OF[table]
    const targets = [own, ...query].map((t) => t.name)
    return {
      required: Object.keys(own.columns),
      targets,
      context: {
        table: `${change.source.schema ?? 'public'}.${change.source.table ?? table}`,
        targets: targets.map((t) => `${ks}.${t}`).join(', '),
        topic,
      },
    }
  }

  // A change of a table stopped on a mismatch (from its LSN on), or one lacking a required column (which stops it).
  // A change with every required column ends a stop on an absent one (the column is back).
  #schemaMismatch(topic: string, change: RowChange): PipelineError | undefined {
    const lsn = change.source.lsn
    if (lsn === null) return undefined // refused by prepareChange: it cannot be ordered
    if (change.after !== null && this.#restores(topic, change, lsn)) return this.#schema.stoppedAt(topic, lsn)
    const stopped = this.#schema.stoppedAt(topic, lsn)
    if (stopped !== undefined) return stopped
    if (change.after === null) return undefined
    const { required, context } = this.#schemaOf(topic, change)
    const absent = absentColumns(required, change.after)
    if (absent.length === 0) return undefined
    const e = absentMismatch(context, absent, lsn)
    this.#schema.stop(topic, lsn, e)
    this.#logger().error({ table: context.table, absent, lsn: formatLsn(lsn) }, e.message)
    return e
  }

  // Whether the change has every required column; if so, it ends a stop on an absent column before it (logged).
  #restores(topic: string, change: RowChange, lsn: bigint): boolean {
    const { required, context } = this.#schemaOf(topic, change)
    if (absentColumns(required, change.after!).length > 0) return false
    if (this.#schema.restored(topic, lsn)) {
      this.#logger().info(
        { table: context.table, lsn: formatLsn(lsn) },
        'a change carries every required column again: the table flows again from this LSN on',
      )
    }
    return true
  }

  // A derived table's definition with the columns added at run time that the change's after-image has.
  #withAdded(topic: string, t: DerivedTable, change: RowChange): DerivedTable {
    const added = this.#schema.added(topic)
    if (added.size === 0 || change.after === null) return t
    const extra = [...added].filter(([name]) => Object.prototype.hasOwnProperty.call(change.after, name))
    if (extra.length === 0) return t
    return {
      ...t,
      columns: [...t.columns, ...extra.map(([name, mapped]) => ({ name, pgType: mapped.cql, notNull: false, mapped }))],
    }
  }

  // Columns of after-images that the tables do not have yet: added in PostgreSQL. Each is looked up in PostgreSQL's
  // catalog (its type), added to the table's Cassandra tables (schema-evolve.ts) and written from then on; one that
  // cannot be stops its table from the first change that carries it (SCHEMA_MISMATCH).
  async #addNewColumns(messages: SourceMessage[], decoded: (DecodedChange | undefined)[], indexes: number[]) {
    const wanted = new Map<string, { change: RowChange; lsn: bigint; columns: Set<string> }>()
    for (const index of indexes) {
      const change = decoded[index]
      if (change?.kind !== 'row' || change.after === null || change.source.lsn === null) continue
      const topic = messages[index].topic
      if (this.#o.derived?.[topic]?.problem !== undefined) continue
      // A change lacking a required column is a mismatch (a RENAME shows as one column absent and one new): nothing
      // of it is added. One with all of them may end a stop (the column back) before the stop is asked.
      if (!this.#restores(topic, change, change.source.lsn)) continue
      if (this.#schema.stoppedAt(topic, change.source.lsn) !== undefined) continue
      const { required } = this.#schemaOf(topic, change)
      const fresh = newColumns(required, this.#schema.added(topic), change.after)
      if (fresh.length === 0) continue
      const w = wanted.get(topic)
      if (w === undefined) wanted.set(topic, { change, lsn: change.source.lsn, columns: new Set(fresh) })
      else {
        for (const c of fresh) w.columns.add(c)
        if (change.source.lsn < w.lsn) w.lsn = change.source.lsn
      }
    }
    for (const [topic, { change, lsn, columns }] of wanted) {
      const { targets, context } = this.#schemaOf(topic, change)
      const [schema, table] = context.table.split('.')
      let definition: DerivedTable | undefined
      try {
        definition = await this.#describe(schema, table)
      } catch (err) {
        throw new PipelineError(
          ErrorCodes.SINK_UNAVAILABLE,
          `cannot read ${context.table}'s new columns (${[...columns].join(', ')}) from PostgreSQL's catalog: ${errorMessage(err)}`,
          { cause: err },
        )
      }
      for (const column of columns) {
        const found = definition?.columns.find((c) => c.name === column)
        if (definition !== undefined && found === undefined) {
          // Obsolete: dropped (or renamed) in PostgreSQL since the change. Nothing there to converge to, so it is not
          // added and not written, and the rest of the change is applied; a new group replaying old history must not
          // stop the table on it. Asked again in a later batch (it may be added back under the same name).
          this.#obsoleteOnce(context.table, column)
          continue
        }
        let problem: string | undefined
        const mapped = found?.mapped
        if (found === undefined) problem = 'no --pg-url to read its type from'
        else if (mapped === undefined) problem = `its type ${found.pgType} has no Cassandra mapping`
        else {
          for (const target of targets) {
            problem ??= await ensureColumn(this.#client, this.#o.keyspace, target, column, mapped.cql)
          }
        }
        if (problem !== undefined) {
          const e = unaddableMismatch(context, column, problem, lsn)
          this.#schema.stop(topic, lsn, e, 'unaddable')
          this.#logger().error({ table: context.table, column, lsn: formatLsn(lsn) }, e.message)
          continue
        }
        this.#schema.addColumn(topic, column, found!.mapped!)
        this.#logger().info(
          { table: context.table, column, type: found!.mapped!.cql, targets },
          'column added in PostgreSQL: added to the Cassandra table(s), written from now on',
        )
      }
    }
  }

  // PostgreSQL's identity against the keyspace's record (source-identity.ts): before the first batch, then every
  // IDENTITY_RECHECK_MS. Until it is known nothing is written (retriable); once known, a failed re-check is logged
  // and asked again at the next batch.
  async #checkIdentity(): Promise<void> {
    if (this.#identity === undefined) return
    const now = Date.now()
    if (this.#recorded !== undefined && now - this.#identityCheckedAt < IDENTITY_RECHECK_MS) return
    const where = pgWhere(this.#o.pgUrl ?? '')
    let current: PgIdentity
    try {
      current = await this.#identity()
    } catch (err) {
      if (this.#recorded === undefined) {
        throw new PipelineError(ErrorCodes.SINK_UNAVAILABLE, identityUnavailable(where, err), { cause: err })
      }
      this.#logger().warn(identityUnavailable(where, err))
      this.#identityCheckedAt = now
      return
    }
    try {
      this.#recorded = await checkSource(this.#client, this.#o.keyspace, where, current, this.#logger())
    } catch (err) {
      if (err instanceof PipelineError) throw err
      throw classifyCassandraError(err)
    }
    this.#identityCheckedAt = now
  }

  // A change event whose cdc.pg.system_identifier header names another cluster than the recorded one.
  #checkHeaders(messages: SourceMessage[]): void {
    const recorded = this.#recorded?.systemIdentifier
    if (recorded === undefined) return
    for (const m of messages) {
      const from = headerIdentity(m.headers)
      if (from === undefined || from === recorded) continue
      throw sourceChanged(
        `the change event at ${m.topic} partition ${m.partition} offset ${m.offset} comes from PostgreSQL cluster ` +
          `${show(from, 40)} (its ${SOURCE_IDENTITY_HEADER} header), but ${this.#o.keyspace} was replicated from ` +
          `cluster ${recorded} (${this.#o.keyspace}.${SOURCE_TABLE})`,
        this.#o.keyspace,
        { recorded, header: from },
      )
    }
  }

  // A change far behind the LSN this sink applied to the same row: PostgreSQL's WAL went backwards. Snapshot rows and
  // DLQ replays legitimately carry old LSNs.
  #checkRegression(
    messages: SourceMessage[],
    changes: (RowChange | undefined)[],
    plans: readonly (KeyPlan | DerivedKeyPlan)[],
  ): void {
    for (const plan of plans) {
      for (const i of plan.indexes) {
        const change = changes[i]
        const lsn = change?.source.lsn
        if (change === undefined || lsn == null || change.op === 'r') continue
        if (messages[i].headers[REPLAYED_FROM_DLQ_OFFSET] !== undefined) continue
        const applied = this.#regression.behind(`${messages[i].topic}\u0000${plan.id}`, lsn)
        if (applied === undefined) continue
        const table = `${change.source.schema ?? 'public'}.${change.source.table ?? messages[i].topic}`
        throw sourceChanged(
          `the change of ${table} row ${show(plan.id, 80)} at lsn ${formatLsn(lsn)} (${messages[i].topic} partition ` +
            `${messages[i].partition} offset ${messages[i].offset}) is more than ` +
            `${LSN_BACKWARDS_TOLERANCE_BYTES >> 30n} GiB of WAL behind lsn ${formatLsn(applied)} this replicate ` +
            "applied to the same row: PostgreSQL's WAL went backwards (restored, or another cluster behind the same address)",
          this.#o.keyspace,
        )
      }
    }
  }

  #logger(): Logger {
    this.#log ??= createLogger({ name: 'replicate' }).child({ module: 'cassandra-sink' })
    return this.#log
  }

  // Runs every write of every key, at most `concurrency` at once. A retriable failure stops launching new writes and
  // is thrown once the running ones settle (the engine retries the batch); so is a CONFIG_ERROR (the engine stops).
  // Any other failure is the data's: it fails that key's messages.
  async #write(plans: (KeyPlan | DerivedKeyPlan)[]): Promise<KeyState[]> {
    const states = plans.map((plan): KeyState => ({ plan, doneAt: 0 }))
    const tasks = states.flatMap((state) =>
      (state.plan.writes as (Write | CqlWrite)[]).map((write) => ({ state, write })),
    )
    let abort: PipelineError | undefined
    let next = 0
    const worker = async (): Promise<void> => {
      while (abort === undefined && next < tasks.length) {
        const { state, write } = tasks[next++]
        try {
          await this.#client.execute(...this.#statement(write), { prepare: true })
          state.doneAt = Math.max(state.doneAt, Date.now())
        } catch (err) {
          const e = classifyCassandraError(err)
          if (e.retriable || e.code === ErrorCodes.CONFIG_ERROR) abort ??= e
          else state.error ??= e
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, tasks.length) }, worker))
    if (abort) throw abort
    return states
  }

  #statement(w: Write | CqlWrite): [string, unknown[]] {
    if (w.kind === 'cql') return [w.query, w.params]
    const spec = TABLES[w.table]
    if (w.kind === 'upsert') {
      const added = Object.keys(w.values).filter((c) => !(c in spec.columns))
      if (added.length === 0)
        return [this.#cql.insert[w.table], [...columnsOf(spec).map((c) => w.values[c]), w.timestamp]]
      const columns = [...columnsOf(spec), ...added]
      const query =
        `INSERT INTO ${this.#o.keyspace}.${w.table} (${columns.map(quoteCql).join(', ')}) ` +
        `VALUES (${columns.map(() => '?').join(', ')}) USING TIMESTAMP ?`
      return [query, [...columns.map((c) => w.values[c]), w.timestamp]]
    }
    return [this.#cql.delete[w.table], [w.timestamp, ...primaryKeyOf(spec).map((c) => w.key[c])]]
  }

  #tableOf(topic: string): SourceTable {
    const table = this.#o.topics[topic]
    if (table === undefined) {
      throw new PipelineError(
        ErrorCodes.CONFIG_ERROR,
        `topic '${topic}' is not mapped to a table (${SOURCE_TABLES.join(' or ')})`,
      )
    }
    return table
  }

  #obsoleteOnce(table: string, column: string): void {
    const key = `${table}\u0000${column}`
    if (this.#obsolete.has(key)) return
    this.#obsolete.add(key)
    this.#logger().warn(
      { table, column },
      `column ${column} of ${table} in a change event is not in PostgreSQL's catalog any more (dropped or renamed ` +
        'since the change): not added to Cassandra and not written, the rest of the change applied (logged once)',
    )
  }

  #warnOnce(message: string): void {
    const kind = message.replace(/^\w+ [0-9a-f-]+: /, '')
    if (this.#warned.has(kind)) return
    this.#warned.add(kind)
    this.#logger().warn(`${message} (logged once per kind)`)
  }

  async close(): Promise<void> {
    this.#closing ??= Promise.all([
      this.#client.shutdown().catch(() => undefined),
      this.#closeWal?.().catch(() => undefined),
      this.#closeIdentity?.().catch(() => undefined),
    ]).then(() => undefined)
    await this.#closing
  }
}

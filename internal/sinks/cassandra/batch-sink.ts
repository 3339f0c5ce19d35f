import type cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError, toPipelineError } from '../../errors/index.js'
import { createLogger, type Logger } from '../../log/index.js'
import { decodeChange, type DecodedChange, type RowChange, type TruncateChange } from '../../model/index.js'
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
  type CqlWrite,
  type DerivedChange,
  type DerivedKeyPlan,
} from './derived.js'
import { createCassandraClient } from './client.js'
import { LsnBound, pgWalPositionReader, type WalPositionReader } from './lsn-bound.js'
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

/** The part of a cassandra-driver Client the sink uses (unit tests pass a fake). */
export interface CqlExecutor {
  execute(
    query: string,
    params: unknown[],
    options: { prepare: boolean; fetchSize?: number; pageState?: string },
  ): Promise<unknown>
  shutdown(): Promise<void>
}

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
 * - latenciesMs: PostgreSQL commit (source.ts_ms) -> the key's writes acknowledged, for streamed changes.
 */
export class CassandraBatchSink implements BatchSink {
  readonly #o: CassandraSinkOptions
  readonly #client: CqlExecutor
  readonly #cql: Record<'insert' | 'delete', Record<TargetTable, string>>
  #log: Logger | undefined
  readonly #warned = new Set<string>()
  readonly #lsnBound: LsnBound | undefined
  readonly #closeWal: (() => Promise<void>) | undefined
  #closing: Promise<void> | undefined
  readonly #onTruncate: TruncatePolicy
  /** Per change topic, the write timestamp of the latest TRUNCATE this sink applied. */
  readonly #truncatedAt = new Map<string, bigint>()

  /**
   * `client` replaces the real driver in unit tests, `walPosition` the query of PostgreSQL's WAL position (without
   * it, the sink asks options.pgUrl; without either, LSNs are not bounded). `log` gets the sink's warnings
   * (without it, a logger at info level).
   */
  constructor(options: CassandraSinkOptions, client?: CqlExecutor, walPosition?: WalPositionReader, log?: Logger) {
    this.#o = options
    this.#log = log
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
        if (derived !== undefined) {
          const d = prepareDerivedChange(derived, index, change)
          if (this.#beforeTruncate(m.topic, d.timestamp)) {
            result.stale++
            continue
          }
          preparedDerived.push([m.topic, d])
        } else {
          const table = this.#tableOf(m.topic)
          const p = prepareChange(table, index, change)
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
    const states = await this.#write(plans)
    for (const s of states) {
      if (s.plan.warning) this.#warnOnce(s.plan.warning)
      if (s.error) {
        for (const i of s.plan.indexes) outcomes[i] = failedOutcome(s.error)
        continue
      }
      result.applied++
      result.stale += s.plan.indexes.length - 1
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
    if (w.kind === 'upsert')
      return [this.#cql.insert[w.table], [...columnsOf(spec).map((c) => w.values[c]), w.timestamp]]
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
    ]).then(() => undefined)
    await this.#closing
  }
}

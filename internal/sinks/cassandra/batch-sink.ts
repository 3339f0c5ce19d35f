import type cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError, toPipelineError } from '../../errors/index.js'
import { createLogger, type Logger } from '../../log/index.js'
import { decodeChange, type RowChange } from '../../model/index.js'
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
import type { CassandraSinkOptions } from './options.js'
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

/** The part of a cassandra-driver Client the sink uses (unit tests pass a fake). */
export interface CqlExecutor {
  execute(query: string, params: unknown[], options: { prepare: boolean }): Promise<unknown>
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
 * - Tombstones are skipped (stale). A TRUNCATE is not applied: it goes to the DLQ as UNSUPPORTED, because emptying
 *   the Cassandra tables from a change event is too dangerous to do silently (a TRUNCATE run by mistake, or on a
 *   table in a shared keyspace, would wipe the analytical store); the operator reads the DLQ entry and truncates
 *   cdc_keyspace's tables by hand if that is what they want. Debezium skips truncates unless told otherwise.
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

  /**
   * `client` replaces the real driver in unit tests, `walPosition` the query of PostgreSQL's WAL position (without
   * it, the sink asks options.pgUrl; without either, LSNs are not bounded). `log` gets the sink's warnings
   * (without it, a logger at info level).
   */
  constructor(options: CassandraSinkOptions, client?: CqlExecutor, walPosition?: WalPositionReader, log?: Logger) {
    this.#o = options
    this.#log = log
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
    const prepared: [SourceTable, PlannedChange][] = []
    const preparedDerived: [string, DerivedChange][] = []
    const changes: (RowChange | undefined)[] = []
    messages.forEach((m, index) => {
      try {
        const derived = this.#o.derived?.[m.topic]
        if (derived !== undefined) {
          const change = decodeChange(m.value, m.key)
          if (change.kind === 'tombstone') result.stale++
          else if (change.kind === 'truncate') {
            outcomes[index] = failedOutcome(
              new PipelineError(
                ErrorCodes.UNSUPPORTED,
                `TRUNCATE of ${derived.schema}.${derived.table} (lsn ${change.source.lsn}) is not replicated: ` +
                  `truncate ${this.#o.keyspace}.${derived.target} by hand if Cassandra should follow`,
              ),
            )
          } else {
            preparedDerived.push([m.topic, prepareDerivedChange(derived, index, change)])
            changes[index] = change
          }
          return
        }
        const table = this.#tableOf(m.topic)
        const change = decodeChange(m.value, m.key)
        if (change.kind === 'tombstone') {
          result.stale++
          return
        }
        if (change.kind === 'truncate') {
          outcomes[index] = failedOutcome(
            new PipelineError(
              ErrorCodes.UNSUPPORTED,
              `TRUNCATE of ${change.source.schema ?? 'public'}.${change.source.table ?? table} (lsn ${change.source.lsn}) ` +
                `is not replicated: truncate ${this.#o.keyspace}.${TARGETS_OF[table].map((t) => t.name).join(' and ')} ` +
                'by hand if Cassandra should follow',
            ),
          )
          return
        }
        prepared.push([table, prepareChange(table, index, change)])
        changes[index] = change
      } catch (err) {
        outcomes[index] = failedOutcome(toPipelineError(err, ErrorCodes.DECODE_ERROR))
      }
    })

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
    return result
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
    this.#log ??= createLogger({ name: 'replicate' }).child({ module: 'cassandra-sink' })
    this.#log.warn(`${message} (logged once per kind)`)
  }

  async close(): Promise<void> {
    this.#closing ??= Promise.all([
      this.#client.shutdown().catch(() => undefined),
      this.#closeWal?.().catch(() => undefined),
    ]).then(() => undefined)
    await this.#closing
  }
}

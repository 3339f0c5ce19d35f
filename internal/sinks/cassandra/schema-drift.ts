// Schema changes in PostgreSQL as the change stream shows them. Pure: no I/O (the columns are added by
// schema-evolve.ts).
//
// Debezium's JSON (schemas disabled) writes every column of the row's table as it knew it when it decoded the
// change, a NULL as null: a column it did not write is not in the table any more (dropped, or renamed and now under
// another name). So "absent from the after-image" and "null" mean different things:
// - a column the sink's table definition requires that is absent: SCHEMA_MISMATCH. The change is not applied (its
//   values are never written as null), and neither is any later change of the table (from that LSN on: a change of
//   the table from before the schema change, delivered later by another partition, is still applied), deletes
//   included, until a change carries every required column again (the schema restored: from that change's LSN on
//   the table flows again, without a restart); they stay in the DLQ as the record of what was refused (they lack the
//   column, so a replay would refuse them again: a re-snapshot brings their rows up to date). Ending the stop there is what
//   lets a new group replay old history: a rename that was undone an hour ago stops only its own window, not every
//   change since.
// - a column in the after-image the definition does not have: a column added in PostgreSQL; the sink adds it to the
//   Cassandra table(s) and writes it from then on (or, when it cannot, SCHEMA_MISMATCH like above, and that stop
//   lasts until a restart). One PostgreSQL's catalog does not have any more (dropped, or renamed, since the change)
//   is obsolete: not added, not written, the rest of the change applied (batch-sink.ts logs it once). A new group
//   replaying history meets such columns, and there is nothing in PostgreSQL left for them to converge to.
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { CdcRow } from '../../model/index.js'
import { formatLsn } from './lsn-bound.js'
import type { MappedType } from './type-map.js'

/** Columns of `required` that `image` does not have at all (a null value is present). */
export function absentColumns(required: readonly string[], image: CdcRow): string[] {
  return required.filter((c) => !Object.prototype.hasOwnProperty.call(image, c))
}

/** Columns of `image` that neither `known` nor `extra` has. */
export function newColumns(known: readonly string[], extra: ReadonlyMap<string, unknown>, image: CdcRow): string[] {
  const has = new Set(known)
  return Object.keys(image).filter((c) => !has.has(c) && !extra.has(c))
}

/** What a mismatch says: the PostgreSQL table, its Cassandra tables, the columns, and the recovery. */
export interface MismatchContext {
  /** 'public.users' */
  table: string
  /** 'cdc_keyspace.users, cdc_keyspace.orders_by_user' */
  targets: string
  topic: string
}

/** The SCHEMA_MISMATCH of a change that lacks required columns. */
export function absentMismatch(c: MismatchContext, absent: readonly string[], lsn: bigint): PipelineError {
  const cols = absent.join(', ')
  return new PipelineError(
    ErrorCodes.SCHEMA_MISMATCH,
    `table ${c.table}: column${absent.length > 1 ? 's' : ''} ${cols} absent from the change's after-image (dropped ` +
      `or renamed in PostgreSQL?), and ${c.targets} require${c.targets.includes(',') ? '' : 's'} ${absent.length > 1 ? 'them' : 'it'}: ` +
      `never written as null, this change and the table's later ones (lsn ${formatLsn(lsn)} on) go to the DLQ ` +
      `until a change carries the column again. Restore the column in PostgreSQL (rename it back, or add it ` +
      `again), then re-snapshot the rows changed meanwhile: npm run resnapshot -- --table ${c.table} (the dead ` +
      `letters lack the column: replayed, they would be refused again; docs/faults.md)`,
    { details: { table: c.table, absent: [...absent], lsn: String(lsn) } },
  )
}

/** The SCHEMA_MISMATCH of a new column the sink could not add. */
export function unaddableMismatch(c: MismatchContext, column: string, why: string, lsn: bigint): PipelineError {
  return new PipelineError(
    ErrorCodes.SCHEMA_MISMATCH,
    `table ${c.table}: new column ${column} cannot be added to ${c.targets}: ${why}; this change and the table's ` +
      `later ones (lsn ${formatLsn(lsn)} on) go to the DLQ. Fix it (docs/type-mapping.md), restart replicate and ` +
      `replay: node cmd/replay-dlq --topic ${c.topic} --error-code SCHEMA_MISMATCH (docs/faults.md)`,
    { details: { table: c.table, column, lsn: String(lsn) } },
  )
}

/**
 * A table's changes from `fromLsn` on go to the DLQ with `error`; a stop on an absent column ends at `untilLsn`, the
 * lowest LSN above it of a change that had every required column again.
 */
interface Stopped {
  fromLsn: bigint
  untilLsn?: bigint
  /** 'absent': a required column missing (ends when it is back); 'unaddable': a new column (lasts until a restart). */
  kind: 'absent' | 'unaddable'
  error: PipelineError
}

/**
 * Per change topic: the columns added at run time (beyond the table definition) with their mapping, and where the
 * table stopped on a mismatch.
 */
export class SchemaState {
  readonly #added = new Map<string, Map<string, MappedType>>()
  readonly #stopped = new Map<string, Stopped>()

  /** The columns added to the topic's table at run time. */
  added(topic: string): ReadonlyMap<string, MappedType> {
    return this.#added.get(topic) ?? new Map()
  }

  addColumn(topic: string, column: string, mapped: MappedType): void {
    let m = this.#added.get(topic)
    if (m === undefined) this.#added.set(topic, (m = new Map()))
    m.set(column, mapped)
  }

  /**
   * Stops the topic's table from `lsn` on (the lowest LSN of a mismatch wins: it is where the schema changed). A
   * mismatch past the end of an earlier stop (the column gone again) starts a new one.
   */
  stop(topic: string, lsn: bigint, error: PipelineError, kind: Stopped['kind'] = 'absent'): void {
    const s = this.#stopped.get(topic)
    const ended = s?.untilLsn !== undefined && lsn >= s.untilLsn
    if (s === undefined || lsn < s.fromLsn || ended) this.#stopped.set(topic, { fromLsn: lsn, kind, error })
  }

  /**
   * A change at `lsn` had every required column: a stop on an absent column that began before it ends there (the
   * column is back in PostgreSQL). True when this moved a stop's end.
   */
  restored(topic: string, lsn: bigint): boolean {
    const s = this.#stopped.get(topic)
    if (s === undefined || s.kind !== 'absent' || lsn <= s.fromLsn) return false
    if (s.untilLsn !== undefined && s.untilLsn <= lsn) return false
    s.untilLsn = lsn
    return true
  }

  /** The error of a change at `lsn` of a stopped table, if it is at or after the stop (and before its end). */
  stoppedAt(topic: string, lsn: bigint): PipelineError | undefined {
    const s = this.#stopped.get(topic)
    if (s === undefined || lsn < s.fromLsn) return undefined
    return s.untilLsn !== undefined && lsn >= s.untilLsn ? undefined : s.error
  }
}

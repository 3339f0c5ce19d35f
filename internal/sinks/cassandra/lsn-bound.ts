// The upper bound of a change's source.lsn: no change can come from beyond PostgreSQL's current WAL position.
//
// A write's timestamp is derived from its change's LSN (write-timestamp.ts) and Cassandra keeps the highest. A change
// whose LSN is hostile or corrupt (say near 2^62) would win over every later change of its row: the row would be
// frozen forever. So the LSN of every change must not be beyond the WAL position PostgreSQL had when the change was
// applied, plus a margin. The position is asked of PostgreSQL (pg_current_wal_lsn(), which needs no privilege) only
// when a batch carries an LSN beyond the last position known plus the margin, and always by a query started after the
// batch arrived: Debezium had read every change of the batch from the WAL before, so a genuine change is never
// beyond the answer, and a stream of genuine changes asks at most once per margin of WAL written. What the margin
// lets through unasked can at worst hold a row back until PostgreSQL has written that much more WAL.
import pg from 'pg'
import { ErrorCodes, PipelineError, errorMessage } from '../../errors/index.js'

/** WAL beyond the last known position that is let through without asking PostgreSQL again: 64 MiB. */
export const LSN_MARGIN_BYTES = 64n << 20n

/** PostgreSQL's text form of an LSN: 'X/Y', the high and low 32 bits in hexadecimal. */
export function formatLsn(lsn: bigint): string {
  const hex = (n: bigint) => n.toString(16).toUpperCase()
  return lsn < 0n ? lsn.toString() : `${hex(lsn >> 32n)}/${hex(lsn & 0xffffffffn)}`
}

/** Reads PostgreSQL's current WAL position (bytes since 0/0). */
export type WalPositionReader = () => Promise<bigint>

/** A reader with its own small pool (one connection, opened on demand, closed when idle). */
export function pgWalPositionReader(pgUrl: string): { read: WalPositionReader; close: () => Promise<void> } {
  const pool = new pg.Pool({
    connectionString: pgUrl,
    max: 1,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
    statement_timeout: 10_000,
    query_timeout: 15_000,
    application_name: 'cdc-replicate-lsn-bound',
  })
  // An idle connection ended by a PostgreSQL restart: the pool replaces it; the next read reports any failure.
  pool.on('error', () => undefined)
  return {
    read: async () => {
      const { rows } = await pool.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0')::text AS lsn")
      return BigInt(rows[0].lsn)
    },
    close: () => pool.end(),
  }
}

/** Checks LSNs against PostgreSQL's WAL position (see the file comment). */
export class LsnBound {
  readonly #read: WalPositionReader
  readonly #margin: bigint
  #known: bigint | undefined
  // A logical clock: a batch may use a query started after it arrived (a larger tick), never an earlier one.
  #tick = 0
  #inflight: { startedAt: number; answer: Promise<bigint> } | undefined

  constructor(read: WalPositionReader, marginBytes: bigint = LSN_MARGIN_BYTES) {
    this.#read = read
    this.#margin = marginBytes
  }

  /** A ticket for a batch that has just arrived, to pass to {@link ceiling}. */
  arrived(): number {
    return ++this.#tick
  }

  /**
   * The highest LSN a change of the batch holding ticket `ticket` may have, given its highest LSN `highest`. Asks
   * PostgreSQL only when `highest` is beyond what is known. Throws SINK_UNAVAILABLE (retriable: the engine retries
   * the batch) when PostgreSQL cannot be asked: an LSN that cannot be checked is not written on trust.
   */
  async ceiling(ticket: number, highest: bigint): Promise<bigint> {
    if (this.#known !== undefined && highest <= this.#known + this.#margin) return this.#known + this.#margin
    let inflight = this.#inflight
    if (inflight === undefined || inflight.startedAt < ticket) {
      const answer = this.#read()
      inflight = { startedAt: ++this.#tick, answer }
      this.#inflight = inflight
      const clear = () => {
        if (this.#inflight === inflight) this.#inflight = undefined
      }
      answer.then(clear, clear)
    }
    let position: bigint
    try {
      position = await inflight.answer
    } catch (err) {
      throw new PipelineError(
        ErrorCodes.SINK_UNAVAILABLE,
        `cannot check source.lsn ${formatLsn(highest)} against PostgreSQL's WAL position: ${errorMessage(err)}`,
        { cause: err },
      )
    }
    if (this.#known === undefined || position > this.#known) this.#known = position
    return this.#known + this.#margin
  }

  /** The VALIDATION_ERROR of a change whose LSN is beyond the ceiling. */
  beyond(lsn: bigint, ceiling: bigint): PipelineError {
    return new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      `source.lsn ${formatLsn(lsn)} is beyond PostgreSQL's current WAL position ${formatLsn(ceiling - this.#margin)} ` +
        `(plus a margin of ${this.#margin >> 20n} MiB): no change can come from there, and its write timestamp ` +
        'would freeze the row',
    )
  }
}

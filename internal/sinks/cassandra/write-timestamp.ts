// The write timestamp (USING TIMESTAMP) of every Cassandra write the CDC sink makes.
//
// Cassandra keeps, per cell and per row, the write with the highest timestamp (a delete wins a tie). If every write
// carries a timestamp that grows with the change's position in PostgreSQL, then applying changes twice, out of order,
// after a crash or from a replay of the whole topic all end in the same state: the newest change wins, and a late or
// redelivered older change never overwrites a newer one.
//
// The position is the LSN of the change's WAL record (source.lsn with pgoutput). Two changes of the same row are
// ordered by their LSNs: the second one has to wait for the first one's row lock, which is released at commit, so its
// WAL record comes later. The LSN is a byte offset into PostgreSQL's WAL, unsigned 64-bit and monotonic for the
// life of the cluster; it stays below 2^62 (4 EiB of WAL, over a century at 1 GB/s), so it fits Cassandra's signed
// 64-bit timestamps with room for the band below. (One exotic interleaving escapes the row-lock argument: an INSERT
// writes its heap record before it waits on a concurrent DELETE of the same key, so if that DELETE's record comes
// later and commits first, the INSERT's change carries the smaller LSN. Only a commit LSN would order that; pgoutput
// change events do not carry it.)
//
// Initial and blocking snapshot rows (op r) and streamed changes (c, u, d) go in two bands:
//   snapshot row        timestamp = lsn          (every row of a snapshot carries the snapshot's LSN)
//   streamed change     timestamp = 2^62 + lsn
// A snapshot row reflects the table at the snapshot's LSN, but a transaction that was still running then can write
// a row before that LSN and commit after it: its change is streamed after the snapshot with a smaller LSN than the
// snapshot row's. With one band it would lose to the older snapshot state; with two, a streamed change always wins
// over a snapshot row, and a later snapshot still wins over an earlier one. Such a snapshot therefore never repairs a
// row a streamed change wrote before it.
//
// Incremental-snapshot rows (source.snapshot 'incremental', npm run resnapshot) are what repairs: they go in the
// streamed band, ordered by the first LSN of source.sequence, the last commit LSN the connector had seen when it read
// the chunk's close watermark (call it W; the events carry no source.lsn):
//   incremental row     timestamp = 2^62 + W
// Debezium (DBLog) reads a chunk between an open and a close watermark it writes into the signal table, and drops
// from the chunk every row that a change committed inside that window touched (the streamed change is emitted
// instead). So a chunk row that is emitted reflects every change committed before the chunk was read, and each of
// those has a WAL record below its commit LSN, which is at most W: the row wins over all of them (over any damage
// done to Cassandra too, which is written below the bands). A change written after the close watermark has an LSN
// above W and wins over the row (W is a commit record's position: no row change has it).
// KNOWN HOLE, not fixed here: a transaction that wrote the row before the window and commits after it carries a
// change LSN below W, so the older snapshot value read in the window wins over it, and the row stays stale until
// its next change. Seen once: 1 stale row in 66,898 under 1,000 changes/s. Only the change's commit LSN would order
// it, and pgoutput change events do not carry it.
//
// Both bands lie far above wall-clock microseconds (about 2^51 today), the timestamp cqlsh and most clients use: a
// row someone edits by hand in Cassandra is overwritten by the next change of that row in PostgreSQL, the source of
// truth. WRITETIME(column) shows the band and the LSN: WRITETIME - 2^62 is the LSN of the change that wrote it.
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import type { RowChange, TruncateChange } from '../../model/index.js'

/** The start of the streamed-change band: 2^62. */
export const STREAMED_BAND = 1n << 62n

/**
 * The USING TIMESTAMP of a change (see the file comment); a TRUNCATE (op t) is streamed like c, u and d, and an
 * incremental-snapshot row goes in the streamed band at its last commit LSN (source.lsn as decoded: sequence[0]).
 * Throws VALIDATION_ERROR when it has no usable LSN.
 */
export function writeTimestampOf(change: Pick<RowChange | TruncateChange, 'op' | 'source'>): bigint {
  const lsn = change.source.lsn
  const incremental = change.op === 'r' && change.source.incremental === true
  if (lsn === null) {
    throw new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      incremental
        ? 'the incremental-snapshot row has neither source.lsn nor a last commit LSN in source.sequence: it cannot be ordered'
        : 'the change has no source.lsn: it cannot be ordered',
    )
  }
  if (lsn < 0n || lsn >= STREAMED_BAND) {
    throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `source.lsn ${lsn} is outside 0..2^62`)
  }
  return change.op === 'r' && !incremental ? lsn : STREAMED_BAND + lsn
}

/**
 * The LSN a write timestamp came from, and whether it was an initial or blocking snapshot row (for people reading
 * WRITETIME; an incremental-snapshot row reads as streamed at its last commit LSN).
 */
export function describeWriteTimestamp(timestamp: bigint): { lsn: bigint; snapshot: boolean } {
  return timestamp >= STREAMED_BAND
    ? { lsn: timestamp - STREAMED_BAND, snapshot: false }
    : { lsn: timestamp, snapshot: true }
}

import type { RedisClientType } from 'redis'
import { ErrorCodes, PipelineError, toPipelineError } from '../../errors/index.js'
import type { Logger } from '../../log/index.js'
import { decodeChange } from '../../model/index.js'
import {
  failedOutcome,
  type BatchResult,
  type BatchSink,
  type MessageOutcome,
  type SourceMessage,
} from '../../pipeline/types.js'
import { LsnBound, pgWalPositionReader, type WalPositionReader } from '../cassandra/lsn-bound.js'
import { classifyRedisError } from './classify.js'
import { createRedisClient, type RedisExecutor } from './client.js'
import { channelOf, type RedisSinkOptions } from './options.js'
import { planChange, type CachePlan } from './plan.js'
import { APPLY_SCRIPT, APPLY_SCRIPT_SHA1, scriptArgs } from './script.js'

/**
 * Applies a batch of Debezium change events to the Redis cache and reports per message.
 *
 * - Every change goes through one Lua script (script.ts) that compares the change's version (its LSN, as the
 *   Cassandra sink orders writes) with the key's, writes only a newer one, invalidates the lists the row is in and
 *   announces each key on the pub/sub channel, atomically. A redelivered or late change is refused there: counted
 *   as stale, nothing written or announced.
 * - The changes of a batch are sent in the batch's order on one connection (pipelined), so Redis runs them in that
 *   order; the batch resolves once Redis answered every one: the engine commits the offsets only then.
 * - Redis down, the connection lost, a timeout: the batch throws a retriable error (the engine backs off and
 *   retries it, nothing committed); a change that was applied before the failure is refused as stale on the retry.
 * - Tombstones are stale; a TRUNCATE goes to the DLQ as UNSUPPORTED (the cache's keys of a table are not dropped
 *   from a change event; node cmd/purge, a later command, empties the cache); an undecodable change, or one whose
 *   LSN is beyond PostgreSQL's WAL position (with a PostgreSQL URL), fails alone (DLQ).
 * - latenciesMs: PostgreSQL commit (source.ts_ms) -> Redis acknowledged, for streamed changes.
 */
export class RedisBatchSink implements BatchSink {
  readonly #o: RedisSinkOptions
  readonly #client: RedisExecutor
  readonly #log: Logger | undefined
  readonly #lsnBound: LsnBound | undefined
  readonly #closeWal: (() => Promise<void>) | undefined
  readonly #warned = new Set<string>()
  #closing: Promise<void> | undefined

  constructor(options: RedisSinkOptions, client?: RedisExecutor, walPosition?: WalPositionReader, log?: Logger) {
    this.#o = options
    this.#log = log
    if (walPosition !== undefined) this.#lsnBound = new LsnBound(walPosition)
    else if (options.pgUrl !== undefined) {
      const reader = pgWalPositionReader(options.pgUrl)
      this.#lsnBound = new LsnBound(reader.read)
      this.#closeWal = reader.close
    }
    if (client !== undefined) this.#client = client
    else {
      let lastError = ''
      const real: RedisClientType = createRedisClient(options.redisUrl, {
        commandTimeoutMs: options.commandTimeoutMs ?? 10_000,
        onError: (err) => {
          const text = classifyRedisError(err).message
          if (text !== lastError) this.#log?.warn(text)
          lastError = text
        },
      })
      // Connects (and reconnects) in the background; until it is ready, commands fail retriably.
      real.connect().catch(() => undefined)
      real.on('ready', () => {
        if (lastError !== '') this.#log?.info('Redis connection ready again')
        lastError = ''
      })
      this.#client = {
        evalSha: (sha, o) => real.evalSha(sha, o),
        scriptLoad: (script) => real.scriptLoad(script),
        close: async () => {
          if (real.isOpen) await real.close().catch(() => real.destroy())
          else real.destroy()
        },
      }
    }
  }

  async apply(messages: SourceMessage[]): Promise<BatchResult> {
    const ticket = this.#lsnBound?.arrived() ?? 0
    const outcomes: MessageOutcome[] = messages.map(() => ({ status: 'ok' }))
    const result: BatchResult = { outcomes, applied: 0, stale: 0, latenciesMs: [] }
    const planned: { index: number; plan: CachePlan; lsn: bigint; tsMs: number | null }[] = []
    messages.forEach((m, index) => {
      try {
        const table = this.#o.topics[m.topic]
        if (table === undefined) {
          throw new PipelineError(ErrorCodes.CONFIG_ERROR, `topic '${m.topic}' is not mapped to a table`)
        }
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
                'is not applied to the cache: purge its keys by hand if the cache should follow',
            ),
          )
          return
        }
        const plan = planChange(table, change, this.#o.mode)
        if (plan.warning !== undefined) this.#warnOnce(plan.warning)
        planned.push({ index, plan, lsn: change.source.lsn!, tsMs: change.op === 'r' ? null : change.source.tsMs })
      } catch (err) {
        const e = toPipelineError(err, ErrorCodes.DECODE_ERROR)
        if (e.code === ErrorCodes.CONFIG_ERROR) throw e
        outcomes[index] = failedOutcome(e)
      }
    })

    let toWrite = planned
    if (this.#lsnBound !== undefined && planned.length > 0) {
      const highest = planned.reduce((max, p) => (p.lsn > max ? p.lsn : max), 0n)
      const ceiling = await this.#lsnBound.ceiling(ticket, highest)
      toWrite = planned.filter((p) => {
        if (p.lsn <= ceiling) return true
        outcomes[p.index] = failedOutcome(this.#lsnBound!.beyond(p.lsn, ceiling))
        return false
      })
    }
    if (toWrite.length === 0) return result

    const channel = channelOf(this.#o)
    const ttl = this.#o.tombstoneTtlMs
    const run = (p: CachePlan) => this.#client.evalSha(APPLY_SCRIPT_SHA1, scriptArgs(p, ttl, channel))
    // All sent at once, in batch order, on one connection: Redis runs them in that order.
    let replies = await Promise.allSettled(toWrite.map((p) => run(p.plan)))
    if (replies.some((r) => r.status === 'rejected' && /^NOSCRIPT\b/.test(String((r.reason as Error)?.message)))) {
      // A Redis that restarted (or was flushed) has forgotten the script: load it and run again the changes that
      // did not run (a change that did is refused as stale by its own version).
      await this.#client.scriptLoad(APPLY_SCRIPT).catch((err: unknown) => {
        throw classifyRedisError(err)
      })
      replies = await Promise.allSettled(toWrite.map((p) => run(p.plan)))
    }
    const doneAt = Date.now()
    let abort: PipelineError | undefined
    replies.forEach((r, i) => {
      const { index, tsMs } = toWrite[i]!
      if (r.status === 'rejected') {
        const e = classifyRedisError(r.reason)
        if (e.retriable || e.code === ErrorCodes.CONFIG_ERROR) abort ??= e
        else outcomes[index] = failedOutcome(e)
        return
      }
      if (Number(r.value) === 0) {
        result.stale++
        return
      }
      result.applied++
      if (tsMs !== null) result.latenciesMs.push(doneAt - tsMs)
    })
    if (abort) throw abort
    return result
  }

  #warnOnce(message: string): void {
    const kind = message.replace(/^\w+ [0-9a-f-]+: /, '')
    if (this.#warned.has(kind)) return
    this.#warned.add(kind)
    this.#log?.warn(`${message} (logged once per kind)`)
  }

  async close(): Promise<void> {
    this.#closing ??= Promise.all([
      this.#client.close().catch(() => undefined),
      this.#closeWal?.().catch(() => undefined),
    ]).then(() => undefined)
    await this.#closing
  }
}

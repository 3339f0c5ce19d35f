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
import { listKey, listNameOf, planChange, rowKey, truncatedKey, versionOf, type CachePlan } from './plan.js'
import { APPLY_SCRIPT, APPLY_SCRIPT_SHA1, TRUNCATE_SCRIPT, TRUNCATE_SCRIPT_SHA1, scriptArgs } from './script.js'
import { specOfTable } from '../../model/index.js'

/** Keys a SCAN step of a truncate asks for (a hint to Redis) and passes to one script call. */
const TRUNCATE_PAGE = 500

// A SCAN pattern matching `prefix` literally, then anything.
const globPrefix = (prefix: string): string => `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`

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
 * - A TRUNCATE (--on-truncate apply, the default) raises the table's truncate mark to its version first, so that
 *   every older change of the table is refused from then on, whichever partition or redelivery brings it (the
 *   change event has no key: it lands on any partition, and the other partitions' older changes can come later);
 *   then SCANs the table's row keys and its lists and drops those written before it (script.ts). It runs after the
 *   batch's row changes: an older one written first is dropped by it, a newer one is kept. With dlq it goes to the
 *   DLQ as UNSUPPORTED and nothing changes.
 * - Tombstones are stale; an undecodable change, or one whose LSN is beyond PostgreSQL's WAL position (with a
 *   PostgreSQL URL), fails alone (DLQ).
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
        scan: async (cursor, match, count) => {
          const r = await real.scan(cursor, { MATCH: match, COUNT: count })
          return { cursor: String(r.cursor), keys: r.keys.map(String) }
        },
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
    const truncates: { index: number; table: string; version: string; lsn: bigint }[] = []
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
          if (this.#o.onTruncate === 'dlq') {
            outcomes[index] = failedOutcome(
              new PipelineError(
                ErrorCodes.UNSUPPORTED,
                `TRUNCATE of ${change.source.schema ?? 'public'}.${change.source.table ?? table} (lsn ${change.source.lsn}) ` +
                  'is not applied to the cache (--on-truncate dlq): purge its keys by hand if the cache should follow',
              ),
            )
            return
          }
          truncates.push({ index, table, version: versionOf(change), lsn: change.source.lsn! })
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
    let toTruncate = truncates
    if (this.#lsnBound !== undefined && planned.length + truncates.length > 0) {
      const highest = [...planned, ...truncates].reduce((max, p) => (p.lsn > max ? p.lsn : max), 0n)
      const ceiling = await this.#lsnBound.ceiling(ticket, highest)
      const within = (p: { index: number; lsn: bigint }) => {
        if (p.lsn <= ceiling) return true
        outcomes[p.index] = failedOutcome(this.#lsnBound!.beyond(p.lsn, ceiling))
        return false
      }
      toWrite = planned.filter(within)
      toTruncate = truncates.filter(within)
    }
    if (toWrite.length > 0) await this.#write(toWrite, outcomes, result)
    for (const t of toTruncate) {
      const dropped = await this.#truncate(t.table, t.version).catch((err: unknown) => {
        throw classifyRedisError(err)
      })
      this.#log?.info({ table: t.table, lsn: String(t.lsn), keys: dropped }, 'TRUNCATE applied to the cache')
      result.applied++
    }
    return result
  }

  async #write(
    toWrite: { index: number; plan: CachePlan; tsMs: number | null }[],
    outcomes: MessageOutcome[],
    result: BatchResult,
  ): Promise<void> {
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
  }

  /**
   * A TRUNCATE of `table` at `version`: the mark first (one call with no keys), then every page of the table's row
   * keys and of its lists (script.ts). The keys dropped and lists invalidated.
   */
  async #truncate(table: string, version: string): Promise<number> {
    const channel = channelOf(this.#o)
    const mark = truncatedKey(table)
    const call = (kind: 'rows' | 'lists', name: string, prefix: string, keys: string[]) =>
      this.#evalLoaded(TRUNCATE_SCRIPT_SHA1, TRUNCATE_SCRIPT, {
        keys: [mark, ...keys],
        arguments: [version, kind, channel, name, String(prefix.length), String(this.#o.tombstoneTtlMs)],
      }).then(Number)
    let n = await call('rows', table, '', [])
    const spec = specOfTable(table)
    const list = spec === undefined ? undefined : listNameOf(spec)
    const scans: ['rows' | 'lists', string, string][] = [['rows', table, rowKey(table, '')]]
    if (list !== undefined) scans.push(['lists', list, listKey(list, '')])
    for (const [kind, name, prefix] of scans) {
      let cursor = '0'
      do {
        const page = await this.#client.scan(cursor, globPrefix(prefix), TRUNCATE_PAGE)
        cursor = page.cursor
        if (page.keys.length > 0) n += await call(kind, name, prefix, page.keys)
      } while (cursor !== '0')
    }
    return n
  }

  // EVALSHA, loading the script once when Redis has forgotten it (a restart, SCRIPT FLUSH).
  async #evalLoaded(sha: string, script: string, o: { keys: string[]; arguments: string[] }): Promise<unknown> {
    try {
      return await this.#client.evalSha(sha, o)
    } catch (err) {
      if (!/^NOSCRIPT\b/.test(String((err as Error)?.message))) throw err
      await this.#client.scriptLoad(script)
      return this.#client.evalSha(sha, o)
    }
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

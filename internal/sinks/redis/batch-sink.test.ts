import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../../errors/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { RedisBatchSink } from './batch-sink.js'
import type { RedisExecutor } from './client.js'
import { APPLY_SCRIPT_SHA1, TRUNCATE_SCRIPT_SHA1 } from './script.js'
import { STREAMED_BAND } from '../cassandra/write-timestamp.js'

const U1 = '11111111-1111-4111-8111-111111111111'

function message(op: string, lsn: number, offset = 0, name = 'a', id = U1): SourceMessage {
  const row = { id, name, dob: 1, version: lsn }
  const value = {
    op,
    before: op === 'c' ? null : row,
    after: op === 'd' ? null : row,
    source: { lsn, ts_ms: Date.now() - 5, snapshot: 'false', db: 'cdc_db', schema: 'public', table: 'users' },
    ts_ms: Date.now(),
  }
  return {
    topic: 'cdc.public.users',
    partition: 0,
    offset: String(offset),
    key: Buffer.from(JSON.stringify({ id })),
    value: Buffer.from(JSON.stringify(value)),
    headers: {},
    timestamp: '0',
  }
}

/**
 * A fake Redis: the scripts' guards only (the real scripts run against a real Redis in test/cache-sync.test.ts): a
 * row change is refused at or below its key's version or its table's truncate mark; a truncate raises the mark and
 * drops the older keys it is given.
 */
class FakeRedis implements RedisExecutor {
  versions = new Map<string, string>()
  marks = new Map<string, string>()
  calls: string[][] = []
  loaded = true
  failNext: unknown
  async evalSha(sha: string, o: { keys: string[]; arguments: string[] }): Promise<unknown> {
    if (this.failNext !== undefined) throw this.failNext
    if (!this.loaded) throw new Error('NOSCRIPT No matching script. Please use EVAL.')
    const [key, mark] = o.keys as [string, string]
    const v = o.arguments[0]!
    if (sha === TRUNCATE_SCRIPT_SHA1) {
      this.calls.push(['truncate', v, ...o.keys.slice(1)])
      if ((this.marks.get(key) ?? '') < v) this.marks.set(key, v)
      const older = o.keys.slice(1).filter((k) => (this.versions.get(k) ?? '') < v)
      for (const k of older) this.versions.delete(k)
      return older.length
    }
    expect(sha).toBe(APPLY_SCRIPT_SHA1)
    this.calls.push([key, v, o.arguments[1]!])
    const cur = this.versions.get(key)
    if ((cur !== undefined && cur >= v) || (this.marks.get(mark) ?? '') >= v) return 0
    this.versions.set(key, v)
    return o.keys.length - 1
  }
  async scriptLoad(): Promise<string> {
    this.loaded = true
    return APPLY_SCRIPT_SHA1
  }
  async scan(_cursor: string, match: string): Promise<{ cursor: string; keys: string[] }> {
    const prefix = match.slice(0, -1)
    return { cursor: '0', keys: [...this.versions.keys()].filter((k) => k.startsWith(prefix)) }
  }
  async close(): Promise<void> {}
}

const options = {
  redisUrl: 'redis://127.0.0.1:1',
  mode: 'invalidate' as const,
  tombstoneTtlMs: 60_000,
  topics: { 'cdc.public.users': 'users' },
}

describe('RedisBatchSink', () => {
  it('sends every change in batch order and counts the refused ones as stale', async () => {
    const redis = new FakeRedis()
    const sink = new RedisBatchSink(options, redis)
    const r = await sink.apply([message('c', 10), message('u', 20, 1), message('u', 15, 2), message('u', 20, 3)])
    expect(r.outcomes.every((o) => o.status === 'ok')).toBe(true)
    expect(r).toMatchObject({ applied: 2, stale: 2 })
    expect(redis.calls.map((c) => BigInt(c[1]!) - STREAMED_BAND)).toEqual([10n, 20n, 15n, 20n])
    expect(r.latenciesMs).toHaveLength(2)
  })

  it('throws a retriable error when Redis is unreachable, so the engine retries and commits nothing', async () => {
    const redis = new FakeRedis()
    redis.failNext = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })
    const sink = new RedisBatchSink(options, redis)
    await expect(sink.apply([message('c', 10)])).rejects.toMatchObject({
      code: ErrorCodes.SINK_UNAVAILABLE,
      retriable: true,
    })
  })

  it('loads the script again after NOSCRIPT (a restarted Redis) and applies the batch', async () => {
    const redis = new FakeRedis()
    redis.loaded = false
    const r = await new RedisBatchSink(options, redis).apply([message('c', 10)])
    expect(r.applied).toBe(1)
  })

  const truncateAt = (lsn: number): SourceMessage => ({
    ...message('c', lsn),
    key: null,
    value: Buffer.from(JSON.stringify({ op: 't', source: { lsn, table: 'users' }, ts_ms: 1 })),
  })

  it('dead-letters an undecodable change, and a TRUNCATE with --on-truncate dlq, alone; a tombstone is stale', async () => {
    const redis = new FakeRedis()
    const bad = { ...message('c', 10), value: Buffer.from('{') }
    const tombstone = { ...message('c', 12), value: null }
    const sink = new RedisBatchSink({ ...options, onTruncate: 'dlq' }, redis)
    const r = await sink.apply([bad, truncateAt(11), tombstone, message('c', 13)])
    expect(r.outcomes.map((o) => (o.status === 'ok' ? 'ok' : o.code))).toEqual([
      ErrorCodes.DECODE_ERROR,
      ErrorCodes.UNSUPPORTED,
      'ok',
      'ok',
    ])
    expect(r).toMatchObject({ applied: 1, stale: 1 })
    expect(redis.marks.size).toBe(0)
  })

  it('applies a TRUNCATE: older keys dropped, newer kept, and every older change refused afterwards', async () => {
    const redis = new FakeRedis()
    const sink = new RedisBatchSink(options, redis)
    const [u2, u3] = ['22222222-2222-4222-8222-222222222222', '33333333-3333-4333-8333-333333333333']
    await sink.apply([message('c', 10), message('c', 30, 1, 'b', u2)])
    // The truncate at 20 with an older change of U1 and a newer row U3 in its batch: the batch's row changes are
    // written first (U1 at 15 too), then the truncate drops what is older than it.
    const r = await sink.apply([truncateAt(20), message('u', 15, 2), message('c', 25, 3, 'c', u3)])
    expect(r.outcomes.every((o) => o.status === 'ok')).toBe(true)
    expect(r).toMatchObject({ applied: 3, stale: 0 })
    expect([...redis.versions.keys()].sort()).toEqual([`cdc:users:${u2}`, `cdc:users:${u3}`])
    // An older change met after the truncate (another partition's, a redelivery) is refused by the mark, even for a
    // key the cache does not hold.
    expect((await sink.apply([message('u', 15, 2)])).stale).toBe(1)
    expect((await sink.apply([message('c', 12, 4, 'd', '44444444-4444-4444-8444-444444444444')])).stale).toBe(1)
    expect([...redis.versions.keys()].sort()).toEqual([`cdc:users:${u2}`, `cdc:users:${u3}`])
    expect(redis.marks.get('cdc:~truncated:users')).toBe((STREAMED_BAND + 20n).toString().padStart(20, '0'))
  })

  it('refuses a change whose LSN is beyond PostgreSQL WAL position', async () => {
    const redis = new FakeRedis()
    const sink = new RedisBatchSink(options, redis, async () => 100n)
    const r = await sink.apply([message('c', 90), message('u', 2 ** 40, 1)])
    expect(r.outcomes[0]!.status).toBe('ok')
    expect(r.outcomes[1]).toMatchObject({ status: 'failed', code: ErrorCodes.VALIDATION_ERROR })
  })
})

import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../../errors/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { RedisBatchSink } from './batch-sink.js'
import type { RedisExecutor } from './client.js'
import { APPLY_SCRIPT_SHA1 } from './script.js'
import { STREAMED_BAND } from '../cassandra/write-timestamp.js'

const U1 = '11111111-1111-4111-8111-111111111111'

function message(op: string, lsn: number, offset = 0, name = 'a'): SourceMessage {
  const row = { id: U1, name, dob: 1, version: lsn }
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
    key: Buffer.from(JSON.stringify({ id: U1 })),
    value: Buffer.from(JSON.stringify(value)),
    headers: {},
    timestamp: '0',
  }
}

/** A fake Redis: the script's guard only (the real script runs against a real Redis in test/cache-sync.test.ts). */
class FakeRedis implements RedisExecutor {
  versions = new Map<string, string>()
  calls: string[][] = []
  loaded = true
  failNext: unknown
  async evalSha(sha: string, o: { keys: string[]; arguments: string[] }): Promise<unknown> {
    expect(sha).toBe(APPLY_SCRIPT_SHA1)
    if (this.failNext !== undefined) throw this.failNext
    if (!this.loaded) throw new Error('NOSCRIPT No matching script. Please use EVAL.')
    this.calls.push([o.keys[0]!, o.arguments[0]!, o.arguments[1]!])
    const cur = this.versions.get(o.keys[0]!)
    if (cur !== undefined && cur >= o.arguments[0]!) return 0
    this.versions.set(o.keys[0]!, o.arguments[0]!)
    return o.keys.length
  }
  async scriptLoad(): Promise<string> {
    this.loaded = true
    return APPLY_SCRIPT_SHA1
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

  it('dead-letters an undecodable change and a TRUNCATE alone; a tombstone is stale', async () => {
    const redis = new FakeRedis()
    const bad = { ...message('c', 10), value: Buffer.from('{') }
    const truncate = {
      ...message('c', 11),
      key: null,
      value: Buffer.from(JSON.stringify({ op: 't', source: { lsn: 11, table: 'users' }, ts_ms: 1 })),
    }
    const tombstone = { ...message('c', 12), value: null }
    const r = await new RedisBatchSink(options, redis).apply([bad, truncate, tombstone, message('c', 13)])
    expect(r.outcomes.map((o) => (o.status === 'ok' ? 'ok' : o.code))).toEqual([
      ErrorCodes.DECODE_ERROR,
      ErrorCodes.UNSUPPORTED,
      'ok',
      'ok',
    ])
    expect(r).toMatchObject({ applied: 1, stale: 1 })
  })

  it('refuses a change whose LSN is beyond PostgreSQL WAL position', async () => {
    const redis = new FakeRedis()
    const sink = new RedisBatchSink(options, redis, async () => 100n)
    const r = await sink.apply([message('c', 90), message('u', 2 ** 40, 1)])
    expect(r.outcomes[0]!.status).toBe('ok')
    expect(r.outcomes[1]).toMatchObject({ status: 'failed', code: ErrorCodes.VALIDATION_ERROR })
  })
})

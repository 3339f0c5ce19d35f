import { describe, expect, it } from 'vitest'
import { deleteByPrefix, purge, replyListOf, type PurgeAck } from './purge.js'

/** A fake Redis: keys, one SCAN page per call, PUBLISH reaching `subscribers`, BLPOP from what they pushed. */
function fakeRedis(keys: string[], subscribers: number, acks: PurgeAck[] = []) {
  const present = new Set(keys)
  const published: string[] = []
  const r = {
    async *scanIterator(o: { MATCH: string }) {
      const prefix = o.MATCH.slice(0, -1)
      yield [...present].filter((k) => k.startsWith(prefix))
    },
    unlink: async (k: string | string[]) => {
      const ks = Array.isArray(k) ? k : [k]
      let n = 0
      for (const x of ks) if (present.delete(x)) n++
      return n
    },
    publish: async (_channel: string, message: string) => {
      published.push(message)
      return subscribers
    },
    blPop: async () => {
      const ack = acks.shift()
      return ack === undefined ? null : { key: 'x', element: JSON.stringify(ack) }
    },
  }
  return { redis: r as unknown as Parameters<typeof purge>[0], present, published }
}

describe('purge', () => {
  it("deletes the cache's keys but keeps the tables' truncate marks and other prefixes", async () => {
    const { redis, present } = fakeRedis(['cdc:users:1', 'cdc:user-orders:1', 'cdc:~truncated:orders', 'other:1'], 0)
    expect(await deleteByPrefix(redis)).toBe(2)
    expect([...present].sort()).toEqual(['cdc:~truncated:orders', 'other:1'])
  })

  it('publishes one request after the keys are gone and collects one acknowledgement per instance reached', async () => {
    const acks: PurgeAck[] = [
      { id: 'r', instance: 'a', dropped: 3 },
      { id: 'r', instance: 'b', dropped: 0 },
    ]
    const { redis, published, present } = fakeRedis(['cdc:users:1'], 2, [...acks])
    const result = await purge(redis, { timeoutMs: 1_000 })
    expect(present.size).toBe(0)
    expect(result).toMatchObject({ deleted: 1, reached: 2, acks })
    const request = JSON.parse(published[0]!) as { id: string; replyTo: string }
    expect(request.replyTo).toBe(replyListOf(request.id))
    // Fewer answers than instances reached: it stops when BLPOP times out.
    const partial = await purge(fakeRedis([], 3, [acks[0]!]).redis, { timeoutMs: 1_000 })
    expect(partial).toMatchObject({ reached: 3, acks: [acks[0]] })
  })
})

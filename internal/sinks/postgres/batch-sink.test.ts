import { describe, expect, it } from 'vitest'
import { PipelineError } from '../../errors/index.js'
import { encodeEvent, type AnyEvent, type OrderEvent } from '../../model/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { EventGenerator } from '../../producer/index.js'
import { PostgresBatchSink } from './batch-sink.js'
import type { WriteResult } from './sink.js'

const clock = () => new Date('2026-01-02T03:04:05.000Z')
const orders = (n: number): OrderEvent[] => {
  const g = new EventGenerator({ seed: 7, clock, mix: { create: 1, update: 0, delete: 0 } })
  const out: OrderEvent[] = []
  while (out.length < n) {
    const e = g.next()
    if (e.entity === 'order') out.push(e.event as OrderEvent)
  }
  return out
}
// The key a correct producer sets: the order_id of a valid event (null for values that are not one).
const keyOf = (value: Buffer | string | null): Buffer | null => {
  try {
    const id = (JSON.parse(String(value)) as { order_id?: unknown }).order_id
    return typeof id === 'string' ? Buffer.from(id) : null
  } catch {
    return null
  }
}
const message = (offset: number, value: Buffer | string | null, key: Buffer | null = keyOf(value)): SourceMessage => ({
  topic: 'orders',
  partition: 0,
  offset: String(offset),
  key,
  value: value === null ? null : Buffer.from(value),
  headers: {},
  timestamp: '0',
})

// A writer that rejects any batch containing one of `poison` and reports `missing` orders as missing references.
function fakeWriter(opts: { poison?: Set<string>; missing?: Set<string>; stale?: Set<string>; down?: boolean } = {}) {
  const batches: string[][] = []
  return {
    batches,
    writeBatch: async (_entity: string, events: readonly AnyEvent[]): Promise<WriteResult> => {
      const ids = events.map((e) => (e as OrderEvent).order_id)
      batches.push(ids)
      if (opts.down) throw new PipelineError('SINK_UNAVAILABLE', 'connection refused')
      if (ids.some((id) => opts.poison?.has(id))) throw new PipelineError('SINK_REJECTED', 'value too long')
      const missingRefs = events.filter((e) => opts.missing?.has((e as OrderEvent).order_id))
      const appliedIds = new Set(ids.filter((id) => !opts.missing?.has(id) && !opts.stale?.has(id)))
      return {
        applied: appliedIds.size,
        appliedIds,
        stale: ids.length - appliedIds.size - missingRefs.length,
        superseded: 0,
        missingRefs,
      }
    },
    close: async () => undefined,
  }
}

describe('PostgresBatchSink', () => {
  it('reports undecodable and invalid messages as non-retriable failures and writes the rest', async () => {
    const [a, b] = orders(2)
    const writer = fakeWriter()
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, writer)
    const res = await sink.apply([
      message(0, encodeEvent(a)),
      message(1, '{not json'),
      message(2, JSON.stringify({ ...b, quantity: -1 })),
      message(3, null),
      message(4, encodeEvent(b)),
    ])
    expect(res.outcomes.map((o) => (o.status === 'failed' ? o.code : 'ok'))).toEqual([
      'ok',
      'DECODE_ERROR',
      'VALIDATION_ERROR',
      'DECODE_ERROR',
      'ok',
    ])
    expect(res.outcomes.every((o) => o.status === 'ok' || !o.retriable)).toBe(true)
    expect(writer.batches).toEqual([[a.order_id, b.order_id]])
    expect(res.applied).toBe(2)
    expect(res.latenciesMs).toHaveLength(2)
  })

  it('rejects a valid event whose key is missing or is not its entity id, and writes the rest', async () => {
    const [a, b, c] = orders(3)
    const writer = fakeWriter()
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, writer)
    const res = await sink.apply([
      message(0, encodeEvent(a), null),
      message(1, encodeEvent(b), Buffer.from(c.order_id)),
      message(2, encodeEvent(c)),
    ])
    expect(res.outcomes).toEqual([
      {
        status: 'failed',
        code: 'VALIDATION_ERROR',
        message: `message has no key; the key must be the order_id (${a.order_id})`,
        retriable: false,
      },
      {
        status: 'failed',
        code: 'VALIDATION_ERROR',
        message: `message key "${c.order_id}" is not the event's order_id (${b.order_id})`,
        retriable: false,
      },
      { status: 'ok' },
    ])
    expect(writer.batches).toEqual([[c.order_id]])
  })

  it('compares the key byte by byte with the id: same length but another case or a non-ASCII byte is not the id', async () => {
    const [a, b, c] = orders(3)
    const writer = fakeWriter()
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, writer)
    const latin = Buffer.from(b.order_id)
    latin[0] = 0xe9 // not UTF-8 on its own: decodes to U+FFFD
    const res = await sink.apply([
      message(0, encodeEvent(a), Buffer.from(a.order_id.toUpperCase())),
      message(1, encodeEvent(b), latin),
      message(2, encodeEvent(c), Buffer.from(c.order_id)),
    ])
    expect(res.outcomes).toEqual([
      {
        status: 'failed',
        code: 'VALIDATION_ERROR',
        message: `message key "${a.order_id.toUpperCase()}" is not the event's order_id (${a.order_id})`,
        retriable: false,
      },
      {
        status: 'failed',
        code: 'VALIDATION_ERROR',
        message: `message key "\ufffd${b.order_id.slice(1)}" is not the event's order_id (${b.order_id})`,
        retriable: false,
      },
      { status: 'ok' },
    ])
    expect(writer.batches).toEqual([[c.order_id]])
  })

  it('splits a batch the database rejects until the offending event is isolated', async () => {
    const events = orders(8)
    const writer = fakeWriter({ poison: new Set([events[5].order_id]) })
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, writer)
    const res = await sink.apply(events.map((e, i) => message(i, encodeEvent(e))))
    const failed = res.outcomes.flatMap((o, i) => (o.status === 'failed' ? [[i, o.code, o.retriable]] : []))
    expect(failed).toEqual([[5, 'SINK_REJECTED', false]])
    expect(res.applied).toBe(7)
  })

  it('reports an order whose user is missing as a retriable MISSING_REFERENCE', async () => {
    const [a, b] = orders(2)
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, fakeWriter({ missing: new Set([b.order_id]) }))
    const res = await sink.apply([message(0, encodeEvent(a)), message(1, encodeEvent(b))])
    expect(res.outcomes[0]).toEqual({ status: 'ok' })
    expect(res.outcomes[1]).toMatchObject({ status: 'failed', code: 'MISSING_REFERENCE', retriable: true })
  })

  it('measures latency only for the events the batch wrote, not for stale replays', async () => {
    const [a, b] = orders(2)
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, fakeWriter({ stale: new Set([b.order_id]) }))
    const res = await sink.apply([message(0, encodeEvent(a)), message(1, encodeEvent(b))])
    expect(res.outcomes).toEqual([{ status: 'ok' }, { status: 'ok' }])
    expect(res.latenciesMs).toHaveLength(1)
  })

  it('throws a connection failure so the engine retries the whole batch', async () => {
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, fakeWriter({ down: true }))
    await expect(sink.apply([message(0, encodeEvent(orders(1)[0]))])).rejects.toMatchObject({
      code: 'SINK_UNAVAILABLE',
    })
  })
})

// Issue 11, item 9: a version far ahead of its row's would freeze the row.
describe('PostgresBatchSink: versions too far ahead', () => {
  it('dead-letters the event too far ahead and writes the events of its order it had superseded', async () => {
    const [a, b] = orders(2)
    const a2: OrderEvent = { ...a, event_type: 'UPDATE', version: 2, order_status: 'SHIPPED' }
    const hostile: OrderEvent = {
      ...a,
      event_type: 'UPDATE',
      version: Number.MAX_SAFE_INTEGER,
      order_status: 'SHIPPED',
    }
    const batches: number[][] = []
    const writer = {
      writeBatch: async (_entity: string, events: readonly AnyEvent[]): Promise<WriteResult> => {
        batches.push(events.map((e) => e.version))
        const top = events.find((e) => e.version === Number.MAX_SAFE_INTEGER)
        const ids = new Set(events.filter((e) => e !== top).map((e) => (e as OrderEvent).order_id))
        if (top) ids.delete((top as OrderEvent).order_id)
        return {
          applied: ids.size,
          appliedIds: ids,
          stale: 0,
          // The events of the hostile event's order, folded into it.
          superseded: top
            ? events.filter((e) => e !== top && (e as OrderEvent).order_id === (top as OrderEvent).order_id).length
            : 0,
          missingRefs: [],
          ...(top
            ? { rejected: [{ event: top, error: new PipelineError('VALIDATION_ERROR', 'version too far') }] }
            : {}),
        }
      },
      close: async () => undefined,
    }
    const sink = new PostgresBatchSink({ pgUrl: 'postgres://x' }, writer)
    const res = await sink.apply([a, a2, hostile, b].map((e, i) => message(i, encodeEvent(e))))
    expect(res.outcomes[2]).toMatchObject({ status: 'failed', code: 'VALIDATION_ERROR', retriable: false })
    expect([0, 1, 3].map((i) => res.outcomes[i])).toEqual([{ status: 'ok' }, { status: 'ok' }, { status: 'ok' }])
    // The first write had the hostile event win its order; the second writes what it had folded in.
    expect(batches).toEqual([
      [1, 2, Number.MAX_SAFE_INTEGER, 1],
      [1, 2],
    ])
    expect(res.stale).toBe(0)
  })
})

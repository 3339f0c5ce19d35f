import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { PipelineError } from '../errors/index.js'
import { BatchProcessor, newStats, type DeadLetter } from './batch-processor.js'
import type { BatchExecutor } from './executor.js'
import type { BatchResult, MessageOutcome, SourceMessage } from './types.js'
import { WaitingRoom } from './waiting-room.js'

const log = pino({ level: 'silent' })
const msg = (offset: number): SourceMessage => ({
  topic: 'orders',
  partition: 2,
  offset: String(offset),
  key: Buffer.from(`k${offset}`),
  value: Buffer.from('{}'),
  headers: {},
  timestamp: '0',
})
const ok: MessageOutcome = { status: 'ok' }
const missing: MessageOutcome = {
  status: 'failed',
  code: 'MISSING_REFERENCE',
  message: 'no user',
  retriable: true,
  awaits: 'user/u1',
}
const invalid: MessageOutcome = {
  status: 'failed',
  code: 'VALIDATION_ERROR',
  message: 'bad quantity',
  retriable: false,
}

// An executor that answers each call with the next scripted reply (an outcome per message, or an error to throw).
function scripted(replies: ((m: SourceMessage[]) => BatchResult | Error)[]) {
  const calls: SourceMessage[][] = []
  const executor: BatchExecutor = {
    run: async (messages) => {
      calls.push(messages)
      const reply = replies[Math.min(calls.length - 1, replies.length - 1)](messages)
      if (reply instanceof Error) throw reply
      return reply
    },
    close: async () => undefined,
  }
  return { executor, calls }
}
const result = (outcomes: MessageOutcome[], applied = 0): BatchResult => ({
  outcomes,
  applied,
  stale: 0,
  latenciesMs: [],
})

function setup(
  replies: ((m: SourceMessage[]) => BatchResult | Error)[],
  opts: { attempts?: number; maxElapsedMs?: number } = {},
) {
  const { executor, calls } = scripted(replies)
  const letters: DeadLetter[] = []
  const stats = newStats()
  const onFatal = vi.fn()
  const processor = new BatchProcessor({
    executor: async () => executor,
    retry: { attempts: opts.attempts ?? 4, baseMs: 1, maxMs: 2, maxElapsedMs: opts.maxElapsedMs ?? 60_000 },
    deadLetters: { send: async (l) => void letters.push(...l) },
    taskTimeoutMs: 1_000,
    stats,
    log,
    onFatal,
    sleep: async () => undefined,
  })
  const heartbeat = vi.fn(async () => undefined)
  const room = new WaitingRoom()
  let gone = false
  const ctl = { heartbeat, gone: () => gone }
  const leave = () => void (gone = true)
  const offsets = (ms: { offset: string }[]) => ms.map((m) => m.offset)
  return { processor, calls, letters, stats, onFatal, heartbeat, room, ctl, leave, offsets }
}

describe('BatchProcessor', () => {
  it('finishes a batch whose messages all apply, without retries or dead letters', async () => {
    const t = setup([
      (m) =>
        result(
          m.map(() => ok),
          m.length,
        ),
    ])
    const out = await t.processor.process([msg(1), msg(2)], t.room, t.ctl)
    expect(out).toMatchObject({ kind: 'done' })
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['1', '2'])
    expect(t.stats).toMatchObject({ applied: 2, handed: 2, parked: 0 })
    expect(t.letters).toEqual([])
    expect(t.calls).toHaveLength(1)
  })

  it('dead-letters a non-retriable message at once and still finishes the batch', async () => {
    const t = setup([() => result([ok, invalid, ok], 2)])
    const out = await t.processor.process([msg(1), msg(2), msg(3)], t.room, t.ctl)
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['1', '3', '2'])
    expect(t.letters).toHaveLength(1)
    expect(t.letters[0]).toMatchObject({ code: 'VALIDATION_ERROR', error: 'bad quantity', attempts: 1 })
    expect(t.letters[0].message.offset).toBe('2')
    expect(t.calls).toHaveLength(1)
    expect(t.room.size).toBe(0)
  })

  it('parks a retriable failure in the waiting room and returns at once, the rest of the batch done', async () => {
    const t = setup([() => result([ok, missing, ok], 2)])
    const out = await t.processor.process([msg(1), msg(2), msg(3)], t.room, t.ctl)
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['1', '3'])
    expect(t.calls).toHaveLength(1)
    expect(t.room.lowestOffset()).toBe('2')
    expect(t.room.get('2')).toMatchObject({ attempts: 1, awaits: 'user/u1' })
    expect(t.stats.parked).toBe(1)
  })

  it('parks a later message of a parked key behind it without handing it to the sink', async () => {
    const t = setup([
      () => result([missing]),
      (m) =>
        result(
          m.map(() => ok),
          m.length,
        ),
    ])
    await t.processor.process([msg(1)], t.room, t.ctl)
    const same = { ...msg(5), key: Buffer.from('k1') }
    const out = await t.processor.process([msg(4), same, msg(6)], t.room, t.ctl)
    expect(t.calls.map(t.offsets)).toEqual([['1'], ['4', '6']])
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['4', '6'])
    expect(t.room.get('5')).toMatchObject({ attempts: 0, key: 'k1' })
    // Retried together, in offset order: the key's order holds inside the sink's batch.
    const retried = await t.processor.retry(t.room.due(Date.now() + 1_000), t.room, t.ctl)
    expect(t.calls.at(-1)!.map((m) => m.offset)).toEqual(['1', '5'])
    expect(retried.kind === 'done' && t.offsets(retried.resolved)).toEqual(['1', '5'])
    expect(t.room.size).toBe(0)
  })

  it('retries parked messages until they apply, counting attempts, without dead letters', async () => {
    const t = setup([() => result([ok, missing], 1), () => result([missing]), () => result([ok], 1)])
    await t.processor.process([msg(1), msg(2)], t.room, t.ctl)
    await t.processor.retry(t.room.due(Date.now() + 1_000), t.room, t.ctl)
    expect(t.room.get('2')).toMatchObject({ attempts: 2 })
    await t.processor.retry(t.room.due(Date.now() + 1_000), t.room, t.ctl)
    expect(t.calls.map(t.offsets)).toEqual([['1', '2'], ['2'], ['2']])
    expect(t.room.size).toBe(0)
    expect(t.letters).toEqual([])
    expect(t.stats).toMatchObject({ retries: 2, handed: 4 })
  })

  it('dead-letters a parked message after the attempt bound, with the attempts and failure times', async () => {
    const t = setup([(m) => result(m.map(() => missing))], { attempts: 3 })
    await t.processor.process([msg(7)], t.room, t.ctl)
    await t.processor.retry(t.room.due(Date.now() + 1_000), t.room, t.ctl)
    const out = await t.processor.retry(t.room.due(Date.now() + 1_000), t.room, t.ctl)
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['7'])
    expect(t.calls).toHaveLength(3)
    expect(t.letters).toHaveLength(1)
    expect(t.letters[0]).toMatchObject({ code: 'MISSING_REFERENCE', attempts: 3 })
    expect(t.letters[0].lastFailureAt.getTime()).toBeGreaterThanOrEqual(t.letters[0].firstFailureAt.getTime())
    expect(t.room.size).toBe(0)
  })

  it('dead-letters a retriable failure once the next wait would pass the total time bound', async () => {
    const t = setup([(m) => result(m.map(() => missing))], { attempts: 100, maxElapsedMs: 0 })
    await t.processor.process([msg(7)], t.room, t.ctl)
    expect(t.calls).toHaveLength(1)
    expect(t.letters).toHaveLength(1)
    expect(t.room.size).toBe(0)
  })

  it('retries a whole-batch failure (database down) without a bound and never dead-letters it', async () => {
    const down = new PipelineError('SINK_UNAVAILABLE', 'connection refused')
    const t = setup(
      [
        ...Array.from({ length: 20 }, () => () => down),
        (m) =>
          result(
            m.map(() => ok),
            m.length,
          ),
      ],
      {
        attempts: 2,
      },
    )
    await expect(t.processor.process([msg(1), msg(2)], t.room, t.ctl)).resolves.toMatchObject({ kind: 'done' })
    expect(t.calls).toHaveLength(21)
    expect(t.letters).toEqual([])
    expect(t.stats.applied).toBe(2)
  })

  it('abandons the batch uncommitted when the partition is revoked or the engine stops during a wait', async () => {
    const down = new PipelineError('SINK_UNAVAILABLE', 'connection refused')
    const t = setup([
      () => {
        t.leave()
        return down
      },
    ])
    await expect(t.processor.process([msg(1)], t.room, t.ctl)).resolves.toEqual({ kind: 'abandoned' })
    expect(t.letters).toEqual([])
  })

  it('abandons the batch when a heartbeat fails during a backoff (the member was removed from the group)', async () => {
    const t = setup([() => new PipelineError('SINK_UNAVAILABLE', 'connection refused')])
    t.heartbeat.mockRejectedValue(new Error('rebalance in progress'))
    await expect(t.processor.process([msg(1)], t.room, t.ctl)).resolves.toEqual({ kind: 'abandoned' })
  })

  it('stops the engine on a configuration error instead of retrying or dead-lettering', async () => {
    const t = setup([() => new PipelineError('CONFIG_ERROR', 'table orders is missing')])
    await expect(t.processor.process([msg(1)], t.room, t.ctl)).resolves.toEqual({ kind: 'abandoned' })
    expect(t.onFatal).toHaveBeenCalledOnce()
    expect(t.letters).toEqual([])
  })

  it('fails the batch (so nothing is committed) when the DLQ cannot be written, and keeps parked ones parked', async () => {
    const t = setup([() => result([invalid])])
    const processor = new BatchProcessor({
      executor: async () => ({ run: async (m) => result(m.map(() => invalid)), close: async () => undefined }),
      retry: { attempts: 3, baseMs: 1, maxMs: 1, maxElapsedMs: 1_000 },
      deadLetters: { send: async () => Promise.reject(new Error('DLQ topic unavailable')) },
      taskTimeoutMs: 1_000,
      stats: t.stats,
      log,
      onFatal: t.onFatal,
    })
    await expect(processor.process([msg(1)], t.room, t.ctl)).rejects.toThrow('DLQ topic unavailable')
    t.room.park({ message: msg(2), key: 'k2', attempts: 1, firstFailureAt: 0, lastFailureAt: 0, nextAt: 0, bytes: 0 })
    await expect(processor.retry(t.room.due(Date.now()), t.room, t.ctl)).rejects.toThrow('DLQ topic unavailable')
    expect(t.room.lowestOffset()).toBe('2')
  })

  it('skips a message it already dead-lettered when it is delivered again (after a failed commit)', async () => {
    const t = setup([
      (m) =>
        result(
          m.map((x) => (x.offset === '3' ? invalid : ok)),
          1,
        ),
    ])
    await t.processor.process([msg(2), msg(3)], t.room, t.ctl)
    const out = await t.processor.process([msg(2), msg(3), msg(4)], t.room, t.ctl)
    expect(t.calls.map(t.offsets)).toEqual([
      ['2', '3'],
      ['2', '4'],
    ])
    expect(out.kind === 'done' && t.offsets(out.resolved).sort()).toEqual(['2', '3', '4'])
    expect(t.letters.map((l) => l.message.offset)).toEqual(['3'])
  })
})

describe('BatchProcessor heartbeats', () => {
  it('heartbeats while a long batch is in the worker', async () => {
    const heartbeat = vi.fn(async () => undefined)
    const processor = new BatchProcessor({
      executor: async () => ({
        run: async (m) => {
          await new Promise((r) => setTimeout(r, 120))
          return result(
            m.map(() => ok),
            m.length,
          )
        },
        close: async () => undefined,
      }),
      retry: { attempts: 3, baseMs: 1, maxMs: 1, maxElapsedMs: 1_000 },
      deadLetters: { send: async () => undefined },
      taskTimeoutMs: 1_000,
      stats: newStats(),
      log,
      onFatal: () => undefined,
      heartbeatIntervalMs: 20,
    })
    await expect(
      processor.process([msg(1)], new WaitingRoom(), { heartbeat, gone: () => false }),
    ).resolves.toMatchObject({ kind: 'done' })
    expect(heartbeat.mock.calls.length).toBeGreaterThanOrEqual(3)
  })
})

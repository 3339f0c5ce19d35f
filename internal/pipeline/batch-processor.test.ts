import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { PipelineError } from '../errors/index.js'
import { BatchProcessor, newStats, type DeadLetter } from './batch-processor.js'
import type { BatchExecutor } from './executor.js'
import type { BatchResult, MessageOutcome, SourceMessage } from './types.js'

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
const missing: MessageOutcome = { status: 'failed', code: 'MISSING_REFERENCE', message: 'no user', retriable: true }
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
  return { processor, calls, letters, stats, onFatal, heartbeat }
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
    await expect(t.processor.process([msg(1), msg(2)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual(
      { kind: 'done' },
    )
    expect(t.stats.applied).toBe(2)
    expect(t.letters).toEqual([])
    expect(t.calls).toHaveLength(1)
  })

  it('dead-letters a non-retriable message at once and still finishes the batch', async () => {
    const t = setup([() => result([ok, invalid, ok], 2)])
    await expect(
      t.processor.process([msg(1), msg(2), msg(3)], { heartbeat: t.heartbeat, gone: () => false }),
    ).resolves.toEqual({ kind: 'done' })
    expect(t.letters).toHaveLength(1)
    expect(t.letters[0]).toMatchObject({ code: 'VALIDATION_ERROR', error: 'bad quantity', attempts: 1 })
    expect(t.letters[0].message.offset).toBe('2')
    expect(t.calls).toHaveLength(1)
  })

  it('retries only the retriable failures, heartbeating while it waits, until they apply', async () => {
    const t = setup([() => result([ok, missing], 1), () => result([missing]), () => result([ok], 1)])
    await expect(t.processor.process([msg(1), msg(2)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual(
      { kind: 'done' },
    )
    expect(t.calls.map((c) => c.map((m) => m.offset))).toEqual([['1', '2'], ['2'], ['2']])
    expect(t.letters).toEqual([])
    expect(t.stats.retries).toBe(2)
    expect(t.heartbeat).toHaveBeenCalled()
  })

  it('dead-letters a retriable failure after the attempt bound, with the attempts and failure times', async () => {
    const t = setup([(m) => result(m.map(() => missing))], { attempts: 3 })
    await expect(t.processor.process([msg(7)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual({
      kind: 'done',
    })
    expect(t.calls).toHaveLength(3)
    expect(t.letters).toHaveLength(1)
    expect(t.letters[0]).toMatchObject({ code: 'MISSING_REFERENCE', attempts: 3 })
    expect(t.letters[0].lastFailureAt.getTime()).toBeGreaterThanOrEqual(t.letters[0].firstFailureAt.getTime())
  })

  it('dead-letters a retriable failure once the next wait would pass the total time bound', async () => {
    const t = setup([(m) => result(m.map(() => missing))], { attempts: 100, maxElapsedMs: 0 })
    await expect(t.processor.process([msg(7)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual({
      kind: 'done',
    })
    expect(t.calls).toHaveLength(1)
    expect(t.letters).toHaveLength(1)
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
      { attempts: 2 },
    )
    await expect(t.processor.process([msg(1), msg(2)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual(
      { kind: 'done' },
    )
    expect(t.calls).toHaveLength(21)
    expect(t.letters).toEqual([])
    expect(t.stats.applied).toBe(2)
  })

  it('abandons the batch uncommitted when the partition is revoked or the engine stops', async () => {
    let gone = false
    const t = setup([
      (m) => {
        gone = true
        return result(m.map(() => missing))
      },
    ])
    await expect(t.processor.process([msg(1)], { heartbeat: t.heartbeat, gone: () => gone })).resolves.toEqual({
      kind: 'abandoned',
    })
    expect(t.letters).toEqual([])
  })

  it('abandons the batch when a heartbeat fails (the member was removed from the group)', async () => {
    const t = setup([(m) => result(m.map(() => missing))])
    t.heartbeat.mockRejectedValue(new Error('rebalance in progress'))
    await expect(t.processor.process([msg(1)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual({
      kind: 'abandoned',
    })
  })

  it('stops the engine on a configuration error instead of retrying or dead-lettering', async () => {
    const t = setup([() => new PipelineError('CONFIG_ERROR', 'table orders is missing')])
    await expect(t.processor.process([msg(1)], { heartbeat: t.heartbeat, gone: () => false })).resolves.toEqual({
      kind: 'abandoned',
    })
    expect(t.onFatal).toHaveBeenCalledOnce()
    expect(t.letters).toEqual([])
  })

  it('fails the batch (so nothing is committed) when the DLQ cannot be written', async () => {
    const t = setup([() => result([invalid])])
    const processor = new BatchProcessor({
      executor: async () => ({ run: async () => result([invalid]), close: async () => undefined }),
      retry: { attempts: 3, baseMs: 1, maxMs: 1, maxElapsedMs: 1_000 },
      deadLetters: { send: async () => Promise.reject(new Error('DLQ topic unavailable')) },
      taskTimeoutMs: 1_000,
      stats: t.stats,
      log,
      onFatal: t.onFatal,
    })
    await expect(processor.process([msg(1)], { heartbeat: t.heartbeat, gone: () => false })).rejects.toThrow(
      'DLQ topic unavailable',
    )
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
    await expect(processor.process([msg(1)], { heartbeat, gone: () => false })).resolves.toEqual({ kind: 'done' })
    expect(heartbeat.mock.calls.length).toBeGreaterThanOrEqual(3)
  })
})

describe('BatchProcessor deferral', () => {
  // A processor that defers at once (deferAfterMs 0), answering each delivery with `answer`; letters collects the DLQ.
  function deferring(answer: (m: SourceMessage[]) => MessageOutcome[], attempts: number) {
    const letters: DeadLetter[] = []
    const seen: string[][] = []
    const processor = new BatchProcessor({
      executor: async () => ({
        run: async (m) => {
          seen.push(m.map((x) => x.offset))
          return result(answer(m))
        },
        close: async () => undefined,
      }),
      retry: { attempts, baseMs: 10, maxMs: 10, maxElapsedMs: 60_000 },
      deadLetters: { send: async (l) => void letters.push(...l) },
      taskTimeoutMs: 1_000,
      stats: newStats(),
      log,
      onFatal: () => undefined,
      deferAfterMs: 0,
      // Full jitter could draw a 0 ms wait, which a batch would sleep in place instead of deferring.
      random: () => 0.5,
    })
    const ctl = { heartbeat: async () => undefined, gone: () => false }
    return { process: (m: SourceMessage[]) => processor.process(m, ctl), letters, seen }
  }

  it('defers a batch whose messages keep waiting, from the first unresolved one, and keeps their attempts', async () => {
    const p = deferring((m) => m.map((x) => (x.offset === '2' || x.offset === '4' ? missing : ok)), 3)
    expect(await p.process([msg(1), msg(2), msg(3), msg(4)])).toMatchObject({ kind: 'deferred', from: { offset: '2' } })
    expect(p.seen).toHaveLength(1)
    // Redelivered from offset 2: the attempts carry over, so the bound (3) is reached on the third delivery.
    expect(await p.process([msg(2), msg(3), msg(4)])).toMatchObject({ kind: 'deferred' })
    expect(await p.process([msg(2), msg(3), msg(4)])).toEqual({ kind: 'done' })
    expect(p.letters.map((l) => [l.message.offset, l.attempts])).toEqual([
      ['2', 3],
      ['4', 3],
    ])
  })

  it('does not dead-letter a message twice when its deferred batch is fetched again', async () => {
    let round = 0
    // 2 waits for its user (which is there for the second delivery); 3 is invalid.
    const p = deferring((m) => {
      round++
      return m.map((x) => (x.offset === '2' && round === 1 ? missing : x.offset === '3' ? invalid : ok))
    }, 5)
    expect(await p.process([msg(1), msg(2), msg(3), msg(4)])).toMatchObject({ kind: 'deferred', from: { offset: '2' } })
    expect(await p.process([msg(2), msg(3), msg(4)])).toEqual({ kind: 'done' })
    expect(p.seen).toEqual([
      ['1', '2', '3', '4'],
      ['2', '4'],
    ])
    expect(p.letters.map((l) => l.message.offset)).toEqual(['3'])
  })
})

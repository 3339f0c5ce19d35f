import { pino } from 'pino'
import { describe, expect, it, vi } from 'vitest'
import { PipelineError } from '../errors/index.js'
import { BatchProcessor, DEAD_LETTERED_KEPT, newStats, type DeadLetter } from './batch-processor.js'
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
    sleep: () => new Promise((r) => setImmediate(r)),
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

  // The waits between tries of a batch that failed ten times as a whole, the jitter at its ceiling.
  async function sinkDownWaits(sinkDownBackoffMaxMs?: number): Promise<number> {
    const down = new PipelineError('SINK_UNAVAILABLE', 'connection refused')
    const { executor } = scripted([...Array.from({ length: 10 }, () => () => down), (m) => result(m.map(() => ok))])
    let slept = 0
    const processor = new BatchProcessor({
      executor: async () => executor,
      retry: { attempts: 2, baseMs: 1, maxMs: 2, maxElapsedMs: 60_000 },
      deadLetters: { send: async () => undefined },
      taskTimeoutMs: 1_000,
      stats: newStats(),
      log,
      onFatal: vi.fn(),
      sleep: async (ms) => void (slept += ms),
      random: () => 1,
      ...(sinkDownBackoffMaxMs === undefined ? {} : { sinkDownBackoffMaxMs }),
    })
    const out = await processor.process([msg(1)], new WaitingRoom(), {
      heartbeat: async () => undefined,
      gone: () => false,
    })
    expect(out).toMatchObject({ kind: 'done' })
    return slept
  }

  it('backs off a sink that is down 200 ms doubling up to 10 s by default, up to sinkDownBackoffMaxMs when set', async () => {
    // 200, 400, 800, 1600, 3200, 6400, then 10 s four times.
    expect(await sinkDownWaits()).toBe(52_600)
    // Capped at 1 s (cache-sync's Redis): 200, 400, 800, then 1 s seven times: resumed within 1 s of the sink's return.
    expect(await sinkDownWaits(1_000)).toBe(8_400)
    // A cap below the first wait is the first wait.
    expect(await sinkDownWaits(50)).toBe(2_000)
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

describe('BatchProcessor dead-letter skip', () => {
  it('does not skip a different message at a dead-lettered offset (the topic was deleted and created again)', async () => {
    const t = setup([
      (m) =>
        result(
          m.map((x) => (Buffer.from(x.value!).toString() === 'bad' ? invalid : ok)),
          1,
        ),
    ])
    const bad = { ...msg(3), value: Buffer.from('bad'), timestamp: '1000' }
    await t.processor.process([msg(2), bad], t.room, t.ctl)
    expect(t.letters.map((l) => l.message.offset)).toEqual(['3'])
    // The same message again is skipped; a new message at offset 3 (a new timestamp, key and value) is applied.
    const reused = { ...msg(3), key: Buffer.from('other'), value: Buffer.from('{"ok":1}'), timestamp: '2000' }
    const out = await t.processor.process([reused], t.room, t.ctl)
    expect(t.calls.map(t.offsets)).toEqual([['2', '3'], ['3']])
    expect(t.calls[1][0].value).toEqual(reused.value)
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['3'])
    expect(t.letters).toHaveLength(1)
    // Only the value differs (same timestamp and key): still not the dead-lettered message.
    await t.processor.process([{ ...bad, value: Buffer.from('{}') }], t.room, t.ctl)
    expect(t.calls).toHaveLength(3)
    await t.processor.process([bad], t.room, t.ctl)
    expect(t.calls).toHaveLength(3)
  })

  it('drops the dead letters it remembers for partitions that were revoked, counting entries', async () => {
    const t = setup([(m) => result(m.map(() => invalid))])
    const p = (partition: number, offset: number): SourceMessage => ({ ...msg(offset), partition })
    await t.processor.process([p(0, 1), p(0, 2)], t.room, t.ctl)
    await t.processor.process([p(1, 1)], t.room, t.ctl)
    await t.processor.process([{ ...p(0, 1), topic: 'users' }], t.room, t.ctl)
    expect(t.processor.footprint()).toEqual({ partitions: 3, deadLettered: 4, bisecting: 0 })
    t.processor.retain({ orders: [0, 2] })
    expect(t.processor.footprint()).toEqual({ partitions: 1, deadLettered: 2, bisecting: 0 })
    t.processor.retain({})
    expect(t.processor.footprint()).toEqual({ partitions: 0, deadLettered: 0, bisecting: 0 })
    // Redelivered after a revocation and a new assignment: dead-lettered again (at least once), not skipped.
    await t.processor.process([p(1, 1)], t.room, t.ctl)
    expect(t.letters.map((l) => `${l.message.partition}/${l.message.offset}`)).toEqual([
      '0/1',
      '0/2',
      '1/1',
      '0/1',
      '1/1',
    ])
  })

  it('remembers at most DEAD_LETTERED_KEPT dead letters in all partitions, forgetting the oldest', async () => {
    const t = setup([(m) => result(m.map(() => invalid))])
    const p = (partition: number, from: number, n: number): SourceMessage[] =>
      Array.from({ length: n }, (_, i) => ({ ...msg(from + i), partition }))
    await t.processor.process(p(0, 0, 6_000), t.room, t.ctl)
    await t.processor.process(p(1, 0, 4_005), t.room, t.ctl)
    expect(t.processor.footprint()).toEqual({ partitions: 2, deadLettered: DEAD_LETTERED_KEPT, bisecting: 0 })
    // The 5 oldest (partition 0, offsets 0-4) were forgotten: delivered again, they are dead-lettered again.
    const before = t.letters.length
    await t.processor.process(p(0, 4, 2), t.room, t.ctl)
    expect(t.letters.slice(before).map((l) => l.message.offset)).toEqual(['4'])
    // Partitions dropped and assigned again many times: what is kept stays bounded.
    for (let i = 0; i < 30; i++) {
      t.processor.retain({})
      await t.processor.process(p(2, i * 1_000, 1_000), t.room, t.ctl)
    }
    expect(t.processor.footprint()).toEqual({ partitions: 1, deadLettered: 1_000, bisecting: 0 })
  })

  it('does not remember a dead letter written after its partition was revoked', async () => {
    const t = setup([
      (m) => {
        t.leave()
        return result(m.map(() => invalid))
      },
    ])
    await t.processor.process([msg(1)], t.room, t.ctl)
    expect(t.letters).toHaveLength(1)
    expect(t.processor.footprint().deadLettered).toBe(0)
  })
})

describe('BatchProcessor bisection of whole-batch failures', () => {
  const timeout = () => new PipelineError('SINK_TIMEOUT', 'sink call timed out: TimeoutError')
  const crash = () => new PipelineError('WORKER_CRASH', 'worker failed: worker exited with code 1')
  // A sink that fails the whole call (`fail()`) whenever the batch holds a poison offset, else applies it all.
  function poisoned(poison: Set<string>, fail: () => Error, log: string[] = []) {
    return (m: SourceMessage[]): BatchResult | Error => {
      if (m.some((x) => poison.has(x.offset))) return fail()
      log.push(...m.map((x) => `apply ${x.offset}`))
      return result(
        m.map(() => ok),
        m.length,
      )
    }
  }
  const batch = (n: number, key = (i: number) => `k${i}`) =>
    Array.from({ length: n }, (_, i) => ({ ...msg(i), key: Buffer.from(key(i)) }))

  it('dead-letters the message that crashes its worker alone after 3 whole-batch failures; the rest is applied', async () => {
    const t = setup([poisoned(new Set(['5']), crash)])
    const out = await t.processor.process(batch(8), t.room, t.ctl)
    expect(out.kind === 'done' && t.offsets(out.resolved).sort()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7'])
    expect(t.letters.map((l) => [l.message.offset, l.code])).toEqual([['5', 'WORKER_CRASH']])
    expect(t.stats).toMatchObject({ applied: 7, deadLettered: 1 })
    // 3 whole-batch tries, then halves: [0-3] ok, [4-7] known failing -> [4,5] fails -> [4] ok, [5] alone fails; [6,7] ok.
    expect(t.calls.map((c) => c.length)).toEqual([8, 8, 8, 4, 2, 1, 1, 2])
    expect(t.room.size).toBe(0)
  })

  it('isolates a message whose sink call times out (a real task timeout), and two poisons in one batch', async () => {
    const poison = new Set(['2', '6'])
    const calls: string[][] = []
    const letters: DeadLetter[] = []
    const stats = newStats()
    const processor = new BatchProcessor({
      executor: async () => ({
        // Hangs on a poison message until the task timeout aborts it, as InlineExecutor does.
        run: (m, timeoutMs) => {
          const signal = AbortSignal.timeout(timeoutMs)
          calls.push(m.map((x) => x.offset))
          if (!m.some((x) => poison.has(x.offset)))
            return Promise.resolve(
              result(
                m.map(() => ok),
                m.length,
              ),
            )
          return new Promise((_, reject) => signal.addEventListener('abort', () => reject(timeout()), { once: true }))
        },
        close: async () => undefined,
      }),
      retry: { attempts: 4, baseMs: 1, maxMs: 2, maxElapsedMs: 60_000 },
      deadLetters: { send: async (l) => void letters.push(...l) },
      taskTimeoutMs: 20,
      stats,
      log,
      onFatal: () => undefined,
      sleep: () => new Promise((r) => setImmediate(r)),
    })
    const started = Date.now()
    const out = await processor.process(batch(8), new WaitingRoom(), {
      heartbeat: async () => undefined,
      gone: () => false,
    })
    const tookMs = Date.now() - started
    expect(letters.map((l) => [l.message.offset, l.code])).toEqual([
      ['2', 'SINK_TIMEOUT'],
      ['6', 'SINK_TIMEOUT'],
    ])
    expect(out.kind === 'done' && out.resolved).toHaveLength(8)
    expect(stats).toMatchObject({ applied: 6, deadLettered: 2 })
    // 3 whole-batch timeouts, then 4: [0-3], [2] alone, [4-7], [6] alone ([2,3] and [6,7] are inferred from their
    // left halves applying).
    expect(calls.filter((c) => c.some((o) => poison.has(o)))).toHaveLength(3 + 4)
    expect(tookMs).toBeLessThan(2_000)
    console.log(`isolated 2 timing-out messages of 8 in ${tookMs} ms (task timeout 20 ms, ${calls.length} sink calls)`)
  })

  it('keeps per-key order: a later message of the poison key is applied only after the poison is dead-lettered', async () => {
    const events: string[] = []
    // Offsets 1 and 6 share key 'a' (the poison is 1).
    const t = setup([poisoned(new Set(['1']), crash, events)])
    const processor = new BatchProcessor({
      executor: async () => ({
        run: async (m) => {
          const r = poisoned(new Set(['1']), crash, events)(m)
          if (r instanceof Error) throw r
          return r
        },
        close: async () => undefined,
      }),
      retry: { attempts: 4, baseMs: 1, maxMs: 2, maxElapsedMs: 60_000 },
      deadLetters: { send: async (l) => void events.push(...l.map((d) => `dlq ${d.message.offset}`)) },
      taskTimeoutMs: 1_000,
      stats: t.stats,
      log,
      onFatal: () => undefined,
      sleep: () => new Promise((r) => setImmediate(r)),
    })
    await processor.process(
      batch(8, (i) => (i === 1 || i === 6 ? 'a' : `k${i}`)),
      t.room,
      t.ctl,
    )
    expect(events.indexOf('dlq 1')).toBeGreaterThanOrEqual(0)
    expect(events.indexOf('dlq 1')).toBeLessThan(events.indexOf('apply 6'))
    // Everything before the poison was applied before it was dead-lettered, everything after it after.
    expect(events).toEqual(['apply 0', 'dlq 1', 'apply 2', 'apply 3', 'apply 4', 'apply 5', 'apply 6', 'apply 7'])
  })

  it('does not bisect while the sink is unavailable (database down): no message is dead-lettered', async () => {
    const down = () => new PipelineError('SINK_UNAVAILABLE', 'connection refused')
    let n = 0
    const t = setup([
      (m) =>
        ++n <= 10
          ? down()
          : result(
              m.map(() => ok),
              m.length,
            ),
    ])
    await t.processor.process(batch(4), t.room, t.ctl)
    expect(t.letters).toEqual([])
    expect(t.calls.map((c) => c.length)).toEqual([...Array(11).fill(4)])
  })

  it('does not dead-letter a message that times out alone while the sink answers nothing (the sink hangs)', async () => {
    let hung = true
    let n = 0
    const t = setup([
      (m) => {
        n++
        if (hung && n >= 20) hung = false
        return hung
          ? timeout()
          : result(
              m.map(() => ok),
              m.length,
            )
      },
    ])
    const out = await t.processor.process([msg(1)], t.room, t.ctl)
    expect(t.letters).toEqual([])
    expect(out.kind === 'done' && t.offsets(out.resolved)).toEqual(['1'])
    expect(t.stats.applied).toBe(1)
  })

  it('abandons a bisection when the partition is revoked, keeping no state', async () => {
    let n = 0
    const t = setup([
      (m) => {
        if (++n === 5) t.leave()
        return m.some((x) => x.offset === '3') ? crash() : result(m.map(() => ok))
      },
    ])
    await expect(t.processor.process(batch(8), t.room, t.ctl)).resolves.toEqual({ kind: 'abandoned' })
    expect(t.letters).toEqual([])
    expect(t.processor.footprint()).toEqual({ partitions: 0, deadLettered: 0, bisecting: 0 })
  })
})

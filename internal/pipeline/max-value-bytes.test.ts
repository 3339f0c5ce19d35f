import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { BatchProcessor, newStats, type DeadLetter } from './batch-processor.js'
import type { SourceMessage } from './types.js'
import { WaitingRoom } from './waiting-room.js'

const msg = (offset: number, bytes: number): SourceMessage => ({
  topic: 'users',
  partition: 0,
  offset: String(offset),
  key: Buffer.from(`k${offset}`),
  value: Buffer.alloc(bytes, 0x20),
  headers: {},
  timestamp: '0',
})

describe('BatchProcessor maxValueBytes (decompression bombs)', () => {
  it('dead-letters a value above the limit as VALIDATION_ERROR without handing it to the sink, and applies the rest', async () => {
    const handed: string[] = []
    const letters: DeadLetter[] = []
    const stats = newStats()
    const processor = new BatchProcessor({
      executor: async () => ({
        run: async (ms) => {
          handed.push(...ms.map((m) => m.offset))
          return { outcomes: ms.map(() => ({ status: 'ok' as const })), applied: ms.length, stale: 0, latenciesMs: [] }
        },
        close: async () => undefined,
      }),
      retry: { attempts: 3, baseMs: 1, maxMs: 1, maxElapsedMs: 1_000 },
      deadLetters: { send: async (l) => void letters.push(...l) },
      taskTimeoutMs: 1_000,
      maxValueBytes: 100,
      stats,
      log: pino({ level: 'silent' }),
      onFatal: () => undefined,
    })
    const ctl = { heartbeat: async () => undefined, gone: () => false }
    const out = await processor.process([msg(1, 100), msg(2, 101), msg(3, 10)], new WaitingRoom(), ctl)
    expect(out.kind === 'done' && out.resolved.map((m) => m.offset).sort()).toEqual(['1', '2', '3'])
    expect(handed).toEqual(['1', '3'])
    expect(letters.map((l) => [l.message.offset, l.code, l.attempts])).toEqual([['2', 'VALIDATION_ERROR', 1]])
    expect(letters[0]!.error).toBe('value is 101 bytes, larger than the 100 bytes allowed (--max-value-bytes)')
    expect(stats).toMatchObject({ applied: 2, handed: 2, deadLettered: 1 })
    // A batch of nothing but such values never reaches the sink.
    await processor.process([msg(4, 5_000)], new WaitingRoom(), ctl)
    expect(handed).toEqual(['1', '3'])
    expect(letters).toHaveLength(2)
  })
})

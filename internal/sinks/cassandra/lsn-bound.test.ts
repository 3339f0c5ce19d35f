import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../../errors/index.js'
import { LSN_MARGIN_BYTES, LsnBound, formatLsn } from './lsn-bound.js'

describe('LsnBound', () => {
  it('formats LSNs as PostgreSQL does', () => {
    expect(formatLsn(0n)).toBe('0/0')
    expect(formatLsn(0x16b3748n)).toBe('0/16B3748')
    expect(formatLsn((1n << 62n) - 1n)).toBe('3FFFFFFF/FFFFFFFF')
  })

  it('never answers a batch with a position read before the batch arrived', async () => {
    const answers: ((v: bigint) => void)[] = []
    const bound = new LsnBound(() => new Promise<bigint>((resolve) => answers.push(resolve)))
    const early = bound.arrived()
    const first = bound.ceiling(early, 10n)
    // A batch arriving while that query is in flight may hold changes written after it started: it asks again.
    const late = bound.arrived()
    const second = bound.ceiling(late, 10n)
    expect(answers).toHaveLength(2)
    answers[0](100n)
    expect(await first).toBe(100n + LSN_MARGIN_BYTES)
    answers[1](200n)
    expect(await second).toBe(200n + LSN_MARGIN_BYTES)
    // Known now: within the margin, nothing is asked.
    expect(await bound.ceiling(bound.arrived(), 200n + LSN_MARGIN_BYTES)).toBe(200n + LSN_MARGIN_BYTES)
    expect(answers).toHaveLength(2)
  })

  it('shares a query started after the batch arrived, and never moves the known position back', async () => {
    let reads = 0
    let position = 500n
    const bound = new LsnBound(async () => {
      reads++
      return position
    }, 0n)
    const a = bound.arrived()
    const b = bound.arrived()
    const [ca, cb] = await Promise.all([bound.ceiling(a, 400n), bound.ceiling(b, 400n)])
    expect([ca, cb, reads]).toEqual([500n, 500n, 1])
    position = 300n // another connection's older view, say
    expect(await bound.ceiling(bound.arrived(), 600n)).toBe(500n)
    expect(bound.beyond(600n, 500n).message).toMatch(
      /source\.lsn 0\/258 is beyond PostgreSQL's current WAL position 0\/1F4/,
    )
    expect(isPipelineError(bound.beyond(600n, 500n), 'VALIDATION_ERROR')).toBe(true)
  })
})

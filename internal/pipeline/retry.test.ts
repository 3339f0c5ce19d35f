import { describe, expect, it } from 'vitest'

import { MISSING_REFERENCE_RETRY_POLICY, computeBackoffMs, validateRetryPolicy, type RetryPolicy } from './retry.js'

const fast: RetryPolicy = { attempts: 4, baseMs: 1, maxMs: 4, maxElapsedMs: 5_000 }

describe('computeBackoffMs', () => {
  const opts = { baseMs: 200, maxMs: 10_000 }

  it('doubles from baseMs and stops at maxMs without jitter', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((a) => computeBackoffMs(a, { ...opts, jitter: 'none' }))
    expect(delays).toEqual([200, 400, 800, 1600, 3200, 6400, 10_000, 10_000])
  })

  it('stays within [0, ceiling] with full jitter', () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(10_000, 200 * 2 ** (attempt - 1))
      expect(computeBackoffMs(attempt, { ...opts, random: () => 0 })).toBe(0)
      expect(computeBackoffMs(attempt, { ...opts, random: () => 0.999999 })).toBe(Math.round(0.999999 * ceiling))
      const d = computeBackoffMs(attempt, opts)
      expect(d).toBeGreaterThanOrEqual(0)
      expect(d).toBeLessThanOrEqual(ceiling)
    }
  })

  it('scales the draw linearly', () => {
    expect(computeBackoffMs(3, { ...opts, random: () => 0.5 })).toBe(400)
  })

  it('honours the factor and survives huge attempt numbers', () => {
    expect(computeBackoffMs(3, { ...opts, factor: 3, jitter: 'none' })).toBe(1800)
    expect(computeBackoffMs(5000, { ...opts, jitter: 'none' })).toBe(10_000)
    expect(computeBackoffMs(0, { ...opts, jitter: 'none' })).toBe(200)
  })
})

describe('policies', () => {
  it('ship a valid default whose longest wait is a small part of its time budget', () => {
    validateRetryPolicy(MISSING_REFERENCE_RETRY_POLICY)
    expect(computeBackoffMs(1_000, { ...MISSING_REFERENCE_RETRY_POLICY, jitter: 'none' })).toBe(1_000)
    expect(MISSING_REFERENCE_RETRY_POLICY.maxElapsedMs).toBeGreaterThanOrEqual(
      60 * MISSING_REFERENCE_RETRY_POLICY.maxMs,
    )
  })

  it.each([
    [{ attempts: 0 }, 'retry policy attempts must be an integer >= 1 or Infinity (got 0)'],
    [{ attempts: 1.5 }, 'retry policy attempts must be an integer >= 1 or Infinity (got 1.5)'],
    [{ baseMs: -1 }, 'retry policy baseMs must be a number >= 0 (got -1)'],
    [{ maxMs: 0 }, 'retry policy maxMs must be a number >= baseMs (got 0)'],
    [{ maxElapsedMs: NaN }, 'retry policy maxElapsedMs must be a number >= 0 (got NaN)'],
    [{ factor: 0.5 }, 'retry policy factor must be a number >= 1 (got 0.5)'],
  ])('rejects %o', (patch, message) => {
    expect(() => validateRetryPolicy({ ...fast, ...patch })).toThrow(message)
  })
})

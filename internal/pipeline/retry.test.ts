import { describe, expect, it } from 'vitest'

import { ErrorCodes, PipelineError } from '../errors/index.js'
import {
  DEFAULT_RETRY_POLICY,
  MISSING_REFERENCE_RETRY_POLICY,
  computeBackoffMs,
  retryWithBackoff,
  validateRetryPolicy,
  type RetryEvent,
  type RetryPolicy,
} from './retry.js'

const fast: RetryPolicy = { attempts: 4, baseMs: 1, maxMs: 4, maxElapsedMs: 5_000 }
const transient = (): PipelineError => new PipelineError(ErrorCodes.SINK_UNAVAILABLE, 'down')

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
  it('ship valid defaults whose worst-case waits fit the time budget', () => {
    validateRetryPolicy(DEFAULT_RETRY_POLICY)
    validateRetryPolicy(MISSING_REFERENCE_RETRY_POLICY)
    let worst = 0
    for (let a = 1; a < DEFAULT_RETRY_POLICY.attempts; a++) {
      worst += computeBackoffMs(a, { ...DEFAULT_RETRY_POLICY, jitter: 'none' })
    }
    expect(worst).toBeLessThan(DEFAULT_RETRY_POLICY.maxElapsedMs)
  })

  it.each([
    [{ attempts: 0 }, 'retry policy attempts must be an integer >= 1 or Infinity (got 0)'],
    [{ attempts: 1.5 }, 'retry policy attempts must be an integer >= 1 or Infinity (got 1.5)'],
    [{ baseMs: -1 }, 'retry policy baseMs must be a number >= 0 (got -1)'],
    [{ maxMs: 0 }, 'retry policy maxMs must be a number >= baseMs (got 0)'],
    [{ maxElapsedMs: NaN }, 'retry policy maxElapsedMs must be a number >= 0 (got NaN)'],
    [{ factor: 0.5 }, 'retry policy factor must be a number >= 1 (got 0.5)'],
  ])('rejects %o', (patch, message) => {
    expect(() => validateRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...patch })).toThrow(message)
  })
})

describe('retryWithBackoff', () => {
  it('retries retriable PipelineErrors until success and reports each retry', async () => {
    const events: RetryEvent[] = []
    const tries: number[] = []
    const result = await retryWithBackoff(
      async (attempt) => {
        tries.push(attempt)
        if (attempt < 3) throw transient()
        return 'ok'
      },
      fast,
      { onRetry: (e) => events.push(e), random: () => 0.5 },
    )
    expect(result).toBe('ok')
    expect(tries).toEqual([1, 2, 3])
    expect(events.map((e) => [e.attempt, e.delayMs, e.error.code])).toEqual([
      [1, 1, 'SINK_UNAVAILABLE'],
      [2, 1, 'SINK_UNAVAILABLE'],
    ])
  })

  it('gives up after the policy attempts with the last error', async () => {
    let tries = 0
    const err = await retryWithBackoff(async () => {
      tries++
      throw transient()
    }, fast).catch((e: unknown) => e)
    expect(tries).toBe(4)
    expect((err as PipelineError).code).toBe('SINK_UNAVAILABLE')
  })

  it('does not retry non-retriable PipelineErrors or other errors', async () => {
    for (const thrown of [new PipelineError(ErrorCodes.SINK_REJECTED, 'no'), new Error('bug'), new TypeError('bug')]) {
      let tries = 0
      const err = await retryWithBackoff(async () => {
        tries++
        throw thrown
      }, fast).catch((e: unknown) => e)
      expect(err).toBe(thrown)
      expect(tries).toBe(1)
    }
  })

  it('respects a retriable=false override', async () => {
    let tries = 0
    await retryWithBackoff(async () => {
      tries++
      throw new PipelineError(ErrorCodes.UNKNOWN, 'x', { retriable: false })
    }, fast).catch(() => undefined)
    expect(tries).toBe(1)
  })

  it('stops at maxElapsedMs even with unlimited attempts', async () => {
    const started = performance.now()
    let tries = 0
    await retryWithBackoff(
      async () => {
        tries++
        throw transient()
      },
      { attempts: Number.POSITIVE_INFINITY, baseMs: 5, maxMs: 10, maxElapsedMs: 100 },
    ).catch(() => undefined)
    expect(tries).toBeGreaterThan(2)
    expect(performance.now() - started).toBeLessThan(2_000)
  })

  it('stops waiting when the signal aborts and rejects with its reason', async () => {
    const controller = new AbortController()
    const reason = new Error('shutting down')
    const pending = retryWithBackoff(
      async () => {
        throw transient()
      },
      { attempts: 100, baseMs: 60_000, maxMs: 60_000, maxElapsedMs: 600_000 },
      { signal: controller.signal, random: () => 1, onRetry: () => setTimeout(() => controller.abort(reason), 5) },
    )
    await expect(pending).rejects.toBe(reason)
  })

  it('validates the policy first', async () => {
    await expect(retryWithBackoff(async () => 1, { ...fast, attempts: 0 })).rejects.toThrow('attempts')
  })
})

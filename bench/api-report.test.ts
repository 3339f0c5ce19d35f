import { describe, expect, it } from 'vitest'
import {
  InvalidationMatcher,
  keyId,
  percentileOf,
  percentiles,
  renderApiSection,
  type ApiBenchResult,
} from './api-report.js'
import { renderReport } from './report.js'

describe('percentiles', () => {
  it('nearest rank: the smallest value with at least p % of the sample at or below it', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentileOf(sorted, 50)).toBe(50)
    expect(percentileOf(sorted, 95)).toBe(95)
    expect(percentileOf(sorted, 99)).toBe(99)
    expect(percentileOf(sorted, 100)).toBe(100)
    expect(percentileOf([7], 99)).toBe(7)
    expect(percentileOf([], 50)).toBe(0)
    expect(percentileOf([1, 2], 0)).toBe(1)
  })

  it('sorts a copy, rounds to 0.1 ms and reports count and max', () => {
    const values = [30.04, 10, 20.06]
    expect(percentiles(values)).toEqual({ count: 3, p50: 20.1, p95: 30, p99: 30, max: 30 })
    expect(values).toEqual([30.04, 10, 20.06])
    expect(percentiles([])).toEqual({ count: 0, p50: 0, p95: 0, p99: 0, max: 0 })
  })
})

describe('InvalidationMatcher', () => {
  it("pairs each row's announcements with its commits in order, and ignores rows with none waiting", () => {
    const m = new InvalidationMatcher()
    m.committed('a', 100)
    m.committed('b', 110)
    m.committed('a', 200)
    expect(m.pending).toBe(3)
    m.announced('x', 150) // not ours
    m.announced('a', 160)
    m.announced('b', 170)
    expect(m.latenciesMs).toEqual([60, 60])
    expect(m.pending).toBe(1)
    m.announced('a', 230)
    m.announced('a', 240) // nothing left waiting for a
    expect(m.latenciesMs).toEqual([60, 60, 30])
    expect(m.pending).toBe(0)
    // Every commit in order, and when each was met (joins two matchers' pairs: the two legs of one change).
    expect(m.committedAt).toEqual([
      ['a', 100],
      ['b', 110],
      ['a', 200],
    ])
    expect([...m.metAt]).toEqual([
      ['a@100', 160],
      ['b@110', 170],
      ['a@200', 230],
    ])
  })
})

describe('keyId', () => {
  it('reads the id of a Debezium key, with or without the schema envelope; anything else has none', () => {
    expect(keyId(Buffer.from('{"id":"u1"}'))).toBe('u1')
    expect(keyId(Buffer.from('{"schema":{},"payload":{"id":"u2"}}'))).toBe('u2')
    expect(keyId(Buffer.from('{"id":7}'))).toBeUndefined()
    expect(keyId(Buffer.from('not json'))).toBeUndefined()
    expect(keyId(null)).toBeUndefined()
  })
})

const api: ApiBenchResult = {
  reads: [
    {
      kind: 'miss',
      seconds: 10,
      connections: 10,
      requests: 12_345,
      requestsPerSec: 1_235,
      errors: 0,
      non2xx: 1,
      latencyMs: { p50: 7, p99: 31 },
      answered: { miss: 12_344, hit: 1, l1: 0 },
    },
    {
      kind: 'l1',
      seconds: 10,
      connections: 10,
      requests: 90_000,
      requestsPerSec: 9_000,
      errors: 0,
      non2xx: 0,
      latencyMs: { p50: 1, p99: 4 },
      answered: { miss: 0, hit: 1_000, l1: 89_000 },
    },
  ],
  invalidation: [
    {
      targetPerSec: 2_000,
      seconds: 10,
      changes: 19_800,
      achievedPerSec: 1_980,
      commitToInvalidatedMs: { count: 19_800, p50: 40.5, p95: 120, p99: 250, max: 900 },
      unmatched: 0,
      cacheSyncLatencyMs: { p50: 30, p95: 100, p99: 200 },
      commitToKafkaMs: { count: 19_800, p50: 20, p95: 60, p99: 90, max: 300 },
      kafkaToInvalidatedMs: { count: 19_700, p50: 15, p95: 50, p99: 150, max: 600 },
      cpu: {
        events: 19_800,
        seconds: 10,
        ms: { 'cache-sync': 4_000, connect: 10_000, redis: 500 },
        msPer1000: {},
        totalMsPer1000: 0,
      },
    },
  ],
}

describe('renderApiSection', () => {
  it('a row per read run and per paced rate, with the figures', () => {
    const md = renderApiSection(api).join('\n')
    expect(md).toContain('## The cache')
    expect(md).toMatch(/\| misses .* \| 10 \| 10 \| \*\*1,235\*\* \| 7\.0 \| 31\.0 \| 12,344 \/ 1 \/ 0 \| 1 \|/)
    expect(md).toMatch(/\| L1 hits .* \| \*\*9,000\*\* \| 1\.0 \| 4\.0 \| 0 \/ 1,000 \/ 89,000 \| 0 \|/)
    expect(md).toContain('| 2,000 | 1,980 | 19,800 | 40.5 | **120** | 250 | 900 | 0 | 30.0 / 100 / 200 |')
    // The two legs, and each process's share of the two cores over the run's 10 s (20,000 ms of CPU in all).
    expect(md).toContain('| 2,000 | 20.0 / 60.0 / 90.0 | 15.0 / 50.0 / 150 | 19,700 |')
    expect(md).toContain('| changes/s paced | s | cache-sync | connect | redis | total |')
    expect(md).toContain('| 2,000 | 10.0 | 20.0 % | 50.0 % | 2.5 % | 72.5 % |')
  })

  it('nothing without the section; no invalidation table without its runs; unknown kinds by name', () => {
    expect(renderApiSection(undefined)).toEqual([])
    const md = renderApiSection({ reads: [{ ...api.reads[0]!, kind: 'other' }], invalidation: [] }).join('\n')
    expect(md).toContain('| other |')
    expect(md).not.toContain('changes/s paced')
    // Runs without the split (an older result file) get no split or CPU table.
    const plain = { ...api.invalidation[0]! }
    delete plain.commitToKafkaMs
    delete plain.kafkaToInvalidatedMs
    delete plain.cpu
    const older = renderApiSection({ reads: [], invalidation: [plain] }).join('\n')
    expect(older).toContain('changes/s paced')
    expect(older).not.toContain('Where the latency goes')
    expect(older).not.toContain('CPU over each run')
  })

  it('is part of the full report', () => {
    const md = renderReport({
      date: '2026-01-01T00:00:00.000Z',
      quick: false,
      only: 'api',
      repeats: 1,
      events: 1,
      seconds: 10,
      machine: { cpus: 2 },
      results: { api },
    })
    expect(md).toContain('## The cache: `node cmd/api` reads and invalidation latency')
  })
})

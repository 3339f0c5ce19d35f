import { describe, expect, it } from 'vitest'
import type { RunSummary } from '../pipeline/index.js'
import { formatDemoReport, type DemoReport } from './demo.js'

const summary = (processed: number): RunSummary =>
  ({
    processed,
    applied: processed,
    stale: 0,
    deadLettered: 0,
    handed: processed,
    parked: 0,
    held: 0,
    amplification: 1,
    ratePerSec: 100,
    latencyMs: { p50: 10, p95: 20, p99: 30 },
  }) as unknown as RunSummary

const report = (differing: number): DemoReport => ({
  produced: 100,
  produceRate: 100,
  consume: summary(100),
  replicate: summary(120),
  cacheSync: summary(120),
  postgres: { users: 40, orders: 60 },
  comparison: { matches: true, tables: [] },
  cache: {
    matches: differing === 0,
    tables: [
      { name: 'users', keys: 40, hit: 20, l1: 5, miss: 15, differing: 0, problems: [] },
      {
        name: 'orders',
        keys: 60,
        hit: 30,
        l1: 0,
        miss: 30,
        differing,
        problems: differing === 0 ? [] : ['/orders/o1: API 404, PostgreSQL has the row'],
      },
    ],
  },
})

describe('the demo summary', () => {
  it('says per table whether what the API serves from Redis matches PostgreSQL, with counts, and overall', () => {
    const text = formatDemoReport(report(0))
    expect(text).toMatch(
      /^ {2}cache-sync into Redis {5}120 change events, 0 to the DLQ, p50 10 ms, p95 20 ms, p99 30 ms$/m,
    )
    expect(text).toMatch(
      /^ {2}redis users +40 keys read through the API \(hit 20, l1 5, miss 15\); different 0: MATCH$/m,
    )
    expect(text).toMatch(
      /^ {2}redis orders .* 60 keys read through the API \(hit 30, l1 0, miss 30\); different 0: MATCH$/m,
    )
    expect(text).toMatch(
      /^ {2}PostgreSQL and Redis {6}MATCH \(what node cmd\/api serves, 100 keys cache-sync announced\)$/m,
    )
  })

  it('a differing key: MISMATCH on its table, DO NOT MATCH overall, and the difference listed', () => {
    const text = formatDemoReport(report(1))
    expect(text).toMatch(/^ {2}redis orders .*different 1: MISMATCH$/m)
    expect(text).toMatch(/^ {2}redis users .*different 0: MATCH$/m)
    expect(text).toMatch(/^ {2}PostgreSQL and Redis {6}DO NOT MATCH/m)
    expect(text).toContain('    /orders/o1: API 404, PostgreSQL has the row')
    expect(text).toMatch(/^ {2}PostgreSQL and Cassandra {2}MATCH$/m)
  })

  it('no key announced: NOT CHECKED (the run exits non-zero: cache.matches is false)', () => {
    const text = formatDemoReport({ ...report(0), cache: { matches: false, tables: [] } })
    expect(text).toMatch(/^ {2}PostgreSQL and Redis {6}NOT CHECKED: cache-sync announced no key during the run$/m)
    expect(text).not.toMatch(/^ {2}redis /m)
  })
})

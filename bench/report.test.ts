import { describe, expect, it } from 'vitest'
import { cell, renderReport, type BenchOutput } from './report.js'

const cpu = (group: string, ours: number, postgres: number) => ({
  medianMsPer1000: { [group]: ours, postgres },
  medianTotalMsPer1000: ours + postgres,
  medianNetTotalMsPer1000: ours + postgres - 2,
  runs: [
    {
      events: 1000,
      seconds: 2,
      ms: { [group]: ours, postgres },
      msPer1000: { [group]: ours, postgres },
      totalMsPer1000: ours + postgres,
      backgroundMsPerSec: { postgres: 1 },
      netTotalMsPer1000: ours + postgres - 2,
    },
  ],
})

const consume = (database: string, real: number, amplification: number) => ({
  database,
  events: 1000,
  ratesPerSec: [real],
  medianPerSec: real,
  realRatesPerSec: [real],
  medianRealPerSec: real,
  amplifications: [amplification],
  medianAmplification: amplification,
  amplificationFrom: 'processed+abandoned',
  cpu: cpu('consume', 400, 100),
})

const base: BenchOutput = {
  date: '2026-01-01T00:00:00.000Z',
  quick: true,
  only: 'all',
  repeats: 1,
  events: 1000,
  seconds: 3,
  machine: { cpus: 2, cpuModel: 'AMD EPYC', memoryGiB: 24, node: 'v20', kafka: '4', note: 'one machine' },
  results: {},
}

describe('cell', () => {
  it('shows the median in bold and the runs in parentheses', () => {
    expect(cell(2000, [1000, 2000, 3000])).toBe('**2,000** (1,000; 2,000; 3,000)')
    expect(cell(5, [5])).toBe('**5**')
  })
})

describe('renderReport', () => {
  it('computes the ratios from the medians of the same run', () => {
    const md = renderReport({
      ...base,
      results: {
        producer: { events: 1000, ratesPerSec: [40_000], medianPerSec: 40_000 },
        consume_workers_auto: consume('captured', 6_000, 1.01),
        consume_plain_workers_auto: consume('uncaptured', 12_000, 1),
        bare: { events: 1000, ratesPerSec: [20_000], medianPerSec: 20_000, batchSize: 2000, cpu: cpu('bare', 100, 50) },
        kafkaPerfTools: {
          records: 1000,
          recordBytes: 220,
          producerPerfRecordsPerSec: 200_000,
          producerPerfLine: 'x records/sec',
        },
      },
    })
    expect(md).toContain('| consumer uncaptured / bare loop, `--workers auto` | 60% | >= 60% |')
    expect(md).toContain(
      '| consumer captured / uncaptured, `--workers auto` (what the CDC leg costs the consumer) | 50% |',
    )
    expect(md).toContain('| producer / kafka-producer-perf-test | 20% |')
    expect(md).toContain('| consume captured, `--workers auto` | **1.010** | processed+abandoned |')
    expect(md).toContain('| run | consume | bare | postgres | total | total net of background |')
    expect(md).toContain('| bare upsert loop | - | **100** | **50.0** | **150** | **148** |')
  })

  it('reports the metrics overhead as on / off of the medians of alternating runs', () => {
    const md = renderReport({
      ...base,
      only: 'metrics',
      results: {
        metrics_overhead: {
          onRatesPerSec: [9_700, 9_900, 9_800],
          offRatesPerSec: [10_000, 10_100, 9_900],
          medianOnPerSec: 9_800,
          medianOffPerSec: 10_000,
        },
      },
    })
    expect(md).toContain('| consumer with metrics on / off (what the metrics cost) | 98% | >= 97% |')
    expect(md).toContain('metrics off (`--metrics-port 0`) | **10,000** (10,000; 10,100; 9,900) |')
  })

  it('reports the no-network CPU per event of both paths, median and runs', () => {
    const md = renderReport({
      ...base,
      only: 'cpu-path',
      results: {
        cpuPath: {
          workers0: { events: 50_000, runs: [4.9, 4.81, 5.2], median: 4.9 },
          workersPool: { events: 50_000, runs: [8.5, 8.91], median: 8.7 },
        },
      },
    })
    expect(md).toContain('| in the thread that fetched (`--workers 0`) | 50,000 | **4.90** (4.90; 4.81; 5.20) |')
    expect(md).toContain('`--workers auto`) | 50,000 | **8.70** (8.50; 8.91) |')
  })

  it('says when one side of a ratio was not measured in this run', () => {
    const md = renderReport({
      ...base,
      only: 'bare',
      results: { bare: { events: 1, ratesPerSec: [1], medianPerSec: 1 } },
    })
    expect(md).toContain('| consumer uncaptured / bare loop, `--workers 0` | not measured in this run')
  })
})

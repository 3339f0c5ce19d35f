import { describe, expect, it } from 'vitest'
import { percentile, Reservoir } from './reservoir.js'

describe('percentile', () => {
  it('is nearest-rank over unsorted samples', () => {
    const xs = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6]
    expect(percentile(xs, 50)).toBe(5)
    expect(percentile(xs, 95)).toBe(10)
    expect(percentile(xs, 0)).toBe(1)
    expect(percentile([], 50)).toBeNaN()
  })
})

describe('Reservoir', () => {
  it('keeps every value until full, then a bounded sample', () => {
    const r = new Reservoir(100)
    for (let i = 0; i < 50; i++) r.add(i)
    expect(r.samples).toHaveLength(50)
    for (let i = 50; i < 100_000; i++) r.add(i)
    expect(r.samples).toHaveLength(100)
    expect(r.seen).toBe(100_000)
  })

  it('samples uniformly: the median of a long uniform stream stays near its true median', () => {
    let seed = 42
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31
    const r = new Reservoir(2_000, random)
    for (let i = 0; i < 200_000; i++) r.add(i)
    expect(r.percentile(50)).toBeGreaterThan(90_000)
    expect(r.percentile(50)).toBeLessThan(110_000)
  })
})

import { describe, expect, it } from 'vitest'
import { parseDate, parseTimestamp } from './values.js'

describe('parseDate / parseTimestamp against Date', () => {
  it('parseDate gives Date.UTC of every valid day of every year it accepts (100-9999), NaN for a 29 February that is not', () => {
    for (let y = 100; y <= 9999; y++) {
      const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
      for (const [m, d] of [
        [1, 1],
        [2, 28],
        [2, 29],
        [3, 1],
        [12, 31],
      ]) {
        const text = `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`
        if (m === 2 && d === 29 && !leap) expect(parseDate(text)).toBeNaN()
        else expect(parseDate(text)).toBe(Date.UTC(y, m - 1, d))
      }
    }
  })

  it('parseTimestamp reads a valid timestamp as Date.parse does (the sink takes its latency from it)', () => {
    for (const text of [
      '2026-12-01T21:06:28Z',
      '2026-12-01T21:06:28.1Z',
      '2026-12-01T21:06:28.12+01:00',
      '1969-12-31T23:59:59.999-15:59',
      '0100-01-01T00:00:00.000+15:00',
      '9999-12-31T23:59:59.999-00:30',
      '2024-02-29T12:00:00.5+05:45',
    ]) {
      expect(parseTimestamp(text)).toBe(Date.parse(text))
    }
  })
})

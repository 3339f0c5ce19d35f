import { describe, expect, it } from 'vitest'
import { CpuWindow, parseStat, readStat, treeTicks, type ProcStat } from './cpu.js'

describe('parseStat', () => {
  it('reads ppid, utime+stime and cutime+cstime counted from the last parenthesis', () => {
    // A command name with a space and a ')' in it: the fields must be counted from the last ')'.
    const line =
      '2803 (post gres) x) S 1 2803 2803 0 -1 4194304 5945 25310 0 10 40 3 7 11 20 0 1 0 8253 364765184 9005 18446744073709551615'
    expect(parseStat(line)).toEqual({ pid: 2803, ppid: 1, own: 43, reaped: 18 })
  })

  it('rejects a line that is not a stat line', () => {
    expect(() => parseStat('garbage')).toThrow(/not a \/proc/)
  })

  it('reads this very process', () => {
    const s = readStat(process.pid)
    expect(s?.pid).toBe(process.pid)
    expect(s?.ppid).toBe(process.ppid)
  })
})

describe('treeTicks', () => {
  it('adds the reaped children and every live descendant', () => {
    const p = (pid: number, ppid: number, own: number, reaped: number): ProcStat => ({ pid, ppid, own, reaped })
    const root = p(10, 1, 5, 100)
    const byParent = new Map([
      [10, [p(11, 10, 7, 0), p(12, 10, 3, 2)]],
      [12, [p(13, 12, 1, 0)]],
    ])
    expect(treeTicks(root, byParent)).toBe(5 + 100 + 7 + 3 + 2 + 1)
  })
})

describe('CpuWindow', () => {
  it('reports our processes per 1,000 events and the net of the background', () => {
    const w = new CpuWindow({}, {})
    const r = w.close({ consume: 2_500 }, 5_000)
    expect(r.ms).toEqual({ consume: 2_500 })
    expect(r.msPer1000).toEqual({ consume: 500 })
    expect(r.totalMsPer1000).toBe(500)
    expect(r.netTotalMsPer1000).toBe(500)
  })
})

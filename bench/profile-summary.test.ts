import { describe, expect, it } from 'vitest'
import { packageOf, summarise } from './profile-summary.js'

describe('profile summary', () => {
  it('splits self time by function and package, leaving idle time out of the shares', () => {
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
        {
          id: 2,
          callFrame: { functionName: 'decodeEvent', url: 'file:///r/dist/internal/model/decode.js', lineNumber: 9 },
        },
        { id: 3, callFrame: { functionName: 'escape', url: 'file:///r/node_modules/pg/lib/utils.js', lineNumber: 1 } },
      ],
      samples: [1, 2, 2, 3],
      timeDeltas: [1_000_000, 300_000, 300_000, 400_000],
    }
    const lines = summarise(profile).join('\n')
    expect(lines).toContain('busy 1.00 s (idle 1.00 s)')
    expect(lines).toContain('| 60.0% | decodeEvent (model/decode.js:10) |')
    expect(lines).toContain('| 40.0% | node_modules/pg |')
    expect(packageOf('file:///r/dist/internal/sinks/postgres/sql.js', 'x')).toBe('ours: sinks')
  })
})

import { describe, expect, it } from 'vitest'
import { RedisCacheStore, type ScriptRunner } from './store.js'
import { SCRIPTS } from './scripts.js'

/** A runner answering each script by its SHA1, and NOSCRIPT until a script is loaded when `forgotten`. */
function runner(answers: Record<string, unknown>, forgotten = false) {
  const calls: { script: string; keys: string[]; args: string[] }[] = []
  const loaded: string[] = []
  const byShaName = Object.fromEntries(Object.entries(SCRIPTS).map(([name, s]) => [s.sha, name]))
  const r = {
    evalSha: async (sha: string, o: { keys: string[]; arguments: string[] }) => {
      const name = byShaName[sha]!
      if (forgotten && !loaded.includes(name)) throw new Error('NOSCRIPT No matching script. Please use EVAL.')
      calls.push({ script: name, keys: o.keys, args: o.arguments })
      return answers[name]
    },
    scriptLoad: async (source: string) => {
      const name = Object.entries(SCRIPTS).find(([, s]) => s.source === source)![0]
      loaded.push(name)
      return SCRIPTS[name as keyof typeof SCRIPTS].sha
    },
  }
  return { redis: r as unknown as ScriptRunner, calls, loaded }
}

describe('RedisCacheStore', () => {
  it('maps each answer of the read script to a lookup, and throws on one it does not know', async () => {
    for (const [reply, expected] of [
      [['hit', '{"id":1}'], { kind: 'hit', row: '{"id":1}' }],
      [['gone'], { kind: 'gone' }],
      [['lease'], { kind: 'lease', token: 't1' }],
      [['busy'], { kind: 'busy' }],
    ] as const) {
      const { redis, calls } = runner({ read: reply })
      expect(await new RedisCacheStore(redis).lookup('cdc:users:1', 't1', 5_000)).toEqual(expected)
      expect(calls).toEqual([{ script: 'read', keys: ['cdc:users:1'], args: ['t1', '5000'] }])
    }
    const { redis } = runner({ read: ['what'] })
    await expect(new RedisCacheStore(redis).lookup('k', 't', 1)).rejects.toThrow(/unexpected answer/)
  })

  it('fills under the lease (true when written, false when refused) and releases it', async () => {
    const written = runner({ fill: 1, release: 1 })
    const store = new RedisCacheStore(written.redis)
    expect(await store.fill('k', 't', '{}', 60_000, 'u1')).toBe(true)
    await store.release('k', 't')
    expect(written.calls.map((c) => [c.script, ...c.args])).toEqual([
      ['fill', 't', '{}', '60000', 'u1'],
      ['release', 't'],
    ])
    expect(await new RedisCacheStore(runner({ fill: 0 }).redis).fill('k', 't', '{}', 1, '')).toBe(false)
  })

  it('loads a script Redis has forgotten (NOSCRIPT) and runs it once more', async () => {
    const { redis, loaded } = runner({ read: ['gone'] }, true)
    expect(await new RedisCacheStore(redis).lookup('k', 't', 1)).toEqual({ kind: 'gone' })
    expect(loaded).toEqual(['read'])
    const failing = {
      evalSha: async () => {
        throw new Error('ERR something else')
      },
      scriptLoad: async () => '',
    } as unknown as ScriptRunner
    await expect(new RedisCacheStore(failing).release('k', 't')).rejects.toThrow('ERR something else')
  })
})

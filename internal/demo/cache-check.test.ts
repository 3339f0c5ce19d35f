import { describe, expect, it } from 'vitest'
import { resourcesOf } from '../cache/index.js'
import { canonicalJson, checkThroughApi, differenceOf, keyNameOf, type CheckIo } from './cache-check.js'

describe('the names in the keys', () => {
  it('are the tables for rows and the list names for lists', () => {
    const names = resourcesOf().map(keyNameOf)
    expect(names).toContain('users')
    expect(names).toContain('orders')
    expect(names).toContain('user-orders')
  })
})

describe('canonicalJson and differenceOf', () => {
  it('compares parsed values, object keys in any order, arrays in order', () => {
    expect(canonicalJson('{"b":1,"a":{"d":[2,{"y":1,"x":0}],"c":null}}')).toBe(
      '{"a":{"c":null,"d":[2,{"x":0,"y":1}]},"b":1}',
    )
    expect(canonicalJson(null)).toBe('null')
    expect(differenceOf({ status: 200, body: '{"id":"u","name":"A"}' }, '{"name":"A","id":"u"}')).toBeUndefined()
    expect(differenceOf({ status: 200, body: '[1,2]' }, '[2,1]')).toMatch(/!= PostgreSQL/)
  })

  it('a 404 agrees with no row; any other answer about a missing or present row does not', () => {
    expect(differenceOf({ status: 404, body: '{}' }, null)).toBeUndefined()
    expect(differenceOf({ status: 200, body: '{}' }, null)).toBe('API 200, PostgreSQL has no row')
    expect(differenceOf({ status: 404, body: '{}' }, '{}')).toBe('API 404, PostgreSQL has the row')
    expect(differenceOf({ status: 200, body: '{"name":"old"}' }, '{"name":"new"}')).toMatch(/old.*!=.*new/)
  })
})

describe('checkThroughApi', () => {
  // PostgreSQL has users u1..u3 and one order of u1; the API serves u2 stale until `fixedAfterSleep`.
  function fakeIo(o: { fixedAfterSleep: boolean }) {
    let slept = 0
    const rows: Record<string, string | null> = { u1: '{"name":"a"}', u2: '{"name":"new"}', u3: null, o1: '{"q":1}' }
    const io: CheckIo = {
      get: async (path) => {
        const id = path.split('/')[2]!
        if (path.endsWith('/orders')) return { status: 200, body: '[]', cache: 'miss' }
        if (id === 'u2' && !(o.fixedAfterSleep && slept > 0))
          return { status: 200, body: '{"name":"old"}', cache: 'hit' }
        const row = rows[id] ?? null
        return { status: row === null ? 404 : 200, body: row ?? '{}', cache: id === 'u1' ? 'l1' : 'hit' }
      },
      truth: async (resource, id) => (resource.kind === 'list' ? '[]' : (rows[id] ?? null)),
      sleep: async (ms) => void (slept += ms),
    }
    return { io, slept: () => slept }
  }
  const announced = new Map([
    ['users', new Set(['u1', 'u2', 'u3'])],
    ['orders', new Set(['o1'])],
    ['user-orders', new Set(['u1'])],
  ])

  it('counts hits, L1 hits and misses per table and reports a key that still differs after the settle wait', async () => {
    const { io, slept } = fakeIo({ fixedAfterSleep: false })
    const r = await checkThroughApi(announced, io, { concurrency: 2, settleMs: 1_500 })
    expect(r.matches).toBe(false)
    expect(slept()).toBe(1_500)
    const users = r.tables.find((t) => t.name === 'users')!
    expect(users).toMatchObject({ keys: 3, hit: 2, l1: 1, miss: 0, differing: 1 })
    expect(users.problems).toEqual(['/users/u2: API {"name":"old"} != PostgreSQL {"name":"new"}'])
    expect(r.tables.find((t) => t.name === 'orders')).toMatchObject({ keys: 1, hit: 1, differing: 0 })
    expect(r.tables.find((t) => t.name === 'user-orders')).toMatchObject({ keys: 1, miss: 1, differing: 0 })
    // Tables nothing was announced for are not listed.
    expect(r.tables.map((t) => t.name).sort()).toEqual(['orders', 'user-orders', 'users'])
  })

  it('a difference gone on the re-read (a change landed between the two reads) is not counted', async () => {
    const { io } = fakeIo({ fixedAfterSleep: true })
    const r = await checkThroughApi(announced, io, { settleMs: 10 })
    expect(r.matches).toBe(true)
    expect(r.tables.every((t) => t.differing === 0)).toBe(true)
  })

  it('nothing announced: nothing to read, and that is no match (cache-sync applied none of the run)', async () => {
    const { io, slept } = fakeIo({ fixedAfterSleep: false })
    expect(await checkThroughApi(new Map(), io)).toEqual({ matches: false, tables: [] })
    expect(slept()).toBe(0)
  })
})

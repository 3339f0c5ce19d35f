import { describe, expect, it } from 'vitest'
import { ErrorCodes } from './errors.js'
import { classifiedError, socketErrorCode } from './classify.js'
import { MAX_SHOWN_DEPTH, show } from './show.js'

describe('show', () => {
  it('quotes strings, writes bigints in digits and the rest as JSON, cut to the bound', () => {
    expect(show('abc')).toBe("'abc'")
    expect(show(12n ** 30n)).toBe((12n ** 30n).toString())
    expect(show({ a: [1, null] })).toBe('{"a":[1,null]}')
    expect(show(undefined)).toBe('undefined')
    expect(show('x'.repeat(100))).toHaveLength(80)
    expect(show('x'.repeat(100), 60)).toBe(`'${'x'.repeat(56)}...`)
  })
  it('names a value nested too deep instead of overflowing the stack', () => {
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    expect(show(deep)).toBe(`a value nested deeper than ${MAX_SHOWN_DEPTH} levels`)
  })
})

describe('socketErrorCode', () => {
  it('finds the network codes of both sinks, also inside an AggregateError', () => {
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']) {
      expect(socketErrorCode(Object.assign(new Error('x'), { code }))).toBe(code)
    }
    const both = new AggregateError([new Error('a'), Object.assign(new Error('b'), { code: 'ECONNREFUSED' })])
    expect(socketErrorCode(both)).toBe('ECONNREFUSED')
    expect(socketErrorCode(Object.assign(new Error('x'), { code: '23505' }))).toBeUndefined()
  })
  it('builds the PipelineError of a classified error with its cause', () => {
    const cause = new Error('boom')
    const e = classifiedError('Cassandra', { code: ErrorCodes.SINK_UNAVAILABLE, what: 'unavailable' }, 'boom', cause)
    expect([e.code, e.message, e.retriable, e.cause]).toEqual([
      ErrorCodes.SINK_UNAVAILABLE,
      'Cassandra unavailable: boom',
      true,
      cause,
    ])
    const closed = classifiedError(
      'PostgreSQL',
      { code: ErrorCodes.SINK_UNAVAILABLE, what: 'pool closed', retriable: false },
      'x',
      cause,
    )
    expect(closed.retriable).toBe(false)
  })
})

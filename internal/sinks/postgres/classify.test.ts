import { describe, expect, it } from 'vitest'

import { ErrorCodes, PipelineError } from '../../errors/index.js'
import { classifyPgError } from './index.js'

function pgError(code: string, message = 'server said no'): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' })
}

describe('classifyPgError', () => {
  it.each([
    ['ECONNREFUSED', 'SINK_UNAVAILABLE', true],
    ['ECONNRESET', 'SINK_UNAVAILABLE', true],
    ['ETIMEDOUT', 'SINK_UNAVAILABLE', true],
    ['57P01', 'SINK_UNAVAILABLE', true],
    ['57P03', 'SINK_UNAVAILABLE', true],
    ['08006', 'SINK_UNAVAILABLE', true],
    ['08001', 'SINK_UNAVAILABLE', true],
    ['53300', 'SINK_UNAVAILABLE', true],
    ['40001', 'SINK_CONFLICT', true],
    ['40P01', 'SINK_CONFLICT', true],
    ['57014', 'SINK_TIMEOUT', true],
    ['55P03', 'SINK_TIMEOUT', true],
    ['23505', 'SINK_REJECTED', false],
    ['23503', 'SINK_REJECTED', false],
    ['23514', 'SINK_REJECTED', false],
    ['22003', 'SINK_REJECTED', false],
    ['28P01', 'CONFIG_ERROR', false],
    ['3D000', 'CONFIG_ERROR', false],
    ['42P01', 'CONFIG_ERROR', false],
    ['XX000', 'UNKNOWN', true],
  ] as const)('%s -> %s (retriable %s)', (code, expected, retriable) => {
    const cause = pgError(code)
    const err = classifyPgError(cause)
    expect(err).toBeInstanceOf(PipelineError)
    expect(err.code).toBe(expected)
    expect(err.retriable).toBe(retriable)
    expect(err.cause).toBe(cause)
    expect(err.message).toContain('server said no')
    expect(err.message).toContain(`[${code}]`)
  })

  it('reads the codes inside an AggregateError (happy-eyeballs connect)', () => {
    const agg = new AggregateError([pgError('ECONNREFUSED', 'connect ECONNREFUSED ::1:5432')], '')
    const err = classifyPgError(agg)
    expect(err.code).toBe(ErrorCodes.SINK_UNAVAILABLE)
    expect(err.message).toBe('PostgreSQL unavailable: connect ECONNREFUSED ::1:5432')
  })

  it.each([
    ['Connection terminated unexpectedly', 'SINK_UNAVAILABLE'],
    ['Connection terminated due to connection timeout', 'SINK_UNAVAILABLE'],
    ['timeout exceeded when trying to connect', 'SINK_UNAVAILABLE'],
    ['Client has encountered a connection error and is not queryable', 'SINK_UNAVAILABLE'],
    ['Query read timeout', 'SINK_TIMEOUT'],
    ['something odd', 'UNKNOWN'],
  ])('maps the message %s -> %s', (message, code) => {
    expect(classifyPgError(new Error(message)).code).toBe(code)
  })

  it('does not retry after our own pool was ended', () => {
    const err = classifyPgError(new Error('Cannot use a pool after calling end on the pool'))
    expect(err.code).toBe('SINK_UNAVAILABLE')
    expect(err.retriable).toBe(false)
  })

  it('passes PipelineErrors through and handles non-errors', () => {
    const original = new PipelineError(ErrorCodes.CONFIG_ERROR, 'x')
    expect(classifyPgError(original)).toBe(original)
    expect(classifyPgError('weird').code).toBe('UNKNOWN')
  })
})

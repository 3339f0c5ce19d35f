import { describe, expect, it } from 'vitest'

import {
  ErrorCodes,
  PipelineError,
  errorMessage,
  fromErrorData,
  isPipelineError,
  isPipelineErrorData,
  isRetriable,
  toErrorData,
  toPipelineError,
} from './index.js'

describe('PipelineError', () => {
  it('carries code, default retriability and the cause', () => {
    const cause = new Error('boom')
    const err = new PipelineError(ErrorCodes.SINK_UNAVAILABLE, 'down', { cause })
    expect(err).toBeInstanceOf(Error)
    expect(err.name).toBe('PipelineError')
    expect(err.code).toBe('SINK_UNAVAILABLE')
    expect(err.retriable).toBe(true)
    expect(err.cause).toBe(cause)
  })

  it.each([
    ['DECODE_ERROR', false],
    ['VALIDATION_ERROR', false],
    ['MISSING_REFERENCE', true],
    ['SINK_UNAVAILABLE', true],
    ['SINK_TIMEOUT', true],
    ['SINK_CONFLICT', true],
    ['SINK_REJECTED', false],
    ['UNSUPPORTED', false],
    ['CONFIG_ERROR', false],
    ['UNREACHABLE', true],
    ['UNKNOWN', true],
  ] as const)('%s is retriable=%s by default', (code, retriable) => {
    expect(new PipelineError(code, 'x').retriable).toBe(retriable)
  })

  it('lets the caller override retriability', () => {
    expect(new PipelineError(ErrorCodes.UNKNOWN, 'x', { retriable: false }).retriable).toBe(false)
  })

  it('has no cause property when none is given', () => {
    expect('cause' in new PipelineError(ErrorCodes.UNKNOWN, 'x')).toBe(false)
  })
})

describe('helpers', () => {
  it('isRetriable is true only for retriable PipelineErrors', () => {
    expect(isRetriable(new PipelineError(ErrorCodes.SINK_TIMEOUT, 't'))).toBe(true)
    expect(isRetriable(new PipelineError(ErrorCodes.DECODE_ERROR, 'd'))).toBe(false)
    expect(isRetriable(new Error('plain'))).toBe(false)
    expect(isRetriable('string')).toBe(false)
  })

  it('isPipelineError checks the code when given', () => {
    const err = new PipelineError(ErrorCodes.CONFIG_ERROR, 'c')
    expect(isPipelineError(err)).toBe(true)
    expect(isPipelineError(err, ErrorCodes.CONFIG_ERROR)).toBe(true)
    expect(isPipelineError(err, ErrorCodes.UNKNOWN)).toBe(false)
    expect(isPipelineError(new Error('x'))).toBe(false)
  })

  it('toPipelineError keeps PipelineErrors and wraps anything else', () => {
    const err = new PipelineError(ErrorCodes.SINK_CONFLICT, 'c')
    expect(toPipelineError(err)).toBe(err)
    const cause = new TypeError('bad')
    const wrapped = toPipelineError(cause)
    expect(wrapped.code).toBe('UNKNOWN')
    expect(wrapped.message).toBe('bad')
    expect(wrapped.cause).toBe(cause)
    expect(toPipelineError('oops', ErrorCodes.DECODE_ERROR).code).toBe('DECODE_ERROR')
  })

  it('errorMessage reads AggregateErrors and non-errors', () => {
    expect(errorMessage(new AggregateError([new Error('a'), new Error('b')], ''))).toBe('a; b')
    expect(errorMessage(42)).toBe('42')
  })
})

describe('PipelineError as plain data (toErrorData / fromErrorData)', () => {
  it('keeps code, message, retriable flag, details and the whole cause chain, through structured clone and JSON', () => {
    const socket = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    const driver = Object.assign(new Error('terminating connection', { cause: socket }), { code: '57P01' })
    const err = new PipelineError(ErrorCodes.SINK_UNAVAILABLE, 'PostgreSQL went away', {
      cause: driver,
      details: { table: 'orders' },
    })
    const data = toErrorData(err)
    expect(data).toEqual({
      code: 'SINK_UNAVAILABLE',
      message: 'PostgreSQL went away',
      retriable: true,
      details: { table: 'orders' },
      cause: {
        name: 'Error',
        message: 'terminating connection',
        code: '57P01',
        cause: { name: 'Error', message: 'read ECONNRESET', code: 'ECONNRESET' },
      },
    })
    for (const copy of [structuredClone(data), JSON.parse(JSON.stringify(data)) as typeof data]) {
      const back = fromErrorData(copy)
      expect(back).toBeInstanceOf(PipelineError)
      expect(back).toMatchObject({ code: 'SINK_UNAVAILABLE', message: 'PostgreSQL went away', retriable: true })
      expect(back.details).toEqual({ table: 'orders' })
      const cause = back.cause as Error & { code?: string; cause?: Error & { code?: string } }
      expect(cause).toBeInstanceOf(Error)
      expect(cause).toMatchObject({ message: 'terminating connection', code: '57P01' })
      expect(cause.cause).toMatchObject({ message: 'read ECONNRESET', code: 'ECONNRESET' })
      expect(toErrorData(back)).toEqual(data)
    }
  })

  it('keeps an overridden retriable flag and a PipelineError inside the chain as a PipelineError', () => {
    const inner = new PipelineError(ErrorCodes.SINK_TIMEOUT, 'statement timeout', { retriable: false })
    const data = toErrorData(new PipelineError(ErrorCodes.SINK_REJECTED, 'batch rejected', { cause: inner }))
    expect(data.cause).toEqual({
      name: 'PipelineError',
      message: 'statement timeout',
      code: 'SINK_TIMEOUT',
      retriable: false,
    })
    const back = fromErrorData(data)
    expect(isPipelineError(back.cause, 'SINK_TIMEOUT')).toBe(true)
    expect(isRetriable(back.cause)).toBe(false)
  })

  it('wraps anything else as UNKNOWN (or the code given), the thrown value as cause; cuts a cyclic chain', () => {
    expect(toErrorData(new TypeError('x is undefined'))).toEqual({
      code: 'UNKNOWN',
      message: 'x is undefined',
      retriable: true,
      cause: { name: 'TypeError', message: 'x is undefined' },
    })
    expect(toErrorData('boom', ErrorCodes.SINK_UNAVAILABLE)).toMatchObject({
      code: 'SINK_UNAVAILABLE',
      cause: { name: 'string', message: 'boom' },
    })
    const a = new Error('a')
    const b = new Error('b', { cause: a })
    Object.assign(a, { cause: b })
    let depth = 0
    for (let c = toErrorData(a).cause; c !== undefined; c = c.cause) depth++
    expect(depth).toBe(8)
  })

  it('takes plain data for what it is: toErrorData returns it, toPipelineError rebuilds the error', () => {
    const data = { code: 'VALIDATION_ERROR' as const, message: 'bad quantity', retriable: false }
    expect(isPipelineErrorData(data)).toBe(true)
    expect(isPipelineErrorData({ code: 'NOPE', message: 'x', retriable: false })).toBe(false)
    expect(isPipelineErrorData(new PipelineError(ErrorCodes.UNKNOWN, 'x'))).toBe(false)
    expect(toErrorData(data)).toBe(data)
    expect(toPipelineError(data)).toMatchObject({
      name: 'PipelineError',
      code: 'VALIDATION_ERROR',
      message: 'bad quantity',
    })
  })
})

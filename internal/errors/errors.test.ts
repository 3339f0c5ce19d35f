import { describe, expect, it } from 'vitest'

import { ErrorCodes, PipelineError, errorMessage, isPipelineError, isRetriable, toPipelineError } from './index.js'

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

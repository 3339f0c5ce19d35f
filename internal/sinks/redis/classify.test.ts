import { ClientClosedError, ErrorReply } from 'redis'
import { describe, expect, it } from 'vitest'
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import { classifyRedisError } from './classify.js'

describe('classifyRedisError', () => {
  it.each([
    [new ErrorReply('WRONGPASS invalid username-password pair'), ErrorCodes.CONFIG_ERROR, false],
    [new ErrorReply('NOAUTH Authentication required.'), ErrorCodes.CONFIG_ERROR, false],
    [new ErrorReply('LOADING Redis is loading the dataset in memory'), ErrorCodes.SINK_UNAVAILABLE, true],
    [new ErrorReply('BUSY Redis is busy running a script'), ErrorCodes.SINK_UNAVAILABLE, true],
    [new ErrorReply("OOM command not allowed when used memory > 'maxmemory'"), ErrorCodes.SINK_UNAVAILABLE, true],
    [new ErrorReply('ERR Error running script'), ErrorCodes.SINK_REJECTED, false],
    [new ClientClosedError(), ErrorCodes.SINK_UNAVAILABLE, false],
    [Object.assign(new Error('Command timeout'), { name: 'TimeoutError' }), ErrorCodes.SINK_TIMEOUT, true],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }),
      ErrorCodes.SINK_UNAVAILABLE,
      true,
    ],
    [new Error('The client is offline'), ErrorCodes.SINK_UNAVAILABLE, true],
  ])('%s -> %s (retriable %s)', (err, code, retriable) => {
    const e = classifyRedisError(err)
    expect(e).toMatchObject({ code, retriable })
    expect(e.message).toMatch(/^Redis /)
    expect(e.cause).toBe(err)
  })

  it('passes a PipelineError through', () => {
    const e = new PipelineError(ErrorCodes.VALIDATION_ERROR, 'x')
    expect(classifyRedisError(e)).toBe(e)
  })
})

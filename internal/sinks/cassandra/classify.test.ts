import { describe, expect, it } from 'vitest'
import { ErrorCodes } from '../../errors/index.js'
import { classifyCassandraError } from './classify.js'

describe('classifyCassandraError', () => {
  it('takes the socket errors the PostgreSQL sink takes as unavailable (a name that does not resolve yet included)', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']) {
      const e = classifyCassandraError(Object.assign(new Error(`connect ${code}`), { code }))
      expect([e.code, e.retriable, e.message]).toEqual([
        ErrorCodes.SINK_UNAVAILABLE,
        true,
        `Cassandra unavailable: connect ${code}`,
      ])
    }
  })
  it('leaves anything else UNKNOWN and retriable', () => {
    const e = classifyCassandraError(new Error('something odd'))
    expect([e.code, e.retriable]).toEqual([ErrorCodes.UNKNOWN, true])
  })
})

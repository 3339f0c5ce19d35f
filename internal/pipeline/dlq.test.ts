import { describe, expect, it } from 'vitest'

import { ErrorCodes, PipelineError } from '../errors/index.js'
import {
  DLQ_HEADERS,
  MAX_ERROR_MESSAGE_CHARS,
  buildDlqMessage,
  dlqTopicFor,
  parseDlqHeaders,
  replayHeaders,
  type MessageHeaders,
} from './dlq.js'

const value = Buffer.from([0x7b, 0xff, 0x7d]) // not even UTF-8: must pass through byte for byte
const original = {
  topic: 'orders',
  partition: 3,
  offset: '12345678901234',
  key: Buffer.from('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'),
  value,
  headers: { traceparent: Buffer.from('00-abc-def-01'), [DLQ_HEADERS.attempts]: '99' },
}

function build(error: unknown = new PipelineError(ErrorCodes.DECODE_ERROR, 'message value is not valid UTF-8')) {
  return buildDlqMessage({
    original,
    error,
    attempts: 1,
    firstFailureAt: new Date('2025-01-01T00:00:00.000Z'),
    lastFailureAt: '2025-01-01T00:00:01.000Z',
  })
}

describe('dlqTopicFor', () => {
  it('appends .dlq', () => {
    expect(dlqTopicFor('users')).toBe('users.dlq')
    expect(dlqTopicFor('cdc.public.orders')).toBe('cdc.public.orders.dlq')
  })
})

describe('buildDlqMessage', () => {
  it('keeps the original key and bytes and records origin and error', () => {
    const msg = build()
    expect(msg.key).toBe(original.key)
    expect(msg.value).toBe(value)
    expect(msg.headers).toEqual({
      traceparent: original.headers.traceparent,
      'x-original-topic': 'orders',
      'x-original-partition': '3',
      'x-original-offset': '12345678901234',
      'x-original-key': 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
      'x-error-code': 'DECODE_ERROR',
      'x-error-message': 'message value is not valid UTF-8',
      'x-attempts': '1',
      'x-first-failure-at': '2025-01-01T00:00:00.000Z',
      'x-last-failure-at': '2025-01-01T00:00:01.000Z',
    })
  })

  it('truncates a long error message', () => {
    const msg = build(new PipelineError(ErrorCodes.VALIDATION_ERROR, 'x'.repeat(5000)))
    const text = msg.headers['x-error-message'] as string
    expect(text).toHaveLength(MAX_ERROR_MESSAGE_CHARS)
    expect(text.endsWith('...')).toBe(true)
  })

  it('records a non-PipelineError as UNKNOWN', () => {
    expect(build(new Error('bug')).headers['x-error-code']).toBe('UNKNOWN')
  })

  it('handles a null key and value (tombstone)', () => {
    const msg = buildDlqMessage({
      original: { ...original, key: null, value: null, headers: undefined },
      error: new PipelineError(ErrorCodes.DECODE_ERROR, 'message value is empty'),
      attempts: 1,
      firstFailureAt: '2025-01-01T00:00:00.000Z',
      lastFailureAt: '2025-01-01T00:00:00.000Z',
    })
    expect(msg.key).toBeNull()
    expect(msg.value).toBeNull()
    expect(msg.headers).not.toHaveProperty('x-original-key')
  })
})

describe('parseDlqHeaders', () => {
  it('reads back what buildDlqMessage wrote, from Buffers as Kafka delivers them', () => {
    const asBuffers: MessageHeaders = Object.fromEntries(
      Object.entries(build().headers).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]),
    )
    expect(parseDlqHeaders(asBuffers)).toEqual({
      originalTopic: 'orders',
      originalPartition: 3,
      originalOffset: '12345678901234',
      originalKey: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa',
      errorCode: 'DECODE_ERROR',
      errorMessage: 'message value is not valid UTF-8',
      attempts: 1,
      firstFailureAt: '2025-01-01T00:00:00.000Z',
      lastFailureAt: '2025-01-01T00:00:01.000Z',
    })
  })

  it('names a missing or bad header', () => {
    const headers = { ...build().headers }
    delete headers['x-original-topic']
    expect(() => parseDlqHeaders(headers)).toThrow('DLQ header x-original-topic is missing')
    expect(() => parseDlqHeaders({ ...build().headers, 'x-attempts': 'many' })).toThrow(
      "DLQ header x-attempts must be an integer >= 1 (got 'many')",
    )
    expect(() => parseDlqHeaders({ ...build().headers, 'x-original-offset': '-1' })).toThrow(
      "DLQ header x-original-offset must be a non-negative integer (got '-1')",
    )
    expect(() => parseDlqHeaders(undefined)).toThrow(PipelineError)
  })

  it('gives back the original headers for a replay', () => {
    expect(replayHeaders(build().headers)).toEqual({ traceparent: original.headers.traceparent })
  })
})

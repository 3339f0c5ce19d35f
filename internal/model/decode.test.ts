import { afterEach, describe, expect, it, vi } from 'vitest'

import { PipelineError } from '../errors/index.js'
import { parseTimestamp } from './decode.js'
import { decodeEvent, encodeEvent, validateEvent, type OrderEvent, type UserEvent } from './index.js'

const U1 = '6f1c2a9e-3b5d-4c8e-9a7f-1b2c3d4e5f60'
const O1 = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
const E1 = 'a2d4f6b8-1c3e-4a5b-9c7d-e8f0a1b2c3d4'

function user(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: UserEvent = {
    event_id: E1,
    schema_version: 1,
    event_type: 'CREATE',
    version: 1,
    occurred_at: '2025-05-01T10:00:00.000Z',
    user_id: U1,
    name: 'Ada Lovelace',
    dob: '1990-12-10',
    created_at: '2025-05-01T10:00:00.000Z',
    modified_at: '2025-05-01T10:00:00.000Z',
    is_deleted: false,
  }
  return { ...base, ...overrides }
}

function order(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: OrderEvent = {
    event_id: E1,
    schema_version: 1,
    event_type: 'CREATE',
    version: 1,
    occurred_at: '2025-05-01T10:00:00.000Z',
    order_id: O1,
    order_status: 'PLACED',
    user_id: U1,
    quantity: 3,
    order_total: 59.97,
    placed_at: '2025-05-01T10:00:00.000Z',
    modified_at: '2025-05-01T10:00:00.000Z',
    is_deleted: false,
  }
  return { ...base, ...overrides }
}

function bytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value))
}

function failure(fn: () => unknown): PipelineError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).retriable).toBe(false)
    return err as PipelineError
  }
  throw new Error('expected a PipelineError')
}

describe('decodeEvent: bytes and JSON', () => {
  it('decodes valid user and order events', () => {
    expect(decodeEvent('user', bytes(user()))).toEqual(user())
    expect(decodeEvent('order', bytes(order()))).toEqual(order())
  })

  it('round-trips encodeEvent', () => {
    const event = validateEvent('order', order())
    expect(decodeEvent('order', encodeEvent(event))).toEqual(event)
  })

  it('lower-cases uuids and drops unknown fields', () => {
    const decoded = decodeEvent('user', bytes(user({ user_id: U1.toUpperCase(), extra: 1, __proto__x: 2 })))
    expect(decoded.user_id).toBe(U1)
    expect(decoded).not.toHaveProperty('extra')
  })

  it.each([
    [null, 'message value is empty'],
    [Buffer.alloc(0), 'message value is empty'],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'message value is not valid UTF-8'],
    [Buffer.from('{"a":'), /^message value is not valid JSON: /],
    [Buffer.from('[1]'), 'message value must be a JSON object (got an array)'],
    [Buffer.from('"text"'), "message value must be a JSON object (got 'text')"],
    [Buffer.from('null'), 'message value must be a JSON object (got null)'],
  ])('DECODE_ERROR for %s', (value, message) => {
    const err = failure(() => decodeEvent('user', value))
    expect(err.code).toBe('DECODE_ERROR')
    if (typeof message === 'string') expect(err.message).toBe(message)
    else expect(err.message).toMatch(message)
  })

  it('keeps the parser error as cause', () => {
    expect(failure(() => decodeEvent('user', Buffer.from('{'))).cause).toBeInstanceOf(SyntaxError)
  })
})

describe('decodeEvent: common fields', () => {
  it.each([
    [{ event_id: undefined }, 'event_id is required'],
    [{ event_id: 'abc' }, "event_id must be a UUID (got 'abc')"],
    [{ schema_version: 2 }, 'schema_version must be 1 (got 2)'],
    [{ schema_version: undefined }, 'schema_version is required'],
    [{ event_type: 'UPSERT' }, "event_type must be one of CREATE, UPDATE, DELETE (got 'UPSERT')"],
    [{ event_type: 7 }, 'event_type must be one of CREATE, UPDATE, DELETE (got 7)'],
    [{ version: 0 }, 'version must be an integer >= 1 (got 0)'],
    [{ version: 1.5 }, 'version must be an integer >= 1 (got 1.5)'],
    [{ version: '1' }, "version must be an integer >= 1 (got '1')"],
    [{ version: 2 }, 'version must be 1 for CREATE (got 2)'],
    [{ event_type: 'UPDATE', version: 1 }, 'version must be >= 2 for UPDATE (got 1)'],
    [
      { occurred_at: '2025-05-01 10:00:00' },
      "occurred_at must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits (got '2025-05-01 10:00:00')",
    ],
    [
      { occurred_at: '2025-05-01T10:00:00' },
      "occurred_at must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits (got '2025-05-01T10:00:00')",
    ],
  ])('user %o -> %s', (overrides, message) => {
    const err = failure(() => validateEvent('user', user(overrides)))
    expect(err.code).toBe('VALIDATION_ERROR')
    expect(err.message).toBe(message)
  })

  it.each([
    '2025-02-30T10:00:00Z',
    '2025-05-01T24:00:00Z',
    '2025-05-01T10:60:00Z',
    '2025-05-01T10:00:60Z',
    '2025-05-01T10:00:00.1234Z',
    '2025-05-01T10:00:00+24:00',
  ])('rejects the timestamp %s', (ts) => {
    expect(failure(() => validateEvent('user', user({ occurred_at: ts }))).code).toBe('VALIDATION_ERROR')
  })

  it.each(['2025-05-01T10:00:00Z', '2025-05-01T10:00:00.5+02:00', '2025-05-01T10:00:00.123-05:30'])(
    'accepts the timestamp %s',
    (ts) => {
      expect(validateEvent('user', user({ occurred_at: ts })).occurred_at).toBe(ts)
    },
  )
})

describe('decodeEvent: user fields', () => {
  const long = 'x'.repeat(51)
  it.each([
    [{ user_id: 'nope' }, "user_id must be a UUID (got 'nope')"],
    [{ name: '' }, "name must be a string of 1 to 50 characters, not blank (got '')"],
    [{ name: '   ' }, "name must be a string of 1 to 50 characters, not blank (got '   ')"],
    [{ name: 42 }, 'name must be a string of 1 to 50 characters, not blank (got 42)'],
    [{ name: long }, `name must be a string of 1 to 50 characters, not blank (got '${long}')`],
    [{ name: 'a\u0000b' }, "name must be a string of 1 to 50 characters, not blank (got 'a\u0000b')"],
    [{ name: null }, 'name must be a string of 1 to 50 characters, not blank (got null)'],
    [{ dob: '1990-02-30' }, "dob must be a valid date YYYY-MM-DD (got '1990-02-30')"],
    [{ dob: '10/12/1990' }, "dob must be a valid date YYYY-MM-DD (got '10/12/1990')"],
    // occurred_at is 2025-05-01T10:00Z: 2025-05-02 has begun in UTC+14, 2025-05-03 nowhere.
    [{ dob: '2025-05-03' }, "dob must not be after the date of occurred_at (got '2025-05-03')"],
    [
      { created_at: 5 },
      'created_at must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits (got 5)',
    ],
    [
      { modified_at: '2025-05-01T09:59:59.999Z' },
      "modified_at must not be before created_at (got '2025-05-01T09:59:59.999Z')",
    ],
    [{ is_deleted: 'no' }, "is_deleted must be a boolean (got 'no')"],
    [{ is_deleted: true }, 'is_deleted must be true for DELETE and false otherwise (got true)'],
    [{ event_type: 'DELETE', version: 3 }, 'is_deleted must be true for DELETE and false otherwise (got false)'],
  ])('%o -> %s', (overrides, message) => {
    const err = failure(() => validateEvent('user', user(overrides)))
    expect(err.code).toBe('VALIDATION_ERROR')
    expect(err.message).toBe(message)
  })

  it('counts characters as code points and accepts today in the latest time zone', () => {
    expect(validateEvent('user', user({ name: '😀'.repeat(50) })).name).toHaveLength(100)
    expect(validateEvent('user', user({ dob: '2025-05-02' })).dob).toBe('2025-05-02')
  })

  it('truncates a huge offending value in the message', () => {
    const err = failure(() => validateEvent('user', user({ name: 'y'.repeat(10_000) })))
    expect(err.message.length).toBeLessThan(200)
  })
})

describe('decodeEvent: order fields', () => {
  it.each([
    [{ order_id: undefined }, 'order_id is required'],
    [{ order_status: 'LOST' }, "order_status must be one of PLACED, CANCELLED, SHIPPED, DELIVERED (got 'LOST')"],
    [{ order_status: 'SHIPPED' }, "order_status must be PLACED for CREATE (got 'SHIPPED')"],
    [
      { event_type: 'DELETE', version: 2, is_deleted: true, order_status: 'SHIPPED' },
      "order_status must be CANCELLED for DELETE (got 'SHIPPED')",
    ],
    [
      { event_type: 'UPDATE', version: 2, order_status: 'CANCELLED' },
      "order_status must not be CANCELLED for UPDATE (cancelling is a DELETE) (got 'CANCELLED')",
    ],
    [{ user_id: 12 }, 'user_id must be a UUID (got 12)'],
    [{ quantity: 0 }, 'quantity must be an integer from 1 to 10000 (got 0)'],
    [{ quantity: 10_001 }, 'quantity must be an integer from 1 to 10000 (got 10001)'],
    [{ quantity: 2.5 }, 'quantity must be an integer from 1 to 10000 (got 2.5)'],
    [{ quantity: '3' }, "quantity must be an integer from 1 to 10000 (got '3')"],
    [{ order_total: -3 }, 'order_total must be a number >= 0 with at most 2 decimals (got -3)'],
    [{ order_total: 1.234 }, 'order_total must be a number >= 0 with at most 2 decimals (got 1.234)'],
    [{ order_total: 1e-7 }, 'order_total must be a number >= 0 with at most 2 decimals (got 1e-7)'],
    [{ order_total: '9.99' }, "order_total must be a number >= 0 with at most 2 decimals (got '9.99')"],
    [{ order_total: 100_000_000 }, 'order_total must be below 100000000 (got 100000000)'],
    [{ order_total: undefined }, 'order_total is required'],
    [
      { placed_at: 'yesterday' },
      "placed_at must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits (got 'yesterday')",
    ],
    [
      { modified_at: '2025-04-30T10:00:00.000Z' },
      "modified_at must not be before placed_at (got '2025-04-30T10:00:00.000Z')",
    ],
    [{ is_deleted: 1 }, 'is_deleted must be a boolean (got 1)'],
    [
      { event_type: 'DELETE', version: 2, order_status: 'CANCELLED' },
      'is_deleted must be true for DELETE and false otherwise (got false)',
    ],
  ])('%o -> %s', (overrides, message) => {
    const err = failure(() => validateEvent('order', order(overrides)))
    expect(err.code).toBe('VALIDATION_ERROR')
    expect(err.message).toBe(message)
  })

  it('accepts money values that are exact in two decimals', () => {
    for (const total of [0, 0.1, 19.99, 99_999_999.99, 1234.5]) {
      expect(validateEvent('order', order({ order_total: total })).order_total).toBe(total)
    }
  })

  it('accepts a cancelling DELETE', () => {
    const e = validateEvent(
      'order',
      order({ event_type: 'DELETE', version: 3, order_status: 'CANCELLED', is_deleted: true }),
    )
    expect(e.is_deleted).toBe(true)
  })

  it('rejects an order event on the user decoder (entity mismatch)', () => {
    expect(failure(() => validateEvent('user', order())).message).toBe('name is required')
    expect(failure(() => validateEvent('order', user())).message).toBe('order_id is required')
  })
})

describe('parseTimestamp (the hand-written scanner)', () => {
  const valid = [
    '2026-12-01T08:00:00Z',
    '2026-12-01T08:00:00.1Z',
    '2026-12-01T08:00:00.12Z',
    '2026-12-01T08:00:00.123Z',
    '2024-02-29T23:59:59+14:00',
    '2000-02-29T00:00:00-15:59',
    '2000-02-29T00:00:00+15:59',
    '1970-01-01T00:00:00+00:00',
    '0100-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
  ]
  const invalid = [
    '',
    '2026-12-01',
    '2026-12-01 08:00:00Z',
    '2026-12-01T08:00:00',
    '2026-12-01T08:00:00.Z',
    '2026-12-01T08:00:00.1234Z',
    '2026-12-01T24:00:00Z',
    '2026-12-01T23:60:00Z',
    '2026-12-01T23:59:60Z',
    '2023-02-29T00:00:00Z',
    '2026-13-01T00:00:00Z',
    '2026-00-01T00:00:00Z',
    '2026-04-31T00:00:00Z',
    '2026-12-01T08:00:00+24:00',
    // Beyond PostgreSQL's ±15:59: it would fail the whole statement (SINK_REJECTED after batch splits).
    '2026-12-01T08:00:00+16:00',
    '2000-02-29T00:00:00-23:59',
    '2026-12-01T08:00:00+05:60',
    '2026-12-01T08:00:00+0500',
    '2026-12-01T08:00:00Zx',
    ' 2026-12-01T08:00:00Z',
    '2026-12-01T08:00:00z',
    '0099-12-31T00:00:00Z',
    '２026-12-01T08:00:00Z',
  ]
  it.each(valid)('reads %s as Date.parse does', (s) => expect(parseTimestamp(s)).toBe(Date.parse(s)))
  it.each(invalid)('refuses %j', (s) => expect(parseTimestamp(s)).toBeNaN())
})

// Issue 11, items 8 and 11: wrong data that used to pass, and clock-dependent rejections.
describe('decodeEvent: input that used to pass or fail for the wrong reason', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it.each(['\ud800', 'a\udc00b', 'Ada \ud83d', '\ud83d\ud83d\ude00x\udfff'])(
    'rejects a name holding a lone UTF-16 surrogate %j (node-pg would write U+FFFD)',
    (name) => {
      const err = failure(() => decodeEvent('user', Buffer.from(JSON.stringify(user({ name })))))
      expect(err.code).toBe('VALIDATION_ERROR')
      expect(err.message).toMatch(/^name must be valid Unicode \(it holds a lone UTF-16 surrogate\)/)
    },
  )

  it('accepts surrogate pairs and the JSON escape of one', () => {
    const text = JSON.stringify(user()).replace('Ada Lovelace', 'Ada \\ud83d\\ude00')
    expect(decodeEvent('user', Buffer.from(text)).name).toBe('Ada 😀')
  })

  it.each(['2025-05-01T10:00:00+16:00', '2025-05-01T10:00:00-16:00', '2025-05-01T10:00:00+23:59'])(
    'rejects the offset of %s early (PostgreSQL allows up to ±15:59)',
    (ts) => {
      for (const field of ['occurred_at', 'created_at', 'modified_at']) {
        const err = failure(() => validateEvent('user', user({ [field]: ts })))
        expect(err.code).toBe('VALIDATION_ERROR')
        expect(err.message).toMatch(new RegExp(`^${field} must be an ISO 8601 timestamp`))
      }
      expect(failure(() => validateEvent('order', order({ placed_at: ts }))).code).toBe('VALIDATION_ERROR')
    },
  )

  it('names deep nesting as such instead of "Maximum call stack size exceeded"', () => {
    const depth = 100_000
    const text = JSON.stringify(user()).replace('"Ada Lovelace"', `${'['.repeat(depth)}${']'.repeat(depth)}`)
    const err = failure(() => decodeEvent('user', Buffer.from(text)))
    expect(err.code).toBe('VALIDATION_ERROR')
    expect(err.message).toBe(
      'name must be a string of 1 to 50 characters, not blank (got a value nested deeper than 32 levels)',
    )
  })

  it('judges dob by the event occurred_at, not the consumer clock (a clock 14 h behind)', () => {
    // The consumer's clock says 2030-06-01T00:00Z while the event happened at 14:00Z: 2030-06-02 had begun in UTC+14.
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2030-06-01T00:00:00.000Z'))
    const at = '2030-06-01T14:00:00.000Z'
    const event = user({ occurred_at: at, created_at: at, modified_at: at, dob: '2030-06-02' })
    expect(validateEvent('user', event).dob).toBe('2030-06-02')
    // The same event is judged the same with any clock.
    vi.setSystemTime(new Date('2050-01-01T00:00:00.000Z'))
    expect(validateEvent('user', event).dob).toBe('2030-06-02')
    // A dob after occurred_at's date everywhere on Earth is rejected whatever the clock says.
    const err = failure(() => validateEvent('user', { ...event, dob: '2030-06-03' }))
    expect(err.message).toBe("dob must not be after the date of occurred_at (got '2030-06-03')")
  })
})

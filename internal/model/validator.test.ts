import { describe, expect, it } from 'vitest'

import { PipelineError } from '../errors/index.js'
import { ORDER, PRODUCT, USER } from './entities/index.js'
import { compileValidator, type Validator } from './validator.js'
import { isUuid, uuidCase } from './values.js'

const U1 = '6f1c2a9e-3b5d-4c8e-9a7f-1b2c3d4e5f60'
const O1 = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d'
const E1 = 'a2d4f6b8-1c3e-4a5b-9c7d-e8f0a1b2c3d4'
const T0 = '2025-05-01T10:00:00.000Z'

const user = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
  event_id: E1,
  schema_version: 1,
  event_type: 'CREATE',
  version: 1,
  occurred_at: T0,
  user_id: U1,
  name: 'Ada Lovelace',
  dob: '1990-12-10',
  created_at: T0,
  modified_at: T0,
  is_deleted: false,
  ...o,
})

const order = (o: Record<string, unknown> = {}): Record<string, unknown> => ({
  event_id: E1,
  schema_version: 1,
  event_type: 'CREATE',
  version: 1,
  occurred_at: T0,
  order_id: O1,
  order_status: 'PLACED',
  user_id: U1,
  quantity: 3,
  order_total: 59.97,
  placed_at: T0,
  modified_at: T0,
  is_deleted: false,
  ...o,
})

const messageOf = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    return (err as PipelineError).message
  }
  throw new Error('expected a PipelineError')
}

// The compiled validators keep one state per entity from event to event: nothing of one event may leak into the
// next one's judgement.
describe('compileValidator: state reused between events', () => {
  const fieldsOf =
    (v: Validator) =>
    (o: Record<string, unknown>): Record<string, unknown> =>
      v(o) as unknown as Record<string, unknown>
  const validateUser = fieldsOf(compileValidator(USER))
  const validateOrder = fieldsOf(compileValidator(ORDER))

  it('judges notBefore against this event, not the previous event, whatever that one did', () => {
    // An event with a late created_at that fails later on (is_deleted), then one whose created_at is early.
    expect(messageOf(() => validateUser(user({ created_at: '2030-01-01T00:00:00Z', is_deleted: 'x' })))).toMatch(
      /^modified_at must not be before created_at/,
    )
    expect(messageOf(() => validateUser(user({ is_deleted: 'x' })))).toMatch(/^is_deleted must be a boolean/)
    expect(validateUser(user({ created_at: '2020-01-01T00:00:00Z' })).created_at).toBe('2020-01-01T00:00:00Z')
    expect(messageOf(() => validateUser(user({ modified_at: '2025-05-01T09:59:59.999Z' })))).toBe(
      "modified_at must not be before created_at (got '2025-05-01T09:59:59.999Z')",
    )
  })

  it("a definition's check sees this event's type, occurred_at and value", () => {
    expect(validateOrder(order()).order_status).toBe('PLACED')
    expect(messageOf(() => validateOrder(order({ event_type: 'DELETE', version: 2, is_deleted: true })))).toBe(
      "order_status must be CANCELLED for DELETE (got 'PLACED')",
    )
    expect(
      messageOf(() =>
        validateOrder(order({ event_type: 'UPDATE', version: 2, order_status: 'CANCELLED', is_deleted: false })),
      ),
    ).toBe("order_status must not be CANCELLED for UPDATE (cancelling is a DELETE) (got 'CANCELLED')")
    expect(validateOrder(order({ event_type: 'UPDATE', version: 2, order_status: 'SHIPPED' })).version).toBe(2)
    // dob against each event's own occurred_at
    expect(messageOf(() => validateUser(user({ occurred_at: '1990-12-09T00:00:00Z' })))).toBe(
      "dob must not be after the date of occurred_at (got '1990-12-10')",
    )
    expect(validateUser(user()).dob).toBe('1990-12-10')
  })

  it('returns the fields in the order of the definition, after the common ones and the key', () => {
    expect(Object.keys(validateOrder(order({ extra: 1 })))).toEqual([
      'event_id',
      'schema_version',
      'event_type',
      'version',
      'occurred_at',
      'order_id',
      ...ORDER.fields.map((f) => f.field),
    ])
  })

  it('folds upper-case uuids and leaves lower-case ones as they are', () => {
    const e = validateOrder(order({ order_id: O1.toUpperCase(), user_id: U1.replace('f', 'F') }))
    expect(e).toMatchObject({ order_id: O1, user_id: U1, event_id: E1 })
  })

  it('tells blank text from text with leading white space', () => {
    const validateProduct = compileValidator(PRODUCT)
    expect(validateUser(user({ name: ' Ada' })).name).toBe(' Ada')
    expect(validateUser(user({ name: '\u00e9mile' })).name).toBe('\u00e9mile')
    for (const blank of ['', ' ', '\t\n', '\u00a0\u2003', '\ufeff']) {
      expect(messageOf(() => validateUser(user({ name: blank })))).toMatch(
        /^name must be a string of 1 to 50 characters, not blank/,
      )
    }
    expect(messageOf(() => validateProduct({}))).toBe('schema_version is required')
  })
})

describe('uuidCase', () => {
  it('tells invalid, lower-case and upper-case uuids apart', () => {
    expect(uuidCase(U1)).toBe(1)
    expect(uuidCase(U1.toUpperCase())).toBe(3)
    expect(uuidCase('6F1c2a9e-3b5d-4c8e-9a7f-1b2c3d4e5f60')).toBe(3)
    for (const bad of [
      '',
      U1.slice(1),
      `${U1}0`,
      U1.replace('-', 'x'),
      U1.replace('6', 'g'),
      U1.replace('6', 'G'),
      U1.replace('6', '\u0666'), // an Arabic-Indic digit
      '6f1c2a9e03b5d-4c8e-9a7f-1b2c3d4e5f6',
      '6f1c2a9e-3b5d-4c8e-9a7f-1b2c3d4e5f6\u0130',
    ]) {
      expect(uuidCase(bad)).toBe(0)
      expect(isUuid(bad)).toBe(false)
    }
  })
})

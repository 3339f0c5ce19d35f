import { describe, expect, it } from 'vitest'

import { PipelineError } from '../../errors/index.js'
import { applyEvents, decodeEvent, encodeEvent, validateEvent, type ProductEvent } from '../index.js'

const P1 = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc'

function product(version: number, over: Partial<ProductEvent> = {}): ProductEvent {
  return {
    event_id: `dddddddd-dddd-4ddd-8ddd-00000000000${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'UPDATE',
    version,
    occurred_at: `2025-01-01T00:00:0${version}.000Z`,
    product_id: P1,
    name: 'Tea pot',
    category: 'kitchen',
    price: 19.99,
    stock: 3,
    created_at: '2025-01-01T00:00:01.000Z',
    modified_at: `2025-01-01T00:00:0${version}.000Z`,
    is_deleted: false,
    ...over,
  }
}

const reason = (value: unknown): string => {
  try {
    validateEvent('product', value)
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).code).toBe('VALIDATION_ERROR')
    return (err as PipelineError).message
  }
  throw new Error('expected a VALIDATION_ERROR')
}

describe('products: validation from the definition', () => {
  it('accepts a valid event and round-trips it', () => {
    const e = product(1)
    expect(decodeEvent('product', encodeEvent(e))).toEqual(e)
  })

  it('lower-cases the id', () => {
    expect(validateEvent('product', product(1, { product_id: P1.toUpperCase() })).product_id).toBe(P1)
  })

  it.each([
    [{ product_id: 'nope' }, "product_id must be a UUID (got 'nope')"],
    [{ name: ' ' }, "name must be a string of 1 to 100 characters, not blank (got ' ')"],
    [{ name: 'x'.repeat(101) }, 'name must be a string of 1 to 100 characters, not blank'],
    [{ category: '' }, "category must be a string of 1 to 50 characters, not blank (got '')"],
    [{ price: -1 }, 'price must be a number >= 0 with at most 2 decimals (got -1)'],
    [{ price: 1.234 }, 'price must be a number >= 0 with at most 2 decimals (got 1.234)'],
    [{ price: 100_000_000 }, 'price must be below 100000000 (got 100000000)'],
    [{ stock: -1 }, 'stock must be an integer from 0 to 2147483647 (got -1)'],
    [{ stock: 1.5 }, 'stock must be an integer from 0 to 2147483647 (got 1.5)'],
    [{ stock: 2 ** 31 }, 'stock must be an integer from 0 to 2147483647 (got 2147483648)'],
    [{ modified_at: '2024-12-31T00:00:00.000Z' }, "modified_at must not be before created_at (got '2024-12-31"],
    [{ is_deleted: true }, 'is_deleted must be true for DELETE and false otherwise (got true)'],
  ] as const)('rejects %j: %s', (over, message) => {
    expect(reason({ ...product(1), ...over })).toContain(message)
  })

  it('reports a missing field by name', () => {
    const rest: Partial<ProductEvent> = product(1)
    delete rest.stock
    expect(reason(rest)).toBe('stock is required')
  })
})

describe('products: expected state from the definition', () => {
  it('keeps the highest version, is_deleted sticky and modified_at at its greatest', () => {
    const deleted = product(3, { event_type: 'DELETE', is_deleted: true, modified_at: '2025-01-01T00:00:09.000Z' })
    const later = product(4, { modified_at: '2025-01-01T00:00:05.000Z', stock: 7 })
    const state = applyEvents([product(1), product(2, { price: 5 }), deleted, later, product(2, { price: 6 })])
    expect(state.tables.products.get(P1)).toEqual({
      id: P1,
      name: 'Tea pot',
      category: 'kitchen',
      price: 19.99,
      stock: 7,
      created_at: '2025-01-01T00:00:01.000Z',
      modified_at: '2025-01-01T00:00:09.000Z',
      is_deleted: true,
      version: 4,
      last_event_id: later.event_id,
    })
    expect(state.orphans.products.size).toBe(0)
  })
})

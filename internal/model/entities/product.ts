import type { EventBase } from '../events.js'
import type { EntitySpec } from './spec.js'

/** A product's full state after the operation. */
export interface ProductEvent extends EventBase {
  product_id: string
  /** 1..100 characters. */
  name: string
  /** 1..50 characters. */
  category: string
  /** >= 0, at most 2 decimals, < 10^8 (numeric(10, 2)). */
  price: number
  /** Integer >= 0. */
  stock: number
  created_at: string
  modified_at: string
  /** True exactly for DELETE (soft delete, sticky). */
  is_deleted: boolean
}

declare module '../events.js' {
  interface EntityEvents {
    product: ProductEvent
  }
}

/** The categories the generator draws from (any text of 1..50 characters is valid). */
export const PRODUCT_CATEGORIES = ['books', 'electronics', 'garden', 'grocery', 'toys', 'tools'] as const

/**
 * products: the catalogue. Stands alone (no reference); its soft delete is sticky and modified_at never goes back;
 * kept in Cassandra by id and, for "what is in this category", under its category (products_by_category).
 */
export const PRODUCT: EntitySpec = {
  entity: 'product',
  topic: 'products',
  partitions: 3,
  keyField: 'product_id',
  table: 'products',
  fields: [
    { field: 'name', column: 'name', rule: { kind: 'text', maxChars: 100 } },
    { field: 'category', column: 'category', rule: { kind: 'text', maxChars: 50 } },
    { field: 'price', column: 'price', rule: { kind: 'money', below: 100_000_000, precision: 10, scale: 2 } },
    { field: 'stock', column: 'stock', rule: { kind: 'int', min: 0, max: 2 ** 31 - 1 } },
    { field: 'created_at', column: 'created_at', rule: { kind: 'timestamp' } },
    {
      field: 'modified_at',
      column: 'modified_at',
      rule: { kind: 'timestamp', notBefore: 'created_at' },
      merge: 'greatest',
    },
    { field: 'is_deleted', column: 'is_deleted', rule: { kind: 'boolean', deletedFlag: true }, merge: 'sticky' },
  ],
  queryTables: [{ name: 'products_by_category', partitionKey: ['category'], clusteringKey: ['id'] }],
  generator: {
    // One operation in ten is about a product; users and orders share the rest as before.
    share: 0.1,
    createdField: 'created_at',
    create: (g) => ({
      name: g.words(100),
      category: g.pick(PRODUCT_CATEGORIES),
      // Integer cents / 100: the double closest to the 2-decimal price, whose text has <= 2 decimals.
      price: g.int(99, 99_999) / 100,
      stock: g.int(0, 500),
    }),
    // A price change, a stock movement, or (now and then) a move to another category.
    update: (g, current) => {
      const r = g.float()
      if (r < 0.4) return { ...current, price: g.int(99, 99_999) / 100 }
      if (r < 0.9) return { ...current, stock: g.int(0, 500) }
      return { ...current, category: g.pick(PRODUCT_CATEGORIES) }
    },
  },
}

import { describe, expect, it } from 'vitest'

import type { CdcRow, RowChange } from '../../model/index.js'
import { planWrites, prepareChange } from './plan.js'
import { TARGETS_OF, TABLES } from './tables.js'

const P1 = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc'

const row = (category: string, version: number): CdcRow => ({
  id: P1,
  name: 'Tea pot',
  category,
  price: '19.90',
  stock: 3,
  created_at: '2025-01-01T00:00:01Z',
  modified_at: '2025-01-01T00:00:02Z',
  is_deleted: false,
  version,
  last_event_id: 'dddddddd-dddd-4ddd-8ddd-dddddddddddd',
})

function change(op: RowChange['op'], before: CdcRow | null, after: CdcRow | null, lsn: bigint): RowChange {
  return {
    kind: 'row',
    op,
    before,
    after,
    key: { id: P1 },
    source: { lsn, txId: 1n, tsMs: 1, snapshot: false, db: 'cdc_db', schema: 'public', table: 'products' },
    emittedAtMs: 1,
  }
}

describe('products in Cassandra: tables from the definition', () => {
  it('maps products to its own table and products_by_category, with the same columns', () => {
    expect(TARGETS_OF.products.map((t) => t.name)).toEqual(['products', 'products_by_category'])
    expect(TABLES.products_by_category.partitionKey).toEqual(['category'])
    expect(TABLES.products_by_category.clusteringKey).toEqual(['id'])
    expect(Object.keys(TABLES.products_by_category.columns).sort()).toEqual(Object.keys(TABLES.products.columns).sort())
    expect(TABLES.products.columns).toMatchObject({ price: 'decimal', stock: 'int', category: 'text' })
    expect(TABLES.products.numeric).toEqual({ price: { precision: 10, scale: 2 } })
  })

  it('moves a product to its new category: an upsert there and a delete under the old one, at one timestamp', () => {
    const created = prepareChange('products', 0, change('c', null, row('kitchen', 1), 100n))
    const moved = prepareChange('products', 1, change('u', row('kitchen', 1), row('garden', 2), 200n))
    const [plan] = planWrites('products', [created, moved])
    expect(plan.indexes).toEqual([0, 1])
    expect(plan.warning).toBeUndefined()
    const writes = plan.writes.map((w) => ({
      kind: w.kind,
      table: w.table,
      timestamp: w.timestamp,
      key: w.kind === 'delete' ? w.key : { category: w.values.category, id: w.values.id },
    }))
    const ts = moved.timestamp
    expect(writes).toEqual([
      { kind: 'upsert', table: 'products', timestamp: ts, key: { category: 'garden', id: P1 } },
      { kind: 'delete', table: 'products_by_category', timestamp: ts, key: { category: 'kitchen', id: P1 } },
      { kind: 'upsert', table: 'products_by_category', timestamp: ts, key: { category: 'garden', id: P1 } },
    ])
  })

  it('warns when an update has no before-image (the old category cannot be cleaned)', () => {
    const [plan] = planWrites('products', [prepareChange('products', 0, change('u', null, row('garden', 2), 5n))])
    expect(plan.warning).toBe(
      `product ${P1}: update without a before-image (is REPLICA IDENTITY FULL set on products?): ` +
        'products_by_category may keep a row under the old category',
    )
  })
})

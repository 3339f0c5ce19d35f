import { describe, expect, it } from 'vitest'
import { highestWriteTime, parseTables, signalData, snapshotProgress, staleRows } from './index.js'

describe('parseTables', () => {
  it('takes users, orders, products and schema.table, each once, in order', () => {
    expect(parseTables(['users', 'public.orders', 'users', 'shop.items'])).toEqual([
      { schema: 'public', table: 'users' },
      { schema: 'public', table: 'orders' },
      { schema: 'shop', table: 'items' },
    ])
  })

  it('refuses no table, a bad name and the signal table, as usage errors', () => {
    expect(() => parseTables([])).toThrow(/at least one --table/)
    expect(() => parseTables(['a.b.c'])).toThrow(/--table entry 'a.b.c' must be schema.table/)
    expect(() => parseTables(['Users'])).toThrow(/must be schema.table/)
    expect(() => parseTables(['public.debezium_signal'])).toThrow(/signal table is not replicated/)
    let caught: unknown
    try {
      parseTables(['x y'])
    } catch (err) {
      caught = err
    }
    expect((caught as { code?: string } | undefined)?.code).toBe('CONFIG_ERROR')
  })
})

describe('signalData', () => {
  const users = { schema: 'public', table: 'users' }
  const orders = { schema: 'public', table: 'orders' }

  it('is an incremental execute-snapshot of the tables', () => {
    expect(JSON.parse(signalData([users, orders], undefined))).toEqual({
      'data-collections': ['public.users', 'public.orders'],
      type: 'incremental',
    })
  })

  it("gives each table --where as Debezium's additional condition, quotes and all", () => {
    expect(JSON.parse(signalData([users, orders], "name = 'O\"Brien'"))).toEqual({
      'data-collections': ['public.users', 'public.orders'],
      type: 'incremental',
      'additional-conditions': [
        { 'data-collection': 'public.users', filter: "name = 'O\"Brien'" },
        { 'data-collection': 'public.orders', filter: "name = 'O\"Brien'" },
      ],
    })
  })

  it("refuses a signal over the data column's 2,048 characters", () => {
    expect(() => signalData([users], `id = '${'x'.repeat(2000)}'`)).toThrow(/over the signal table's 2048/)
  })
})

describe('snapshotProgress', () => {
  const n = (o: Record<string, unknown>) => JSON.stringify({ aggregate_type: 'Incremental Snapshot', ...o })

  it("reads Debezium 3.7's notifications of our signal (as seen on the stack)", () => {
    expect(
      snapshotProgress(
        n({
          id: 's1',
          type: 'IN_PROGRESS',
          additional_data: { chunk_index: '3', total_chunks: '59', current_collection_in_progress: 'public.users' },
        }),
        's1',
      ),
    ).toEqual({ kind: 'progress', line: 'public.users: chunk 3 of 59' })
    expect(
      snapshotProgress(
        n({
          id: 's1',
          type: 'TABLE_SCAN_COMPLETED',
          additional_data: { scanned_collection: 'public.users', total_rows_scanned: '120000', status: 'SUCCEEDED' },
        }),
        's1',
      ),
    ).toEqual({
      kind: 'scanned',
      table: 'public.users',
      status: 'SUCCEEDED',
      rows: '120000',
      line: 'public.users: 120000 rows read, SUCCEEDED',
    })
    expect(snapshotProgress(n({ id: 's1', type: 'COMPLETED' }), 's1').kind).toBe('completed')
    expect(snapshotProgress(n({ id: 's1', type: 'ABORTED' }), 's1').kind).toBe('aborted')
  })

  it("ignores other signals' notifications, other kinds, and what is not JSON", () => {
    expect(snapshotProgress(n({ id: 's2', type: 'COMPLETED' }), 's1').kind).toBe('other')
    expect(
      snapshotProgress(JSON.stringify({ id: 's1', type: 'COMPLETED', aggregate_type: 'Initial Snapshot' }), 's1').kind,
    ).toBe('other')
    expect(snapshotProgress(n({ id: 's1', type: 'STARTED' }), 's1').kind).toBe('other')
    expect(snapshotProgress('not json', 's1').kind).toBe('other')
    expect(snapshotProgress('5', 's1').kind).toBe('other')
    expect(snapshotProgress(null, 's1').kind).toBe('other')
  })
})

describe('the reconcile pass', () => {
  it('deletes exactly the rows PostgreSQL lacks, each at its own write time', () => {
    const rows = [
      { key: ['a'], writeTime: 10n },
      { key: ['b'], writeTime: 20n },
      { key: ['c'], writeTime: null },
    ]
    expect(staleRows(rows, (k) => k[0] === 'a', 99n)).toEqual([
      { key: ['b'], timestamp: 20n },
      { key: ['c'], timestamp: 99n },
    ])
    expect(staleRows(rows, () => true, 99n)).toEqual([])
  })

  it("takes a row's highest cell write time", () => {
    expect(highestWriteTime([3n, null, 7n, undefined, 5n])).toBe(7n)
    expect(highestWriteTime([null, undefined])).toBeNull()
    expect(highestWriteTime([])).toBeNull()
  })
})

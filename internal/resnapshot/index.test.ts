import { describe, expect, it } from 'vitest'
import {
  SnapshotWatch,
  checkConnectorConfig,
  checkConnectorStatus,
  checkPublished,
  highestWriteTime,
  keyText,
  parseTables,
  reconcileCql,
  reconcileTable,
  reconcileTargets,
  signalData,
  snapshotProgress,
  staleRows,
  writeTimeColumns,
  type ReconcileStores,
} from './index.js'

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

describe('the checks before the signal', () => {
  it('needs the connector and every task RUNNING (exit 3 otherwise), naming the states', () => {
    const running = { connector: { state: 'RUNNING' }, tasks: [{ state: 'RUNNING' }] }
    expect(() => checkConnectorStatus('c', running)).not.toThrow()
    expect(() => checkConnectorStatus('c', { connector: { state: 'RUNNING' }, tasks: [{ state: 'FAILED' }] })).toThrow(
      'connector c is not RUNNING (connector RUNNING, tasks FAILED): no snapshot signalled',
    )
    expect(() => checkConnectorStatus('c', { connector: { state: 'PAUSED' }, tasks: [] })).toThrow(
      /connector PAUSED, tasks none/,
    )
    let caught: unknown
    try {
      checkConnectorStatus('c', null)
    } catch (err) {
      caught = err
    }
    expect((caught as { code?: string } | undefined)?.code).toBe('UNREACHABLE')
  })

  it('needs every table in the publication (a usage error naming the missing ones)', () => {
    const t = parseTables(['users', 'shop.items'])
    expect(() => checkPublished(t, new Set(['public.users', 'shop.items']), 'cdc_pub')).not.toThrow()
    expect(() => checkPublished(t, new Set(['public.users']), 'cdc_pub')).toThrow(
      'shop.items not in the publication cdc_pub (npm run cdc:add-table adds a table): no snapshot signalled',
    )
  })
})

describe('what the reconcile pass reads and deletes', () => {
  it('users and orders by their entity tables (orders_by_user by user and order), others by their derived table', () => {
    expect(reconcileTargets({ schema: 'public', table: 'users' }).map((t) => t.table)).toEqual(['users'])
    expect(reconcileTargets({ schema: 'public', table: 'orders' })).toEqual([
      { table: 'orders', keys: ['id'], pgKeysSql: 'SELECT id::text FROM public.orders' },
      {
        table: 'orders_by_user',
        keys: ['user_id', 'id'],
        pgKeysSql: 'SELECT user_id::text, id::text FROM public.orders WHERE user_id IS NOT NULL',
      },
    ])
    expect(
      reconcileTargets({ schema: 'shop', table: 'items' }, { target: 'shop_items', primaryKey: ['a', 'b'] }),
    ).toEqual([
      { table: 'shop_items', keys: ['a', 'b'], pgKeysSql: 'SELECT "a"::text AS "a", "b"::text AS "b" FROM shop.items' },
    ])
    expect(() => reconcileTargets({ schema: 'shop', table: 'items' })).toThrow(/no definition/)
  })

  it('reads the WRITETIME of every regular column but non-frozen collections, and deletes by the full key', () => {
    const columns = writeTimeColumns([
      { column_name: 'id', kind: 'partition_key', type: 'uuid' },
      { column_name: 'name', kind: 'regular', type: 'text' },
      { column_name: 'tags', kind: 'regular', type: 'set<text>' },
      { column_name: 'frozen_tags', kind: 'regular', type: 'frozen<set<text>>' },
    ])
    expect(columns).toEqual(['name', 'frozen_tags'])
    const target = { table: 'orders_by_user', keys: ['user_id', 'id'], pgKeysSql: '' }
    expect(reconcileCql('ks', target, ['status'])).toEqual({
      select: 'SELECT "user_id", "id", WRITETIME("status") AS wt0 FROM "ks"."orders_by_user"',
      del: 'DELETE FROM "ks"."orders_by_user" USING TIMESTAMP ? WHERE "user_id" = ? AND "id" = ?',
    })
  })

  it('deletes the rows PostgreSQL lacks at their highest WRITETIME, after reading Cassandra first', async () => {
    const order: string[] = []
    const executed: unknown[][] = []
    const cassandraRows: Record<string, unknown>[] = [
      { user_id: 'u1', id: 'o1', wt0: 5n, wt1: 9n },
      { user_id: 'u1', id: 'o2', wt0: 7n, wt1: null },
      { user_id: 'u2', id: 'o3', wt0: null, wt1: null },
    ]
    const stores: ReconcileStores = {
      scan: (select, onRow) => {
        order.push(`scan ${select}`)
        for (const r of cassandraRows) onRow((c) => r[c])
        return Promise.resolve()
      },
      pgRows: (sql) => {
        order.push(`pg ${sql}`)
        return Promise.resolve([['u1', 'o1']])
      },
      execute: (cql, params) => {
        executed.push([cql, ...params])
        return Promise.resolve()
      },
    }
    const target = { table: 'obu', keys: ['user_id', 'id'], pgKeysSql: 'SELECT keys' }
    expect(await reconcileTable(stores, 'ks', target, ['a', 'b'], 1000n)).toEqual({ scanned: 3, deleted: 2 })
    expect(order).toEqual([
      'scan SELECT "user_id", "id", WRITETIME("a") AS wt0, WRITETIME("b") AS wt1 FROM "ks"."obu"',
      'pg SELECT keys',
    ])
    const del = 'DELETE FROM "ks"."obu" USING TIMESTAMP ? WHERE "user_id" = ? AND "id" = ?'
    expect(executed).toEqual([
      [del, 7n, 'u1', 'o2'],
      [del, 1000n, 'u2', 'o3'],
    ])
    expect(keyText(['a', 1])).toBe('a\u00001')
  })
})

describe('SnapshotWatch', () => {
  const n = (o: Record<string, unknown>) => JSON.stringify({ aggregate_type: 'Incremental Snapshot', id: 's', ...o })
  const progress = n({
    type: 'IN_PROGRESS',
    additional_data: { chunk_index: '1', total_chunks: '2', current_collection_in_progress: 't' },
  })

  it('prints progress at most every 5 s, every scan, and ends on COMPLETED', () => {
    const lines: string[] = []
    let now = 0
    const w = new SnapshotWatch(
      's',
      (l) => lines.push(l),
      () => now,
    )
    expect(w.feed(progress)).toBeUndefined()
    now = 1_000
    w.feed(progress)
    now = 6_000
    w.feed(progress)
    w.feed(
      n({
        type: 'TABLE_SCAN_COMPLETED',
        additional_data: { scanned_collection: 't', total_rows_scanned: '3', status: 'SQL_EXCEPTION' },
      }),
    )
    w.feed(n({ id: 'other', type: 'COMPLETED' }))
    expect(w.feed(n({ type: 'COMPLETED' }))).toBe('completed')
    expect(lines).toEqual(['t: chunk 1 of 2', 't: chunk 1 of 2', 't: 3 rows read, SQL_EXCEPTION', 'snapshot completed'])
    expect(w.failedScans).toEqual(['t: 3 rows read, SQL_EXCEPTION'])
  })

  it('ends on ABORTED', () => {
    const w = new SnapshotWatch('s', () => undefined)
    expect(w.feed(n({ type: 'ABORTED' }))).toBe('aborted')
    expect(w.failedScans).toEqual([])
  })
})

describe('checkConnectorConfig', () => {
  const good = {
    'signal.data.collection': 'public.debezium_signal',
    'notification.enabled.channels': 'sink',
    'notification.sink.topic.name': 'cdc.notifications',
  }

  it('passes a connector that reads the signal table and notifies the topic --wait reads', () => {
    expect(() => checkConnectorConfig('c', good, 'cdc.notifications')).not.toThrow()
    expect(() =>
      checkConnectorConfig('c', { 'signal.data.collection': 'public.debezium_signal' }, undefined),
    ).not.toThrow()
  })

  it('refuses one registered without them (an older checkout), naming the fix', () => {
    expect(() => checkConnectorConfig('c', {}, undefined)).toThrow(
      'connector c does not read signals from public.debezium_signal: register it again (npm run stack:up, or configure-debezium.sh); no snapshot signalled',
    )
    expect(() =>
      checkConnectorConfig('c', { ...good, 'notification.enabled.channels': '' }, 'cdc.notifications'),
    ).toThrow(/does not send its notifications to cdc.notifications \(--wait reads them\)/)
    expect(() => checkConnectorConfig('c', good, 'other.topic')).toThrow(/to other.topic/)
    expect(() => checkConnectorConfig('c', null, undefined)).toThrow(/does not read signals/)
  })
})

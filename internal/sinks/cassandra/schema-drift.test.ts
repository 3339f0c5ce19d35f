import { describe, expect, it } from 'vitest'
import type { Logger } from '../../log/index.js'
import type { CdcRow } from '../../model/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { CassandraBatchSink, type CatalogReader, type CqlExecutor } from './batch-sink.js'
import { coerceRow } from './coerce.js'
import { deriveTable, type CatalogColumn, type DerivedTable } from './derived.js'
import type { CassandraSinkOptions } from './options.js'
import { absentColumns, newColumns } from './schema-drift.js'
import { TABLES } from './tables.js'
import type { PgColumnType } from './type-map.js'

const U1 = '11111111-1111-4111-8111-111111111111'
const U2 = '22222222-2222-4222-8222-222222222222'
const O1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'

const pgType = (typname: string): PgColumnType => ({ typname, typmod: -1, isArray: false, display: typname })
const col = (name: string, typname: string): CatalogColumn => ({ name, notNull: false, type: pgType(typname) })

const user = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  name: 'Ada',
  dob: -3653,
  created_at: '2026-01-02T03:04:05.123456Z',
  modified_at: '2026-01-02T03:04:05.123456Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
  ...extra,
})
const order = (id: string, userId: string) => ({
  id,
  status: 'PLACED',
  user_id: userId,
  quantity: 3,
  total_amount: '12.50',
  placed_at: '2026-01-02T03:04:05.123Z',
  modified_at: '2026-01-02T03:04:05.123Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
})

let offset = 0
function msg(table: string, op: string, lsn: number, after: Record<string, unknown> | null, before = null) {
  const id = (after ?? before ?? {}) as { id?: unknown }
  return {
    topic: `cdc.public.${table}`,
    partition: 0,
    offset: String(offset++),
    key: Buffer.from(JSON.stringify({ id: id.id })),
    value: Buffer.from(
      JSON.stringify({
        before,
        after,
        source: { ts_ms: 1, snapshot: 'false', db: 'cdc_db', schema: 'public', table, lsn },
        op,
      }),
    ),
    headers: {},
    timestamp: '0',
  } satisfies SourceMessage
}

// A Cassandra that knows its tables' extra columns (system_schema.columns) and takes ALTER TABLE ADD.
class Fake implements CqlExecutor {
  executed: { query: string; params: unknown[] }[] = []
  columns = new Map<string, string>()
  async execute(query: string, params: unknown[]): Promise<unknown> {
    this.executed.push({ query, params })
    if (query.startsWith('SELECT type FROM system_schema.columns')) {
      const type = this.columns.get(`${params[1]}.${params[2]}`)
      return { rows: type === undefined ? [] : [{ type }] }
    }
    const alter = /^ALTER TABLE ks\."(\w+)" ADD "(\w+)" (.+)$/.exec(query)
    if (alter) this.columns.set(`${alter[1]}.${alter[2]}`, alter[3])
    return {}
  }
  async shutdown(): Promise<void> {}
  inserts = () => this.executed.filter((e) => e.query.startsWith('INSERT'))
  alters = () => this.executed.filter((e) => e.query.startsWith('ALTER')).map((e) => e.query)
}

const options: CassandraSinkOptions = {
  contactPoints: ['127.0.0.1'],
  localDataCenter: 'dc1',
  keyspace: 'ks',
  consistency: 'LOCAL_QUORUM',
  concurrency: 4,
  topics: { 'cdc.public.users': 'users', 'cdc.public.orders': 'orders' },
}

// The catalog as PostgreSQL has it after ALTER TABLE users ADD COLUMN nickname text (and orders ADD note point).
const catalog: CatalogReader = async (_schema, table) =>
  table === 'users'
    ? deriveTable(
        'public',
        'users',
        [...Object.keys(user(U1)).map((c) => col(c, 'text')), col('nickname', 'text')],
        ['id'],
      )
    : deriveTable('public', table, [col('id', 'uuid'), col('note', 'point')], ['id'])

const failure = (o: unknown) => o as { status: string; code: string; message: string }

describe('absent columns and new columns', () => {
  it('tells a column absent from an image from one that is null', () => {
    expect(absentColumns(['id', 'name', 'dob'], { id: 1, name: null })).toEqual(['dob'])
    expect(absentColumns(['id', 'name'], { id: 1, name: null })).toEqual([])
    expect(newColumns(['id'], new Map([['b', 1]]), { id: 1, a: null, b: 2 })).toEqual(['a'])
  })

  it('coerceRow never turns an absent column into a null (SCHEMA_MISMATCH)', () => {
    const renamed: Record<string, unknown> = user(U1, { full_name: 'Ada' })
    delete renamed.name
    expect(() => coerceRow(TABLES.users, renamed as CdcRow)).toThrow(/name of users absent/)
    expect(coerceRow(TABLES.users, user(U1, { name: null })).name).toBeNull()
  })
})

describe('the sink and schema changes', () => {
  it('adds a column added in PostgreSQL to the table and its query tables, and writes it from then on', async () => {
    const fake = new Fake()
    const sink = new CassandraBatchSink(options, fake, undefined, undefined, catalog)
    const r = await sink.apply([
      msg('users', 'c', 100, user(U1)),
      msg('users', 'u', 200, user(U2, { nickname: 'Countess' })),
    ])
    expect(r.outcomes).toEqual([{ status: 'ok' }, { status: 'ok' }])
    expect(fake.alters()).toEqual(['ALTER TABLE ks."users" ADD "nickname" text'])
    const [first, second] = fake.inserts()
    expect(first.query).not.toMatch(/nickname/)
    expect(second.query).toMatch(/"nickname"\) VALUES/)
    expect(second.params.at(-2)).toBe('Countess')
    // A second batch: no more ALTERs; a null nickname is written as null, an absent one (a change from before the
    // ADD COLUMN, redelivered) is not written at all.
    await sink.apply([msg('users', 'u', 300, user(U2, { nickname: null })), msg('users', 'u', 50, user(U1))])
    expect(fake.alters()).toHaveLength(1)
    const [, , third, fourth] = fake.inserts()
    expect(third.query).toMatch(/nickname/)
    expect(third.params.at(-2)).toBeNull()
    expect(fourth.query).not.toMatch(/nickname/)
  })

  it('takes a column another replicate process added first', async () => {
    const fake = new Fake()
    fake.columns.set('users.nickname', 'text')
    const sink = new CassandraBatchSink(options, fake, undefined, undefined, catalog)
    const r = await sink.apply([msg('users', 'c', 100, user(U1, { nickname: 'x' }))])
    expect(r.outcomes).toEqual([{ status: 'ok' }])
    expect(fake.alters()).toEqual([])
    expect(fake.inserts()[0].query).toMatch(/nickname/)
  })

  it('waits for a column Cassandra lists but does not take yet (another thread just added it)', async () => {
    // system_schema.columns has it a moment before the table does: an INSERT then failed with "Undefined column
    // name", a setup error that stopped replicate.
    const fake = new Fake()
    fake.columns.set('users.nickname', 'text')
    // The table takes it from the first query that was refused on.
    let ready = false
    const execute = fake.execute.bind(fake)
    fake.execute = async (query: string, params: unknown[]) => {
      if (!ready && query.includes('"nickname"') && !query.startsWith('SELECT type')) {
        fake.executed.push({ query, params })
        ready = query.startsWith('SELECT')
        throw new Error('Undefined column name nickname in table ks.users')
      }
      return execute(query, params)
    }
    const sink = new CassandraBatchSink(options, fake, undefined, undefined, catalog)
    const r = await sink.apply([msg('users', 'c', 100, user(U1, { nickname: 'x' }))])
    expect(r.outcomes).toEqual([{ status: 'ok' }])
    expect(fake.executed.filter((e) => e.query.startsWith('SELECT "nickname" FROM ks."users"'))).toHaveLength(2)
    expect(fake.inserts()[0].query).toMatch(/nickname/)
  })

  it('refuses a column of another type than Cassandra has, and a type without a mapping: SCHEMA_MISMATCH', async () => {
    const fake = new Fake()
    fake.columns.set('users.nickname', 'int')
    const sink = new CassandraBatchSink(options, fake, undefined, undefined, catalog)
    const r = await sink.apply([
      msg('users', 'c', 100, user(U1, { nickname: 'x' })),
      msg('orders', 'c', 100, { ...order(O1, U1), note: '(1,2)' }),
    ])
    expect(failure(r.outcomes[0]).code).toBe('SCHEMA_MISMATCH')
    expect(failure(r.outcomes[0]).message).toMatch(/already has a column nickname of type int, not text/)
    expect(failure(r.outcomes[1]).message).toMatch(
      /new column note cannot be added .*type point has no Cassandra mapping/,
    )
    expect(fake.inserts()).toEqual([])
  })

  it('a required column absent (RENAME): SCHEMA_MISMATCH, never a null, the table stopped until the column is back', async () => {
    const fake = new Fake()
    const sink = new CassandraBatchSink(options, fake, undefined, undefined, catalog)
    const renamed: Record<string, unknown> = user(U1, { full_name: 'Ada' })
    delete renamed.name
    const r = await sink.apply([
      msg('users', 'u', 100, user(U2)),
      msg('users', 'u', 200, renamed),
      // The table's later changes while the column is gone, a delete included: not applied.
      msg('users', 'd', 250, null, user(U2) as never),
      // Other tables keep flowing.
      msg('orders', 'c', 250, order(O1, U1)),
    ])
    expect(r.outcomes[0]).toEqual({ status: 'ok' })
    for (const i of [1, 2]) {
      expect(failure(r.outcomes[i]).code).toBe('SCHEMA_MISMATCH')
      expect(failure(r.outcomes[i]).message).toMatch(
        /table public\.users: column name absent from the change's after-image .* ks\.users requires it.*lsn 0\/C8 on.*until a change carries the column again.*npm run resnapshot -- --table public\.users \(the dead letters lack the column/,
      )
    }
    expect(r.outcomes[3]).toEqual({ status: 'ok' })
    const written = fake.inserts().map((e) => /INTO ks\.(\w+)/.exec(e.query)![1])
    expect(written.filter((t) => t === 'users')).toHaveLength(1)
    expect(written.filter((t) => t === 'orders')).toHaveLength(1)
    expect(fake.executed.some((e) => e.query.startsWith('DELETE'))).toBe(false)
    expect(fake.inserts().every((e) => !e.params.includes(null) || e.query.includes('last_event_id'))).toBe(true)
    // A later batch: a change with every column (renamed back, lsn 500) ends the stop there, without a restart; a
    // delete inside the window (lsn 300, another partition) still goes to the DLQ, one after the end is applied, and
    // so is a change from before the rename (delivered late).
    const r2 = await sink.apply([
      msg('users', 'u', 500, user(U1)),
      msg('users', 'd', 300, null, user(U2) as never),
      msg('users', 'u', 150, user(U2)),
      msg('users', 'd', 600, null, user(U2) as never),
    ])
    expect(r2.outcomes[0]).toEqual({ status: 'ok' })
    expect(failure(r2.outcomes[1]).code).toBe('SCHEMA_MISMATCH')
    expect(r2.outcomes[2]).toEqual({ status: 'ok' })
    expect(r2.outcomes[3]).toEqual({ status: 'ok' })
    // Gone again later (a second rename): a new stop from its LSN, and a late change of the first window still refused.
    const r3 = await sink.apply([msg('users', 'u', 700, renamed), msg('users', 'u', 800, user(U1))])
    expect(failure(r3.outcomes[0]).message).toMatch(/lsn 0\/2BC on/)
    expect(r3.outcomes[1]).toEqual({ status: 'ok' })
    const r4 = await sink.apply([msg('users', 'd', 750, null, user(U2) as never)])
    expect(failure(r4.outcomes[0]).code).toBe('SCHEMA_MISMATCH')
  })

  it('a column no longer in PostgreSQL (dropped since the change): not added, not written, the rest applied', async () => {
    // History replayed by a new group: changes from when users had nickname, which PostgreSQL has dropped since.
    const fake = new Fake()
    const warned: unknown[][] = []
    const log = {
      warn: (...a: unknown[]) => warned.push(a),
      info: () => undefined,
      error: () => undefined,
      child: () => log,
    } as unknown as Logger
    const dropped: CatalogReader = async (_schema, table) =>
      deriveTable(
        'public',
        table,
        Object.keys(user(U1)).map((c) => col(c, 'text')),
        ['id'],
      )
    const sink = new CassandraBatchSink(options, fake, undefined, log, dropped)
    const r = await sink.apply([
      msg('users', 'u', 100, user(U1, { nickname: 'old' })),
      msg('users', 'u', 200, user(U2, { nickname: null })),
    ])
    expect(r.outcomes).toEqual([{ status: 'ok' }, { status: 'ok' }])
    const r2 = await sink.apply([msg('users', 'u', 300, user(U1, { nickname: 'older', name: 'Grace' }))])
    expect(r2.outcomes).toEqual([{ status: 'ok' }])
    expect(fake.alters()).toEqual([])
    expect(fake.inserts()).toHaveLength(3)
    expect(fake.inserts().every((e) => !e.query.includes('nickname'))).toBe(true)
    expect(fake.inserts()[2].params).toContain('Grace')
    expect(warned).toHaveLength(1)
    expect(String(warned[0][1])).toMatch(/column nickname of public\.users .* not in PostgreSQL's catalog any more/)
  })

  it('a derived table: a new column added, an absent one stops the table', async () => {
    const items: DerivedTable = deriveTable('public', 'items', [col('id', 'int4'), col('v', 'text')], ['id'])
    const fake = new Fake()
    const itemsCatalog: CatalogReader = async () =>
      deriveTable('public', 'items', [col('id', 'int4'), col('v', 'text'), col('w', 'int8')], ['id'])
    const sink = new CassandraBatchSink(
      { ...options, topics: {}, derived: { 'cdc.public.items': items } },
      fake,
      undefined,
      undefined,
      itemsCatalog,
    )
    const r = await sink.apply([
      msg('items', 'c', 100, { id: 1, v: 'a', w: 7 }),
      msg('items', 'c', 200, { id: 2, w: 8 }),
      msg('items', 'c', 300, { id: 3, v: 'c', w: 9 }),
    ])
    expect(fake.alters()).toEqual(['ALTER TABLE ks."items" ADD "w" bigint'])
    // The third change has v again: the stop ends at it.
    expect(fake.inserts().map((e) => [e.query, e.params.slice(0, -1)])).toEqual([
      ['INSERT INTO ks."items" ("id", "v", "w") VALUES (?, ?, ?) USING TIMESTAMP ?', [1, 'a', 7n]],
      ['INSERT INTO ks."items" ("id", "v", "w") VALUES (?, ?, ?) USING TIMESTAMP ?', [3, 'c', 9n]],
    ])
    expect(r.outcomes[0]).toEqual({ status: 'ok' })
    expect(failure(r.outcomes[1]).message).toMatch(/table public\.items: column v absent/)
    expect(r.outcomes[2]).toEqual({ status: 'ok' })
    const late = await sink.apply([msg('items', 'd', 250, null, { id: 2 } as never)])
    expect(failure(late.outcomes[0]).code).toBe('SCHEMA_MISMATCH')
  })
})

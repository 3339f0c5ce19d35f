import cassandra from 'cassandra-driver'
import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../../errors/index.js'
import type { RowChange } from '../../model/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { CassandraBatchSink, type CqlExecutor } from './batch-sink.js'
import { parseQualifiedName } from './catalog.js'
import {
  coerceDerivedValue,
  createTableCql,
  deriveTable,
  planDerivedWrites,
  prepareDerivedChange,
  type CatalogColumn,
} from './derived.js'
import type { CassandraSinkOptions } from './options.js'
import { mapPgType, numericTypmod, type PgColumnType } from './type-map.js'
import { STREAMED_BAND } from './write-timestamp.js'

const pgType = (typname: string, typmod = -1, elem?: string): PgColumnType => ({
  typname,
  typmod,
  isArray: elem !== undefined,
  elemTypname: elem ?? null,
  display: elem ? `${elem}[]` : typname,
})
const col = (name: string, type: PgColumnType, notNull = false): CatalogColumn => ({ name, notNull, type })
// numeric(p, s)'s typmod.
const numericMod = (p: number, s: number) => ((p << 16) | s) + 4

describe('type map', () => {
  it('maps every documented type, arrays to frozen lists', () => {
    const cases: [PgColumnType, string][] = [
      [pgType('text'), 'text'],
      [pgType('varchar', 44), 'text'],
      [pgType('int2'), 'smallint'],
      [pgType('int4'), 'int'],
      [pgType('int8'), 'bigint'],
      [pgType('numeric', numericMod(10, 2)), 'decimal'],
      [pgType('float4'), 'float'],
      [pgType('float8'), 'double'],
      [pgType('bool'), 'boolean'],
      [pgType('uuid'), 'uuid'],
      [pgType('date'), 'date'],
      [pgType('timestamp'), 'timestamp'],
      [pgType('timestamptz'), 'timestamp'],
      [pgType('jsonb'), 'text'],
      [pgType('bytea'), 'blob'],
      [pgType('_int4', -1, 'int4'), 'frozen<list<int>>'],
      [pgType('_numeric', numericMod(6, 2), 'numeric'), 'frozen<list<decimal>>'],
    ]
    for (const [t, cql] of cases) expect(mapPgType(t)?.cql, t.typname).toBe(cql)
    expect(mapPgType(pgType('numeric', numericMod(10, 2)))?.numeric).toEqual({ precision: 10, scale: 2 })
    expect(mapPgType(pgType('timestamp', 3))?.kind).toBe('timestamp-ms')
    expect(mapPgType(pgType('timestamp', 6))?.kind).toBe('timestamp-us')
  })

  it('has no mapping for point, ranges, interval, user-defined types', () => {
    for (const t of ['point', 'int4range', 'interval', 'money', 'my_enum']) expect(mapPgType(pgType(t))).toBeUndefined()
    expect(mapPgType(pgType('_point', -1, 'point'))).toBeUndefined()
    expect(numericTypmod(-1)).toBeUndefined()
  })
})

describe('derived table', () => {
  const t = deriveTable(
    'public',
    'items',
    [col('id', pgType('int8'), true), col('by', pgType('text')), col('tags', pgType('_text', -1, 'text'))],
    ['id'],
  )

  it('creates its Cassandra table with the primary key as the partition key, names quoted', () => {
    expect(t.problem).toBeUndefined()
    expect(createTableCql('ks', t)).toBe(
      'CREATE TABLE IF NOT EXISTS ks."items" ("id" bigint, "by" text, "tags" frozen<list<text>>, PRIMARY KEY (("id")))',
    )
    const composite = deriveTable('shop', 'x', [col('a', pgType('int4')), col('b', pgType('text'))], ['a', 'b'])
    expect(createTableCql('ks', composite)).toMatch(
      /^CREATE TABLE IF NOT EXISTS ks\."shop_x" .*PRIMARY KEY \(\("a", "b"\)\)\)$/,
    )
  })

  it('names the column and type it cannot map, and a missing primary key', () => {
    const bad = deriveTable(
      'public',
      'places',
      [col('id', pgType('int4')), { ...col('spot', pgType('point')) }],
      ['id'],
    )
    expect(bad.problem).toMatch(/^table public\.places: column spot has type point, which has no Cassandra mapping/)
    expect(() => createTableCql('ks', bad)).toThrow(/column spot has type point/)
    expect(deriveTable('public', 'nokey', [col('a', pgType('int4'))], []).problem).toMatch(/has no primary key/)
  })

  it('converts values by kind and refuses what does not fit, naming the column', () => {
    const m = (t: PgColumnType) => mapPgType(t)!
    expect(coerceDerivedValue('c', m(pgType('int2')), -32768)).toBe(-32768)
    expect(() => coerceDerivedValue('c', m(pgType('int2')), 32768)).toThrow(/column c: 32768 does not fit smallint/)
    expect(coerceDerivedValue('c', m(pgType('int8')), -9223372036854775808n)).toBe(-9223372036854775808n)
    expect(() => coerceDerivedValue('c', m(pgType('int8')), 9223372036854775808n)).toThrow(/does not fit bigint/)
    expect(() => coerceDerivedValue('n', m(pgType('numeric', numericMod(5, 2))), '1234.5')).toThrow(
      /no numeric\(5,2\) can hold it/,
    )
    expect(() => coerceDerivedValue('n', m(pgType('numeric', numericMod(5, 2))), '1e100000')).toThrow(/numeric\(5,2\)/)
    expect(String(coerceDerivedValue('n', m(pgType('numeric', numericMod(5, 2))), '-999.99'))).toBe('-999.99')
    // µs before 1970 round towards the past: -0.5 ms is -1 ms.
    expect(coerceDerivedValue('t', m(pgType('timestamp')), -500)).toBe(-1n)
    expect(coerceDerivedValue('t', m(pgType('timestamp')), 946684799123456)).toBe(946684799123n)
    expect(coerceDerivedValue('t', m(pgType('timestamp', 3)), 946684799123)).toBe(946684799123n)
    expect(coerceDerivedValue('f', m(pgType('float8')), 'NaN')).toBeNaN()
    expect(coerceDerivedValue('b', m(pgType('bytea')), 'AP8=')).toEqual(Buffer.from([0x00, 0xff]))
    expect(coerceDerivedValue('b', m(pgType('bytea')), '')).toEqual(Buffer.alloc(0))
    expect(() => coerceDerivedValue('b', m(pgType('bytea')), 'not base64!')).toThrow(/base64/)
    expect(() => coerceDerivedValue('j', m(pgType('jsonb')), '__debezium_unavailable_value')).toThrow(
      /REPLICA IDENTITY FULL/,
    )
    const list = m(pgType('_int4', -1, 'int4'))
    expect(coerceDerivedValue('a', list, [1, 2])).toEqual([1, 2])
    expect(coerceDerivedValue('a', list, [])).toEqual([])
    expect(() => coerceDerivedValue('a', list, [1, null])).toThrow(/element 2 is NULL/)
    expect(() => coerceDerivedValue('a', list, [[1]])).toThrow(/multi-dimensional/)
    expect(coerceDerivedValue('d', m(pgType('date')), -719162)).toBeInstanceOf(cassandra.types.LocalDate)
  })
})

const change = (
  op: RowChange['op'],
  lsn: number,
  before: object | null,
  after: object | null,
  key: object,
): RowChange => ({
  kind: 'row',
  op,
  before: before as RowChange['before'],
  after: after as RowChange['after'],
  key: key as RowChange['key'],
  source: { lsn: BigInt(lsn), txId: null, tsMs: 1, snapshot: false, db: 'cdc_db', schema: 'public', table: 'items' },
  emittedAtMs: 1,
})

describe('derived changes', () => {
  const t = deriveTable('public', 'items', [col('id', pgType('int4')), col('v', pgType('text'))], ['id'])

  it('reduces a batch per key to its newest change, a delete deleting the row, stamped from the LSN', () => {
    const a = prepareDerivedChange(t, 0, change('c', 10, null, { id: 1, v: 'a' }, { id: 1 }))
    const b = prepareDerivedChange(t, 1, change('u', 20, { id: 1, v: 'a' }, { id: 1, v: 'b' }, { id: 1 }))
    const d = prepareDerivedChange(t, 2, change('d', 30, { id: 2, v: 'x' }, null, { id: 2 }))
    const plans = planDerivedWrites('ks', t, [b, a, d])
    expect(plans).toHaveLength(2)
    expect(plans[0].indexes).toEqual([1, 0])
    expect(plans[0].writes).toEqual([
      {
        kind: 'cql',
        query: 'INSERT INTO ks."items" ("id", "v") VALUES (?, ?) USING TIMESTAMP ?',
        params: [1, 'b', STREAMED_BAND + 20n],
      },
    ])
    expect(plans[1].writes).toEqual([
      {
        kind: 'cql',
        query: 'DELETE FROM ks."items" USING TIMESTAMP ? WHERE "id" = ?',
        params: [STREAMED_BAND + 30n, 2],
      },
    ])
  })

  it("refuses a key that is not the row's, a missing key, and every change of a table it cannot map", () => {
    expect(() => prepareDerivedChange(t, 0, change('c', 10, null, { id: 1, v: 'a' }, { id: 2 }))).toThrow(
      /key is not the primary key/,
    )
    const noKey = { ...change('c', 10, null, { id: 1 }, {}), key: null }
    expect(() => prepareDerivedChange(t, 0, noKey)).toThrow(/has no key/)
    const bad = deriveTable('public', 'p', [col('id', pgType('int4')), col('spot', pgType('point'))], ['id'])
    let caught: unknown
    try {
      prepareDerivedChange(bad, 0, change('c', 10, null, { id: 1, spot: { x: 1, y: 2 } }, { id: 1 }))
    } catch (err) {
      caught = err
    }
    expect(isPipelineError(caught, 'VALIDATION_ERROR')).toBe(true)
    expect((caught as Error).message).toMatch(/column spot has type point/)
  })
})

class Fake implements CqlExecutor {
  executed: { query: string; params: unknown[] }[] = []
  async execute(query: string, params: unknown[]): Promise<unknown> {
    this.executed.push({ query, params })
    return {}
  }
  async shutdown(): Promise<void> {}
}

const message = (topic: string, key: object, value: object | null, offset: number): SourceMessage => ({
  topic,
  partition: 0,
  offset: String(offset),
  key: Buffer.from(JSON.stringify(key)),
  value: value === null ? null : Buffer.from(JSON.stringify(value)),
  headers: {},
  timestamp: '0',
})

describe('the Cassandra sink with derived tables', () => {
  const good = deriveTable('public', 'items', [col('id', pgType('int4')), col('v', pgType('text'))], ['id'])
  const bad = deriveTable('public', 'places', [col('id', pgType('int4')), col('spot', pgType('point'))], ['id'])
  const options: CassandraSinkOptions = {
    contactPoints: ['127.0.0.1'],
    localDataCenter: 'dc1',
    keyspace: 'ks',
    consistency: 'LOCAL_QUORUM',
    concurrency: 32,
    topics: {},
    derived: { 'cdc.public.items': good, 'cdc.public.places': bad },
  }
  const source = { ts_ms: 1, snapshot: 'false', db: 'cdc_db', schema: 'public', table: 'items', lsn: 42 }

  it('writes a derived table, dead-letters the unmappable one with the reason, skips tombstones', async () => {
    const fake = new Fake()
    const sink = new CassandraBatchSink(options, fake)
    const result = await sink.apply([
      message('cdc.public.items', { id: 1 }, { before: null, after: { id: 1, v: 'ü' }, source, op: 'c' }, 0),
      message('cdc.public.places', { id: 1 }, { before: null, after: { id: 1, spot: { x: 1 } }, source, op: 'c' }, 1),
      message('cdc.public.items', { id: 1 }, null, 2),
    ])
    expect(fake.executed).toEqual([
      {
        query: 'INSERT INTO ks."items" ("id", "v") VALUES (?, ?) USING TIMESTAMP ?',
        params: [1, 'ü', STREAMED_BAND + 42n],
      },
    ])
    expect(result.outcomes[0]).toEqual({ status: 'ok' })
    expect(result.outcomes[1]).toMatchObject({ status: 'failed', code: 'VALIDATION_ERROR', retriable: false })
    expect((result.outcomes[1] as { message: string }).message).toMatch(/column spot has type point/)
    expect(result.stale).toBe(1)
    await sink.close()
  })
})

describe('qualified names', () => {
  it('takes schema.table or table (public), refuses anything else', () => {
    expect(parseQualifiedName('public.items')).toEqual({ schema: 'public', table: 'items' })
    expect(parseQualifiedName('items')).toEqual({ schema: 'public', table: 'items' })
    for (const bad of ['Public.Items', 'a.b.c', 'x;drop', '', 'public.'])
      expect(() => parseQualifiedName(bad)).toThrow()
  })
})

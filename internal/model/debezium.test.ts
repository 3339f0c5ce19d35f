import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../errors/index.js'
import { decodeChange, decodeSequence, type ConnectSchema, type RowChange } from './debezium.js'
import {
  formatEpochDay,
  formatEpochUnits,
  formatScaledDecimal,
  parseEpochDay,
  parseEpochMillis,
  toDecimalString,
  twosComplementToBigInt,
} from './values.js'
import { parseJsonLossless } from './lossless-json.js'

// The schemas Debezium 3.7 embeds for the two tables (as seen on the local stack's change topics).
const uuid = (field: string, optional = false): ConnectSchema => ({
  type: 'string',
  optional,
  name: 'io.debezium.data.Uuid',
  version: 1,
  field,
})
const zoned = (field: string): ConnectSchema => ({
  type: 'string',
  optional: true,
  name: 'io.debezium.time.ZonedTimestamp',
  version: 1,
  field,
})
const decimal = (field: string, scale: number): ConnectSchema => ({
  type: 'bytes',
  optional: false,
  name: 'org.apache.kafka.connect.data.Decimal',
  version: 1,
  parameters: { scale: String(scale), 'connect.decimal.precision': '10' },
  field,
})
const userFields: ConnectSchema[] = [
  uuid('id'),
  { type: 'string', optional: false, field: 'name' },
  { type: 'int32', optional: false, name: 'io.debezium.time.Date', version: 1, field: 'dob' },
  zoned('created_at'),
  zoned('modified_at'),
  { type: 'boolean', optional: false, field: 'is_deleted' },
  { type: 'int64', optional: false, field: 'version' },
  uuid('last_event_id', true),
]
const orderFields = (scale = 2): ConnectSchema[] => [
  uuid('id'),
  { type: 'string', optional: false, field: 'status' },
  uuid('user_id'),
  { type: 'int32', optional: false, field: 'quantity' },
  decimal('total_amount', scale),
  zoned('placed_at'),
  zoned('modified_at'),
  { type: 'boolean', optional: false, field: 'is_deleted' },
  { type: 'int64', optional: false, field: 'version' },
  uuid('last_event_id', true),
]
const sourceSchema: ConnectSchema = {
  type: 'struct',
  optional: false,
  name: 'io.debezium.connector.postgresql.Source',
  field: 'source',
  fields: [
    { type: 'string', optional: false, field: 'version' },
    { type: 'string', optional: false, field: 'connector' },
    { type: 'int64', optional: false, field: 'ts_ms' },
    { type: 'string', optional: true, name: 'io.debezium.data.Enum', field: 'snapshot' },
    { type: 'string', optional: false, field: 'db' },
    { type: 'string', optional: false, field: 'schema' },
    { type: 'string', optional: false, field: 'table' },
    { type: 'int64', optional: true, field: 'txId' },
    { type: 'int64', optional: true, field: 'lsn' },
  ],
}
const envelopeSchema = (fields: ConnectSchema[], table: string): ConnectSchema => ({
  type: 'struct',
  optional: false,
  name: `cdc.public.${table}.Envelope`,
  fields: [
    { type: 'struct', optional: true, name: `cdc.public.${table}.Value`, field: 'before', fields },
    { type: 'struct', optional: true, name: `cdc.public.${table}.Value`, field: 'after', fields },
    sourceSchema,
    { type: 'string', optional: false, field: 'op' },
    { type: 'int64', optional: true, field: 'ts_ms' },
  ],
})

interface Options {
  op: string
  before?: Record<string, unknown> | null
  after?: Record<string, unknown> | null
  source?: Record<string, unknown>
  table?: 'users' | 'orders'
  withSchema?: boolean
  scale?: number
}

const USER_ID = '81ce18ce-95dd-44f1-832b-c93a11d13668'
const ORDER_ID = '002c0086-b7ad-43c9-9bf4-7079f08968a1'
const OTHER_USER = '224a1db6-4875-4a67-9f06-1d4613db5adc'

function source(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: '3.7.0.Final',
    connector: 'postgresql',
    ts_ms: 1795239825779,
    snapshot: 'false',
    db: 'cdc_db',
    schema: 'public',
    table: 'users',
    txId: 802,
    lsn: 27357544,
    ...extra,
  }
}

function message(o: Options): Buffer {
  const payload = {
    before: o.before ?? null,
    after: o.after ?? null,
    source: source(o.source),
    op: o.op,
    ts_ms: 1795239827423,
  }
  const fields = o.table === 'orders' ? orderFields(o.scale) : userFields
  const doc = o.withSchema === false ? payload : { schema: envelopeSchema(fields, o.table ?? 'users'), payload }
  return Buffer.from(JSON.stringify(doc))
}

const keyOf = (id: string, withSchema = true): Buffer =>
  Buffer.from(
    JSON.stringify(
      withSchema
        ? {
            schema: { type: 'struct', fields: [uuid('id')], optional: false, name: 'cdc.public.users.Key' },
            payload: { id },
          }
        : { id },
    ),
  )

const user = (extra: Record<string, unknown> = {}) => ({
  id: USER_ID,
  name: 'Ada',
  dob: 7338,
  created_at: '2026-11-21T05:32:19.036855Z',
  modified_at: '2026-11-21T05:32:19.036855Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
  ...extra,
})

const order = (extra: Record<string, unknown> = {}) => ({
  id: ORDER_ID,
  status: 'PLACED',
  user_id: OTHER_USER,
  quantity: 2,
  total_amount: 'c0g=',
  placed_at: '2026-11-21T05:43:10.033000Z',
  modified_at: '2026-11-21T05:43:10.033000Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
  ...extra,
})

const rowChange = (value: Buffer, key: Buffer | null = null): RowChange => {
  const change = decodeChange(value, key)
  if (change.kind !== 'row') throw new Error(`expected a row change, got ${change.kind}`)
  return change
}

const b64 = (bytes: number[]): string => Buffer.from(bytes).toString('base64')

function expectDecodeError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(isPipelineError(caught, 'DECODE_ERROR'), `expected a DECODE_ERROR, got ${String(caught)}`).toBe(true)
  expect((caught as Error).message).toMatch(pattern)
  expect((caught as { retriable: boolean }).retriable).toBe(false)
}

describe('decodeChange: a real message of the local stack', () => {
  it('decodes the cdc.public.orders create verbatim: decimal from its schema scale, key, source position', () => {
    const fixture = JSON.parse(
      readFileSync(new URL('./testdata/debezium-orders-create.json', import.meta.url), 'utf8'),
    ) as { key: string; value: string }
    const change = rowChange(Buffer.from(fixture.value), Buffer.from(fixture.key))
    expect(change.op).toBe('c')
    expect(change.before).toBeNull()
    expect(change.key).toEqual({ id: ORDER_ID })
    expect(change.after).toEqual({
      id: ORDER_ID,
      status: 'PLACED',
      user_id: OTHER_USER,
      quantity: 2,
      total_amount: '295.12', // what psql shows for this order
      placed_at: '2026-11-21T05:43:10.033000Z',
      modified_at: '2026-11-21T05:43:10.033000Z',
      is_deleted: false,
      version: 1n,
      last_event_id: '4e578857-7925-4d17-95a2-5d32e34dd82b',
    })
    expect(change.source).toEqual({
      lsn: 27357544n,
      txId: 802n,
      tsMs: 1795239825779,
      snapshot: false,
      incremental: false,
      sequence: [27357544n, 27357544n],
      db: 'cdc_db',
      schema: 'public',
      table: 'orders',
    })
    expect(change.emittedAtMs).toBe(1795239827423)
  })
})

describe('decodeChange: operations', () => {
  it('c: an insert has an after image and no before image', () => {
    const c = rowChange(message({ op: 'c', after: user() }), keyOf(USER_ID))
    expect(c).toMatchObject({ kind: 'row', op: 'c', before: null, key: { id: USER_ID } })
    expect(c.after).toEqual({
      id: USER_ID,
      name: 'Ada',
      dob: '1990-02-03',
      created_at: '2026-11-21T05:32:19.036855Z',
      modified_at: '2026-11-21T05:32:19.036855Z',
      is_deleted: false,
      version: 1n,
      last_event_id: null,
    })
    expect(c.source.snapshot).toBe(false)
  })

  it('u: an update carries both images (REPLICA IDENTITY FULL)', () => {
    const u = rowChange(message({ op: 'u', before: user(), after: user({ name: 'Ada Lovelace', version: 2 }) }))
    expect(u.op).toBe('u')
    expect(u.before).toMatchObject({ name: 'Ada', version: 1n })
    expect(u.after).toMatchObject({ name: 'Ada Lovelace', version: 2n })
  })

  it('d: a delete has a before image and no after image', () => {
    const d = rowChange(message({ op: 'd', before: user() }), keyOf(USER_ID))
    expect(d).toMatchObject({ op: 'd', after: null, before: { id: USER_ID, dob: '1990-02-03' } })
  })

  it('d without a before image (REPLICA IDENTITY DEFAULT) is still decoded when the key says which row', () => {
    const d = rowChange(message({ op: 'd' }), keyOf(USER_ID))
    expect(d).toMatchObject({ op: 'd', before: null, after: null, key: { id: USER_ID } })
  })

  it('r: a snapshot read is flagged as snapshot, whatever the snapshot marker says', () => {
    for (const marker of ['true', 'first', 'last', 'first_in_data_collection', 'last_in_data_collection', true]) {
      const r = rowChange(message({ op: 'r', after: user(), source: { snapshot: marker, lsn: 26000000, txId: 770 } }))
      expect(r.op).toBe('r')
      expect(r.source).toMatchObject({ snapshot: true, lsn: 26000000n, txId: 770n })
    }
  })

  it('r incremental: a row of an incremental snapshot takes its position from source.sequence (it has no source.lsn)', () => {
    // As Debezium 3.7 wrote it on the stack (npm run resnapshot), without an embedded schema.
    const real = {
      before: null,
      after: {
        id: USER_ID,
        name: 'Ada',
        dob: 7305,
        created_at: null,
        modified_at: '2026-12-02T05:55:05.574725Z',
        is_deleted: false,
        version: 0,
        last_event_id: null,
      },
      source: {
        version: '3.7.0.Final',
        connector: 'postgresql',
        name: 'cdc',
        ts_ms: 1796191086724,
        snapshot: 'incremental',
        db: 'cdc_db',
        sequence: '["73095160","73095160"]',
        schema: 'public',
        table: 'users',
        txId: null,
        lsn: null,
        xmin: null,
      },
      transaction: null,
      op: 'r',
      ts_ms: 1796191086730,
    }
    const r = rowChange(Buffer.from(JSON.stringify(real)), keyOf(USER_ID))
    expect(r.source).toMatchObject({
      snapshot: true,
      incremental: true,
      lsn: 73095160n,
      sequence: [73095160n, 73095160n],
    })
    // The last commit LSN orders it, not the event's own LSN.
    const split = { ...real, source: { ...real.source, sequence: '["100",null]' } }
    expect(rowChange(Buffer.from(JSON.stringify(split))).source).toMatchObject({ lsn: 100n, sequence: [100n, null] })
    // Without a last commit LSN it has no position (the sink refuses it, write-timestamp.ts).
    const none = { ...real, source: { ...real.source, sequence: '[null,"5"]' } }
    expect(rowChange(Buffer.from(JSON.stringify(none))).source).toMatchObject({ lsn: null, incremental: true })
    // A streamed change keeps its source.lsn, and is not incremental.
    const streamed = {
      ...real,
      op: 'u',
      source: { ...real.source, snapshot: 'false', lsn: 90, sequence: '["80","90"]' },
    }
    expect(rowChange(Buffer.from(JSON.stringify(streamed))).source).toMatchObject({
      lsn: 90n,
      incremental: false,
      snapshot: false,
    })
  })

  it('decodeSequence reads the JSON string of two LSNs and refuses anything else', () => {
    expect(decodeSequence(undefined)).toBeNull()
    expect(decodeSequence(null)).toBeNull()
    expect(decodeSequence('["1","18446744073709551615"]')).toEqual([1n, 18446744073709551615n])
    expect(decodeSequence('[null,null]')).toEqual([null, null])
    for (const bad of ['["1"]', '[1,2]', '["-1","2"]', '["18446744073709551616",null]', 'nope', '{"a":1}', 5]) {
      expect(() => decodeSequence(bad), String(bad)).toThrow(/source\.sequence/)
    }
  })

  it('t: a truncate is a truncate change without rows', () => {
    const t = decodeChange(message({ op: 't', source: { table: 'orders' } }), null)
    expect(t).toMatchObject({ kind: 'truncate', op: 't', source: { table: 'orders', lsn: 27357544n } })
  })

  it('a null value is a tombstone (with its key when readable, without when not)', () => {
    expect(decodeChange(null, keyOf(USER_ID))).toEqual({ kind: 'tombstone', key: { id: USER_ID } })
    expect(decodeChange(null, null)).toEqual({ kind: 'tombstone', key: null })
    expect(decodeChange(null, Buffer.from('not json'))).toEqual({ kind: 'tombstone', key: null })
  })

  it('a schema envelope whose payload is null is a tombstone too', () => {
    expect(decodeChange(Buffer.from('{"schema":null,"payload":null}'), null)).toEqual({ kind: 'tombstone', key: null })
  })
})

describe('decodeChange: envelopes with and without an embedded schema', () => {
  it('schemas.enable=false: the payload is the top level and values pass through as JSON gives them', () => {
    const c = rowChange(
      message({ op: 'c', table: 'orders', after: order({ total_amount: '295.12' }), withSchema: false }),
    )
    expect(c.after).toMatchObject({ total_amount: '295.12', quantity: 2, version: 1 })
    expect(c.source.lsn).toBe(27357544n)
    const u = rowChange(message({ op: 'c', after: user(), withSchema: false }), keyOf(USER_ID, false))
    // Without a schema a date is the raw day count: the sink converts it by the column type.
    expect(u.after?.dob).toBe(7338)
    expect(u.key).toEqual({ id: USER_ID })
  })

  it('without a schema, a decimal may be a string or a number', () => {
    const asNumber = rowChange(
      message({ op: 'c', table: 'orders', after: order({ total_amount: 12.5 }), withSchema: false }),
    )
    expect(asNumber.after?.total_amount).toBe(12.5)
    expect(toDecimalString(asNumber.after?.total_amount)).toBe('12.5')
    expect(toDecimalString('-0.07')).toBe('-0.07')
  })

  it('keeps int64 values beyond 2^53 exact, with and without a schema', () => {
    const big = '9007199254740993' // 2^53 + 1: JSON.parse would make it ...992
    const text = (doc: string) => Buffer.from(doc)
    const withSchema = message({ op: 'c', after: user(), source: { lsn: 1 } })
      .toString()
      .replace('"lsn":1', `"lsn":${big}`)
      .replace('"version":1,"last_event_id"', `"version":${big},"last_event_id"`)
    const c = rowChange(text(withSchema))
    expect(c.source.lsn).toBe(BigInt(big))
    expect(c.after?.version).toBe(BigInt(big))
    const without = message({ op: 'c', after: user(), source: { lsn: 1 }, withSchema: false })
      .toString()
      .replace('"lsn":1', `"lsn":${big}`)
      .replace('"version":1,"last_event_id"', `"version":${big},"last_event_id"`)
    const s = rowChange(text(without))
    expect(s.source.lsn).toBe(BigInt(big))
    expect(s.after?.version).toBe(BigInt(big))
  })
})

describe('decodeChange: conversions by field schema', () => {
  it.each([
    // [unscaled bytes, scale, expected]
    [[0x73, 0x48], 2, '295.12'],
    [[0x00, 0xc6, 0x18], 2, '507.12'],
    [[0x00], 2, '0.00'],
    [[0x01], 2, '0.01'],
    [[0xff], 2, '-0.01'],
    [[0x80], 0, '-128'],
    [[0x00, 0x80], 0, '128'],
    [[0xfb, 0x2e], 3, '-1.234'],
    [[0x04, 0xd2], 1, '123.4'],
    [[0x04, 0xd2], 5, '0.01234'],
    [[0x04, 0xd2], -2, '123400'],
    [[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 4, '236118324143482260.6847'],
    [[0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], 4, '-236118324143482260.6848'],
  ])('Decimal bytes %j with scale %d -> %s', (bytes, scale, expected) => {
    const c = rowChange(message({ op: 'c', table: 'orders', scale, after: order({ total_amount: b64(bytes) }) }))
    expect(c.after?.total_amount).toBe(expected)
  })

  it('reads the scale from the schema, never assuming 2', () => {
    const bytes = b64([0x30, 0x39]) // 12345
    const values = [0, 1, 2, 3, 6].map(
      (scale) =>
        rowChange(message({ op: 'c', table: 'orders', scale, after: order({ total_amount: bytes }) })).after
          ?.total_amount,
    )
    expect(values).toEqual(['12345', '1234.5', '123.45', '12.345', '0.012345'])
  })

  it.each([
    [0, '1970-01-01'],
    [7338, '1990-02-03'],
    [-1, '1969-12-31'],
    [-365, '1969-01-01'],
    [-25567, '1900-01-01'],
    [-719528, '0000-01-01'],
    [-719893, '-0001-01-01'],
    [2932896, '9999-12-31'],
    [2932897, '+10000-01-01'],
    [11017, '2000-03-01'],
    [11016, '2000-02-29'],
  ])('Date %d days -> %s (before 1970 too)', (days, expected) => {
    expect(rowChange(message({ op: 'c', after: user({ dob: days }) })).after?.dob).toBe(expected)
    expect(formatEpochDay(days)).toBe(expected)
    expect(parseEpochDay(expected)).toBe(days)
  })

  it('keeps null fields null', () => {
    const c = rowChange(message({ op: 'c', table: 'orders', after: order({ placed_at: null, last_event_id: null }) }))
    expect(c.after).toMatchObject({ placed_at: null, last_event_id: null, is_deleted: false })
  })

  it('booleans stay booleans and int64 becomes bigint', () => {
    const c = rowChange(message({ op: 'c', after: user({ is_deleted: true, version: 42 }) }))
    expect(c.after?.is_deleted).toBe(true)
    expect(c.after?.version).toBe(42n)
  })

  it('decodes the other time types and VariableScaleDecimal', () => {
    const fields: ConnectSchema[] = [
      { type: 'int64', name: 'io.debezium.time.Timestamp', field: 'ms' },
      { type: 'int64', name: 'io.debezium.time.MicroTimestamp', field: 'us' },
      { type: 'int64', name: 'io.debezium.time.NanoTimestamp', field: 'ns' },
      {
        type: 'struct',
        name: 'io.debezium.data.VariableScaleDecimal',
        field: 'v',
        fields: [
          { type: 'int32', field: 'scale' },
          { type: 'bytes', field: 'value' },
        ],
      },
      { type: 'bytes', field: 'raw' },
    ]
    const doc = {
      schema: {
        type: 'struct',
        fields: [{ type: 'struct', field: 'after', fields }, sourceSchema, { type: 'string', field: 'op' }],
      },
      payload: {
        after: {
          ms: -1,
          us: 1_700_000_000_123_456,
          ns: 1_500,
          v: { scale: 3, value: b64([0xfb, 0x2e]) },
          raw: b64([1, 2]),
        },
        source: source(),
        op: 'c',
      },
    }
    const c = rowChange(Buffer.from(JSON.stringify(doc)))
    expect(c.after).toEqual({
      ms: '1969-12-31T23:59:59.999Z',
      us: '2023-11-14T22:13:20.123456Z',
      ns: '1970-01-01T00:00:00.000001500Z',
      v: '-1.234',
      raw: new Uint8Array([1, 2]),
    })
  })
})

describe('decodeChange: what cannot be decoded is a DECODE_ERROR, never a crash', () => {
  it.each([
    ['not JSON', Buffer.from('{"payload": nope')],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['an empty value', Buffer.alloc(0)],
    ['a JSON array', Buffer.from('[1,2]')],
  ])('%s', (_what, value) => {
    expectDecodeError(() => decodeChange(value, null), /JSON|UTF-8|empty|op must be|expected/)
  })

  it('an unknown op', () => {
    expectDecodeError(() => decodeChange(message({ op: 'x', after: user() })), /op must be one of c, u, d, r, t/)
  })

  it('no source block', () => {
    const doc = { before: null, after: user(), op: 'c' }
    expectDecodeError(() => decodeChange(Buffer.from(JSON.stringify(doc))), /no source block/)
  })

  it('an insert without an after image', () => {
    expectDecodeError(() => decodeChange(message({ op: 'c' })), /op c without an after image/)
  })

  it('a date that is not a day count', () => {
    expectDecodeError(
      () => decodeChange(message({ op: 'c', after: user({ dob: '1990-02-03' }) })),
      /after\.dob: expected an int32/,
    )
  })

  it('a decimal that is not base64', () => {
    expectDecodeError(
      () => decodeChange(message({ op: 'c', table: 'orders', after: order({ total_amount: '12.50!' }) })),
      /after\.total_amount: expected base64 bytes/,
    )
  })

  it('a Decimal schema without a scale', () => {
    const value = message({ op: 'c', table: 'orders', after: order() })
      .toString()
      .replace(/"parameters":\{"scale":"2","connect.decimal.precision":"10"\},/g, '')
    expectDecodeError(() => decodeChange(Buffer.from(value)), /Decimal schema has no valid scale parameter/)
  })

  it('a timestamp that is not ISO-8601', () => {
    expectDecodeError(
      () => decodeChange(message({ op: 'c', after: user({ created_at: 'yesterday' }) })),
      /after\.created_at: expected an ISO-8601 timestamp/,
    )
  })

  it('an lsn that is not an integer', () => {
    expectDecodeError(
      () => decodeChange(message({ op: 'c', after: user(), source: { lsn: 'x' } })),
      /source\.lsn: expected an int64/,
    )
  })

  it('a malformed key on a change event', () => {
    expectDecodeError(
      () => decodeChange(message({ op: 'c', after: user() }), Buffer.from('{')),
      /key is not valid JSON/,
    )
  })
})

describe('decodeChange: the schema cache', () => {
  it('decodes many messages of one schema alike, and is not fooled by a schema string that mentions payload', () => {
    const a = rowChange(message({ op: 'c', after: user() }))
    const b = rowChange(message({ op: 'c', after: user({ name: 'Bo' }) }))
    expect([a.after?.name, b.after?.name]).toEqual(['Ada', 'Bo'])
    const tricky = message({ op: 'c', after: user() })
      .toString()
      .replace('"field":"name"}', '"field":"name","doc":"x\\",\\"payload\\":{"}')
    expect(tricky).toContain('\\"payload\\":{')
    expect(rowChange(Buffer.from(tricky)).after?.name).toBe('Ada')
  })
})

describe('helpers', () => {
  it('twosComplementToBigInt matches Java BigInteger(byte[])', () => {
    expect(twosComplementToBigInt(new Uint8Array([]))).toBe(0n)
    expect(twosComplementToBigInt(new Uint8Array([0xff, 0xff]))).toBe(-1n)
    expect(twosComplementToBigInt(new Uint8Array([0x01, 0x00]))).toBe(256n)
  })

  it('formatScaledDecimal pads and signs', () => {
    expect(formatScaledDecimal(-5n, 3)).toBe('-0.005')
    expect(formatScaledDecimal(0n, 0)).toBe('0')
  })

  it('toDecimalString turns exponents into plain decimals and rejects non-numbers', () => {
    expect(toDecimalString('1.5e3')).toBe('1500')
    expect(toDecimalString('-25E-3')).toBe('-0.025')
    expect(toDecimalString(1e21)).toBe('1000000000000000000000')
    expect(toDecimalString('+3.10')).toBe('3.10')
    expect(toDecimalString('c0g=')).toBeUndefined()
    expect(toDecimalString(Number.NaN)).toBeUndefined()
    expect(toDecimalString(true)).toBeUndefined()
  })

  it('parseEpochMillis handles offsets, fractions and dates before 1970 (towards the past)', () => {
    expect(parseEpochMillis('1970-01-01T00:00:00Z')).toBe(0n)
    expect(parseEpochMillis('2026-11-21T05:43:10.033999Z')).toBe(BigInt(Date.parse('2026-11-21T05:43:10.033Z')))
    expect(parseEpochMillis('2026-11-21T07:43:10.5+02:00')).toBe(BigInt(Date.parse('2026-11-21T05:43:10.500Z')))
    expect(parseEpochMillis('1969-12-31T23:59:59.9995Z')).toBe(-1n)
    expect(parseEpochMillis('1900-01-01T00:00:00Z')).toBe(BigInt(Date.UTC(1900, 0, 1)))
    expect(parseEpochMillis('2026-02-30T00:00:00Z')).toBeUndefined()
    expect(parseEpochMillis('2026-11-21 05:43:10')).toBeUndefined()
  })

  it('formatEpochUnits floors negative values', () => {
    expect(formatEpochUnits(-1n, 6)).toBe('1969-12-31T23:59:59.999999Z')
  })

  it('parseJsonLossless equals JSON.parse except for unsafe integers', () => {
    const text =
      '{"a":[1,-2.5e3,true,null,"x\\"y\\u00e9"],"b":{"c":12345678901234567890,"d":-9007199254740993},"e":1.0}'
    const parsed = parseJsonLossless(text) as { b: { c: unknown; d: unknown } }
    expect(parsed.b.c).toBe(12345678901234567890n)
    expect(parsed.b.d).toBe(-9007199254740993n)
    const native = JSON.parse(text) as Record<string, unknown>
    expect({ ...parsed, b: undefined }).toEqual({ ...native, b: undefined })
    expect(() => parseJsonLossless('{"a":1,}')).toThrow(SyntaxError)
    expect(() => parseJsonLossless('[1] x')).toThrow(SyntaxError)
    expect(() => parseJsonLossless('"abc')).toThrow(SyntaxError)
  })
})

// Issue 11, items 5 and 8: unbounded work per value, wrong reasons.
describe('decodeChange and helpers: bounded work, named reasons', () => {
  it('scans decimals in linear time (the old expression backtracked quadratically on a long digit run)', () => {
    const long = `${'1'.repeat(40_000)}x`
    const t0 = performance.now()
    expect(toDecimalString(long)).toBeUndefined()
    expect(performance.now() - t0).toBeLessThan(100)
  })

  it('does not expand a decimal beyond what PostgreSQL numeric holds', () => {
    const t0 = performance.now()
    expect(toDecimalString('1e100000000')).toBeUndefined()
    expect(toDecimalString('1e-100000')).toBeUndefined()
    expect(performance.now() - t0).toBeLessThan(100)
    expect(toDecimalString('0e100000000')).toBe('0')
    expect(toDecimalString('12.50')).toBe('12.50')
  })

  it('refuses a Decimal scale no PostgreSQL numeric has (it would build a string of that many digits)', () => {
    const value = message({ op: 'c', table: 'orders', after: order() })
      .toString()
      .replace(/"scale":"2"/g, '"scale":"-100000"')
    expectDecodeError(
      () => decodeChange(Buffer.from(value)),
      /after\.total_amount: a decimal scale of -100000 is beyond/,
    )
  })

  it('rejects a timestamp offset beyond PostgreSQL ±15:59', () => {
    expect(parseEpochMillis('2026-01-02T03:04:05+15:59')).toBe(BigInt(Date.parse('2026-01-02T03:04:05+15:59')))
    expect(parseEpochMillis('2026-01-02T03:04:05+16:00')).toBeUndefined()
    expect(parseEpochMillis('2026-01-02T03:04:05-23:00')).toBeUndefined()
  })

  it('names deep nesting instead of "Maximum call stack size exceeded"', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
    const payload = `{"op":"c","source":{"lsn":1,"ts_ms":1},"before":null,"after":{"id":"x","name":${deep}}}`
    expectDecodeError(() => decodeChange(Buffer.from(payload)), /nesting deeper than 64 levels$/)
    const objects = `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`
    const payload2 = `{"op":"c","source":{"lsn":1,"ts_ms":1},"before":null,"after":{"id":${objects}}}`
    expectDecodeError(() => decodeChange(Buffer.from(payload2)), /nesting deeper than 64 levels$/)
    // A bigint forces the lossless parser, which has its own bound.
    const payload3 = `{"op":"c","source":{"lsn":18446744073709551615,"ts_ms":1},"before":null,"after":{"id":${objects}}}`
    expectDecodeError(() => decodeChange(Buffer.from(payload3)), /Nesting too deep|nesting deeper than/)
  })
})

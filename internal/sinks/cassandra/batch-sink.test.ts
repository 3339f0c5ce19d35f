import cassandra from 'cassandra-driver'
import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../../errors/index.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { CassandraBatchSink, type CqlExecutor } from './batch-sink.js'
import { classifyCassandraError } from './classify.js'
import { coerceValue } from './coerce.js'
import { CASSANDRA_OPTIONS, parseTopicTables, type CassandraSinkOptions } from './options.js'
import { deleteCql, insertCql, TABLES } from './tables.js'
import { STREAMED_BAND, describeWriteTimestamp, writeTimestampOf } from './write-timestamp.js'

const U1 = '11111111-1111-4111-8111-111111111111'
const U2 = '22222222-2222-4222-8222-222222222222'
const U3 = '33333333-3333-4333-8333-333333333333'
const O1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
const O2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'

const options: CassandraSinkOptions = {
  contactPoints: ['127.0.0.1:9042'],
  localDataCenter: 'datacenter1',
  keyspace: 'ks',
  consistency: 'LOCAL_QUORUM',
  concurrency: 4,
  topics: { 'cdc.public.users': 'users', 'cdc.public.orders': 'orders' },
}

const user = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  name: 'Ada',
  dob: -3653, // 1960-01-01
  created_at: '2026-01-02T03:04:05.123456Z',
  modified_at: '2026-01-02T03:04:05.123456Z',
  is_deleted: false,
  version: 1,
  last_event_id: null,
  ...extra,
})

const order = (id: string, userId: string, extra: Record<string, unknown> = {}) => ({
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
  ...extra,
})

let offset = 0
interface ChangeSpec {
  op: string
  lsn?: number
  before?: Record<string, unknown> | null
  after?: Record<string, unknown> | null
  tsMs?: number
}
// Messages as Debezium writes them with schemas.enable=false (values in JSON form). The key defaults to the row's id
// (as Debezium keys them); null for none.
function msg(table: 'users' | 'orders', c: ChangeSpec | null, key?: string | null): SourceMessage {
  const keyId = key === undefined ? ((c?.after?.id ?? c?.before?.id ?? null) as string | null) : key
  const value =
    c === null
      ? null
      : Buffer.from(
          JSON.stringify({
            before: c.before ?? null,
            after: c.after ?? null,
            source: {
              ts_ms: c.tsMs ?? 1_000,
              snapshot: c.op === 'r' ? 'true' : 'false',
              db: 'cdc_db',
              schema: 'public',
              table,
              txId: 7,
              lsn: c.lsn ?? 100,
            },
            op: c.op,
            ts_ms: 2_000,
          }),
        )
  return {
    topic: `cdc.public.${table}`,
    partition: 0,
    offset: String(offset++),
    key: keyId === null ? null : Buffer.from(JSON.stringify({ id: keyId })),
    value,
    headers: {},
    timestamp: '0',
  }
}

interface Executed {
  query: string
  params: unknown[]
}

class FakeCassandra implements CqlExecutor {
  executed: Executed[] = []
  fail?: (e: Executed) => unknown
  closed = 0
  async execute(query: string, params: unknown[]): Promise<unknown> {
    const e = { query, params }
    const err = this.fail?.(e)
    if (err) throw err
    this.executed.push(e)
    return {}
  }
  async shutdown(): Promise<void> {
    this.closed++
  }
  // The writes as readable tuples: [kind, table, timestamp, ...key].
  writes(): string[] {
    return this.executed.map(({ query, params }) => {
      const table = /(?:INTO|FROM) ks\.(\w+)/.exec(query)![1]
      if (query.startsWith('INSERT')) {
        const cols = /\(([^)]*)\) VALUES/.exec(query)![1].split(', ')
        const v = (c: string) => String(params[cols.indexOf(c)])
        const key = table === 'orders_by_user' ? `${v('user_id')}/${v('id')}` : v('id')
        return `upsert ${table} ${key} @${params.at(-1)}`
      }
      return `delete ${table} ${params.slice(1).join('/')} @${params[0]}`
    })
  }
}

const ts = (lsn: number, op = 'u') => STREAMED_BAND * (op === 'r' ? 0n : 1n) + BigInt(lsn)

const sinkWith = (fake: FakeCassandra) => new CassandraBatchSink(options, fake)

describe('write timestamps', () => {
  it('streamed changes sit above every snapshot row; both grow with the LSN', () => {
    const at = (op: 'c' | 'u' | 'd' | 'r', lsn: bigint) => writeTimestampOf({ op, source: { lsn } as never })
    expect(at('c', 27357544n)).toBe(STREAMED_BAND + 27357544n)
    expect(at('u', 5n) > at('r', 1_000_000n)).toBe(true)
    expect(at('r', 2n) > at('r', 1n)).toBe(true)
    expect(at('d', 9n) > at('u', 8n)).toBe(true)
    // Far above wall-clock microseconds: a hand edit in cqlsh is overwritten by the next change.
    const nowMicros = BigInt(Date.now()) * 1000n
    expect(STREAMED_BAND > nowMicros * 1000n).toBe(true)
    expect(describeWriteTimestamp(at('u', 42n))).toEqual({ lsn: 42n, snapshot: false })
    expect(describeWriteTimestamp(at('r', 42n))).toEqual({ lsn: 42n, snapshot: true })
  })

  it('puts an incremental-snapshot row in the streamed band at its last commit LSN; other snapshot rows stay below', () => {
    const incremental = (lsn: bigint | null) =>
      writeTimestampOf({ op: 'r', source: { lsn, snapshot: true, incremental: true } as never })
    const initial = writeTimestampOf({ op: 'r', source: { lsn: 500n, snapshot: true, incremental: false } as never })
    const streamed = (lsn: bigint) => writeTimestampOf({ op: 'u', source: { lsn } as never })
    expect(incremental(500n)).toBe(STREAMED_BAND + 500n)
    expect(initial).toBe(500n)
    // Wins over a change committed before the chunk (LSN below the last commit LSN), loses to one after it.
    expect(incremental(500n) > streamed(499n)).toBe(true)
    expect(incremental(500n) < streamed(501n)).toBe(true)
    expect(incremental(500n) > initial).toBe(true)
    expect(describeWriteTimestamp(incremental(500n))).toEqual({ lsn: 500n, snapshot: false })
    expect(() => incremental(null)).toThrow(/incremental-snapshot row has neither source\.lsn nor a last commit LSN/)
  })

  it('refuses a change without an LSN or with one outside the band', () => {
    expect(() => writeTimestampOf({ op: 'c', source: { lsn: null } as never })).toThrow(/no source\.lsn/)
    expect(() => writeTimestampOf({ op: 'c', source: { lsn: STREAMED_BAND } as never })).toThrow(/outside/)
  })
})

describe('CQL', () => {
  it('writes every column and carries the timestamp as a bound value', () => {
    expect(insertCql('ks', TABLES.users)).toBe(
      'INSERT INTO ks.users (id, name, dob, created_at, modified_at, is_deleted, version, last_event_id) ' +
        'VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?',
    )
    expect(deleteCql('ks', TABLES.orders_by_user)).toBe(
      'DELETE FROM ks.orders_by_user USING TIMESTAMP ? WHERE user_id = ? AND id = ?',
    )
  })
})

describe('coerceValue', () => {
  it('converts canonical and schema-less values by column type', () => {
    expect(coerceValue('dob', 'date', '1960-01-01')!.toString()).toBe('1960-01-01')
    expect(coerceValue('dob', 'date', -3653)!.toString()).toBe('1960-01-01')
    expect(coerceValue('t', 'timestamp', '1969-12-31T23:59:59.9999Z')).toBe(-1n)
    expect(coerceValue('a', 'decimal', '-0.05')!.toString()).toBe('-0.05')
    expect(coerceValue('a', 'decimal', 12.5)!.toString()).toBe('12.5')
    expect(coerceValue('a', 'decimal', '12.50')!.toString()).toBe('12.50')
    expect(coerceValue('v', 'bigint', 7)).toBe(7n)
    expect(coerceValue('v', 'bigint', 9007199254740993n)).toBe(9007199254740993n)
    expect(coerceValue('id', 'uuid', O1.toUpperCase())).toBe(O1)
    expect(coerceValue('x', 'text', null)).toBeNull()
  })

  it.each([
    ['id', 'uuid', 'not-a-uuid'],
    ['quantity', 'int', 2 ** 31],
    ['quantity', 'int', 1.5],
    ['amount', 'decimal', 'c0g='],
    ['t', 'timestamp', 1700000000000],
    ['dob', 'date', '1990-02-30'],
    ['is_deleted', 'boolean', 'true'],
  ] as const)('%s (%s) refuses %j with a VALIDATION_ERROR naming the column', (column, type, value) => {
    expect(() => coerceValue(column, type, value)).toThrow(new RegExp(`column ${column}`))
  })
})

describe('CassandraBatchSink', () => {
  it('writes inserts and updates as full-row upserts with the LSN timestamp', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([
      msg('users', { op: 'c', lsn: 10, after: user(U1) }),
      msg('users', { op: 'u', lsn: 20, before: user(U2), after: user(U2, { name: 'Bo', version: 2 }) }),
    ])
    expect(r).toMatchObject({ applied: 2, stale: 0 })
    expect(r.outcomes).toEqual([{ status: 'ok' }, { status: 'ok' }])
    expect(fake.writes()).toEqual([`upsert users ${U1} @${ts(10)}`, `upsert users ${U2} @${ts(20)}`])
    const params = fake.executed[1].params
    expect(params[1]).toBe('Bo')
    expect(params[2]!.toString()).toBe('1960-01-01')
    expect(params[3]).toBe(BigInt(Date.parse('2026-01-02T03:04:05.123Z')))
    expect(params[6]).toBe(2n)
    expect(params[7]).toBeNull() // written as null: a column that became NULL must not keep its old value
  })

  it('deletes the row on d, with the timestamp, taking the id from the before-image or the key', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([
      msg('users', { op: 'd', lsn: 30, before: user(U1) }, U1),
      msg('users', { op: 'd', lsn: 31 }, U2), // REPLICA IDENTITY DEFAULT: no before-image, the key says which row
    ])
    expect(r.applied).toBe(2)
    expect(fake.writes()).toEqual([`delete users ${U1} @${ts(30)}`, `delete users ${U2} @${ts(31)}`])
  })

  it('skips tombstones as stale, not as errors', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([msg('users', null, U1), msg('users', null)])
    expect(r).toMatchObject({ applied: 0, stale: 2, outcomes: [{ status: 'ok' }, { status: 'ok' }] })
    expect(fake.executed).toEqual([])
  })

  it('snapshot rows are written in the snapshot band', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([msg('users', { op: 'r', lsn: 500, after: user(U1) })])
    expect(fake.writes()).toEqual([`upsert users ${U1} @${ts(500, 'r')}`])
    expect(r.latenciesMs).toEqual([]) // a snapshot row was not committed just now: no latency sample
  })

  it('reduces a batch to the newest change per key (by timestamp, not position) and counts the rest stale', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([
      msg('users', { op: 'c', lsn: 10, after: user(U1) }),
      msg('users', { op: 'u', lsn: 20, before: user(U1), after: user(U1, { name: 'B', version: 2 }) }),
      msg('users', { op: 'd', lsn: 30, before: user(U1, { name: 'B' }) }),
      msg('users', null, U1),
      // A snapshot row that arrives later but is older in time (lower band): it must not win.
      msg('users', { op: 'r', lsn: 900, after: user(U1, { name: 'old' }) }),
    ])
    expect(fake.writes()).toEqual([`delete users ${U1} @${ts(30)}`])
    expect(r).toMatchObject({ applied: 1, stale: 4 })
  })

  it('keeps orders_by_user right when an order moves to another user, and on delete', async () => {
    const fake = new FakeCassandra()
    await sinkWith(fake).apply([msg('orders', { op: 'u', lsn: 40, before: order(O1, U1), after: order(O1, U2) })])
    expect(fake.writes().sort()).toEqual(
      [
        `upsert orders ${O1} @${ts(40)}`,
        `upsert orders_by_user ${U2}/${O1} @${ts(40)}`,
        `delete orders_by_user ${U1}/${O1} @${ts(40)}`,
      ].sort(),
    )

    const fake2 = new FakeCassandra()
    await sinkWith(fake2).apply([msg('orders', { op: 'd', lsn: 50, before: order(O2, U3) })])
    expect(fake2.writes().sort()).toEqual(
      [`delete orders ${O2} @${ts(50)}`, `delete orders_by_user ${U3}/${O2} @${ts(50)}`].sort(),
    )
  })

  it('moving an order twice in one batch deletes it under every earlier user', async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([
      msg('orders', { op: 'c', lsn: 10, after: order(O1, U1) }),
      msg('orders', { op: 'u', lsn: 20, before: order(O1, U1), after: order(O1, U2) }),
      msg('orders', { op: 'u', lsn: 30, before: order(O1, U2), after: order(O1, U3, { status: 'SHIPPED' }) }),
    ])
    expect(fake.writes().sort()).toEqual(
      [
        `upsert orders ${O1} @${ts(30)}`,
        `upsert orders_by_user ${U3}/${O1} @${ts(30)}`,
        `delete orders_by_user ${U1}/${O1} @${ts(30)}`,
        `delete orders_by_user ${U2}/${O1} @${ts(30)}`,
      ].sort(),
    )
    expect(r).toMatchObject({ applied: 1, stale: 2 })
  })

  it('reports the latency from the PostgreSQL commit to the acknowledged write', async () => {
    const fake = new FakeCassandra()
    const committed = Date.now() - 250
    const r = await sinkWith(fake).apply([msg('users', { op: 'c', lsn: 10, after: user(U1), tsMs: committed })])
    expect(r.latenciesMs).toHaveLength(1)
    expect(r.latenciesMs[0]).toBeGreaterThanOrEqual(250)
    expect(r.latenciesMs[0]).toBeLessThan(5_000)
  })

  it('fails only the undecodable or unfit message (DLQ), writing the others', async () => {
    const fake = new FakeCassandra()
    const bad = { ...msg('users', { op: 'c', lsn: 1, after: user(U1) }), value: Buffer.from('{not json') }
    const r = await sinkWith(fake).apply([
      bad,
      msg('users', { op: 'c', lsn: 2, after: user(U2, { dob: 'yesterday' }) }),
      msg('orders', { op: 'c', lsn: 3, after: order(O1, 'nope') }),
      msg('users', { op: 'c', after: user(U3) }),
    ])
    expect(r.outcomes[0]).toMatchObject({ status: 'failed', code: 'DECODE_ERROR', retriable: false })
    expect(r.outcomes[1]).toMatchObject({ status: 'failed', code: 'VALIDATION_ERROR', retriable: false })
    expect(r.outcomes[1]).toMatchObject({ message: expect.stringMatching(/column dob/) })
    expect(r.outcomes[2]).toMatchObject({
      status: 'failed',
      code: 'VALIDATION_ERROR',
      message: expect.stringMatching(/user_id/),
    })
    expect(r.outcomes[3]).toEqual({ status: 'ok' })
    expect(fake.writes()).toEqual([`upsert users ${U3} @${ts(100)}`])
  })

  it('with --on-truncate dlq, sends a TRUNCATE to the DLQ as UNSUPPORTED and touches nothing', async () => {
    const fake = new FakeCassandra()
    const r = await new CassandraBatchSink({ ...options, onTruncate: 'dlq' }, fake).apply([
      msg('orders', { op: 't', lsn: 77 }),
    ])
    expect(r.outcomes[0]).toMatchObject({
      status: 'failed',
      code: 'UNSUPPORTED',
      retriable: false,
      message: expect.stringMatching(
        /TRUNCATE of public\.orders .* not replicated: truncate ks\.orders and orders_by_user by hand/,
      ),
    })
    expect(fake.executed).toEqual([])
  })

  it('throws a retriable error when Cassandra is unavailable (the engine retries the whole batch)', async () => {
    const fake = new FakeCassandra()
    fake.fail = () => new cassandra.errors.NoHostAvailableError({}, 'All host(s) tried for query failed')
    const sink = sinkWith(fake)
    const err = await sink.apply([msg('users', { op: 'c', after: user(U1) })]).catch((e: unknown) => e)
    expect(isPipelineError(err, 'SINK_UNAVAILABLE')).toBe(true)
    expect((err as { retriable: boolean }).retriable).toBe(true)
  })

  it('throws a retriable error on a write timeout even when other keys succeeded', async () => {
    const fake = new FakeCassandra()
    fake.fail = (e) =>
      e.params.includes(U2)
        ? new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.writeTimeout, 'Operation timed out')
        : undefined
    const err = await sinkWith(fake)
      .apply([msg('users', { op: 'c', after: user(U1) }), msg('users', { op: 'c', after: user(U2) })])
      .catch((e: unknown) => e)
    expect(isPipelineError(err, 'SINK_TIMEOUT')).toBe(true)
  })

  it('throws CONFIG_ERROR for a missing table (the pipeline stops)', async () => {
    const fake = new FakeCassandra()
    fake.fail = () =>
      new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.invalid, 'unconfigured table users')
    const err = await sinkWith(fake)
      .apply([msg('users', { op: 'c', after: user(U1) })])
      .catch((e: unknown) => e)
    expect(isPipelineError(err, 'CONFIG_ERROR')).toBe(true)
  })

  it('fails the messages of a key whose write the server rejects, and only those', async () => {
    const fake = new FakeCassandra()
    fake.fail = (e) =>
      e.params.includes(U1)
        ? new cassandra.errors.ResponseError(cassandra.types.responseErrorCodes.invalid, 'bad value')
        : undefined
    const r = await sinkWith(fake).apply([
      msg('users', { op: 'c', lsn: 1, after: user(U1) }),
      msg('users', { op: 'u', lsn: 2, before: user(U1), after: user(U1) }),
      msg('users', { op: 'c', lsn: 3, after: user(U2) }),
    ])
    expect(r.outcomes.map((o) => o.status)).toEqual(['failed', 'failed', 'ok'])
    expect(r.outcomes[0]).toMatchObject({ code: 'SINK_REJECTED', retriable: false })
    expect(r.applied).toBe(1)
  })

  it('bounds the writes in flight by concurrency', async () => {
    let inFlight = 0
    let most = 0
    const slow: CqlExecutor = {
      async execute() {
        inFlight++
        most = Math.max(most, inFlight)
        await new Promise((r) => setTimeout(r, 2))
        inFlight--
        return {}
      },
      async shutdown() {},
    }
    const ids = Array.from({ length: 40 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`)
    const r = await new CassandraBatchSink(options, slow).apply(
      ids.map((id) => msg('users', { op: 'c', after: user(id) })),
    )
    expect(r.applied).toBe(40)
    expect(most).toBe(options.concurrency)
  })

  it('close() shuts the client down once', async () => {
    const fake = new FakeCassandra()
    const sink = sinkWith(fake)
    await Promise.all([sink.close(), sink.close()])
    expect(fake.closed).toBe(1)
  })
})

describe('options', () => {
  // Validated once, in the main thread, by the commands' settings rows (the worker gets them as they are).
  it('validates each option from its flag or variable, naming the flag', () => {
    const O = CASSANDRA_OPTIONS
    expect(O.consistency.parse({ flag: 'consistency', value: 'local_one' })).toBe('LOCAL_ONE')
    expect(O.consistency.parse({ flag: 'consistency', value: undefined, default: O.consistency.default })).toBe(
      'LOCAL_QUORUM',
    )
    expect(O.concurrency.parse({ flag: 'concurrency', value: undefined, default: O.concurrency.default })).toBe(32)
    expect(O.contactPoints.parse({ flag: 'cassandra-contact-points', value: 'a,b:9043' })).toEqual(['a', 'b:9043'])
    for (const [def, value, message] of [
      [
        O.contactPoints,
        'a,',
        /--cassandra-contact-points must be a comma-separated list of host or host:port; '' is not/,
      ],
      [O.contactPoints, 'a:70000', /--cassandra-contact-points .*'a:70000' is not/],
      [O.keyspace, 'bad-name', /--cassandra-keyspace must be a CQL identifier: letters, digits, _ \(got 'bad-name'\)/],
      [O.consistency, 'ANY', /--consistency must be one of LOCAL_QUORUM, .*\(got "ANY"\)/],
      [O.concurrency, '0', /--concurrency/],
      [O.localDataCenter, '', /--cassandra-local-dc/],
    ] as const) {
      expect(() => (def.parse as (s: object) => unknown)({ flag: def.flag, value }), `${def.flag} ${value}`).toThrow(
        message,
      )
    }
  })

  it('maps change topics to tables by their last part, or explicitly', () => {
    expect(parseTopicTables(['cdc.public.users', 'snap1.public.orders', 'mine=orders'])).toEqual({
      'cdc.public.users': 'users',
      'snap1.public.orders': 'orders',
      mine: 'orders',
    })
    expect(() => parseTopicTables(['cdc.public.payments'])).toThrow(/--topics/)
  })
})

describe('classifyCassandraError', () => {
  const { errors, types } = cassandra
  const code = types.responseErrorCodes
  it.each([
    [new errors.NoHostAvailableError({}), 'SINK_UNAVAILABLE', true],
    [new errors.OperationTimedOutError('timed out'), 'SINK_TIMEOUT', true],
    [new errors.ResponseError(code.unavailableException, 'not enough replicas'), 'SINK_UNAVAILABLE', true],
    [new errors.ResponseError(code.overloaded, 'overloaded'), 'SINK_UNAVAILABLE', true],
    [new errors.ResponseError(code.writeTimeout, 'timeout'), 'SINK_TIMEOUT', true],
    [new errors.ResponseError(code.invalid, 'unconfigured table orders'), 'CONFIG_ERROR', false],
    [new errors.ResponseError(code.invalid, 'Keyspace x does not exist'), 'CONFIG_ERROR', false],
    [new errors.ResponseError(code.invalid, 'Invalid decimal'), 'SINK_REJECTED', false],
    [new errors.ResponseError(code.unauthorized, 'no'), 'CONFIG_ERROR', false],
    [new errors.ResponseError(code.serverError, 'boom'), 'UNKNOWN', true],
    [new TypeError('Not a valid Uuid'), 'SINK_REJECTED', false],
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'SINK_UNAVAILABLE', true],
    [new errors.NoHostAvailableError(null, 'Connecting after shutdown is not supported'), 'SINK_UNAVAILABLE', false],
  ])('%s -> %s (retriable %s)', (err, expected, retriable) => {
    const e = classifyCassandraError(err)
    expect(e.code).toBe(expected)
    expect(e.retriable).toBe(retriable)
    expect(e.cause).toBe(err)
  })
})

// Issue 11, items 5, 8 and 9: values no PostgreSQL column could hold, keys naming another row, hostile LSNs.
describe('CassandraBatchSink: bounded work and bounds per value', () => {
  const failedWith = (code: string, message: RegExp) => ({ status: 'failed', code, retriable: false, message })

  it('dead-letters "1e100000" in a numeric(10,2) column within milliseconds, writing the rest', async () => {
    const fake = new FakeCassandra()
    const t0 = performance.now()
    const r = await sinkWith(fake).apply([
      msg('orders', { op: 'c', lsn: 10, after: order(O1, U1, { total_amount: '1e100000' }) }),
      msg('orders', { op: 'c', lsn: 11, after: order(O2, U1) }),
    ])
    expect(performance.now() - t0).toBeLessThan(500)
    expect(r.outcomes[0]).toMatchObject(
      failedWith('VALIDATION_ERROR', /column total_amount: '1e100000' .* \(no numeric\(10,2\) can hold it\)/),
    )
    expect(r.outcomes[1]).toEqual({ status: 'ok' })
    expect(fake.writes().sort()).toEqual([
      `upsert orders ${O2} @${ts(11)}`,
      `upsert orders_by_user ${U1}/${O2} @${ts(11)}`,
    ])
  })

  it.each(['123456789.00', '1.005', '1e8', 1e21, '-1e-3', '9'.repeat(20_000)])(
    'refuses %j for numeric(10,2)',
    (value) => {
      const spec = TABLES.orders.numeric!.total_amount
      expect(() => coerceValue('total_amount', 'decimal', value, spec)).toThrow(/no numeric\(10,2\) can hold it/)
    },
  )

  it.each([
    ['99999999.99', '99999999.99'],
    ['-0.01', '-0.01'],
    ['12.500', '12.500'],
    ['0012.5', '12.5'],
    ['1.5e3', '1500'],
    ['0e100000', '0'],
    [12.5, '12.5'],
  ] as const)('accepts %j for numeric(10,2) as %s', (value, shown) => {
    const spec = TABLES.orders.numeric!.total_amount
    expect(coerceValue('total_amount', 'decimal', value, spec)!.toString()).toBe(shown)
  })

  it('bounds a decimal column without a declared numeric to 1000 digits each side', () => {
    // (Not shown: the driver's BigDecimal.toString is itself slow on 1000 digits; binding uses its bytes.)
    expect(coerceValue('a', 'decimal', '1e999')).toBeInstanceOf(cassandra.types.BigDecimal)
    expect(() => coerceValue('a', 'decimal', '1e1000')).toThrow(/more than 1000 digits/)
  })

  it('refuses text holding a lone UTF-16 surrogate (the driver would write U+FFFD)', async () => {
    expect(() => coerceValue('name', 'text', 'a\ud800b')).toThrow(/column name: .* lone UTF-16 surrogate/)
    expect(coerceValue('name', 'text', 'a\ud83d\ude00b')).toBe('a😀b')
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([msg('users', { op: 'c', lsn: 10, after: user(U1, { name: '\ud800' }) })])
    expect(r.outcomes[0]).toMatchObject(failedWith('VALIDATION_ERROR', /lone UTF-16 surrogate/))
    expect(fake.executed).toEqual([])
  })

  it("checks that the Kafka key's id is the row's id (as the PostgreSQL sink does)", async () => {
    const fake = new FakeCassandra()
    const r = await sinkWith(fake).apply([
      msg('users', { op: 'c', lsn: 10, after: user(U1) }, U2),
      msg('users', { op: 'c', lsn: 11, after: user(U2) }, null),
      msg('users', { op: 'd', lsn: 12, before: user(U3) }, U1),
      msg('users', { op: 'c', lsn: 13, after: user(U3) }, U3.toUpperCase()),
    ])
    expect(r.outcomes[0]).toMatchObject(
      failedWith('VALIDATION_ERROR', new RegExp(`key's id "${U2}" is not the row's id \\(${U1}\\)`)),
    )
    expect(r.outcomes[1]).toMatchObject(failedWith('VALIDATION_ERROR', /has no key/))
    expect(r.outcomes[2]).toMatchObject(failedWith('VALIDATION_ERROR', /is not the row's id/))
    expect(r.outcomes[3]).toEqual({ status: 'ok' })
    expect(fake.writes()).toEqual([`upsert users ${U3} @${ts(13)}`])
  })

  it("dead-letters an LSN beyond PostgreSQL's WAL position (near 2^62 it would freeze the row)", async () => {
    let position = 5_000n
    let asked = 0
    const fake = new FakeCassandra()
    const sink = new CassandraBatchSink(options, fake, async () => {
      asked++
      return position
    })
    const hostile = Number(STREAMED_BAND - 2n)
    const r = await sink.apply([
      msg('users', { op: 'u', lsn: hostile, after: user(U1, { version: 99 }) }),
      msg('users', { op: 'c', lsn: 4_000, after: user(U2) }),
    ])
    expect(r.outcomes[0]).toMatchObject(
      failedWith(
        'VALIDATION_ERROR',
        /source\.lsn 3FFFFFFF\/FFFFFFFE is beyond PostgreSQL's current WAL position 0\/1388/,
      ),
    )
    expect(r.outcomes[1]).toEqual({ status: 'ok' })
    expect(fake.writes()).toEqual([`upsert users ${U2} @${ts(4_000)}`])
    expect(asked).toBe(1)

    // Within the margin of the position known: no query. Beyond it, PostgreSQL is asked again: the WAL moved on.
    await sink.apply([msg('users', { op: 'u', lsn: 6_000, after: user(U2, { version: 2 }) })])
    expect(asked).toBe(1)
    position = 1n << 40n
    const r2 = await sink.apply([msg('users', { op: 'u', lsn: 2 ** 39, after: user(U2, { version: 3 }) })])
    expect(r2.outcomes).toEqual([{ status: 'ok' }])
    expect(asked).toBe(2)
  })

  it('fails the batch retriably when the WAL position cannot be read (an LSN is not trusted unchecked)', async () => {
    const sink = new CassandraBatchSink(options, new FakeCassandra(), async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:5432')
    })
    const err = await sink.apply([msg('users', { op: 'c', lsn: 10, after: user(U1) })]).catch((e: unknown) => e)
    expect(isPipelineError(err, 'SINK_UNAVAILABLE')).toBe(true)
    expect((err as { retriable: boolean }).retriable).toBe(true)
    expect((err as Error).message).toMatch(
      /cannot check source\.lsn 0\/A against PostgreSQL's WAL position: connect ECONNREFUSED/,
    )
  })
})

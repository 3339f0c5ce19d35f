import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'

import { PipelineError } from '../../errors/index.js'
import { ORDER, USER, type OrderEvent, type UserEvent } from '../../model/index.js'
import { PostgresSink, buildUpsert, type SinkClient, type SinkPool, type Statement } from './index.js'
import { MAX_VERSION_JUMP } from './sql.js'

// The definitions' statements under the names these checks were written with.
const buildUserUpsert = (events: readonly UserEvent[]): Statement => buildUpsert(USER, events)
const buildOrderUpsert = (events: readonly OrderEvent[]): Statement => buildUpsert(ORDER, events)

const U1 = '11111111-1111-4111-8111-111111111111'
const O1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
const O2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'
const O3 = 'cccccccc-cccc-4ccc-8ccc-cccccccccccc'

type Responder = (statement: Statement | string) => { rows: unknown[] } | Error

class FakePool implements SinkPool {
  readonly queries: string[] = []
  readonly releases: (Error | boolean | undefined)[] = []
  errorListeners = 0
  ended = 0
  connectError: Error | undefined

  constructor(private readonly respond: Responder = () => ({ rows: [] })) {}

  /** The clients handed out, as event emitters (a real pg client emits 'error' when its connection dies). */
  readonly clients: EventEmitter[] = []

  async connect(): Promise<SinkClient> {
    if (this.connectError !== undefined) throw this.connectError
    const emitter = new EventEmitter()
    this.clients.push(emitter)
    return Object.assign(emitter, {
      query: async (statement: Statement | string) => {
        this.queries.push(typeof statement === 'string' ? statement : statement.name)
        const answer = this.respond(statement)
        if (answer instanceof Error) {
          if (/terminat/i.test(answer.message)) {
            // The connection died under the statement: the client emits 'error' from its socket (no caller to
            // catch it: without a listener the process dies), and the query fails a moment later.
            process.nextTick(() => emitter.emit('error', answer))
            await new Promise((r) => setTimeout(r, 5))
          }
          throw answer
        }
        return answer
      },
      release: (err?: Error | boolean) => {
        this.releases.push(err)
      },
    })
  }

  on(): this {
    this.errorListeners++
    return this
  }

  async end(): Promise<void> {
    this.ended++
  }
}

function user(version: number): UserEvent {
  return {
    event_id: `00000000-0000-4000-8000-00000000000${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'UPDATE',
    version,
    occurred_at: '2025-01-01T00:00:00.000Z',
    user_id: U1,
    name: `name ${version}`,
    dob: '1990-01-01',
    created_at: '2025-01-01T00:00:00.000Z',
    modified_at: '2025-01-01T00:00:00.000Z',
    is_deleted: false,
  }
}

function order(id: string, version: number): OrderEvent {
  return {
    event_id: `00000000-0000-4000-9000-00000000000${version}`,
    schema_version: 1,
    event_type: version === 1 ? 'CREATE' : 'UPDATE',
    version,
    occurred_at: '2025-01-01T00:00:00.000Z',
    order_id: id,
    order_status: version === 1 ? 'PLACED' : 'SHIPPED',
    user_id: U1,
    quantity: 1,
    order_total: 5,
    placed_at: '2025-01-01T00:00:00.000Z',
    modified_at: '2025-01-01T00:00:00.000Z',
    is_deleted: false,
  }
}

function name(statement: Statement | string): string {
  return typeof statement === 'string' ? statement : statement.name
}

describe('PostgresSink.writeBatch', () => {
  it('writes users with one statement (its own transaction) and counts applied, stale and superseded', async () => {
    const pool = new FakePool((s) => (name(s).startsWith('cdc_upsert_users') ? { rows: [] } : { rows: [] }))
    const sink = new PostgresSink({ pool })
    expect(pool.errorListeners).toBe(1)
    const result = await sink.writeBatch('user', [user(1), user(2)])
    // Not written: the versions are read to tell stale from too far ahead (MAX_VERSION_JUMP).
    expect(pool.queries).toEqual(['cdc_upsert_users_v1', 'cdc_existing_users_v1'])
    expect(result).toEqual({ applied: 0, appliedIds: new Set(), stale: 1, superseded: 1, missingRefs: [] })
    expect(pool.releases).toEqual([undefined])
  })

  it('reports orders whose user is missing, telling them from stale ones with one query', async () => {
    const pool = new FakePool((s) => {
      if (name(s).startsWith('cdc_upsert_orders')) return { rows: [{ id: O1 }] }
      // O2 already stored at version 5 (stale); O3 absent (its user is missing).
      if (name(s).startsWith('cdc_existing_orders')) return { rows: [{ id: O2, version: '5' }] }
      return { rows: [] }
    })
    const sink = new PostgresSink({ pool })
    const o3a = order(O3, 1)
    const o3b = order(O3, 2)
    const result = await sink.writeBatch('order', [order(O1, 1), order(O2, 2), o3a, o3b])
    expect(pool.queries).toEqual([
      'BEGIN',
      'cdc_lock_users_v1',
      'cdc_upsert_orders_v1',
      'COMMIT',
      'cdc_existing_orders_v1',
    ])
    expect(result.applied).toBe(1)
    expect(result.stale).toBe(1)
    // o3a is folded into o3b, but both wait for their user: neither counts until it resolves.
    expect(result.superseded).toBe(0)
    expect(result.missingRefs).toEqual([o3a, o3b])
  })

  it('skips the existence query when every order was written', async () => {
    const pool = new FakePool((s) => (name(s).startsWith('cdc_upsert_orders') ? { rows: [{ id: O1 }] } : { rows: [] }))
    await new PostgresSink({ pool }).writeBatch('order', [order(O1, 1)])
    expect(pool.queries).toEqual(['BEGIN', 'cdc_lock_users_v1', 'cdc_upsert_orders_v1', 'COMMIT'])
  })

  it('rolls back, classifies the error and keeps the connection when rollback works', async () => {
    const cause = Object.assign(new Error('deadlock detected'), { code: '40P01' })
    const pool = new FakePool((s) => (name(s).startsWith('cdc_upsert') ? cause : { rows: [] }))
    const err = await new PostgresSink({ pool }).writeBatch('order', [order(O1, 1)]).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).code).toBe('SINK_CONFLICT')
    expect((err as PipelineError).cause).toBe(cause)
    expect(pool.queries).toEqual(['BEGIN', 'cdc_lock_users_v1', 'cdc_upsert_orders_v1', 'ROLLBACK'])
    expect(pool.releases).toEqual([undefined])
  })

  it('keeps the connection after a rejected users statement (nothing to roll back)', async () => {
    const cause = Object.assign(new Error('deadlock detected'), { code: '40P01' })
    const pool = new FakePool((s) => (name(s).startsWith('cdc_upsert') ? cause : { rows: [] }))
    const err = await new PostgresSink({ pool }).writeBatch('user', [user(1)]).catch((e: unknown) => e)
    expect((err as PipelineError).code).toBe('SINK_CONFLICT')
    expect(pool.queries).toEqual(['cdc_upsert_users_v1'])
    expect(pool.releases).toEqual([undefined])
  })

  it('discards the connection when even ROLLBACK fails', async () => {
    const cause = new Error('Connection terminated unexpectedly')
    const pool = new FakePool((s) => (s === 'BEGIN' ? { rows: [] } : cause))
    const err = await new PostgresSink({ pool }).writeBatch('order', [order(O1, 1)]).catch((e: unknown) => e)
    expect((err as PipelineError).code).toBe('SINK_UNAVAILABLE')
    expect(pool.releases).toEqual([cause])
  })

  it('survives the connection dying while the client is checked out (its error event has a listener)', async () => {
    const cause = new Error('Connection terminated unexpectedly')
    const pool = new FakePool((s) => (name(s).startsWith('cdc_upsert') ? cause : { rows: [] }))
    const err = await new PostgresSink({ pool }).writeBatch('order', [order(O1, 1)]).catch((e: unknown) => e)
    expect((err as PipelineError).code).toBe('SINK_UNAVAILABLE')
    // Released: the listener is gone again (the pool's own idle listener takes over).
    expect(pool.clients[0].listenerCount('error')).toBe(0)
  })

  it('discards the connection when a users statement fails with the connection', async () => {
    const cause = new Error('Connection terminated unexpectedly')
    const pool = new FakePool(() => cause)
    const err = await new PostgresSink({ pool }).writeBatch('user', [user(1)]).catch((e: unknown) => e)
    expect((err as PipelineError).code).toBe('SINK_UNAVAILABLE')
    expect(pool.releases).toEqual([cause])
  })

  it('classifies a failure to connect', async () => {
    const pool = new FakePool()
    pool.connectError = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    const err = await new PostgresSink({ pool }).writeBatch('user', [user(1)]).catch((e: unknown) => e)
    expect((err as PipelineError).code).toBe('SINK_UNAVAILABLE')
    expect((err as PipelineError).retriable).toBe(true)
  })

  it('does nothing for an empty batch', async () => {
    const pool = new FakePool()
    expect(await new PostgresSink({ pool }).writeBatch('order', [])).toEqual({
      applied: 0,
      appliedIds: new Set(),
      stale: 0,
      superseded: 0,
      missingRefs: [],
    })
    expect(pool.queries).toEqual([])
  })

  it('refuses to write after close, and close is idempotent and leaves a given pool alone', async () => {
    const pool = new FakePool()
    const sink = new PostgresSink({ pool })
    await Promise.all([sink.close(), sink.close()])
    await sink.close()
    expect(pool.ended).toBe(0)
    const err = await sink.writeBatch('user', [user(1)]).catch((e: unknown) => e)
    expect((err as PipelineError).retriable).toBe(false)
  })

  it('ends a pool it created exactly once', async () => {
    const sink = new PostgresSink({ connectionString: 'postgres://u:p@127.0.0.1:1/db' })
    await sink.close()
    await sink.close()
  })

  it('needs a connection string or a pool', () => {
    expect(() => new PostgresSink({})).toThrow('PostgresSink needs a connectionString or a pool')
  })
})

describe('PostgresSink.checkSchema', () => {
  const allColumns = [
    ...['id', 'name', 'dob', 'created_at', 'modified_at', 'is_deleted', 'version', 'last_event_id'].map((c) => ({
      table_name: 'users',
      column_name: c,
    })),
    ...[
      'id',
      'status',
      'user_id',
      'quantity',
      'total_amount',
      'placed_at',
      'modified_at',
      'is_deleted',
      'version',
      'last_event_id',
    ].map((c) => ({ table_name: 'orders', column_name: c })),
    ...[
      'id',
      'name',
      'category',
      'price',
      'stock',
      'created_at',
      'modified_at',
      'is_deleted',
      'version',
      'last_event_id',
    ].map((c) => ({ table_name: 'products', column_name: c })),
  ]

  function poolWith(columns: typeof allColumns, trigger = true): FakePool {
    return new FakePool((s) => {
      if (typeof s === 'string') return { rows: columns }
      return { rows: trigger ? [{ '?column?': 1 }] : [] }
    })
  }

  async function message(pool: FakePool): Promise<string> {
    const err = await new PostgresSink({ pool }).checkSchema().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).code).toBe('CONFIG_ERROR')
    return (err as PipelineError).message
  }

  it('passes on the full schema', async () => {
    const pool = poolWith(allColumns)
    await new PostgresSink({ pool }).checkSchema()
    expect(pool.releases).toEqual([undefined])
  })

  it('names a missing table', async () => {
    expect(await message(poolWith(allColumns.filter((c) => c.table_name !== 'orders')))).toBe(
      'table orders is missing: apply table-creation.sql (npm run stack:up does)',
    )
  })

  it('names missing columns', async () => {
    const columns = allColumns.filter(
      (c) => !(c.table_name === 'users' && ['version', 'last_event_id'].includes(c.column_name)),
    )
    expect(await message(poolWith(columns))).toBe(
      'table users lacks columns version, last_event_id: apply table-creation.sql (npm run stack:up does)',
    )
  })

  it('names a missing trigger', async () => {
    expect(await message(poolWith(allColumns, false))).toBe(
      'trigger users_soft_delete_cascade on users is missing: apply table-creation.sql (npm run stack:up does)',
    )
  })
})

// Issue 11, item 9: a version of 2^53 - 1 would freeze its row (every later event would look stale).
describe('PostgresSink: versions more than MAX_VERSION_JUMP ahead', () => {
  it('bounds the jump in both upserts, for new rows and for existing ones', () => {
    for (const st of [buildUserUpsert([user(1)]), buildOrderUpsert([order(O1, 1)])]) {
      expect(st.text).toMatch(
        /WHERE v\.version <= 1000000 OR EXISTS \(SELECT 1 FROM (users|orders) x WHERE x\.id = v\.id\)/,
      )
      expect(st.text).toMatch(
        /\.version < EXCLUDED\.version AND EXCLUDED\.version <= (users|orders)\.version \+ 1000000/,
      )
    }
    expect(MAX_VERSION_JUMP).toBe(1_000_000)
  })

  it('reports a user too far ahead as rejected (VALIDATION_ERROR), a replay as stale', async () => {
    const pool = new FakePool((s) => {
      if (name(s) === 'cdc_existing_users_v1') return { rows: [{ id: U1, version: '3' }] }
      return { rows: [] }
    })
    const hostile = { ...user(2), version: Number.MAX_SAFE_INTEGER }
    const result = await new PostgresSink({ pool }).writeBatch('user', [hostile])
    expect(result.stale).toBe(0)
    expect(result.rejected?.map((r) => [r.event, r.error.code, r.error.retriable])).toEqual([
      [hostile, 'VALIDATION_ERROR', false],
    ])
    expect(result.rejected?.[0].error.message).toBe(
      "version 9007199254740991 is more than 1000000 ahead of the row's version (3): written, it would freeze the row",
    )
    const replay = await new PostgresSink({ pool }).writeBatch('user', [user(2)])
    expect(replay).toMatchObject({ stale: 1, applied: 0 })
    expect(replay.rejected).toBeUndefined()
  })

  it('tells an order too far ahead from one whose user is missing', async () => {
    const pool = new FakePool(() => ({ rows: [] }))
    const far = { ...order(O1, 2), version: 1_000_001 }
    const near = order(O2, 2)
    const result = await new PostgresSink({ pool }).writeBatch('order', [far, near])
    expect(result.rejected?.map((r) => r.event)).toEqual([far])
    expect(result.rejected?.[0].error.message).toMatch(/ahead of the row's version \(none: no row yet\)/)
    expect(result.missingRefs).toEqual([near])
  })
})

import { describe, expect, it } from 'vitest'
import { isPipelineError } from '../../errors/index.js'
import { REPLAYED_FROM_DLQ_OFFSET } from '../../pipeline/replay.js'
import type { SourceMessage } from '../../pipeline/types.js'
import { CassandraBatchSink, type CqlExecutor } from './batch-sink.js'
import type { CassandraSinkOptions } from './options.js'
import {
  LSN_BACKWARDS_TOLERANCE_BYTES,
  LsnRegression,
  SOURCE_IDENTITY_HEADER,
  checkSource,
  compareIdentity,
  type PgIdentity,
} from './source-identity.js'

const U1 = '11111111-1111-4111-8111-111111111111'
const GiB = 1n << 30n

// A Cassandra holding the replication_source row (LWT insert, update); every other statement succeeds.
class Fake implements CqlExecutor {
  row: Record<string, unknown> | undefined
  writes: string[] = []
  async execute(query: string, params: unknown[]): Promise<unknown> {
    if (query.startsWith('SELECT system_identifier')) return { rows: this.row ? [this.row] : [] }
    if (query.includes('IF NOT EXISTS') && query.startsWith('INSERT')) {
      if (this.row) return { rows: [{ '[applied]': false, ...this.row }] }
      this.row = { system_identifier: params[1], timeline: params[2], lsn_seen: params[3] }
      return { rows: [{ '[applied]': true }] }
    }
    if (query.startsWith('UPDATE')) {
      this.row = { ...this.row, timeline: params[0], lsn_seen: params[1] }
      return {}
    }
    this.writes.push(query)
    return {}
  }
  async shutdown(): Promise<void> {}
}

const pg = (systemIdentifier: string, walLsn: bigint, timeline = 1): PgIdentity => ({
  systemIdentifier,
  timeline,
  walLsn,
})

const user = (id: string) => ({
  id,
  name: 'Ada',
  dob: -3653,
  created_at: null,
  modified_at: null,
  is_deleted: false,
  version: 1,
  last_event_id: null,
})

let offset = 0
function msg(lsn: bigint, headers: SourceMessage['headers'] = {}, op = 'u'): SourceMessage {
  return {
    topic: 'cdc.public.users',
    partition: 0,
    offset: String(offset++),
    key: Buffer.from(JSON.stringify({ id: U1 })),
    value: Buffer.from(
      `{"before":null,"after":${JSON.stringify(user(U1))},"source":{"ts_ms":1,"db":"cdc_db","schema":"public",` +
        `"table":"users","lsn":${lsn}},"op":"${op}"}`,
    ),
    headers,
    timestamp: '0',
  }
}

const options: CassandraSinkOptions = {
  contactPoints: ['127.0.0.1'],
  localDataCenter: 'dc1',
  keyspace: 'ks',
  consistency: 'LOCAL_QUORUM',
  concurrency: 4,
  topics: { 'cdc.public.users': 'users' },
  pgUrl: 'postgres://u:secret@db.example:5433/cdc_db',
}

// PostgreSQL's WAL position for the LSN bound: far beyond every test LSN.
const wal = async () => 1n << 40n

async function sourceChanged(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(isPipelineError(err, 'SOURCE_CHANGED'), String(err)).toBe(true)
  return (err as Error).message
}

describe('the recorded PostgreSQL source', () => {
  it('is recorded on the first start, kept, moved on by a promotion, refused for another cluster', async () => {
    const fake = new Fake()
    expect(await checkSource(fake, 'ks', 'db:5432', pg('111', 1000n))).toMatchObject({ systemIdentifier: '111' })
    expect(fake.row).toMatchObject({ system_identifier: '111', timeline: 1, lsn_seen: 1000n })
    // Same cluster, later: the WAL position seen moves on. A promoted standby: a higher timeline, recorded.
    await checkSource(fake, 'ks', 'db:5432', pg('111', 5000n))
    expect(fake.row).toMatchObject({ lsn_seen: 5000n })
    await checkSource(fake, 'ks', 'db:5432', pg('111', 6000n, 2))
    expect(fake.row).toMatchObject({ timeline: 2, lsn_seen: 6000n })
    const message = await sourceChanged(checkSource(fake, 'ks', 'db:5432', pg('222', 7000n)))
    expect(message).toMatch(
      /^PostgreSQL at db:5432 is cluster 222 \(timeline 1\), but ks was replicated from cluster 111 \(ks\.replication_source\): a restore or a migration.*lost silently\. .*Recovery: re-snapshot .*docs\/faults\.md.*DELETE FROM ks\.replication_source WHERE source = 'postgresql'/,
    )
    expect(fake.row).toMatchObject({ system_identifier: '111' })
  })

  it('refuses a WAL position further below the one seen than the tolerance, and an older timeline', () => {
    const recorded = { systemIdentifier: '1', timeline: 3, lsnSeen: 10n * GiB }
    expect(compareIdentity('x', 'ks', recorded, pg('1', 6n * GiB + 1n, 3))).toBeUndefined()
    expect(compareIdentity('x', 'ks', recorded, pg('1', 6n * GiB - 1n, 3))?.message).toMatch(
      /is at WAL position 1\/7FFFFFFF, more than 4 GiB below 2\/80000000 .*restored to an earlier point/,
    )
    expect(compareIdentity('x', 'ks', recorded, pg('1', 10n * GiB, 2))?.message).toMatch(
      /on timeline 2, below timeline 3/,
    )
  })

  it('tells a key whose LSN went back more than the tolerance', () => {
    const r = new LsnRegression(2)
    r.applied('a', 5n * GiB)
    expect(r.behind('a', 5n * GiB - LSN_BACKWARDS_TOLERANCE_BYTES)).toBeUndefined()
    expect(r.behind('a', 5n * GiB - LSN_BACKWARDS_TOLERANCE_BYTES - 1n)).toBe(5n * GiB)
    // Bounded: the oldest key is forgotten.
    r.applied('b', 1n)
    r.applied('c', 1n)
    expect(r.behind('a', 0n)).toBeUndefined()
  })
})

describe('the sink and its source', () => {
  it('stops on a change event whose header names another cluster, before writing anything', async () => {
    const fake = new Fake()
    const sink = new CassandraBatchSink(options, fake, wal, undefined, undefined, async () => pg('111', 100n))
    const ok = await sink.apply([msg(100n, { [SOURCE_IDENTITY_HEADER]: Buffer.from('111') })])
    expect(ok.outcomes).toEqual([{ status: 'ok' }])
    const writes = fake.writes.length
    const message = await sourceChanged(
      sink.apply([msg(200n), msg(300n, { [SOURCE_IDENTITY_HEADER]: Buffer.from('999') })]),
    )
    expect(message).toMatch(
      /^the change event at cdc\.public\.users partition 0 offset \d+ comes from PostgreSQL cluster '999' \(its cdc\.pg\.system_identifier header\), but ks was replicated from cluster 111/,
    )
    expect(message).not.toMatch(/secret/)
    expect(fake.writes.length).toBe(writes)
  })

  it('stops when PostgreSQL turns out to be another cluster at a re-check', async () => {
    const fake = new Fake()
    fake.row = { system_identifier: '111', timeline: 1, lsn_seen: 100n }
    let now = pg('111', 100n)
    const sink = new CassandraBatchSink(options, fake, wal, undefined, undefined, async () => now)
    await sink.apply([msg(100n)])
    now = pg('222', 50n)
    // Within IDENTITY_RECHECK_MS the identity is not asked again; past it, it is.
    await sink.apply([msg(101n)])
    const realNow = Date.now
    Date.now = () => realNow() + 31_000
    try {
      expect(await sourceChanged(sink.apply([msg(102n)]))).toMatch(/^PostgreSQL at db\.example:5433 is cluster 222/)
    } finally {
      Date.now = realNow
    }
  })

  it('stops on a change far behind the LSN applied to the same row; snapshot rows and replays pass', async () => {
    const fake = new Fake()
    const sink = new CassandraBatchSink({ ...options, pgUrl: undefined }, fake)
    await sink.apply([msg(10n * GiB)])
    // Behind, within the tolerance (a Debezium re-send): stale, no stop.
    expect((await sink.apply([msg(7n * GiB)])).outcomes).toEqual([{ status: 'ok' }])
    expect((await sink.apply([msg(1n, {}, 'r')])).outcomes).toEqual([{ status: 'ok' }])
    expect((await sink.apply([msg(2n, { [REPLAYED_FROM_DLQ_OFFSET]: Buffer.from('4') })])).outcomes).toEqual([
      { status: 'ok' },
    ])
    expect(await sourceChanged(sink.apply([msg(3n)]))).toMatch(
      /^the change of public\.users row '11111111-.*' at lsn 0\/3 .*is more than 4 GiB of WAL behind lsn 2\/80000000 this replicate applied to the same row/,
    )
  })
})

// A short end-to-end run on the real commands, scoped to its own data so that it takes seconds whatever else the
// shared stack holds: produce 2,000 events into this test's topics, consume them into PostgreSQL, replicate the
// changes into Cassandra with a group that starts at the change topics' current end (no backlog to replay), then
// compare this run's rows in both stores. .ci/lts.sh runs it under Node 22 and 24 as well (with the unit suite).
import { describe, expect, it } from 'vitest'
import {
  CDC_TOPICS,
  cassandraClient,
  expectStoresEqual,
  replicateArgs,
  runOk,
  start,
  summaryOf,
  waitForReplicated,
} from './cdc-helpers.js'
import { testAdmin } from './helpers.js'
import { expectedStateOf, pipelineTest, readEvents } from './pipeline-helpers.js'

describe('a short end-to-end run', () => {
  it(`produce, consume, replicate, compare (Node ${process.versions.node})`, async () => {
    const ctx = pipelineTest('e2e-short')
    const group = ctx.group('replicate')
    // The replicate group starts where the change topics end now: it sees this run's changes and nothing older.
    const admin = await testAdmin()
    for (const topic of CDC_TOPICS) {
      const ends = await admin.fetchTopicOffsets(topic)
      await admin.setOffsets({
        groupId: group,
        topic,
        partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })),
      })
    }
    const replicate = start('replicate', replicateArgs(group))

    const produced = await runOk('produce', [...ctx.topicArgs, '--count', '2000', '--seed', String(ctx.seed)])
    expect(produced.stdout).toMatch(/produced\s+2000/)
    const expected = expectedStateOf(ctx, (await readEvents(ctx)).events)
    const consumed = await runOk('consume', [
      ...ctx.topicArgs,
      '--group',
      ctx.group('consume'),
      '--idle-timeout',
      '3',
      '--summary-json',
    ])
    expect(summaryOf(consumed)).toMatchObject({ processed: 2000 })

    await waitForReplicated(group, 120_000)
    const where = {
      users: [...expected.users.keys()],
      orders: [...expected.orders.keys()],
      products: [...expected.tables.products.keys()],
    }
    const rows = await expectStoresEqual(cassandraClient(), where, () => waitForReplicated(group, 60_000))
    expect(rows.users).toBeGreaterThan(100)
    expect(rows.orders).toBeGreaterThan(100)
    // products (a tenth of the mix): in PostgreSQL and in both its Cassandra tables, equal.
    expect(rows.products).toBeGreaterThan(50)

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    expect(summaryOf(done)).toMatchObject({ deadLettered: 0 })
  })
})

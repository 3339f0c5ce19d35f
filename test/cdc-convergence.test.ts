import { randomInt } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  cassandraClient,
  eventTopics,
  expectStoresEqual,
  prepareReplicateGroup,
  replicateArgs,
  runOk,
  start,
  summaryOf,
  uniqueName,
  waitForReplicated,
} from './cdc-helpers.js'

describe('CDC -> Cassandra convergence', () => {
  it('after 20,000 mixed events, every row of users, orders and orders_by_user in Cassandra equals PostgreSQL', async () => {
    const topics = await eventTopics('cdc-conv')
    const group = uniqueName('cdc-conv-replicate')
    const { fromOffsets } = await prepareReplicateGroup(group)
    const seed = randomInt(2 ** 31)

    const produced = await runOk('produce', [
      '--count',
      '20000',
      '--seed',
      String(seed),
      '--users-topic',
      topics.users,
      '--orders-topic',
      topics.orders,
      '--products-topic',
      topics.products,
    ])
    expect(produced.stdout).toMatch(/produced\s+20000/)

    // PostgreSQL sink and Cassandra replication run together; Debezium feeds the second from the first.
    const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '60']))
    const consumed = await runOk('consume', [
      '--group',
      uniqueName('cdc-conv-consume'),
      '--users-topic',
      topics.users,
      '--orders-topic',
      topics.orders,
      '--products-topic',
      topics.products,
      '--idle-timeout',
      '5',
      '--summary-json',
    ])
    const consume = summaryOf(consumed)
    expect(consume).toMatchObject({ processed: 20_000, deadLettered: 0 })

    await waitForReplicated(group)
    const client = cassandraClient()
    const rows = await expectStoresEqual(client, {}, () => waitForReplicated(group))
    expect(rows.users).toBeGreaterThan(1_000)

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    const summary = summaryOf(done)
    expect(summary.deadLettered).toBe(0)
    // The PostgreSQL sink folds several events of one entity in a batch into one row write, so there are fewer
    // row changes than events; thousands all the same.
    expect(summary.processed).toBeGreaterThan(5_000)
    expect(summary.applied).toBeGreaterThan(0)
    console.log(
      `convergence: seed ${seed}, ${rows.users} users and ${rows.orders} orders equal; replicate ` +
        `${fromOffsets ? 'from the baseline' : 'from the beginning'}: ${JSON.stringify(summary)}`,
    )
  })
})

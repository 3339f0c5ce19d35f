import { randomInt } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  cassandraClient,
  eventTopics,
  expectStoresEqual,
  prepareReplicateGroup,
  replicateArgs,
  sleep,
  start,
  summaryOf,
  uniqueName,
  waitForProgress,
  waitForReplicated,
  type Running,
} from './cdc-helpers.js'

describe('CDC -> Cassandra: crashes', () => {
  it('replicate killed with SIGKILL three times mid-run and restarted: Cassandra still equals PostgreSQL', async () => {
    const topics = await eventTopics('cdc-kill')
    const group = uniqueName('cdc-kill-replicate')
    await prepareReplicateGroup(group)

    // About 30 s of steady changes: produce at a fixed rate, consume into PostgreSQL as they come.
    const produce = start('produce', [
      '--count',
      '24000',
      '--rate',
      '800',
      '--batch-size',
      '200',
      '--seed',
      String(randomInt(2 ** 31)),
      '--users-topic',
      topics.users,
      '--orders-topic',
      topics.orders,
      '--products-topic',
      topics.products,
    ])
    await sleep(2_000) // produce creates the topics
    const consume = start('consume', [
      '--group',
      uniqueName('cdc-kill-consume'),
      '--users-topic',
      topics.users,
      '--orders-topic',
      topics.orders,
      '--products-topic',
      topics.products,
      '--idle-timeout',
      '30',
      '--summary-json',
    ])

    const args = replicateArgs(group, ['--idle-timeout', '120'])
    let replicate: Running = start('replicate', args)
    for (let kill = 1; kill <= 3; kill++) {
      // Kill it while it works: once it has committed something, a random moment later (mid-batch more often than not).
      await waitForProgress(group, 90_000)
      await sleep(randomInt(200, 1_500))
      replicate.kill('SIGKILL')
      const killed = await replicate.exited
      expect(killed.signal).toBe('SIGKILL')
      replicate = start('replicate', args)
    }

    const produced = await produce.exited
    expect(produced.code, produced.stderr).toBe(0)
    const consumed = await consume.exited
    expect(consumed.code, consumed.stderr).toBe(0)
    expect(summaryOf(consumed)).toMatchObject({ processed: 24_000, deadLettered: 0 })

    await waitForReplicated(group)
    const client = cassandraClient()
    await expectStoresEqual(client, {}, () => waitForReplicated(group))

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    expect(summaryOf(done).deadLettered).toBe(0)
  })
})

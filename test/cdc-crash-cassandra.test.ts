import { randomInt } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { stack } from './helpers.js'
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
} from './cdc-helpers.js'

describe('CDC -> Cassandra: Cassandra goes away', () => {
  it('Cassandra stopped for 30 s mid-run: the sink waits, resumes by itself, and Cassandra equals PostgreSQL', async () => {
    // Whatever happens, the stack's Cassandra is running again after this test (a no-op when it is).
    onTestFinished(async () => {
      await stack('start-component', 'cassandra')
    })
    const topics = await eventTopics('cdc-cassdown')
    const group = uniqueName('cdc-cassdown-replicate')
    await prepareReplicateGroup(group)

    // About 40 s of steady changes, so that they keep coming while Cassandra is down.
    const produce = start('produce', [
      '--count',
      '16000',
      '--rate',
      '400',
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
    await sleep(2_000)
    const consume = start('consume', [
      '--group',
      uniqueName('cdc-cassdown-consume'),
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
    const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '120', '--log-level', 'warn']))
    await waitForProgress(group, 90_000)

    await stack('stop-component', 'cassandra')
    const stoppedAt = Date.now()
    await sleep(30_000)
    await stack('start-component', 'cassandra')
    const downMs = Date.now() - stoppedAt
    // It waited: still running, nothing dead-lettered, batches retried with backoff meanwhile.
    expect(replicate.output()).toMatch(/batch failed, retrying/)
    expect(replicate.output()).not.toMatch(/sent to DLQ/)

    const consumed = await consume.exited
    expect(consumed.code, consumed.stderr).toBe(0)
    expect(summaryOf(consumed)).toMatchObject({ processed: 16_000, deadLettered: 0 })
    expect((await produce.exited).code).toBe(0)

    await waitForReplicated(group)
    const client = cassandraClient()
    await expectStoresEqual(client, {}, () => waitForReplicated(group))

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    const summary = summaryOf(done)
    expect(summary.deadLettered).toBe(0)
    expect(summary.retries).toBeGreaterThan(0)
    console.log(`Cassandra was away ${Math.round(downMs / 1000)} s; replicate: ${JSON.stringify(summary)}`)
  })
})

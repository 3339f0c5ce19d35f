import { describe, expect, it } from 'vitest'
import { kafka, testAdmin, testTopic, uniqueName } from './helpers.js'

describe('kafkajs against the local three-broker cluster', () => {
  it('creates a topic at RF 3, produces with acks all, consumes in a group, commits, and reads the offset back', async () => {
    const admin = await testAdmin()
    const topic = await testTopic(3)

    const metadata = await admin.fetchTopicMetadata({ topics: [topic] })
    expect(metadata.topics[0].partitions).toHaveLength(3)
    for (const p of metadata.topics[0].partitions) expect(p.replicas).toHaveLength(3)

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const messages = Array.from({ length: 60 }, (_, i) => ({ key: `key-${i}`, value: `value-${i}` }))
    const acks = await producer.send({ topic, acks: -1, messages })
    await producer.disconnect()
    expect(acks.every((a) => a.errorCode === 0)).toBe(true)
    const produced = await admin.fetchTopicOffsets(topic)
    expect(produced.reduce((sum, p) => sum + Number(p.high), 0)).toBe(60)

    const groupId = uniqueName('test-group')
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const seen: string[] = []
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            for (const m of batch.messages) seen.push(m.value!.toString())
            await consumer.commitOffsets([
              { topic, partition: batch.partition, offset: (Number(batch.lastOffset()) + 1).toString() },
            ])
            if (seen.length >= 60) resolve()
          },
        })
        .catch(reject)
    })
    await consumer.disconnect()
    expect(new Set(seen)).toEqual(new Set(messages.map((m) => m.value)))

    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    const byPartition = new Map(committed[0].partitions.map((p) => [p.partition, p.offset]))
    for (const p of produced) expect(byPartition.get(p.partition)).toBe(p.high)
    const groups = await admin.describeGroups([groupId])
    expect(groups.groups[0].state).toBe('Empty')
    await admin.deleteGroups([groupId])
  })
})

import type { Admin } from 'kafkajs'
import { runInThisContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import { dropKafkajsNegativeTimeoutWarning, ensureTopics } from './client.js'

// An admin double holding one existing topic with the given replication factor and configs.
function fakeAdmin(rf: number, configs: Record<string, string>): Admin {
  return {
    listTopics: async () => ['t.dlq'],
    createTopics: async () => true,
    fetchTopicMetadata: async () => ({
      topics: [
        { name: 't.dlq', partitions: [0, 1, 2].map((p) => ({ partitionId: p, replicas: [1, 2, 3].slice(0, rf) })) },
      ],
    }),
    describeConfigs: async () => ({
      resources: [
        {
          resourceName: 't.dlq',
          configEntries: Object.entries(configs).map(([configName, configValue]) => ({ configName, configValue })),
        },
      ],
    }),
  } as unknown as Admin
}

const spec = {
  topic: 't.dlq',
  partitions: 3,
  replicationFactor: 3,
  configs: { 'min.insync.replicas': '2', 'retention.ms': '-1', 'retention.bytes': '-1' },
}

describe('ensureTopics', () => {
  it('says which differences of an existing topic make it less durable than its spec', async () => {
    const [weak] = await ensureTopics(
      fakeAdmin(1, { 'min.insync.replicas': '1', 'retention.ms': '604800000', 'retention.bytes': '-1' }),
      [spec],
    )
    expect(weak).toMatchObject({ created: false, partitions: 3 })
    expect(weak!.weaker).toEqual([
      'replication factor 1 (expected 3)',
      'min.insync.replicas=1 (expected 2)',
      'retention.ms=604800000 (expected -1)',
    ])
  })

  it('does not count a more durable topic as weaker', async () => {
    const [strong] = await ensureTopics(
      fakeAdmin(3, { 'min.insync.replicas': '3', 'retention.ms': '-1', 'retention.bytes': '-1' }),
      [{ ...spec, configs: { ...spec.configs, 'retention.ms': '2592000000' } }],
    )
    expect(strong!.differences).toEqual(['min.insync.replicas=3 (expected 2)', 'retention.ms=-1 (expected 2592000000)'])
    expect(strong!.weaker).toEqual([])
  })
})

describe('ensureTopics creating a topic', () => {
  // A new topic as a cluster reports it while it settles: first unknown to the broker asked, then partly led.
  function settlingAdmin(answers: (() => unknown)[]): Admin & { asked: number; created: unknown[] } {
    const admin = {
      asked: 0,
      created: [] as unknown[],
      listTopics: async () => [],
      createTopics: async (o: unknown) => {
        admin.created.push(o)
        return true
      },
      fetchTopicMetadata: async () => answers[Math.min(admin.asked++, answers.length - 1)]!(),
    }
    return admin as unknown as Admin & { asked: number; created: unknown[] }
  }
  const unknownTopic = () => {
    throw Object.assign(new Error('This server does not host this topic-partition'), {
      type: 'UNKNOWN_TOPIC_OR_PARTITION',
    })
  }
  const led = (leaders: number[]) => () => ({
    topics: [
      { name: 't.dlq', partitions: leaders.map((leader, p) => ({ partitionId: p, leader, replicas: [1, 2, 3] })) },
    ],
  })

  it('waits through UNKNOWN_TOPIC_OR_PARTITION and leaderless partitions until every partition is led', async () => {
    const admin = settlingAdmin([unknownTopic, unknownTopic, led([1, -1, 2]), led([1, 3, 2])])
    const [report] = await ensureTopics(admin, [spec], { intervalMs: 1 })
    expect(report).toMatchObject({ topic: 't.dlq', created: true, partitions: 3 })
    expect(admin.asked).toBe(4)
    expect(admin.created).toMatchObject([{ waitForLeaders: false }])
  })

  it('gives up with one line naming what is missing when the partitions get no leader in time', async () => {
    const admin = settlingAdmin([led([1, -1, -1])])
    await expect(ensureTopics(admin, [spec], { intervalMs: 1, timeoutMs: 20 })).rejects.toThrow(
      'topics created but without leaders in time: t.dlq 1 of 3 partitions led',
    )
  })

  it('throws any other metadata error at once', async () => {
    const denied = () => {
      throw Object.assign(new Error('Not authorized to access topics'), { type: 'TOPIC_AUTHORIZATION_FAILED' })
    }
    const admin = settlingAdmin([denied])
    await expect(ensureTopics(admin, [spec], { intervalMs: 1 })).rejects.toThrow('Not authorized')
    expect(admin.asked).toBe(1)
  })
})

describe("kafkajs' negative-timeout warning (Node 24)", () => {
  const seen: string[] = []
  const listener = (w: Error) => seen.push(`${w.name}: ${w.message}`)
  afterEach(() => {
    process.off('warning', listener)
    seen.length = 0
  })

  /** Emits a TimeoutNegativeWarning from code whose stack names `file`, as Node's timers do for a negative delay. */
  const emitFrom = (file: string) =>
    runInThisContext(`process.emitWarning('-1796124176681 is a negative number.', 'TimeoutNegativeWarning')`, {
      filename: file,
    })

  it("drops it when kafkajs' request queue raised it, and no other warning", async () => {
    dropKafkajsNegativeTimeoutWarning()
    dropKafkajsNegativeTimeoutWarning()
    process.on('warning', listener)
    emitFrom('/app/node_modules/kafkajs/src/network/requestQueue/index.js')
    emitFrom('/app/internal/mine.js')
    process.emitWarning('something else', 'ExperimentalWarning')
    await new Promise((resolve) => setImmediate(resolve))
    expect(seen).toEqual([
      'TimeoutNegativeWarning: -1796124176681 is a negative number.',
      'ExperimentalWarning: something else',
    ])
  })
})

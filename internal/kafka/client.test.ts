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

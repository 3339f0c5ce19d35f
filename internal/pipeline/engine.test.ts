import type { EachBatchPayload, Kafka } from 'kafkajs'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { Engine } from './engine.js'

// A sink that applies everything, as a module URL the engine can load (workers: 0 runs it in this thread).
const okSink =
  'data:text/javascript,export async function createBatchSink() { return { ' +
  'apply: async (m) => ({ outcomes: m.map(() => ({ status: "ok" })), applied: m.length, stale: 0, latenciesMs: [] }), ' +
  'close: async () => {} } }'

// A kafkajs consumer that hands eachBatch to the test instead of fetching.
function fakeKafka() {
  let eachBatch: ((p: EachBatchPayload) => Promise<void>) | undefined
  const consumer = {
    events: { GROUP_JOIN: 'join', CRASH: 'crash' },
    on: () => undefined,
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (o: { eachBatch: (p: EachBatchPayload) => Promise<void> }) => void (eachBatch = o.eachBatch),
    stop: async () => undefined,
    disconnect: async () => undefined,
  }
  return { kafka: { consumer: () => consumer } as unknown as Kafka, eachBatch: () => eachBatch! }
}

function payload(offsets: number[], commit: () => Promise<void>): EachBatchPayload {
  const messages = offsets.map((o) => ({
    offset: String(o),
    key: null,
    value: Buffer.from('{}'),
    headers: {},
    timestamp: '0',
  }))
  return {
    batch: {
      topic: 'orders',
      partition: 0,
      messages,
      isEmpty: () => messages.length === 0,
      lastOffset: () => messages[messages.length - 1]!.offset,
    },
    resolveOffset: () => undefined,
    heartbeat: async () => undefined,
    isRunning: () => true,
    isStale: () => false,
    pause: () => () => undefined,
    commitOffsetsIfNecessary: commit,
  } as unknown as EachBatchPayload
}

describe('Engine', () => {
  it('counts a batch whose commit failed as abandoned: it is delivered again, and processed counts it once', async () => {
    const { kafka, eachBatch } = fakeKafka()
    const engine = new Engine({
      kafka,
      groupId: 'g',
      topics: ['orders'],
      sink: { module: okSink, options: {} },
      workers: 0,
      retry: { attempts: 3, baseMs: 1, maxMs: 2, maxElapsedMs: 1_000 },
      deadLetters: { send: async () => undefined },
      idleTimeoutMs: 0,
      taskTimeoutMs: 5_000,
      fromBeginning: true,
      log: pino({ level: 'silent' }),
    })
    await engine.start()
    const notCoordinator = Object.assign(new Error('This is not the correct coordinator for this group'), {
      type: 'NOT_COORDINATOR',
    })
    // The coordinator moved: the commit throws (kafkajs rejoins and fetches the batch again).
    await expect(eachBatch()(payload([0, 1, 2], () => Promise.reject(notCoordinator)))).rejects.toBe(notCoordinator)
    // The redelivery commits.
    await eachBatch()(payload([0, 1, 2], async () => undefined))
    expect(engine.stats).toMatchObject({ received: 6, abandoned: 3, commits: 1 })
    expect(engine.stats.received - engine.stats.abandoned).toBe(3)
    await engine.stop()
  })
})

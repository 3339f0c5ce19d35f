// The kafkajs adapter of the ports (this folder's tests may use kafkajs: it is the adapter's subject).
import { CompressionTypes, type Consumer, type Producer } from 'kafkajs'
import { describe, expect, it } from 'vitest'
import { KafkajsConsumerGroup, producerPort } from './kafkajs-client.js'
import type { BatchContext } from './ports.js'

describe('producerPort', () => {
  it("maps the port's compression names to kafkajs' codes and leaves the rest of the request as it is", async () => {
    const seen: unknown[] = []
    const p = producerPort({ sendBatch: async (b: unknown) => (seen.push(b), []) } as unknown as Producer)
    const topicMessages = [{ topic: 't', messages: [{ key: 'k', value: null, partition: 0 }] }]
    await p.sendBatch({ acks: -1, topicMessages, compression: 'gzip' })
    await p.sendBatch({ acks: -1, topicMessages, compression: 'none' })
    await p.sendBatch({ acks: -1, topicMessages })
    expect(seen).toEqual([
      { acks: -1, topicMessages, compression: CompressionTypes.GZIP },
      { acks: -1, topicMessages, compression: CompressionTypes.None },
      { acks: -1, topicMessages },
    ])
  })
})

describe('KafkajsConsumerGroup', () => {
  function fakeConsumer() {
    const listeners = new Map<string, (e: { payload: unknown }) => void>()
    const runs: Record<string, unknown>[] = []
    const consumer = {
      events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' },
      on: (event: string, fn: (e: { payload: unknown }) => void) => void listeners.set(event, fn),
      run: async (o: Record<string, unknown>) => void runs.push(o),
    }
    return { consumer: consumer as unknown as Consumer, listeners, runs }
  }

  it('never commits automatically, resolves only when asked, and hands the batch handler through unwrapped', async () => {
    const f = fakeConsumer()
    const group = new KafkajsConsumerGroup(f.consumer)
    const eachBatch = async (_: BatchContext) => undefined
    await group.run({ eachBatch, partitionsConsumedConcurrently: 64 })
    await group.run({ eachBatch, autoResolve: true })
    expect(f.runs).toEqual([
      { autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 64, eachBatch },
      { autoCommit: false, eachBatchAutoResolve: true, eachBatch },
    ])
    // The same function: kafkajs' payload reaches the engine as it is (no per-batch or per-message copy).
    expect(f.runs[0].eachBatch).toBe(eachBatch)
  })

  it("reports GROUP_JOIN's member assignment and CRASH's error and restart flag", () => {
    const f = fakeConsumer()
    const group = new KafkajsConsumerGroup(f.consumer)
    const assigned: unknown[] = []
    const crashes: unknown[] = []
    group.onAssigned((a) => assigned.push(a))
    group.onCrash((err, restart) => crashes.push([err.message, restart]))
    f.listeners.get('consumer.group_join')!({ payload: { memberAssignment: { orders: [0, 2] } } })
    f.listeners.get('consumer.crash')!({ payload: { error: new Error('gone'), restart: false } })
    expect(assigned).toEqual([{ orders: [0, 2] }])
    expect(crashes).toEqual([['gone', false]])
  })
})

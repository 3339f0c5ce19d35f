// Issue 11 items 2, 6 and 7: the DLQ topics keep what they are given (retention forever, RF 3, min ISR 2, and an
// existing weaker one is refused at start), and a decompression bomb (a 20 MB value, gzipped on the wire) is
// dead-lettered as VALIDATION_ERROR before it is parsed; the DLQ, which refuses the record whole, gets a truncated
// copy with the original's coordinates and size, and the consumer goes on with the rest.
import { randomBytes } from 'node:crypto'
import { CompressionTypes, type ConfigResourceTypes } from 'kafkajs'
import { describe, expect, it } from 'vitest'
import { encodeEvent, type UserEvent } from '../internal/model/index.js'
import { dlqTopicFor } from '../internal/pipeline/index.js'
import { EventGenerator, partitionFor } from '../internal/producer/index.js'
import { createTopicsLed, kafka, withAdmin } from './helpers.js'
import {
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  headerText,
  pipelineTest,
  readDlq,
  readEvents,
  runCommand,
} from './pipeline-helpers.js'

const TOPIC = 2 as ConfigResourceTypes

/** RF, min ISR, retention.ms and retention.bytes of a topic. */
async function durability(topic: string) {
  return withAdmin(async (admin) => {
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const rf = Math.min(...md.topics[0]!.partitions.map((p) => p.replicas.length))
    const names = ['min.insync.replicas', 'retention.ms', 'retention.bytes']
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: TOPIC, name: topic, configNames: names }],
    })
    const entries = resources[0]!.configEntries
    const config = Object.fromEntries(names.map((n) => [n, entries.find((e) => e.configName === n)?.configValue]))
    return { rf, partitions: md.topics[0]!.partitions.length, ...config }
  })
}

describe('DLQ topics', () => {
  it('are created to keep dead letters forever on 3 replicas (min ISR 2)', async () => {
    const ctx = pipelineTest('dlqtopics')
    await ctx.createTopics()
    const run = await runCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      ctx.group(),
      '--idle-timeout',
      '2',
      '--summary-json',
      '--log-level',
      'warn',
    ])
    expectExit(run)
    for (const t of [ctx.users, ctx.orders]) {
      expect(await durability(dlqTopicFor(t))).toEqual({
        rf: 3,
        partitions: 3,
        'min.insync.replicas': '2',
        'retention.ms': '-1',
        'retention.bytes': '-1',
      })
    }
  })

  it('refuses to start on an existing DLQ topic that keeps less (the 7-day default) or has fewer replicas', async () => {
    const ctx = pipelineTest('dlqweak')
    await ctx.createTopics()
    await withAdmin((admin) =>
      createTopicsLed(admin, { topics: [{ topic: dlqTopicFor(ctx.users), numPartitions: 3, replicationFactor: 2 }] }),
    )
    const run = await runCommand('consume', [...ctx.topicArgs, '--group', ctx.group(), '--log-level', 'silent'])
    console.log(`[dlqweak] exit ${run.code}: ${run.stderr.trim()}`)
    expect(run.code).toBe(2)
    const lines = run.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(
        `^consume: DLQ topic ${dlqTopicFor(ctx.users)} is less durable than required ` +
          `\\(replication factor 2 \\(expected 3\\), retention.ms=604800000 \\(expected -1\\)\\)`,
      ),
    )
    // Refused, not altered.
    expect(await durability(dlqTopicFor(ctx.users))).toMatchObject({ rf: 2, 'retention.ms': '604800000' })
  })
})

describe('a decompression bomb', () => {
  it('is dead-lettered as VALIDATION_ERROR (a truncated copy in the DLQ) while the consumer goes on with the rest', async () => {
    const ctx = pipelineTest('bomb')
    // The users topic takes the bomb's compressed size (about 1.6 MB; the broker's default is 1 MB).
    await withAdmin((admin) =>
      createTopicsLed(admin, {
        topics: [
          {
            topic: ctx.users,
            numPartitions: 3,
            replicationFactor: 3,
            configEntries: [
              { name: 'min.insync.replicas', value: '2' },
              { name: 'max.message.bytes', value: String(8 * 1024 * 1024) },
            ],
          },
          {
            topic: ctx.orders,
            numPartitions: 5,
            replicationFactor: 3,
            configEntries: [{ name: 'min.insync.replicas', value: '2' }],
          },
          {
            topic: ctx.products,
            numPartitions: 3,
            replicationFactor: 3,
            configEntries: [{ name: 'min.insync.replicas', value: '2' }],
          },
        ],
      }),
    )
    const good = new EventGenerator({ seed: ctx.seed, topics: ctx.topicNames }).take(600)
    const aUser = good.find((g) => g.entity === 'user')!.event as UserEvent
    // 20 MB of name: 1.5 MB of random bytes (incompressible, so that even gzipped the record is too large for the
    // DLQ topic) and the rest one letter repeated.
    const noise = randomBytes(1_200_000).toString('base64')
    const name = noise + 'N'.repeat(20 * 1024 * 1024 - noise.length)
    const bomb = encodeEvent({ ...aUser, version: 1_000, name })
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const send = async (events: typeof good) => {
      const partitions = { [ctx.users]: 3, [ctx.orders]: 5, [ctx.products]: 3 }
      for (const topic of [ctx.users, ctx.orders, ctx.products]) {
        const messages = events
          .filter((g) => g.topic === topic)
          .map((g) => ({
            key: g.key,
            value: encodeEvent(g.event),
            partition: partitionFor(topic, g.key, partitions[topic]!),
          }))
        if (messages.length > 0) await producer.send({ topic, acks: -1, messages })
      }
    }
    await send(good.slice(0, 300))
    const bombPartition = partitionFor(ctx.users, aUser.user_id, 3)
    const [bombAck] = await producer.send({
      topic: ctx.users,
      acks: -1,
      compression: CompressionTypes.GZIP,
      messages: [{ key: aUser.user_id, value: bomb, partition: bombPartition }],
    })
    await send(good.slice(300))
    await producer.disconnect()

    const started = Date.now()
    const run = await runCommand(
      'consume',
      [...ctx.topicArgs, '--group', ctx.group(), '--idle-timeout', '5', '--summary-json', '--log-level', 'warn'],
      { timeoutMs: 180_000 },
    )
    expectExit(run)
    const summary = consumeSummary(run.stdout)
    const logs = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { time: number; msg: string })
    const deadAt = logs.find((l) => /sent to DLQ/.test(l.msg))?.time
    console.log(
      `[bomb] consume ${Math.round(run.durationMs)} ms; dead-lettered ${deadAt === undefined ? '?' : deadAt - started} ms after start; ${JSON.stringify(summary)}`,
    )
    expect(summary.reason).toMatch(/^idle/)
    expect(summary.processed).toBe(good.length + 1)
    expect(summary.deadLettered).toBe(1)

    // Every good event applied.
    const { events, rejected } = await readEvents(ctx)
    expect(rejected).toHaveLength(1)
    await expectRowsMatch(expectedStateOf(ctx, events))

    const dlq = await readDlq(ctx)
    expect(dlq).toHaveLength(1)
    const d = dlq[0]!
    expect(d.topic).toBe(dlqTopicFor(ctx.users))
    expect(d.key).toBe(aUser.user_id)
    expect(headerText(d.headers, 'x-error-code')).toBe('VALIDATION_ERROR')
    expect(headerText(d.headers, 'x-error-message')).toBe(
      `value is ${bomb.length} bytes, larger than the 1048576 bytes allowed (--max-value-bytes)`,
    )
    expect(headerText(d.headers, 'x-original-topic')).toBe(ctx.users)
    expect(headerText(d.headers, 'x-original-partition')).toBe(String(bombPartition))
    expect(headerText(d.headers, 'x-original-offset')).toBe(bombAck!.baseOffset)
    expect(headerText(d.headers, 'x-original-value-bytes')).toBe(String(bomb.length))
    expect(headerText(d.headers, 'x-truncated')).toMatch(
      /^too large for the DLQ topic: value of \d+ bytes cut to its first 65536/,
    )
    expect(d.value).toEqual(bomb.subarray(0, 65_536))
  })
})

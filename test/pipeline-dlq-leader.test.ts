// Issue 11 item 1: dead letters written while the leader of a DLQ partition is shut down cleanly. kafkajs 2.2.4 can
// resolve a send without sending a partition whose leader moved (docs/faults.md); the DLQ writer now goes through
// the verified send path (every partition's acknowledgement checked, the rest sent again), and before a resend it
// reads the DLQ back and leaves out the letters already there (an acknowledgement lost after the write landed), so
// every bad record of the corpus ends in the DLQ exactly once and every good event is applied, across the outage.
import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  VerifiedSender,
  partitionFor,
  type PartitionedMessage,
  type KafkaProducer,
  type TopicBatch,
} from '../internal/kafka/index.js'
import { encodeEvent, type OrderEvent, type UserEvent } from '../internal/model/index.js'
import { KafkaDeadLetterWriter, dlqTopicFor, type DeadLetter } from '../internal/pipeline/index.js'
import { EventGenerator, type GeneratedEvent } from '../internal/producer/index.js'
import { coordinatorOf } from './faults/harness.js'
import { createTopicsLed, kafka, sleep, stack, withAdmin } from './helpers.js'
import {
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  headerText,
  pipelineTest,
  readDlq,
  readEvents,
  readTopics,
  startCommand,
  topicEndOffsets,
  waitFor,
  type PipelineTestContext,
} from './pipeline-helpers.js'

// Rounds of good events with bad records among them; the first before the outage, the rest produced one every
// ROUND_GAP_MS while the broker shuts down and is away, so that dead letters are being written all along.
const ROUNDS = 80
const GOOD_PER_ROUND = 50
const BAD_PER_KIND = 5
const ROUND_GAP_MS = 50

interface Record_ {
  topic: string
  key: string | null
  value: Buffer | null
}

/** The corpus' kinds of bad input (test/pipeline-bad-input.test.ts), BAD_PER_KIND of each, every one unique. */
function badCorpus(ctx: PipelineTestContext, aUser: UserEvent, anOrder: OrderEvent, round: number): Record_[] {
  const out: Record_[] = []
  const json = (v: object) => Buffer.from(JSON.stringify(v))
  for (let i = 0; i < BAD_PER_KIND; i++) {
    const id = randomUUID()
    out.push(
      { topic: ctx.users, key: randomUUID(), value: Buffer.from(`{"event_type":"CREATE","user_id":${round}${i}`) },
      { topic: ctx.users, key: randomUUID(), value: Buffer.from([0x7b, 0xff, 0xfe, round, i, 0x7d]) },
      { topic: ctx.orders, key: randomUUID(), value: null },
      { topic: ctx.orders, key: null, value: Buffer.from(`[1,2,3,${round},${i},"${id}"]`) },
      {
        topic: ctx.users,
        key: id,
        value: json({ ...aUser, user_id: id, event_id: randomUUID(), name: 'N'.repeat(60) }),
      },
      {
        topic: ctx.orders,
        key: id,
        value: json({ ...anOrder, order_id: id, event_id: randomUUID(), quantity: -3 }),
      },
    )
  }
  return out
}

const identity = (key: string | null, value: Buffer | null) => `${key}|${value?.toString('hex') ?? 'null'}`

describe('dead letters across a clean shutdown of a DLQ partition leader', () => {
  it('puts every bad record in the DLQ exactly once and applies every good event', async () => {
    const ctx = pipelineTest('dlqleader')
    await ctx.createTopics()
    // The DLQ topics exist from the start, as the pipeline creates them, so their leaders are known.
    await withAdmin((admin) =>
      createTopicsLed(admin, {
        topics: [ctx.users, ctx.orders].map((t) => ({
          topic: dlqTopicFor(t),
          numPartitions: 3,
          replicationFactor: 3,
          configEntries: [
            { name: 'min.insync.replicas', value: '2' },
            { name: 'retention.ms', value: '-1' },
            { name: 'retention.bytes', value: '-1' },
          ],
        })),
      }),
    )
    const generator = new EventGenerator({ seed: ctx.seed, topics: ctx.topicNames })
    const good: GeneratedEvent[] = generator.take(ROUNDS * GOOD_PER_ROUND)
    const aUser = good.find((g) => g.entity === 'user')!.event as UserEvent
    const anOrder = good.find((g) => g.entity === 'order' && g.event.event_type === 'CREATE')!.event as OrderEvent
    const bad = Array.from({ length: ROUNDS }, (_, round) => badCorpus(ctx, aUser, anOrder, round))
    // Rounds produced: the first before the outage, then as many as the outage takes.
    let rounds = 0
    const produced = () => bad.slice(0, rounds).flat()
    const badCount = () => produced().length
    const goodProduced = () => good.slice(0, rounds * GOOD_PER_ROUND)

    // The test's own records go in through the verified send too: none may be lost in the outage either, and none
    // written twice (a lost acknowledgement): before a resend the topics are read back from where they ended before
    // the send and the records already there (every record here is unique) are left out, as the DLQ writer does.
    const partitions: Record<string, number> = { [ctx.users]: 3, [ctx.orders]: 5, [ctx.products]: 3 }
    const sender = new VerifiedSender(() => kafka.orderedProducer())
    await sender.connect()
    onTestFinished(() => sender.disconnect())
    const reader = kafka.partitionReader({ groupPrefix: `${ctx.group()}-input-read-back` })
    onTestFinished(() => reader.close())
    const sendOnce = async (batch: TopicBatch[]) => {
      const topics = batch.map((t) => t.topic)
      const since = await reader.endOffsets(topics, 60_000)
      await sender.send(batch, {
        beforeResend: async (pending, timeoutMs) => {
          const ends = await reader.endOffsets(topics, timeoutMs)
          const ranges = pending.flatMap((t) =>
            [...new Set(t.messages.map((m) => m.partition))].map((partition) => ({
              topic: t.topic,
              partition,
              from: since.get(t.topic)!.get(partition)!,
              to: ends.get(t.topic)!.get(partition)!,
            })),
          )
          const there = new Set(
            (await reader.read(ranges, timeoutMs)).map((r) => identity(r.key?.toString() ?? null, r.value)),
          )
          return pending.map((t) => ({
            topic: t.topic,
            messages: t.messages.filter((m) => !there.has(identity(m.key as string | null, m.value))),
          }))
        },
      })
    }
    const produce = async (round: number) => {
      const records: Record_[] = [
        ...good.slice(round * GOOD_PER_ROUND, round * GOOD_PER_ROUND + GOOD_PER_ROUND / 2).map((g) => ({
          topic: g.topic,
          key: g.key,
          value: encodeEvent(g.event),
        })),
        ...bad[round]!,
        ...good.slice(round * GOOD_PER_ROUND + GOOD_PER_ROUND / 2, (round + 1) * GOOD_PER_ROUND).map((g) => ({
          topic: g.topic,
          key: g.key,
          value: encodeEvent(g.event),
        })),
      ]
      const byTopic = new Map<string, PartitionedMessage[]>()
      records.forEach((r, i) => {
        const n = partitions[r.topic]!
        const partition = r.key === null ? i % n : partitionFor(r.topic, r.key, n)
        let list = byTopic.get(r.topic)
        if (!list) byTopic.set(r.topic, (list = []))
        list.push({ key: r.key, value: r.value, partition })
      })
      await sendOnce([...byTopic].map(([topic, messages]) => ({ topic, messages })))
    }
    const dlqTopics = [dlqTopicFor(ctx.users), dlqTopicFor(ctx.orders)]
    const inDlq = async () => [...(await topicEndOffsets(dlqTopics)).values()].reduce((n, o) => n + Number(o), 0)

    await produce(rounds++)
    const group = ctx.group()
    const consume = startCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      group,
      '--idle-timeout',
      '10',
      '--summary-json',
      '--log-level',
      'warn',
    ])
    // The DLQ producer has written (and knows the leaders) before the broker goes.
    await waitFor('the first round of dead letters', async () => (await inDlq()) >= badCount(), 60_000)

    // The broker leading the most DLQ partitions, not the group's coordinator if another leads as many (a
    // rebalance would hold the dead letters back until the broker is gone).
    const md = await withAdmin((admin) => admin.fetchTopicMetadata({ topics: dlqTopics }))
    const led = new Map<number, number>()
    for (const t of md.topics) for (const p of t.partitions) led.set(p.leader, (led.get(p.leader) ?? 0) + 1)
    const coordinator = await coordinatorOf(group).catch(() => -1)
    const node = [...led].sort(
      (a, b) => b[1] - a[1] || Number(a[0] === coordinator) - Number(b[0] === coordinator),
    )[0]![0]
    const component = `kafka-${node}`
    onTestFinished(async () => {
      await stack('start-component', component)
    })
    const t0 = Date.now()
    let downMs: number
    try {
      // The shutdown (leaderships handed over, then the process ends) runs while rounds keep coming, and 2 s on.
      let stoppedAt = Number.POSITIVE_INFINITY
      const stopped = stack('stop-component', component).then(() => void (stoppedAt = Date.now()))
      while (rounds < ROUNDS && Date.now() - stoppedAt < 2_000) {
        await produce(rounds++)
        await sleep(ROUND_GAP_MS)
      }
      await stopped
      // Dead letters written while it is away (or up to 3 s of it).
      while (Date.now() - stoppedAt < 3_000 && (await inDlq()) < badCount()) await sleep(250)
    } finally {
      await stack('start-component', component)
      downMs = Date.now() - t0
      // The next test needs the whole cluster: every replica back in sync (the coordinators' partitions included).
      await waitFor(
        `${component} back in every in-sync replica set`,
        async () =>
          withAdmin(async (admin) => {
            const topics = ['__consumer_offsets', ctx.users, ctx.orders, ...dlqTopics]
            const md = await admin.fetchTopicMetadata({ topics })
            return md.topics.every((t) => t.partitions.every((p) => p.isr.length === p.replicas.length))
          }),
        120_000,
      )
    }
    const result = await Promise.race([
      consume.exited,
      sleep(180_000).then(() => {
        throw new Error(`consume still running:\n${consume.output().slice(-3000)}`)
      }),
    ])
    expectExit(result)
    const summary = consumeSummary(result.stdout)
    const resends = result.stderr.split('\n').filter((l) => /were not acknowledged; sending them again/.test(l))
    const renewals = result.stderr.split('\n').filter((l) => /replacing the producer/.test(l))
    // Resends that found letters already written (their acknowledgement lost) and left them out.
    const leftOut = result.stderr
      .split('\n')
      .filter((l) => /already written \(their acknowledgement was lost\): left out of the resend/.test(l))
      .reduce((n, l) => n + Number((JSON.parse(l) as { leftOut?: number }).leftOut ?? 0), 0)
    const readBackFailed = result.stderr
      .split('\n')
      .filter((l) => /a second copy is possible|may be written twice/.test(l)).length
    // What the consumer logged about the outage, by message (kafkajs' own retries included).
    const warnings = new Map<string, number>()
    for (const l of result.stderr.split('\n').filter((x) => x.startsWith('{'))) {
      const msg = String((JSON.parse(l) as { msg?: unknown }).msg).slice(0, 80)
      warnings.set(msg, (warnings.get(msg) ?? 0) + 1)
    }
    console.log(`[dlqleader] consume warnings: ${JSON.stringify(Object.fromEntries(warnings))}`)
    console.log(
      `[dlqleader] kafka-${node} (leading ${led.get(node)} of 6 DLQ partitions${node === coordinator ? ', the coordinator' : ''}) away ${downMs} ms; ` +
        `${rounds} rounds, ${badCount()} bad records; DLQ resends ${resends.length}, producer renewals ${renewals.length}, ` +
        `letters left out as already written ${leftOut}, read-backs failed ${readBackFailed}; ${JSON.stringify(summary)}`,
    )
    // The reference is what the source topics hold, record by record: the test's own input producer (kafkajs, with
    // its retries) can itself write an input twice in the outage (tulios/kafkajs#257), and such a copy is a record of
    // its own (its own offset) that the pipeline must process, and dead-letter if bad, exactly once too.
    const { events, records: source } = await readEvents(ctx)
    const inputCopies = source.length - new Set(source.map((r) => identity(r.key, r.value))).size
    console.log(
      `[dlqleader] source records ${source.length} (produced ${goodProduced().length + badCount()}, ` +
        `written twice by the test's input producer ${inputCopies}); input resends left out as already written ${sender.leftOutAsWritten}`,
    )
    // Nothing the test produced is missing from the source, and the source holds nothing else.
    const intended = [
      ...goodProduced().map((g) => identity(g.key, encodeEvent(g.event))),
      ...produced().map((b) => identity(b.key, b.value)),
    ]
    expect([...new Set(source.map((r) => identity(r.key, r.value)))].sort()).toEqual([...new Set(intended)].sort())
    expect(summary.processed).toBe(source.length)

    // Every bad source record in the DLQ exactly once: the DLQ's coordinates are the bad records' coordinates, each once.
    const badIdentities = new Set(produced().map((b) => identity(b.key, b.value)))
    const badInSource = source.filter((r) => badIdentities.has(identity(r.key, r.value)))
    expect(summary.deadLettered).toBe(badInSource.length)
    const dlq = await readDlq(ctx)
    const coordinates = dlq.map((d) =>
      ['x-original-topic', 'x-original-partition', 'x-original-offset'].map((h) => headerText(d.headers, h)).join('/'),
    )
    console.log(`[dlqleader] DLQ records ${dlq.length}, distinct coordinates ${new Set(coordinates).size}`)
    expect(coordinates.sort()).toEqual(badInSource.map((r) => `${r.topic}/${r.partition}/${r.offset}`).sort())
    expect(dlq.map((d) => identity(d.key, d.value)).sort()).toEqual(
      badInSource.map((r) => identity(r.key, r.value)).sort(),
    )
    // Every good event applied.
    expect(events).toHaveLength(source.length - badInSource.length)
    await expectRowsMatch(expectedStateOf(ctx, events))
  })
  it('reads the DLQ back before a resend: letters whose write landed but whose acknowledgement was lost are written once', async () => {
    const ctx = pipelineTest('dlqreadback')
    const topic = dlqTopicFor(ctx.orders)
    // Right after the first test restarted a broker, that broker can answer metadata with UNKNOWN_TOPIC_OR_PARTITION
    // for a moment (kafkajs' default wait for leaders throws it; this one asks again).
    await withAdmin((admin) => createTopicsLed(admin, { topics: [{ topic, numPartitions: 3, replicationFactor: 3 }] }))
    // The first request that reaches the broker loses its answer (as a request timeout): it was written, but the
    // sender does not know, replaces its producer (a new producer id: no broker-side dedupe) and sends again.
    let answered = 0
    const producers: KafkaProducer[] = []
    const lossy = (): KafkaProducer => {
      const p = kafka.orderedProducer()
      producers.push(p)
      return {
        ...p,
        sendBatch: async (batch) => {
          const acks = await p.sendBatch(batch)
          if (answered++ === 0) {
            throw Object.assign(new Error('Request Produce(key: 0, version: 7) timed out'), {
              name: 'KafkaJSRequestTimeoutError',
            })
          }
          return acks
        },
      }
    }
    onTestFinished(async () => {
      for (const p of producers) await p.disconnect().catch(() => undefined)
    })
    const letters: DeadLetter[] = Array.from({ length: 30 }, (_, i) => ({
      message: {
        topic: ctx.orders,
        partition: i % 5,
        offset: String(100 + i),
        key: Buffer.from(randomUUID()),
        value: Buffer.from(`{"bad":${i}}`),
        headers: {},
        timestamp: '0',
      },
      code: 'VALIDATION_ERROR',
      error: 'bad',
      attempts: 1,
      firstFailureAt: new Date(0),
      lastFailureAt: new Date(0),
    }))
    const offsets = async () =>
      (await readTopics([topic])).map((r) => headerText(r.headers, 'x-original-offset')).sort()
    const expected = letters.map((l) => l.message.offset).sort()

    // Without the read-back (the writer before this fix): every letter twice.
    const before = new VerifiedSender(lossy)
    await new KafkaDeadLetterWriter(before, () => 3).send(letters)
    expect(before.renewals).toBe(1)
    expect(await offsets()).toEqual([...expected, ...expected].sort())

    answered = 0
    const reader = kafka.partitionReader({ groupPrefix: `${ctx.group()}-read-back` })
    onTestFinished(() => reader.close())
    const sender = new VerifiedSender(lossy)
    const writer = new KafkaDeadLetterWriter(sender, () => 3, undefined, reader)
    const start = Date.now()
    await writer.send(
      letters.map((l) => ({ ...l, message: { ...l.message, offset: String(1000 + Number(l.message.offset)) } })),
    )
    console.log(`[dlqreadback] 30 letters, lost acknowledgement, read back and resolved in ${Date.now() - start} ms`)
    expect(sender.renewals).toBe(1)
    expect(sender.leftOutAsWritten).toBe(30)
    const written = (await offsets()).filter((o) => Number(o) >= 1000)
    expect(written).toEqual(expected.map((o) => String(1000 + Number(o))).sort())
  })
})

// Issue 6: the fault-injection suite (npm run test:faults). Each test runs the whole pipeline under load (produce
// at a fixed rate, consume into PostgreSQL, Debezium, replicate into Cassandra) while it injects one fault, then
// checks PostgreSQL against the state computed from the events in Kafka and Cassandra against PostgreSQL, row for
// row, and counts what was lost and what took effect twice (both must be 0). The table of all faults is printed at
// the end and kept in docs/faults.md. The last test checks that the stack is healthy again.
import { randomInt, randomUUID } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import type { KafkaHeaders } from '../../internal/kafka/index.js'
import { encodeEvent, type OrderEvent, type UserEvent } from '../../internal/model/index.js'
import { EventGenerator } from '../../internal/producer/index.js'
import { kafka, sleep, stack, waitForDebeziumStreaming } from '../helpers.js'
import { waitForProgress, type Running } from '../cdc-helpers.js'
import { headerText, readTopics } from '../pipeline-helpers.js'
import {
  coordinatorOf,
  formatTable,
  leaderOf,
  logDir,
  restoreAfter,
  runScenario,
  table,
  type FaultTiming,
  type Load,
} from './harness.js'

const RATE = 400

const stillRunning = (r: Running): Promise<boolean> =>
  Promise.race([r.exited.then(() => false), sleep(100).then(() => true)])

/**
 * Takes one of the stack's servers away (SIGKILL or a clean stop) while the pipeline runs, keeps it away for awayMs,
 * then starts it again (and waits until it is up). `whenGone` runs the moment it is gone.
 */
async function away(component: string, how: 'kill' | 'stop', awayMs: number, whenGone?: () => void) {
  restoreAfter(component)
  const t0 = Date.now()
  await stack(how === 'kill' ? 'kill-component' : 'stop-component', component)
  whenGone?.()
  await sleep(awayMs)
  await stack('start-component', component)
  return { downMs: Date.now() - t0, endedAt: Date.now() } satisfies FaultTiming
}

/** One broker away; recovery counts from the moment it is gone: the other two must carry the pipeline meanwhile. */
const brokerAway = (load: Load, how: 'kill' | 'stop', node: number, awayMs: number) =>
  away(`kafka-${node}`, how, awayMs, () => load.recoverFrom(Date.now()))

describe('fault injection: the whole pipeline under load', () => {
  afterAll(() => {
    console.log(`\nFault table (docs/faults.md):\n\n${formatTable(table)}\n\nProcess output: ${logDir}\n`)
  })

  it('one broker, the leader of a busy partition, killed with SIGKILL mid-run and restarted 20 s later', async () => {
    await runScenario({
      fault: 'broker SIGKILL (leader of users/0), back after 20 s',
      events: 16_000,
      rate: RATE,
      inject: async (load) => brokerAway(load, 'kill', await leaderOf(load.ctx.users, 0), 20_000),
    })
  })

  it('the leader of a busy partition shut down cleanly (controlled shutdown) and restarted 15 s later', async () => {
    await runScenario({
      fault: 'broker clean shutdown (leader of orders/0), back after 15 s',
      events: 16_000,
      rate: RATE,
      inject: async (load) => brokerAway(load, 'stop', await leaderOf(load.ctx.orders, 0), 15_000),
    })
  })

  it("the broker coordinating the CDC sink's consumer group shut down cleanly and restarted 15 s later", async () => {
    await runScenario({
      fault: 'broker clean shutdown (coordinator of the replicate group), back after 15 s',
      events: 16_000,
      rate: RATE,
      inject: async (load) => brokerAway(load, 'stop', await coordinatorOf(load.replicateGroup), 15_000),
    })
  })

  it('PostgreSQL restarted mid-run (fast shutdown, 5 s away)', async () => {
    await runScenario({
      fault: 'PostgreSQL restart (5 s away)',
      events: 16_000,
      rate: RATE,
      inject: () => away('postgres', 'stop', 5_000),
    })
  })

  it('Cassandra stopped for 30 s mid-run, then started', async () => {
    await runScenario({
      fault: 'Cassandra stopped for 30 s',
      events: 24_000,
      rate: RATE,
      inject: async (load) => {
        const timing = await away('cassandra', 'stop', 30_000)
        // It waited rather than dead-lettering: the batch retries are in its log.
        expect(load.replicate.output()).toMatch(/batch failed, retrying/)
        return timing
      },
    })
  })

  it('Kafka Connect killed with SIGKILL and restarted: Debezium resumes from its stored offsets', async () => {
    await runScenario({
      fault: 'Kafka Connect SIGKILL, restarted after 5 s',
      events: 16_000,
      rate: RATE,
      inject: async () => {
        const timing = await away('connect', 'kill', 5_000)
        await waitForDebeziumStreaming(180_000)
        return timing
      },
    })
  })

  it('the consumer and the CDC sink killed with SIGKILL three times each, restarted each time', async () => {
    await runScenario({
      fault: 'consume and replicate SIGKILL, 3 times each',
      events: 24_000,
      rate: RATE,
      inject: async (load) => {
        const t0 = Date.now()
        const topics = [load.ctx.users, load.ctx.orders]
        for (let i = 0; i < 3; i++) {
          // Each life first has to get its partitions (the dead member's session lasts 10 s), then work a little.
          await waitForProgress(load.consumeGroup, 90_000, topics)
          await sleep(randomInt(300, 2_000))
          await load.crashConsume()
          await waitForProgress(load.replicateGroup, 90_000)
          await sleep(randomInt(300, 2_000))
          await load.crashReplicate()
        }
        return { downMs: Date.now() - t0, endedAt: Date.now() }
      },
    })
  })

  it('a bad-input corpus written straight into the topics: each bad record in the DLQ with its reason, the pipeline keeps running', async () => {
    const corpus = buildCorpus()
    await runScenario({
      fault: 'bad-input corpus: 11 bad records, 6 valid edge cases',
      events: 16_000,
      rate: RATE,
      extraEvents: corpus.validEvents,
      inject: async (load) => {
        const t0 = Date.now()
        await corpus.write(load)
        // Neither process stopped over it.
        await sleep(5_000)
        expect(await stillRunning(load.consume), 'consume still running after the corpus').toBe(true)
        expect(await stillRunning(load.replicate), 'replicate still running after the corpus').toBe(true)
        return { downMs: null, endedAt: t0 }
      },
      afterDrain: (load) => corpus.check(load),
    })
  })

  it('leaves the stack healthy (npm run stack:status exits 0)', async () => {
    await expect(stack('status')).resolves.toMatch(/cassandra/)
  })
})

interface Bad {
  label: string
  entity: 'user' | 'order'
  key: string | null
  value: Buffer
  code: 'DECODE_ERROR' | 'VALIDATION_ERROR' | 'MISSING_REFERENCE'
  reason: RegExp
}

/**
 * The corpus. Bad records (each must end in its topic's DLQ with its reason) and valid records with a twist (each
 * must be applied once, as the expected state computed from Kafka says): a duplicated event, an order of a deleted
 * user, an update of a user never created.
 */
function buildCorpus() {
  const g = new EventGenerator({ seed: randomInt(2 ** 31), mix: { create: 1, update: 0, delete: 0 } })
  const take = <E extends 'user' | 'order'>(entity: E) => {
    for (;;) {
      const n = g.next()
      if (n.entity === entity) return n.event as E extends 'user' ? UserEvent : OrderEvent
    }
  }
  const now = () => new Date().toISOString()
  const json = (v: unknown) => Buffer.from(JSON.stringify(v))
  const user = take('user')
  const order = take('order')
  const bigName = { ...take('user'), name: 'x'.repeat(1_000_000) }
  const utf8Base = encodeEvent({ ...take('user'), name: 'NAME_HERE' })
  const at = utf8Base.indexOf('NAME_HERE')
  const invalidUtf8 = Buffer.concat([
    utf8Base.subarray(0, at),
    Buffer.from([0x4e, 0xff, 0xfe]),
    utf8Base.subarray(at + 9),
  ])
  const nullKeyUser = take('user')
  const orphanUser = randomUUID()
  const orphan: OrderEvent = { ...take('order'), user_id: orphanUser }
  const bad: Bad[] = [
    {
      label: 'empty value',
      entity: 'user',
      key: randomUUID(),
      value: Buffer.alloc(0),
      code: 'DECODE_ERROR',
      reason: /empty/,
    },
    {
      label: 'not JSON',
      entity: 'order',
      key: randomUUID(),
      value: Buffer.from('order #42 placed'),
      code: 'DECODE_ERROR',
      reason: /not valid JSON/,
    },
    {
      label: 'JSON of the wrong shape (an array)',
      entity: 'order',
      key: randomUUID(),
      value: json([1, 2, 3]),
      code: 'DECODE_ERROR',
      reason: /must be a JSON object/,
    },
    {
      label: 'JSON of the wrong shape (no event fields)',
      entity: 'user',
      key: randomUUID(),
      value: json({ hello: 'world' }),
      code: 'VALIDATION_ERROR',
      reason: /schema_version is required/,
    },
    {
      label: 'wrong types (quantity as a string)',
      entity: 'order',
      key: order.order_id,
      value: json({ ...order, quantity: '3' }),
      code: 'VALIDATION_ERROR',
      reason: /quantity/,
    },
    {
      label: 'unknown event_type',
      entity: 'user',
      key: user.user_id,
      value: json({ ...user, event_type: 'MERGE' }),
      code: 'VALIDATION_ERROR',
      reason: /event_type must be one of/,
    },
    {
      label: 'negative quantity',
      entity: 'order',
      key: order.order_id,
      value: json({ ...order, quantity: -2 }),
      code: 'VALIDATION_ERROR',
      reason: /quantity must be an integer/,
    },
    {
      label: 'a value of about 1 MB',
      entity: 'user',
      key: bigName.user_id,
      value: json(bigName),
      code: 'VALIDATION_ERROR',
      reason: /name must be a string of 1 to 50/,
    },
    {
      label: 'invalid UTF-8',
      entity: 'user',
      key: randomUUID(),
      value: invalidUtf8,
      code: 'DECODE_ERROR',
      reason: /not valid UTF-8/,
    },
    {
      label: 'null key',
      entity: 'user',
      key: null,
      value: encodeEvent(nullKeyUser),
      code: 'VALIDATION_ERROR',
      reason: /no key/,
    },
    {
      label: 'order of a user that never exists',
      entity: 'order',
      key: orphan.order_id,
      value: encodeEvent(orphan),
      code: 'MISSING_REFERENCE',
      reason: new RegExp(`user ${orphanUser}`),
    },
  ]
  // Valid records with a twist.
  const dup = take('user')
  const deleted = take('user')
  const deletedV2: UserEvent = {
    ...deleted,
    event_id: randomUUID(),
    event_type: 'DELETE',
    version: 2,
    is_deleted: true,
    modified_at: now(),
    occurred_at: now(),
  }
  const orderOfDeleted: OrderEvent = { ...take('order'), user_id: deleted.user_id }
  const neverCreated: UserEvent = { ...take('user'), event_type: 'UPDATE', version: 3 }
  const valid: { entity: 'user' | 'order'; key: string; value: Buffer }[] = [
    { entity: 'user', key: dup.user_id, value: encodeEvent(dup) },
    { entity: 'user', key: dup.user_id, value: encodeEvent(dup) }, // the same event again: applied once
    { entity: 'user', key: deleted.user_id, value: encodeEvent(deleted) },
    { entity: 'user', key: deleted.user_id, value: encodeEvent(deletedV2) },
    { entity: 'order', key: orderOfDeleted.order_id, value: encodeEvent(orderOfDeleted) }, // born deleted
    { entity: 'user', key: neverCreated.user_id, value: encodeEvent(neverCreated) }, // full-state upsert
  ]

  return {
    // dup counts once; deleted, deletedV2, orderOfDeleted and neverCreated once each.
    validEvents: 5,
    records: bad.length + valid.length,
    async write(load: Load) {
      const topicOf = (e: 'user' | 'order') => (e === 'user' ? load.ctx.users : load.ctx.orders)
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
      await producer.connect()
      try {
        for (const r of [...bad, ...valid]) {
          await producer.send({ topic: topicOf(r.entity), acks: -1, messages: [{ key: r.key, value: r.value }] })
        }
      } finally {
        await producer.disconnect()
      }
    },
    async check(load: Load): Promise<{ dlq: string }> {
      const dlqRecords = await readTopics([`${load.ctx.users}.dlq`, `${load.ctx.orders}.dlq`], 120_000)
      const missing: string[] = []
      for (const b of bad) {
        const found = dlqRecords.filter((r) => r.key === b.key && r.value !== null && r.value.equals(b.value))
        if (found.length !== 1) {
          missing.push(`${b.label}: ${found.length} DLQ records`)
          continue
        }
        const h: KafkaHeaders = found[0]!.headers
        expect(headerText(h, 'x-error-code'), b.label).toBe(b.code)
        expect(headerText(h, 'x-error-message'), b.label).toMatch(b.reason)
        expect(headerText(h, 'x-original-topic'), b.label).toBe(b.entity === 'user' ? load.ctx.users : load.ctx.orders)
        expect(headerText(h, 'x-original-offset'), b.label).toMatch(/^\d+$/)
      }
      expect(missing, 'every bad record in the DLQ exactly once').toEqual([])
      expect(dlqRecords, 'nothing else in the DLQ').toHaveLength(bad.length)
      const rows = bad.map((b) => `${b.label} -> ${b.code}`).join('; ')
      console.log(`[faults] corpus DLQ: ${rows}`)
      return { dlq: `${bad.length}/${bad.length} bad records, each with its reason` }
    },
  }
}

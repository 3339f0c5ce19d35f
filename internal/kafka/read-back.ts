import { randomUUID } from 'node:crypto'
import { AssignerProtocol, type Admin, type IHeaders, type Kafka, type PartitionAssigner } from 'kafkajs'
import type { Logger } from 'pino'

/** Offsets `from` (inclusive) to `to` (exclusive) of one partition. */
export interface ReadRange {
  topic: string
  partition: number
  from: string
  to: string
}

/** A record read back: where it is, its key, value and headers. */
export interface ReadRecord {
  topic: string
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: IHeaders
  /** The record's timestamp, ms since the epoch (CreateTime: set by the producer that wrote it). */
  timestamp: string
}

/** Reads back what is in some partitions: their end offsets, and the records of offset ranges. */
export interface PartitionReader {
  /** Each topic's partitions' end offsets (the high watermark: what is replicated to the in-sync replicas). */
  endOffsets(topics: string[], timeoutMs: number): Promise<Map<string, Map<number, string>>>
  /** The records of the ranges (at least up to each `to`; empty ranges cost nothing). */
  read(ranges: ReadRange[], timeoutMs: number): Promise<ReadRecord[]>
}

/** Options of {@link KafkaPartitionReader}. */
export interface KafkaPartitionReaderOptions {
  /** Prefix of the throwaway consumer groups (one per read, deleted after it): ACLs can grant it. */
  groupPrefix?: string
  log?: Logger
}

async function within<T>(what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(timeoutMs)} ms`)), timeoutMs)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A {@link PartitionReader} over kafkajs. kafkajs has no group-less `assign` (tulios/kafkajs#373): a read joins a
 * new consumer group of its own, with an assigner that gives its one member exactly the ranges' partitions, start
 * offsets committed for the group before it joins (a seek on join can lose to the first fetch), no commits of its
 * own, and the group deleted after the read.
 */
export class KafkaPartitionReader implements PartitionReader {
  readonly #kafka: Kafka
  readonly #groupPrefix: string
  readonly #log: Logger | undefined
  #admin: Promise<Admin> | undefined

  constructor(kafka: Kafka, options: KafkaPartitionReaderOptions = {}) {
    this.#kafka = kafka
    this.#groupPrefix = options.groupPrefix ?? 'read-back'
    this.#log = options.log
  }

  #adminClient(): Promise<Admin> {
    if (this.#admin === undefined) {
      const admin = this.#kafka.admin()
      this.#admin = admin.connect().then(
        () => admin,
        (err: unknown) => {
          this.#admin = undefined
          throw err
        },
      )
    }
    return this.#admin
  }

  async endOffsets(topics: string[], timeoutMs: number): Promise<Map<string, Map<number, string>>> {
    const deadline = Date.now() + timeoutMs
    // kafkajs' admin gives up at once on a partition whose leader moved (NOT_LEADER_OR_FOLLOWER: it bails without
    // refreshing its metadata), as happens while a broker shuts down: a new admin (fresh metadata) and again.
    for (let attempt = 0; ; attempt++) {
      try {
        return await within(
          'end offsets',
          Math.max(0, deadline - Date.now()),
          (async () => {
            const admin = await this.#adminClient()
            const out = new Map<string, Map<number, string>>()
            for (const topic of topics) {
              out.set(topic, new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high])))
            }
            return out
          })(),
        )
      } catch (err) {
        const backoffMs = Math.min(2_000, 100 * 2 ** attempt)
        if (Date.now() + backoffMs >= deadline) throw err
        this.#log?.debug({ err: (err as Error).message, attempt }, 'end offsets not read; asking again')
        await this.close().catch(() => undefined)
        await new Promise((r) => setTimeout(r, backoffMs))
      }
    }
  }

  async read(ranges: ReadRange[], timeoutMs: number): Promise<ReadRecord[]> {
    const wanted = ranges.filter((r) => BigInt(r.to) > BigInt(r.from))
    if (wanted.length === 0) return []
    const deadline = Date.now() + timeoutMs
    const groupId = `${this.#groupPrefix}-${randomUUID()}`
    const byTopic = new Map<string, ReadRange[]>()
    for (const r of wanted) {
      let list = byTopic.get(r.topic)
      if (list === undefined) byTopic.set(r.topic, (list = []))
      list.push(r)
    }
    const assignment = Object.fromEntries([...byTopic].map(([topic, rs]) => [topic, rs.map((r) => r.partition)]))
    const assigner: PartitionAssigner = () => ({
      name: 'ReadBackAssigner',
      version: 0,
      assign: async ({ members }) =>
        members.map(({ memberId }, i) => ({
          memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({
            version: 0,
            assignment: i === 0 ? assignment : {},
            userData: Buffer.alloc(0),
          }),
        })),
      protocol: ({ topics }) => ({
        name: 'ReadBackAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData: Buffer.alloc(0) }),
      }),
    })
    const consumer = this.#kafka.consumer({ groupId, maxWaitTimeInMs: 200, partitionAssigners: [assigner] })
    const admin = await within('read-back admin', timeoutMs, this.#adminClient())
    try {
      return await within(
        `reading back ${wanted.map((r) => `${r.topic}/${r.partition}@${r.from}-${r.to}`).join(', ')}`,
        Math.max(0, deadline - Date.now()),
        (async () => {
          for (const [topic, rs] of byTopic) {
            await admin.setOffsets({
              groupId,
              topic,
              partitions: rs.map((r) => ({ partition: r.partition, offset: r.from })),
            })
          }
          await consumer.connect()
          for (const topic of byTopic.keys()) await consumer.subscribe({ topic, fromBeginning: true })
          const out: ReadRecord[] = []
          // Per partition: the offset to reach (exclusive).
          const left = new Map(wanted.map((r) => [`${r.topic}/${r.partition}`, BigInt(r.to)]))
          await new Promise<void>((resolve, reject) => {
            consumer.on(consumer.events.CRASH, ({ payload }) => {
              if (!payload.restart) reject(payload.error)
            })
            consumer
              .run({
                autoCommit: false,
                eachBatch: async ({ batch }) => {
                  const id = `${batch.topic}/${batch.partition}`
                  const to = left.get(id)
                  if (to === undefined) return
                  for (const m of batch.messages) {
                    out.push({
                      topic: batch.topic,
                      partition: batch.partition,
                      offset: m.offset,
                      key: m.key,
                      value: m.value,
                      headers: m.headers ?? {},
                      timestamp: m.timestamp,
                    })
                  }
                  if (BigInt(batch.lastOffset()) + 1n >= to) left.delete(id)
                  if (left.size === 0) resolve()
                },
              })
              .catch(reject)
          })
          return out
        })(),
      )
    } finally {
      // Also when the deadline passed mid-connect or mid-fetch: that stops it.
      await consumer.disconnect().catch(() => undefined)
      await admin.deleteGroups([groupId]).catch((err: unknown) => {
        this.#log?.debug({ groupId, err: (err as Error).message }, 'could not delete the read-back group')
      })
    }
  }

  /** Disconnects the admin client (idempotent). */
  async close(): Promise<void> {
    const admin = this.#admin
    this.#admin = undefined
    await (await admin?.catch(() => undefined))?.disconnect()
  }
}

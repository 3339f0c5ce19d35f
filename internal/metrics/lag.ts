// Consumer lag per assigned partition, as Kafka's own tools compute it: the partition's high watermark minus the
// group's committed offset (the log start offset when the group has committed nothing). Asked of the brokers at
// scrape time (one ListOffsets per topic and one OffsetFetch), with the answer kept for a second so that several
// collectors of one scrape share it; a scrape while Kafka does not answer keeps the last figures.
import type { Gauge, Registry } from 'prom-client'
import { Gauge as GaugeClass } from 'prom-client'
import type { KafkaAdmin } from '../kafka/index.js'

/** One assigned partition's offsets. */
export interface PartitionLag {
  topic: string
  partition: number
  committed: bigint
  highWatermark: bigint
  lag: bigint
}

/** Computes the lag of `assignment` for `groupId` (pure: the admin calls are the caller's). */
export async function fetchLag(
  admin: Pick<KafkaAdmin, 'fetchOffsets' | 'fetchTopicOffsets'>,
  groupId: string,
  assignment: Readonly<Record<string, readonly number[]>>,
): Promise<PartitionLag[]> {
  const topics = Object.keys(assignment).filter((t) => assignment[t]!.length > 0)
  if (topics.length === 0) return []
  const committed = await admin.fetchOffsets({ groupId, topics })
  const out: PartitionLag[] = []
  for (const topic of topics) {
    const offsets = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p]))
    const mine = committed.find((c) => c.topic === topic)?.partitions ?? []
    for (const partition of assignment[topic]!) {
      const o = offsets.get(partition)
      if (o === undefined) continue
      const high = BigInt(o.high)
      const c = mine.find((p) => p.partition === partition)?.offset
      // None committed yet ('-1', or a reset kafkajs committed: '-2'): everything from the log start is to do.
      const from = c !== undefined && /^\d+$/.test(c) ? BigInt(c) : BigInt(o.low)
      out.push({ topic, partition, committed: from, highWatermark: high, lag: high > from ? high - from : 0n })
    }
  }
  return out
}

export interface LagMetricsOptions {
  groupId: string
  /** The member's assignment now (empty before it joined). */
  assignment: () => Readonly<Record<string, readonly number[]>>
  /** An admin client, connected on first use. */
  admin: () => KafkaAdmin
  /** A scrape waits at most this long for Kafka (then shows the last figures). Default 5 s. */
  timeoutMs?: number
}

/** Registers cdc_consumer_lag, cdc_consumer_committed_offset and cdc_consumer_high_watermark; close() on exit. */
export function lagMetrics(registry: Registry, o: LagMetricsOptions): { close(): Promise<void> } {
  let admin: KafkaAdmin | undefined
  let connected: Promise<void> | undefined
  let last: PartitionLag[] = []
  let lastAt = 0
  let inFlight: Promise<PartitionLag[]> | undefined
  const timeoutMs = o.timeoutMs ?? 5_000

  const refresh = async (): Promise<PartitionLag[]> => {
    if (Date.now() - lastAt < 1_000) return last
    inFlight ??= (async () => {
      try {
        admin ??= o.admin()
        connected ??= admin.connect()
        await connected
        const work = fetchLag(admin, o.groupId, o.assignment())
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)))
        const got = await Promise.race([work, timeout]).finally(() => clearTimeout(timer))
        work.catch(() => undefined)
        if (got !== undefined) {
          last = got
          lastAt = Date.now()
        }
      } catch {
        connected = undefined
      } finally {
        inFlight = undefined
      }
      return last
    })()
    return inFlight
  }

  const labels = (p: PartitionLag) => ({ topic: p.topic, partition: String(p.partition), group: o.groupId })
  const family = (name: string, help: string, value: (p: PartitionLag) => bigint): Gauge =>
    new GaugeClass({
      name,
      help,
      labelNames: ['topic', 'partition', 'group'],
      registers: [registry],
      async collect() {
        const lag = await refresh()
        this.reset()
        for (const p of lag) this.set(labels(p), Number(value(p)))
      },
    })
  family(
    'cdc_consumer_lag',
    "Messages of an assigned partition not yet committed by the group: high watermark - the group's committed offset",
    (p) => p.lag,
  )
  family('cdc_consumer_committed_offset', "The group's committed offset of an assigned partition", (p) => p.committed)
  family(
    'cdc_consumer_high_watermark',
    'The high watermark (end offset) of an assigned partition',
    (p) => p.highWatermark,
  )
  return {
    async close() {
      await inFlight?.catch(() => undefined)
      if (connected !== undefined) await admin?.disconnect().catch(() => undefined)
    },
  }
}

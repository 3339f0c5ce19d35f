// The ports through which the rest of the pipeline uses Kafka. Their types are the pipeline's own: nothing outside
// internal/kafka imports the client library (an eslint rule enforces it), so moving to another client touches this
// folder only. The kafkajs adapter is in kafkajs-client.ts; its objects satisfy these types as they are (a consumed
// batch is handed through untouched: no per-message copying on the consume path).
import type { Logger } from 'pino'
import type { PartitionReader } from './read-back.js'

/** Record headers as the client gives and takes them: a repeated header is the list of its values, in order. */
export interface KafkaHeaders {
  [name: string]: Buffer | string | (Buffer | string)[] | undefined
}

/** One record of a fetched batch. Offsets and timestamps are int64 as decimal strings. */
export interface ConsumedMessage {
  key: Buffer | null
  value: Buffer | null
  offset: string
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string
  headers?: KafkaHeaders
}

/** The records of one partition fetched together, in offset order. */
export interface ConsumedBatch {
  topic: string
  partition: number
  /** The partition's high watermark when fetched: the offset after its last record. */
  highWatermark: string
  messages: ConsumedMessage[]
  isEmpty(): boolean
  lastOffset(): string
}

/** Offsets to commit for a group: the next offset to read, per partition. */
export interface CommitRequest {
  topics: { topic: string; partitions: { partition: number; offset: string }[] }[]
}

/** What a consumer group hands to its batch handler. */
export interface BatchContext {
  batch: ConsumedBatch
  /** The next fetch of the partition starts after `offset` (it does not commit). */
  resolveOffset(offset: string): void
  heartbeat(): Promise<void>
  /**
   * Commits through the group's current generation (the coordinator the group found, not a cached one): rejects
   * when the coordinator refused it, after which the group must rejoin.
   */
  commitOffsetsIfNecessary(offsets: CommitRequest): Promise<void>
}

/** Some partitions of one topic. */
export interface TopicPartitions {
  topic: string
  partitions: number[]
}

/** Options of {@link KafkaClient.consumerGroup}. */
export interface ConsumerGroupOptions {
  groupId: string
  sessionTimeoutMs?: number
  heartbeatIntervalMs?: number
  /** The most bytes one fetch brings of one partition. */
  maxBytesPerPartition?: number
  /** How long a fetch waits on the broker for data. */
  maxWaitTimeMs?: number
  /** Retries of a failed request before the consumer crashes (and restarts itself, see onCrash). */
  retries?: number
}

/** Options of {@link ConsumerGroup.run}. */
export interface ConsumerRunOptions {
  eachBatch: (context: BatchContext) => Promise<void>
  /** Partitions whose batches may be in flight at once (within a partition, one batch at a time). */
  partitionsConsumedConcurrently?: number
  /**
   * Whether a batch's last offset is resolved (the next fetch starts after it) when the handler returns (default
   * false: the handler calls resolveOffset). Nothing is ever committed automatically: the caller commits.
   */
  autoResolve?: boolean
}

/** A member of a consumer group: subscribed topics, a batch handler, offsets committed only by the caller. */
export interface ConsumerGroup {
  /**
   * Called at every join of the group with this member's assignment (topic to partitions), before the generation's
   * first fetch: partitions paused in the handler are not fetched.
   */
  onAssigned(handler: (assignment: Record<string, number[]>) => void): void
  /** Called when the consumer crashed: `restart` says whether it restarts itself (else it has stopped for good). */
  onCrash(handler: (error: Error, restart: boolean) => void): void
  connect(): Promise<void>
  subscribe(o: { topics: string[]; fromBeginning: boolean }): Promise<void>
  run(o: ConsumerRunOptions): Promise<void>
  pause(partitions: TopicPartitions[]): void
  resume(partitions: TopicPartitions[]): void
  /** The next fetch of the partition starts at `offset`. */
  seek(o: { topic: string; partition: number; offset: string }): void
  stop(): Promise<void>
  disconnect(): Promise<void>
}

/** A partition's offsets: `low` is the log start offset, `high` the offset after its last record. */
export interface PartitionOffsets {
  partition: number
  offset: string
  low: string
  high: string
}

/** A topic as its metadata describes it. */
export interface TopicMetadata {
  name: string
  partitions: { partitionId: number; leader?: number; replicas: number[]; isr?: number[] }[]
}

/** The cluster operations the pipeline uses: topic layout, offsets, groups. */
export interface KafkaAdmin {
  connect(): Promise<void>
  disconnect(): Promise<void>
  listTopics(): Promise<string[]>
  createTopics(o: {
    waitForLeaders?: boolean
    topics: {
      topic: string
      numPartitions?: number
      replicationFactor?: number
      configEntries?: { name: string; value: string }[]
    }[]
  }): Promise<boolean>
  fetchTopicMetadata(o: { topics: string[] }): Promise<{ topics: TopicMetadata[] }>
  fetchTopicOffsets(topic: string): Promise<PartitionOffsets[]>
  /** A group's committed offsets ('-1': none) of some topics. */
  fetchOffsets(o: {
    groupId: string
    topics: string[]
  }): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>
  /** Topic configs (resource type 2 is a topic). */
  describeConfigs(o: {
    includeSynonyms: boolean
    resources: { type: number; name: string; configNames?: string[] }[]
  }): Promise<{ resources: { resourceName: string; configEntries: { configName: string; configValue: string }[] }[] }>
  describeGroups(groupIds: string[]): Promise<{ groups: { groupId: string; state: string; members: unknown[] }[] }>
  deleteGroups(groupIds: string[]): Promise<unknown>
}

/** One topic's records to produce, each with the partition it must go to. */
export interface ProduceBatch {
  topic: string
  messages: { key: Buffer | string | null; value: Buffer | null; partition: number; headers?: KafkaHeaders }[]
}

/** A partition's acknowledgement of a produce request (errorCode 0: written). */
export interface ProduceAck {
  topicName: string
  partition: number
  errorCode: number
}

/** Compression of a produce request. */
export type Compression = 'none' | 'gzip'

/**
 * A producer as VerifiedSender drives it: one request per call, acknowledged by every partition's leader (acks=all
 * when `acks` is -1), each partition's acknowledgement returned.
 */
export interface KafkaProducer {
  connect(): Promise<void>
  disconnect(): Promise<void>
  sendBatch(o: { acks: number; topicMessages: ProduceBatch[]; compression?: Compression }): Promise<ProduceAck[]>
}

/** Options of {@link KafkaClient.orderedProducer}. */
export interface ProducerOptions {
  /**
   * Idempotent (the default): the client's own retries never write a request twice. Off, the caller makes resends
   * safe itself (the DLQ writer reads back, with `retries: 0`).
   */
  idempotent?: boolean
  /** Retries of the client itself before a send fails (default the client's; 0: none, every failure to the caller). */
  retries?: number
}

/** Options of {@link KafkaClient.partitionReader}. */
export interface PartitionReaderOptions {
  /** Prefix of the throwaway consumer groups a read may use (ACLs can grant it). */
  groupPrefix?: string
  log?: Logger
}

/** A connection to a Kafka cluster: what the pipeline builds its consumers, producers and admin clients from. */
export interface KafkaClient {
  admin(): KafkaAdmin
  consumerGroup(options: ConsumerGroupOptions): ConsumerGroup
  /**
   * A producer with one request in flight per broker (per-partition order holds) that creates no topics, idempotent
   * unless told otherwise. VerifiedSender drives it and checks its acknowledgements.
   */
  orderedProducer(options?: ProducerOptions): KafkaProducer
  /** Reads back what is in some partitions (the DLQ writer, before a resend: read-back.ts). */
  partitionReader(options?: PartitionReaderOptions): PartitionReader & { close(): Promise<void> }
}

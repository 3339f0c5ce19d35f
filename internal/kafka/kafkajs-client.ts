// The kafkajs adapter of the ports in ports.ts: the one file (with client.ts, preflight.ts and verified-send.ts' murmur2)
// that knows kafkajs' own API. Its objects satisfy the ports as they are, so a fetched batch reaches the engine
// untouched (no per-message copying).
import { CompressionTypes, Kafka, type Consumer, type KafkaConfig, type Producer } from 'kafkajs'
import type {
  Compression,
  ConsumerGroup,
  ConsumerGroupOptions,
  ConsumerRunOptions,
  KafkaAdmin,
  KafkaClient,
  KafkaProducer,
  PartitionReaderOptions,
  ProducerOptions,
  TopicPartitions,
} from './ports.js'
import { KafkaPartitionReader } from './read-back.js'

const COMPRESSION: Record<Compression, CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
}

/**
 * A kafkajs client that is also the pipeline's {@link KafkaClient}. Tests and tools that need kafkajs itself (a raw
 * producer to write test records) keep its own methods.
 */
export class KafkajsClient extends Kafka implements KafkaClient {
  constructor(config: KafkaConfig) {
    super(config)
  }

  override admin(): ReturnType<Kafka['admin']> & KafkaAdmin {
    return super.admin()
  }

  consumerGroup(o: ConsumerGroupOptions): ConsumerGroup {
    return new KafkajsConsumerGroup(
      this.consumer({
        groupId: o.groupId,
        ...(o.sessionTimeoutMs === undefined ? {} : { sessionTimeout: o.sessionTimeoutMs }),
        ...(o.heartbeatIntervalMs === undefined ? {} : { heartbeatInterval: o.heartbeatIntervalMs }),
        ...(o.maxBytesPerPartition === undefined ? {} : { maxBytesPerPartition: o.maxBytesPerPartition }),
        ...(o.maxWaitTimeMs === undefined ? {} : { maxWaitTimeInMs: o.maxWaitTimeMs }),
        ...(o.retries === undefined ? {} : { retry: { retries: o.retries } }),
      }),
    )
  }

  partitionReader(o: PartitionReaderOptions = {}): KafkaPartitionReader {
    return new KafkaPartitionReader(this, o)
  }

  orderedProducer(o: ProducerOptions = {}): KafkaProducer {
    return producerPort(
      this.producer({
        idempotent: o.idempotent ?? true,
        // kafkajs keeps idempotent sequence numbers correct only with one request in flight per broker.
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        ...(o.retries === undefined
          ? {}
          : { retry: { retries: o.retries, initialRetryTime: 200, maxRetryTime: 10_000 } }),
      }),
    )
  }
}

/** A kafkajs producer as the {@link KafkaProducer} port (the compression named, not kafkajs' code). */
export function producerPort(p: Producer): KafkaProducer {
  return {
    connect: () => p.connect(),
    disconnect: () => p.disconnect(),
    sendBatch: ({ compression, ...rest }) =>
      p.sendBatch(compression === undefined ? rest : { ...rest, compression: COMPRESSION[compression] }),
  }
}

/** A kafkajs consumer as the {@link ConsumerGroup} port: offsets are never committed automatically. */
export class KafkajsConsumerGroup implements ConsumerGroup {
  readonly #c: Consumer

  constructor(consumer: Consumer) {
    this.#c = consumer
  }

  onAssigned(handler: (assignment: Record<string, number[]>) => void): void {
    this.#c.on(this.#c.events.GROUP_JOIN, ({ payload }) => handler(payload.memberAssignment))
  }

  onCrash(handler: (error: Error, restart: boolean) => void): void {
    this.#c.on(this.#c.events.CRASH, ({ payload }) => handler(payload.error, payload.restart))
  }

  connect(): Promise<void> {
    return this.#c.connect()
  }

  subscribe(o: { topics: string[]; fromBeginning: boolean }): Promise<void> {
    return this.#c.subscribe(o)
  }

  run(o: ConsumerRunOptions): Promise<void> {
    return this.#c.run({
      autoCommit: false,
      eachBatchAutoResolve: o.autoResolve ?? false,
      ...(o.partitionsConsumedConcurrently === undefined
        ? {}
        : { partitionsConsumedConcurrently: o.partitionsConsumedConcurrently }),
      // kafkajs' payload is the port's BatchContext as it is: handed through.
      eachBatch: o.eachBatch,
    })
  }

  pause(partitions: TopicPartitions[]): void {
    this.#c.pause(partitions)
  }

  resume(partitions: TopicPartitions[]): void {
    this.#c.resume(partitions)
  }

  seek(o: { topic: string; partition: number; offset: string }): void {
    this.#c.seek(o)
  }

  stop(): Promise<void> {
    return this.#c.stop()
  }

  disconnect(): Promise<void> {
    return this.#c.disconnect()
  }
}

export { createKafka, ensureTopics } from './client.js'
export type { KafkaClientOptions, TopicSpec, TopicReport } from './client.js'
export { DEFAULT_CONNECT_TIMEOUT_MS, connectPreflightAdmin, probeKafka } from './preflight.js'
export type { PreflightOptions, ProbeResult } from './preflight.js'
export { groupProgress } from './offsets.js'
export type { GroupProgress } from './offsets.js'
export { MAX_BEFORE_RESEND_MS, VerifiedSender, groupByTopic, isRecordTooLarge, partitionFor } from './verified-send.js'
export type {
  BeforeResend,
  PartitionedMessage,
  SendOptions,
  TopicBatch,
  VerifiedSenderOptions,
} from './verified-send.js'
export { KafkaPartitionReader } from './read-back.js'
export type { KafkaPartitionReaderOptions, PartitionReader, ReadRange, ReadRecord } from './read-back.js'

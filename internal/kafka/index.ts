export { createKafka, ensureTopics } from './client.js'
export type { KafkaClientOptions, TopicSpec, TopicReport } from './client.js'
export { DEFAULT_CONNECT_TIMEOUT_MS, connectPreflightAdmin, probeKafka } from './preflight.js'
export type { PreflightOptions, ProbeResult } from './preflight.js'

export { connectPreflightAdmin, createKafka, ensureTopics } from './client.js'
export type { KafkaClientOptions, TopicSpec, TopicReport } from './client.js'
export { groupProgress } from './offsets.js'
export type { GroupProgress } from './offsets.js'

export { connectPreflightAdmin, createKafka, ensureTopics } from './client.js'
export type { KafkaClientOptions, TopicSpec, TopicReport } from './client.js'

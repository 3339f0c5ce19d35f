export { DEFAULT_MIX, EventGenerator } from './generator.js'
export type { EventGeneratorOptions, GeneratedEvent, OperationMix } from './generator.js'
export {
  DEFAULT_TOPIC_LAYOUT,
  layoutTopics,
  EventSender,
  createEventProducer,
  partitionFor,
  prepareTopics,
  sendEvents,
} from './sender.js'
export type { SendOptions, SendStats, TopicLayout } from './sender.js'

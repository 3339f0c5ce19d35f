import { ErrorCodes, PipelineError } from '../errors/index.js'
import type { Entity } from './events.js'

/** The Kafka topic of each entity. */
export interface TopicNames {
  user: string
  order: string
}

/** Default topic names. */
export const DEFAULT_TOPICS: Readonly<TopicNames> = { user: 'users', order: 'orders' }

/** The entity a topic carries; throws CONFIG_ERROR for a topic that is neither. */
export function entityOfTopic(topic: string, topics: TopicNames = DEFAULT_TOPICS): Entity {
  if (topic === topics.user) return 'user'
  if (topic === topics.order) return 'order'
  throw new PipelineError(
    ErrorCodes.CONFIG_ERROR,
    `topic '${topic}' is neither the users topic ('${topics.user}') nor the orders topic ('${topics.order}')`,
  )
}

/** The topic an entity is produced to. */
export function topicOfEntity(entity: Entity, topics: TopicNames = DEFAULT_TOPICS): string {
  return topics[entity]
}

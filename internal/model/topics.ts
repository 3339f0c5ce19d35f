import { ErrorCodes, PipelineError } from '../errors/index.js'
import { ENTITIES, specOf } from './entities/index.js'
import type { Entity } from './events.js'

/** The Kafka topic of each entity (an entity left out uses its definition's topic). */
export type TopicNames = { [E in Entity]?: string }

/** Default topic names: each definition's topic. */
export const DEFAULT_TOPICS: Readonly<Record<Entity, string>> = Object.fromEntries(
  ENTITIES.map((s) => [s.entity, s.topic]),
) as Record<Entity, string>

/** The topic an entity is produced to. */
export function topicOfEntity(entity: Entity, topics: TopicNames = DEFAULT_TOPICS): string {
  return topics[entity] ?? specOf(entity).topic
}

/** The entity a topic carries; throws CONFIG_ERROR for a topic that is none of them. */
export function entityOfTopic(topic: string, topics: TopicNames = DEFAULT_TOPICS): Entity {
  for (const s of ENTITIES) if (topicOfEntity(s.entity as Entity, topics) === topic) return s.entity as Entity
  const names = ENTITIES.map((s) => `the ${s.table} topic ('${topicOfEntity(s.entity as Entity, topics)}')`)
  throw new PipelineError(ErrorCodes.CONFIG_ERROR, `topic '${topic}' is neither ${names.join(' nor ')}`)
}

/** Every entity's topic. */
export function allTopics(topics: TopicNames = DEFAULT_TOPICS): string[] {
  return ENTITIES.map((s) => topicOfEntity(s.entity as Entity, topics))
}

import { idOf, specOfEvent } from './entities/index.js'
import type { AnyEvent } from './events.js'

/** The entity id an event is keyed by (Kafka key, primary key). */
export function entityIdOf(event: AnyEvent): string {
  return idOf(specOfEvent(event), event)
}

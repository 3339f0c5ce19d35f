// The registry: every entity's definition. Adding an entity is adding its file and one line here.
import type { Entity } from '../events.js'
import { ErrorCodes, PipelineError } from '../../errors/index.js'
import { ORDER } from './order.js'
import { PRODUCT } from './product.js'
import type { EntitySpec } from './spec.js'
import { USER } from './user.js'

export { ORDER, isOrderEvent } from './order.js'
export type { OrderEvent } from './order.js'
export { PRODUCT, PRODUCT_CATEGORIES } from './product.js'
export type { ProductEvent } from './product.js'
export { USER } from './user.js'
export type { UserEvent } from './user.js'
export * from './spec.js'

/** Every entity, parents before the entities that reference them. */
export const ENTITIES: readonly EntitySpec[] = [USER, ORDER, PRODUCT]

const BY_NAME = new Map(ENTITIES.map((s) => [s.entity, s]))
const BY_TABLE = new Map(ENTITIES.map((s) => [s.table, s]))

/** The definition of an entity; CONFIG_ERROR for an unknown one. */
export function specOf(entity: Entity | string): EntitySpec {
  const spec = BY_NAME.get(entity)
  if (spec === undefined) throw new PipelineError(ErrorCodes.CONFIG_ERROR, `unknown entity '${entity}'`)
  return spec
}

/** The definition whose table is `table`, or undefined. */
export function specOfTable(table: string): EntitySpec | undefined {
  return BY_TABLE.get(table)
}

/** The entities some other entity references (their writes provide what those wait for). */
export function isReferenced(spec: EntitySpec): boolean {
  return ENTITIES.some((s) => s.reference?.entity === spec.entity)
}

// Children first: an order event carries its user's user_id too, so the entity is the one whose key field is
// present and which no other present key field's entity references.
const BY_KEY_PRIORITY = [...ENTITIES].sort(
  (a, b) => Number(a.reference === undefined) - Number(b.reference === undefined),
)

/** The definition of the entity an event is of (found by its key field). */
export function specOfEvent(event: object): EntitySpec {
  for (const s of BY_KEY_PRIORITY) if (s.keyField in event) return s
  throw new PipelineError(ErrorCodes.VALIDATION_ERROR, 'the event has no known entity key field')
}

/** The PostgreSQL tables of every entity. */
export const ENTITY_TABLES: readonly string[] = ENTITIES.map((s) => s.table)

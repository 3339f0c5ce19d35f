import { ErrorCodes, PipelineError } from '../errors/index.js'
import { specOf } from './entities/index.js'
import type { AnyEvent, Entity, EventOf } from './events.js'
import { compileValidator, type Validator } from './validator.js'
import { show } from './values.js'

// fatal: invalid UTF-8 must be rejected, not silently turned into U+FFFD and written to the database.
const utf8 = new TextDecoder('utf-8', { fatal: true })

function decodeError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.DECODE_ERROR, message, cause === undefined ? {} : { cause })
}

export { hasLoneSurrogate, parseTimestamp } from './values.js'

// Each entity's compiled validator, made at its first event.
const validators = new Map<Entity, Validator>()

function validatorOf(entity: Entity): Validator {
  let v = validators.get(entity)
  if (v === undefined) validators.set(entity, (v = compileValidator(specOf(entity))))
  return v
}

/**
 * Validates an already-parsed value as an event of `entity`, throwing VALIDATION_ERROR naming the field and rule.
 * Returns a fresh object holding only the known fields (uuids in lower case). A pure function of the value: no
 * rule reads the consumer's clock (dob is judged against the event's occurred_at), so a replay judges alike.
 */
export function validateEvent<E extends Entity>(entity: E, value: unknown): EventOf<E> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw decodeError(`message value must be a JSON object (got ${Array.isArray(value) ? 'an array' : show(value)})`)
  }
  return validatorOf(entity)(value as Record<string, unknown>) as EventOf<E>
}

/**
 * Decodes a Kafka message value into a validated event. DECODE_ERROR for an empty value, invalid UTF-8, bad JSON or
 * a non-object; VALIDATION_ERROR for any field breaking its rule. Neither is retriable.
 */
export function decodeEvent<E extends Entity>(entity: E, value: Uint8Array | null | undefined): EventOf<E> {
  if (value === null || value === undefined || value.length === 0) throw decodeError('message value is empty')
  let text: string
  try {
    text = utf8.decode(value)
  } catch (err) {
    throw decodeError('message value is not valid UTF-8', err)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (err) {
    throw decodeError(`message value is not valid JSON: ${(err as Error).message}`, err)
  }
  return validateEvent(entity, parsed)
}

/** The wire form of an event: UTF-8 JSON. */
export function encodeEvent(event: AnyEvent): Buffer {
  return Buffer.from(JSON.stringify(event), 'utf8')
}

import { ErrorCodes, PipelineError } from '../errors/index.js'
import { specOf, type EntitySpec, type FieldSpec } from './entities/index.js'
import { EVENT_TYPES, SCHEMA_VERSION, type AnyEvent, type Entity, type EventOf, type EventType } from './events.js'
import { MONEY, hasLoneSurrogate, isUuid, parseDate, parseTimestamp, show } from './values.js'

// fatal: invalid UTF-8 must be rejected, not silently turned into U+FFFD and written to the database.
const utf8 = new TextDecoder('utf-8', { fatal: true })

function decodeError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.DECODE_ERROR, message, cause === undefined ? {} : { cause })
}

function invalid(message: string): PipelineError {
  return new PipelineError(ErrorCodes.VALIDATION_ERROR, message)
}

type Fields = Record<string, unknown>

export { hasLoneSurrogate, parseTimestamp } from './values.js'

function fail(field: string, rule: string, value: unknown): never {
  throw invalid(`${field} ${rule} (got ${show(value)})`)
}

function required(obj: Fields, field: string): unknown {
  const value = obj[field]
  if (value === undefined) throw invalid(`${field} is required`)
  return value
}

function uuidField(obj: Fields, field: string): string {
  const value = required(obj, field)
  if (typeof value !== 'string' || !isUuid(value)) fail(field, 'must be a UUID', value)
  // Canonical lower case: ids are compared with what PostgreSQL returns.
  return value.toLowerCase()
}

const TIMESTAMP_RULE = 'must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits'

// The timestamp, and its epoch milliseconds for the ordering rules.
function timestampField(obj: Fields, field: string): [string, number] {
  const value = required(obj, field)
  if (typeof value !== 'string') fail(field, TIMESTAMP_RULE, value)
  const ms = parseTimestamp(value)
  if (Number.isNaN(ms)) fail(field, TIMESTAMP_RULE, value)
  return [value, ms]
}

function booleanField(obj: Fields, field: string): boolean {
  const value = required(obj, field)
  if (typeof value !== 'boolean') fail(field, 'must be a boolean', value)
  return value
}

function common(obj: Fields): {
  event_id: string
  event_type: EventType
  version: number
  occurred: [string, number]
} {
  const schemaVersion = required(obj, 'schema_version')
  if (schemaVersion !== SCHEMA_VERSION) fail('schema_version', `must be ${SCHEMA_VERSION}`, schemaVersion)
  const eventType = required(obj, 'event_type')
  if (!EVENT_TYPES.includes(eventType as EventType)) {
    fail('event_type', `must be one of ${EVENT_TYPES.join(', ')}`, eventType)
  }
  const version = required(obj, 'version')
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
    fail('version', 'must be an integer >= 1', version)
  }
  // CREATE opens the entity's history at 1, so a later event can never sort before it.
  if (eventType === 'CREATE' && version !== 1) fail('version', 'must be 1 for CREATE', version)
  if (eventType !== 'CREATE' && version < 2) fail('version', `must be >= 2 for ${eventType as string}`, version)
  return {
    event_id: uuidField(obj, 'event_id'),
    event_type: eventType as EventType,
    version,
    occurred: timestampField(obj, 'occurred_at'),
  }
}

function checkDeleted(isDeleted: boolean, eventType: EventType): void {
  if (isDeleted !== (eventType === 'DELETE'))
    fail('is_deleted', 'must be true for DELETE and false otherwise', isDeleted)
}

// One field by its rule: the value as stored in the event, and (timestamps) its epoch milliseconds.
function fieldValue(obj: Fields, f: FieldSpec, eventType: EventType, parsed: Map<string, number>): unknown {
  const field = f.field
  const rule = f.rule
  switch (rule.kind) {
    case 'uuid':
      return uuidField(obj, field)
    case 'text': {
      const value = required(obj, field)
      const textRule = `must be a string of 1 to ${rule.maxChars} characters, not blank`
      // Characters as PostgreSQL counts them (code points), not UTF-16 units; NUL is not storable in text.
      if (typeof value !== 'string' || value.trim() === '' || value.includes('\u0000')) fail(field, textRule, value)
      if (hasLoneSurrogate(value)) fail(field, 'must be valid Unicode (it holds a lone UTF-16 surrogate)', value)
      // A string never has more code points than UTF-16 units: count them only when it might be too long.
      if (value.length > rule.maxChars && [...value].length > rule.maxChars) fail(field, textRule, value)
      return value
    }
    case 'enum': {
      const value = required(obj, field)
      if (!rule.values.includes(value as string)) fail(field, `must be one of ${rule.values.join(', ')}`, value)
      return value
    }
    case 'date': {
      const value = required(obj, field)
      const ms = typeof value === 'string' ? parseDate(value) : Number.NaN
      if (Number.isNaN(ms)) fail(field, 'must be a valid date YYYY-MM-DD', value)
      return value
    }
    case 'timestamp': {
      const [value, ms] = timestampField(obj, field)
      parsed.set(field, ms)
      if (rule.notBefore !== undefined && ms < parsed.get(rule.notBefore)!) {
        fail(field, `must not be before ${rule.notBefore}`, value)
      }
      return value
    }
    case 'boolean': {
      const value = booleanField(obj, field)
      if (rule.deletedFlag === true) checkDeleted(value, eventType)
      return value
    }
    case 'int': {
      const value = required(obj, field)
      if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
        fail(field, `must be an integer from ${rule.min} to ${rule.max}`, value)
      }
      return value
    }
    case 'money': {
      const value = required(obj, field)
      // The shortest round-trip text of a double shows its decimals: 19.99 -> '19.99', 1e-7 -> '1e-7' (rejected).
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || !MONEY.test(String(value))) {
        fail(field, `must be a number >= 0 with at most ${rule.scale} decimals`, value)
      }
      if (value >= rule.below) fail(field, `must be below ${rule.below}`, value)
      return value
    }
  }
}

// An event of `spec`: the common fields, the key, then each field in the definition's order (the first that breaks
// its rule is the one reported).
function validateBySpec(spec: EntitySpec, obj: Fields): AnyEvent {
  const base = common(obj)
  const out: Record<string, unknown> = {
    event_id: base.event_id,
    schema_version: SCHEMA_VERSION,
    event_type: base.event_type,
    version: base.version,
    occurred_at: base.occurred[0],
    [spec.keyField]: uuidField(obj, spec.keyField),
  }
  const parsed = new Map<string, number>()
  for (const f of spec.fields) {
    const value = fieldValue(obj, f, base.event_type, parsed)
    f.check?.(value, {
      eventType: base.event_type,
      occurredMs: base.occurred[1],
      fail: (rule) => fail(f.field, rule, value),
    })
    out[f.field] = value
  }
  return out as unknown as AnyEvent
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
  return validateBySpec(specOf(entity), value as Fields) as EventOf<E>
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

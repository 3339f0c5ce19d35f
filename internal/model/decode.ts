import { ErrorCodes, PipelineError } from '../errors/index.js'
import {
  EVENT_TYPES,
  LIMITS,
  ORDER_STATUSES,
  SCHEMA_VERSION,
  type AnyEvent,
  type Entity,
  type EventType,
  type OrderEvent,
  type OrderStatus,
  type UserEvent,
} from './events.js'

/** Options of {@link decodeEvent} and {@link validateEvent}. */
export interface DecodeOptions {
  /** "Now" for the dob-not-in-the-future rule; defaults to the real clock. */
  now?: Date
}

// fatal: invalid UTF-8 must be rejected, not silently turned into U+FFFD and written to the database.
const utf8 = new TextDecoder('utf-8', { fatal: true })

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/
// Milliseconds at most: JavaScript dates hold no more, so the expected state and PostgreSQL agree exactly.
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,3})?(Z|[+-](\d{2}):(\d{2}))$/
const MONEY = /^\d+(\.\d{1,2})?$/
// The latest calendar date anywhere on Earth is UTC+14: a dob of "today" there is not in the future.
const LATEST_UTC_OFFSET_MS = 14 * 3600_000

function decodeError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.DECODE_ERROR, message, cause === undefined ? {} : { cause })
}

function invalid(message: string): PipelineError {
  return new PipelineError(ErrorCodes.VALIDATION_ERROR, message)
}

/** Renders an offending value for a message, bounded so a huge payload cannot flood logs or DLQ headers. */
function show(value: unknown): string {
  const text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value))
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

function fail(field: string, rule: string, value: unknown): never {
  throw invalid(`${field} ${rule} (got ${show(value)})`)
}

function isValidDate(year: number, month: number, day: number): boolean {
  const d = new Date(Date.UTC(year, month - 1, day))
  return d.getUTCFullYear() === year && d.getUTCMonth() === month - 1 && d.getUTCDate() === day
}

type Fields = Record<string, unknown>

function required(obj: Fields, field: string): unknown {
  const value = obj[field]
  if (value === undefined) throw invalid(`${field} is required`)
  return value
}

function uuidField(obj: Fields, field: string): string {
  const value = required(obj, field)
  if (typeof value !== 'string' || !UUID.test(value)) fail(field, 'must be a UUID', value)
  // Canonical lower case: ids are compared with what PostgreSQL returns.
  return value.toLowerCase()
}

function timestampField(obj: Fields, field: string): string {
  const value = required(obj, field)
  const rule = 'must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits'
  if (typeof value !== 'string') fail(field, rule, value)
  const m = TIMESTAMP.exec(value)
  if (
    m === null ||
    !isValidDate(Number(m[1]), Number(m[2]), Number(m[3])) ||
    Number(m[4]) > 23 ||
    Number(m[5]) > 59 ||
    Number(m[6]) > 59 ||
    (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59))
  ) {
    fail(field, rule, value)
  }
  return value
}

function booleanField(obj: Fields, field: string): boolean {
  const value = required(obj, field)
  if (typeof value !== 'boolean') fail(field, 'must be a boolean', value)
  return value
}

function common(obj: Fields): { event_id: string; event_type: EventType; version: number; occurred_at: string } {
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
    occurred_at: timestampField(obj, 'occurred_at'),
  }
}

function checkDeleted(isDeleted: boolean, eventType: EventType): void {
  if (isDeleted !== (eventType === 'DELETE'))
    fail('is_deleted', 'must be true for DELETE and false otherwise', isDeleted)
}

function checkNotBefore(obj: Fields, later: string, earlier: string): void {
  if (Date.parse(obj[later] as string) < Date.parse(obj[earlier] as string)) {
    fail(later, `must not be before ${earlier}`, obj[later])
  }
}

function validateUser(obj: Fields, options: DecodeOptions): UserEvent {
  const base = common(obj)
  const user_id = uuidField(obj, 'user_id')

  const name = required(obj, 'name')
  const nameRule = `must be a string of 1 to ${LIMITS.nameMaxChars} characters, not blank`
  // Characters as PostgreSQL counts them (code points), not UTF-16 units; NUL is not storable in text.
  if (typeof name !== 'string' || name.trim() === '' || name.includes('\u0000')) fail('name', nameRule, name)
  // A string never has more code points than UTF-16 units: count them only when it might be too long.
  if (name.length > LIMITS.nameMaxChars && [...name].length > LIMITS.nameMaxChars) fail('name', nameRule, name)

  const dob = required(obj, 'dob')
  const m = typeof dob === 'string' ? DATE.exec(dob) : null
  if (m === null || !isValidDate(Number(m[1]), Number(m[2]), Number(m[3]))) {
    fail('dob', 'must be a valid date YYYY-MM-DD', dob)
  }
  const latest = new Date((options.now ?? new Date()).getTime() + LATEST_UTC_OFFSET_MS).toISOString().slice(0, 10)
  if ((dob as string) > latest) fail('dob', 'must not be in the future', dob)

  const created_at = timestampField(obj, 'created_at')
  const modified_at = timestampField(obj, 'modified_at')
  checkNotBefore(obj, 'modified_at', 'created_at')
  const is_deleted = booleanField(obj, 'is_deleted')
  checkDeleted(is_deleted, base.event_type)

  return {
    event_id: base.event_id,
    schema_version: SCHEMA_VERSION,
    event_type: base.event_type,
    version: base.version,
    occurred_at: base.occurred_at,
    user_id,
    name,
    dob: dob as string,
    created_at,
    modified_at,
    is_deleted,
  }
}

function validateOrder(obj: Fields): OrderEvent {
  const base = common(obj)
  const order_id = uuidField(obj, 'order_id')

  const status = required(obj, 'order_status')
  if (!ORDER_STATUSES.includes(status as OrderStatus)) {
    fail('order_status', `must be one of ${ORDER_STATUSES.join(', ')}`, status)
  }
  if (base.event_type === 'CREATE' && status !== 'PLACED') fail('order_status', 'must be PLACED for CREATE', status)
  if (base.event_type === 'DELETE' && status !== 'CANCELLED') {
    fail('order_status', 'must be CANCELLED for DELETE', status)
  }
  if (base.event_type === 'UPDATE' && status === 'CANCELLED') {
    fail('order_status', 'must not be CANCELLED for UPDATE (cancelling is a DELETE)', status)
  }

  const user_id = uuidField(obj, 'user_id')

  const quantity = required(obj, 'quantity')
  if (
    typeof quantity !== 'number' ||
    !Number.isInteger(quantity) ||
    quantity < LIMITS.quantityMin ||
    quantity > LIMITS.quantityMax
  ) {
    fail('quantity', `must be an integer from ${LIMITS.quantityMin} to ${LIMITS.quantityMax}`, quantity)
  }

  const total = required(obj, 'order_total')
  // The shortest round-trip text of a double shows its decimals: 19.99 -> '19.99', 1e-7 -> '1e-7' (rejected).
  if (typeof total !== 'number' || !Number.isFinite(total) || total < 0 || !MONEY.test(String(total))) {
    fail('order_total', 'must be a number >= 0 with at most 2 decimals', total)
  }
  if (total >= LIMITS.orderTotalBelow) fail('order_total', `must be below ${LIMITS.orderTotalBelow}`, total)

  const placed_at = timestampField(obj, 'placed_at')
  const modified_at = timestampField(obj, 'modified_at')
  checkNotBefore(obj, 'modified_at', 'placed_at')
  const is_deleted = booleanField(obj, 'is_deleted')
  checkDeleted(is_deleted, base.event_type)

  return {
    event_id: base.event_id,
    schema_version: SCHEMA_VERSION,
    event_type: base.event_type,
    version: base.version,
    occurred_at: base.occurred_at,
    order_id,
    order_status: status as OrderStatus,
    user_id,
    quantity,
    order_total: total,
    placed_at,
    modified_at,
    is_deleted,
  }
}

/**
 * Validates an already-parsed value as an event of `entity`, throwing VALIDATION_ERROR naming the field and rule.
 * Returns a fresh object holding only the known fields (uuids in lower case).
 */
export function validateEvent(entity: 'user', value: unknown, options?: DecodeOptions): UserEvent
export function validateEvent(entity: 'order', value: unknown, options?: DecodeOptions): OrderEvent
export function validateEvent(entity: Entity, value: unknown, options?: DecodeOptions): AnyEvent
export function validateEvent(entity: Entity, value: unknown, options: DecodeOptions = {}): AnyEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw decodeError(`message value must be a JSON object (got ${Array.isArray(value) ? 'an array' : show(value)})`)
  }
  return entity === 'user' ? validateUser(value as Fields, options) : validateOrder(value as Fields)
}

/**
 * Decodes a Kafka message value into a validated event. DECODE_ERROR for an empty value, invalid UTF-8, bad JSON or
 * a non-object; VALIDATION_ERROR for any field breaking its rule. Neither is retriable.
 */
export function decodeEvent(entity: 'user', value: Uint8Array | null | undefined, options?: DecodeOptions): UserEvent
export function decodeEvent(entity: 'order', value: Uint8Array | null | undefined, options?: DecodeOptions): OrderEvent
export function decodeEvent(entity: Entity, value: Uint8Array | null | undefined, options?: DecodeOptions): AnyEvent
export function decodeEvent(
  entity: Entity,
  value: Uint8Array | null | undefined,
  options: DecodeOptions = {},
): AnyEvent {
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
  return validateEvent(entity, parsed, options)
}

/** The wire form of an event: UTF-8 JSON. */
export function encodeEvent(event: AnyEvent): Buffer {
  return Buffer.from(JSON.stringify(event), 'utf8')
}

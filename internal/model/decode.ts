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

// fatal: invalid UTF-8 must be rejected, not silently turned into U+FFFD and written to the database.
const utf8 = new TextDecoder('utf-8', { fatal: true })

const MONEY = /^\d+(\.\d{1,2})?$/
// The latest calendar date anywhere on Earth is UTC+14: a dob of "today" there is not in the future.
const LATEST_UTC_OFFSET_MS = 14 * 3600_000
// Offsets PostgreSQL accepts in a timestamptz: up to 15:59 either way (beyond, it fails the whole statement).
const MAX_OFFSET_HOURS = 15
/** Nesting shown in a message at most: a deeper value is named as such (JSON.stringify would overflow the stack). */
export const MAX_SHOWN_DEPTH = 32

function decodeError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.DECODE_ERROR, message, cause === undefined ? {} : { cause })
}

function invalid(message: string): PipelineError {
  return new PipelineError(ErrorCodes.VALIDATION_ERROR, message)
}

// Whether objects/arrays nest deeper than `limit` in `value`: iterative, so any depth is measured without recursion.
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== 'object' || v === null) continue
    if (depth >= limit) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

/** Renders an offending value for a message, bounded so a huge payload cannot flood logs or DLQ headers. */
function show(value: unknown): string {
  if (typeof value === 'object' && value !== null && nestsDeeperThan(value, MAX_SHOWN_DEPTH)) {
    return `a value nested deeper than ${MAX_SHOWN_DEPTH} levels`
  }
  const text = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value))
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/**
 * Whether `s` holds a UTF-16 surrogate without its other half ('\ud800' from a JSON escape): it has no UTF-8 form,
 * and node-pg would write U+FFFD in its place. (String.prototype.isWellFormed is ES2024; this is the same scan.)
 */
export function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c > 0xdbff) return true // a low half first
    const next = s.charCodeAt(i + 1) // NaN past the end
    if (!(next >= 0xdc00 && next <= 0xdfff)) return true
    i++
  }
  return false
}

function fail(field: string, rule: string, value: unknown): never {
  throw invalid(`${field} ${rule} (got ${show(value)})`)
}

// Hand-written scanners instead of regular expressions and Date objects: these checks run for every field of every
// event on the consumer's hot path (they were a sixth of its CPU profile), and they accept exactly what the
// expressions they replace accepted (decode.test.ts holds the cases).

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

// Years before 100 are refused, as JavaScript's Date.UTC reads them as 19xx (the rule the earlier check had).
function isValidDate(year: number, month: number, day: number): boolean {
  if (year < 100 || month < 1 || month > 12 || day < 1) return false
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= DAYS_IN_MONTH[month - 1] + (leap ? 1 : 0)
}

// The value of `n` ASCII digits of `s` at `at`, or -1 if any is not a digit.
function digits(s: string, at: number, n: number): number {
  let v = 0
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/** YYYY-MM-DD, a real calendar date: its epoch milliseconds, or NaN. */
function parseDate(s: string): number {
  if (s.length !== 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return Number.NaN
  const y = digits(s, 0, 4)
  const mo = digits(s, 5, 2)
  const d = digits(s, 8, 2)
  return y >= 0 && mo >= 0 && d >= 0 && isValidDate(y, mo, d) ? Date.UTC(y, mo - 1, d) : Number.NaN
}

/**
 * YYYY-MM-DDTHH:MM:SS, then optionally 1 to 3 fractional digits (milliseconds at most: JavaScript dates hold no more,
 * so the expected state and PostgreSQL agree exactly), then Z or +HH:MM / -HH:MM with HH at most 15 (PostgreSQL's
 * limit): its epoch milliseconds, or NaN.
 */
export function parseTimestamp(s: string): number {
  const n = s.length
  if (n < 20 || s.charCodeAt(10) !== 84 /* T */ || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) {
    return Number.NaN
  }
  const day = parseDate(s.slice(0, 10))
  const hh = digits(s, 11, 2)
  const mm = digits(s, 14, 2)
  const ss = digits(s, 17, 2)
  if (Number.isNaN(day) || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59) return Number.NaN
  let i = 19
  let ms = 0
  if (s.charCodeAt(i) === 46 /* . */) {
    let k = 0
    while (k < 3 && i + 1 + k < n && digits(s, i + 1 + k, 1) >= 0) k++
    if (k === 0) return Number.NaN
    ms = digits(s, i + 1, k) * 10 ** (3 - k)
    i += 1 + k
  }
  let offsetMin = 0
  const sign = s.charCodeAt(i)
  if (sign === 90 /* Z */) {
    if (i + 1 !== n) return Number.NaN
  } else if (sign === 43 /* + */ || sign === 45 /* - */) {
    if (i + 6 !== n || s.charCodeAt(i + 3) !== 58) return Number.NaN
    const oh = digits(s, i + 1, 2)
    const om = digits(s, i + 4, 2)
    if (oh < 0 || oh > MAX_OFFSET_HOURS || om < 0 || om > 59) return Number.NaN
    offsetMin = (sign === 43 ? 1 : -1) * (oh * 60 + om)
  } else return Number.NaN
  return day + ((hh * 60 + mm - offsetMin) * 60 + ss) * 1000 + ms
}

// 8-4-4-4-12 hexadecimal digits.
function isUuid(s: string): boolean {
  if (s.length !== 36) return false
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false
  }
  return true
}

type Fields = Record<string, unknown>

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

function checkNotBefore(later: [string, number], earlier: [string, number], names: [string, string]): void {
  if (later[1] < earlier[1]) fail(names[0], `must not be before ${names[1]}`, later[0])
}

function validateUser(obj: Fields): UserEvent {
  const base = common(obj)
  const user_id = uuidField(obj, 'user_id')

  const name = required(obj, 'name')
  const nameRule = `must be a string of 1 to ${LIMITS.nameMaxChars} characters, not blank`
  // Characters as PostgreSQL counts them (code points), not UTF-16 units; NUL is not storable in text.
  if (typeof name !== 'string' || name.trim() === '' || name.includes('\u0000')) fail('name', nameRule, name)
  if (hasLoneSurrogate(name)) fail('name', 'must be valid Unicode (it holds a lone UTF-16 surrogate)', name)
  // A string never has more code points than UTF-16 units: count them only when it might be too long.
  if (name.length > LIMITS.nameMaxChars && [...name].length > LIMITS.nameMaxChars) fail('name', nameRule, name)

  const dob = required(obj, 'dob')
  const dobMs = typeof dob === 'string' ? parseDate(dob) : Number.NaN
  if (Number.isNaN(dobMs)) fail('dob', 'must be a valid date YYYY-MM-DD', dob)
  // Not in the future of the event itself: the day must have begun somewhere on Earth (UTC+14) at occurred_at. The
  // event's own time, not the consumer's clock: a consumer whose clock is behind would dead-letter valid events
  // for good, and a replay would judge the same event differently.
  if (dobMs > base.occurred[1] + LATEST_UTC_OFFSET_MS) fail('dob', 'must not be after the date of occurred_at', dob)

  const created = timestampField(obj, 'created_at')
  const modified = timestampField(obj, 'modified_at')
  checkNotBefore(modified, created, ['modified_at', 'created_at'])
  const created_at = created[0]
  const modified_at = modified[0]
  const is_deleted = booleanField(obj, 'is_deleted')
  checkDeleted(is_deleted, base.event_type)

  return {
    event_id: base.event_id,
    schema_version: SCHEMA_VERSION,
    event_type: base.event_type,
    version: base.version,
    occurred_at: base.occurred[0],
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

  const placed = timestampField(obj, 'placed_at')
  const modified = timestampField(obj, 'modified_at')
  checkNotBefore(modified, placed, ['modified_at', 'placed_at'])
  const placed_at = placed[0]
  const modified_at = modified[0]
  const is_deleted = booleanField(obj, 'is_deleted')
  checkDeleted(is_deleted, base.event_type)

  return {
    event_id: base.event_id,
    schema_version: SCHEMA_VERSION,
    event_type: base.event_type,
    version: base.version,
    occurred_at: base.occurred[0],
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
 * Returns a fresh object holding only the known fields (uuids in lower case). A pure function of the value: no
 * rule reads the consumer's clock (dob is judged against the event's occurred_at), so a replay judges alike.
 */
export function validateEvent(entity: 'user', value: unknown): UserEvent
export function validateEvent(entity: 'order', value: unknown): OrderEvent
export function validateEvent(entity: Entity, value: unknown): AnyEvent
export function validateEvent(entity: Entity, value: unknown): AnyEvent {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw decodeError(`message value must be a JSON object (got ${Array.isArray(value) ? 'an array' : show(value)})`)
  }
  return entity === 'user' ? validateUser(value as Fields) : validateOrder(value as Fields)
}

/**
 * Decodes a Kafka message value into a validated event. DECODE_ERROR for an empty value, invalid UTF-8, bad JSON or
 * a non-object; VALIDATION_ERROR for any field breaking its rule. Neither is retriable.
 */
export function decodeEvent(entity: 'user', value: Uint8Array | null | undefined): UserEvent
export function decodeEvent(entity: 'order', value: Uint8Array | null | undefined): OrderEvent
export function decodeEvent(entity: Entity, value: Uint8Array | null | undefined): AnyEvent
export function decodeEvent(entity: Entity, value: Uint8Array | null | undefined): AnyEvent {
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

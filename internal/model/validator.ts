// Each entity's validator, compiled once from its definition into a flat list of one closure per field: the rule's
// kind is switched on, its messages built and a timestamp's notBefore resolved to a slot when the validator is made,
// not for every event. The per-event work is then the checks themselves (this path is the consumer's hot loop: the
// generic field loop it replaces cost each event about a fifth more CPU than the hand-written validators before
// it). The rules and their messages are exactly the definitions' (decode.test.ts holds the cases).
import { ErrorCodes, PipelineError } from '../errors/index.js'
import type { CheckContext, EntitySpec, FieldSpec } from './entities/index.js'
import { EVENT_TYPES, SCHEMA_VERSION, type AnyEvent, type EventType } from './events.js'
import { MONEY, hasLoneSurrogate, parseDate, parseTimestamp, show, uuidCase } from './values.js'

type Fields = Record<string, unknown>

function invalid(message: string): PipelineError {
  return new PipelineError(ErrorCodes.VALIDATION_ERROR, message)
}

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
  const kind = typeof value === 'string' ? uuidCase(value) : 0
  if (kind === 0) fail(field, 'must be a UUID', value)
  // Canonical lower case: ids are compared with what PostgreSQL returns.
  return kind === 1 ? (value as string) : (value as string).toLowerCase()
}

const TIMESTAMP_RULE = 'must be an ISO 8601 timestamp with a time zone and at most 3 fractional digits'

// A timestamp field's epoch milliseconds (the value itself is the string it was).
function timestampMs(obj: Fields, field: string): number {
  const value = required(obj, field)
  if (typeof value !== 'string') fail(field, TIMESTAMP_RULE, value)
  const ms = parseTimestamp(value)
  if (Number.isNaN(ms)) fail(field, TIMESTAMP_RULE, value)
  return ms
}

/**
 * What the steps of one event share: its type, occurred_at, and the epoch milliseconds of the timestamp fields
 * parsed so far, by slot. One per validator, reused from event to event: validation is synchronous and no rule
 * validates another event, so one event's steps never interleave with another's.
 */
interface EventState {
  eventType: EventType
  occurredMs: number
  ms: number[]
}

/** One field's check: its value as stored in the event; throws VALIDATION_ERROR "<field> <rule> (got <value>)". */
type Step = (obj: Fields, st: EventState) => unknown

// `false` when the first character alone shows that the string is not blank (printable ASCII other than space, as
// nearly every name starts): trim() and its copy are then skipped. Otherwise whether trim() leaves nothing.
function isBlank(s: string): boolean {
  const c = s.charCodeAt(0)
  if (c > 32 && c < 127) return false
  return s.trim() === ''
}

function kindStep(f: FieldSpec, slots: Map<string, number>): Step {
  const field = f.field
  const rule = f.rule
  switch (rule.kind) {
    case 'uuid':
      return (obj) => uuidField(obj, field)
    case 'text': {
      const max = rule.maxChars
      const textRule = `must be a string of 1 to ${max} characters, not blank`
      return (obj) => {
        const value = required(obj, field)
        // Characters as PostgreSQL counts them (code points), not UTF-16 units; NUL is not storable in text.
        if (typeof value !== 'string' || isBlank(value) || value.includes('\u0000')) fail(field, textRule, value)
        if (hasLoneSurrogate(value)) fail(field, 'must be valid Unicode (it holds a lone UTF-16 surrogate)', value)
        // A string never has more code points than UTF-16 units: count them only when it might be too long.
        if (value.length > max && [...value].length > max) fail(field, textRule, value)
        return value
      }
    }
    case 'enum': {
      const values = rule.values
      const enumRule = `must be one of ${values.join(', ')}`
      return (obj) => {
        const value = required(obj, field)
        if (!values.includes(value as string)) fail(field, enumRule, value)
        return value
      }
    }
    case 'date':
      return (obj) => {
        const value = required(obj, field)
        const ms = typeof value === 'string' ? parseDate(value) : Number.NaN
        if (Number.isNaN(ms)) fail(field, 'must be a valid date YYYY-MM-DD', value)
        return value
      }
    case 'timestamp': {
      const slot = slots.size
      slots.set(field, slot)
      // Only a timestamp field before this one can be its bound (a later one is not parsed yet: no check, as the
      // generic loop had it).
      const before = rule.notBefore === undefined ? undefined : slots.get(rule.notBefore)
      const beforeRule = `must not be before ${rule.notBefore}`
      return (obj, st) => {
        const ms = timestampMs(obj, field)
        st.ms[slot] = ms
        if (before !== undefined && ms < st.ms[before]) fail(field, beforeRule, obj[field])
        return obj[field]
      }
    }
    case 'boolean': {
      const deletedFlag = rule.deletedFlag === true
      return (obj, st) => {
        const value = required(obj, field)
        if (typeof value !== 'boolean') fail(field, 'must be a boolean', value)
        if (deletedFlag && value !== (st.eventType === 'DELETE')) {
          fail('is_deleted', 'must be true for DELETE and false otherwise', value)
        }
        return value
      }
    }
    case 'int': {
      const { min, max } = rule
      const intRule = `must be an integer from ${min} to ${max}`
      return (obj) => {
        const value = required(obj, field)
        if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
          fail(field, intRule, value)
        }
        return value
      }
    }
    case 'money': {
      const below = rule.below
      const moneyRule = `must be a number >= 0 with at most ${rule.scale} decimals`
      const belowRule = `must be below ${below}`
      return (obj) => {
        const value = required(obj, field)
        // The shortest round-trip text of a double shows its decimals: 19.99 -> '19.99', 1e-7 -> '1e-7' (rejected).
        if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || !MONEY.test(String(value))) {
          fail(field, moneyRule, value)
        }
        if (value >= below) fail(field, belowRule, value)
        return value
      }
    }
  }
}

// The kind's step, then the definition's own check with a context made once (its fail() names the value of the
// event being checked).
function fieldStep(f: FieldSpec, slots: Map<string, number>): Step {
  const step = kindStep(f, slots)
  const check = f.check
  if (check === undefined) return step
  let current: unknown
  const ctx: CheckContext = {
    eventType: 'CREATE',
    occurredMs: 0,
    fail: (rule) => fail(f.field, rule, current),
  }
  return (obj, st) => {
    const value = step(obj, st)
    current = value
    ctx.eventType = st.eventType
    ctx.occurredMs = st.occurredMs
    check(value, ctx)
    return value
  }
}

const EVENT_TYPE_RULE = `must be one of ${EVENT_TYPES.join(', ')}`
const SCHEMA_VERSION_RULE = `must be ${SCHEMA_VERSION}`
const LATER_VERSION_RULE = new Map(EVENT_TYPES.map((t) => [t, `must be >= 2 for ${t}`]))

/** Validates a parsed JSON object as an event of one entity (see validateEvent). */
export type Validator = (obj: Fields) => AnyEvent

/**
 * The validator of `spec`: the common fields (schema_version, event_type, version, event_id, occurred_at), the key,
 * then each field in the definition's order (the first that breaks its rule is the one reported). Returns a fresh
 * object holding only the known fields, in that order.
 */
export function compileValidator(spec: EntitySpec): Validator {
  const key = spec.keyField
  const slots = new Map<string, number>()
  const steps = spec.fields.map((f) => fieldStep(f, slots))
  const names = spec.fields.map((f) => f.field)
  const st: EventState = { eventType: 'CREATE', occurredMs: 0, ms: new Array<number>(slots.size).fill(0) }
  return (obj) => {
    const schemaVersion = required(obj, 'schema_version')
    if (schemaVersion !== SCHEMA_VERSION) fail('schema_version', SCHEMA_VERSION_RULE, schemaVersion)
    const eventType = required(obj, 'event_type') as EventType
    if (!EVENT_TYPES.includes(eventType)) fail('event_type', EVENT_TYPE_RULE, eventType)
    const version = required(obj, 'version')
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      fail('version', 'must be an integer >= 1', version)
    }
    // CREATE opens the entity's history at 1, so a later event can never sort before it.
    if (eventType === 'CREATE' && version !== 1) fail('version', 'must be 1 for CREATE', version)
    if (eventType !== 'CREATE' && version < 2) fail('version', LATER_VERSION_RULE.get(eventType)!, version)
    const eventId = uuidField(obj, 'event_id')
    const occurredMs = timestampMs(obj, 'occurred_at')
    const out: Fields = {
      event_id: eventId,
      schema_version: SCHEMA_VERSION,
      event_type: eventType,
      version,
      occurred_at: obj.occurred_at,
    }
    out[key] = uuidField(obj, key)
    st.eventType = eventType
    st.occurredMs = occurredMs
    for (let i = 0; i < steps.length; i++) out[names[i]] = steps[i](obj, st)
    return out as unknown as AnyEvent
  }
}

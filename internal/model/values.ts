// Value parsing shared by the event decoder (decode.ts), the change decoder (debezium.ts) and the Cassandra value
// conversion (sinks/cassandra/coerce.ts): dates, timestamps, uuids, decimals and bounded rendering of a bad value.

/** Nesting shown in a message at most: a deeper value is named as such (JSON.stringify would overflow the stack). */
export const MAX_SHOWN_DEPTH = 32
// The latest calendar date anywhere on Earth is UTC+14: a dob of "today" there is not in the future.
export const LATEST_UTC_OFFSET_MS = 14 * 3600_000
// Offsets PostgreSQL accepts in a timestamptz: up to 15:59 either way (beyond, it fails the whole statement).
const MAX_OFFSET_HOURS = 15
/** A non-negative amount with at most 2 decimals, as the shortest round-trip text of a double shows it. */
export const MONEY = /^\d+(\.\d{1,2})?$/

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
export function show(value: unknown): string {
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
export function parseDate(s: string): number {
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
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70))) return false
  }
  return true
}

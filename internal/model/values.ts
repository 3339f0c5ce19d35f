// Value parsing shared by the event decoder (decode.ts, validator.ts), the change decoder (debezium.ts) and the
// Cassandra value conversion (sinks/cassandra/coerce.ts): dates, timestamps, uuids, decimals and bounded rendering of
// a bad value.

export { MAX_SHOWN_DEPTH, show } from '../errors/index.js'

// The latest calendar date anywhere on Earth is UTC+14: a dob of "today" there is not in the future.
export const LATEST_UTC_OFFSET_MS = 14 * 3600_000
// Offsets PostgreSQL accepts in a timestamptz: up to 15:59 either way (beyond, it fails the whole statement).
const MAX_OFFSET_HOURS = 15
/** A non-negative amount with at most 2 decimals, as the shortest round-trip text of a double shows it. */
export const MONEY = /^\d+(\.\d{1,2})?$/

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
  return s.length === 10 ? dateAt(s, 0) : Number.NaN
}

// The YYYY-MM-DD at `at` of `s` (its length checked by the caller), read in place: no slice per timestamp.
function dateAt(s: string, at: number): number {
  if (s.charCodeAt(at + 4) !== 45 || s.charCodeAt(at + 7) !== 45) return Number.NaN
  const y = digits(s, at, 4)
  const mo = digits(s, at + 5, 2)
  const d = digits(s, at + 8, 2)
  // daysFromCivil is Date.UTC's day count for these years (100-9999), in arithmetic alone.
  return y >= 0 && mo >= 0 && d >= 0 && isValidDate(y, mo, d) ? daysFromCivil(y, mo, d) * 86_400_000 : Number.NaN
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
  const day = dateAt(s, 0)
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

// Each ASCII character's kind as a uuid digit: 0 not one, 1 a digit or a-f, 3 A-F (the 2 bit: upper case).
const HEX_KIND = new Uint8Array(128)
for (const c of '0123456789abcdef') HEX_KIND[c.charCodeAt(0)] = 1
for (const c of 'ABCDEF') HEX_KIND[c.charCodeAt(0)] = 3

/**
 * 8-4-4-4-12 hexadecimal digits: 0 when `s` is not that, else 1, or 3 when it has an upper-case digit (ids are
 * compared in lower case; folding is needed only then, which is almost never). One table lookup per digit: it runs
 * for every id of every event.
 */
export function uuidCase(s: string): 0 | 1 | 3 {
  if (s.length !== 36) return 0
  if (s.charCodeAt(8) !== 45 || s.charCodeAt(13) !== 45 || s.charCodeAt(18) !== 45 || s.charCodeAt(23) !== 45) return 0
  let kinds = 0
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) continue
    const c = s.charCodeAt(i)
    const k = c < 128 ? HEX_KIND[c] : 0
    if (k === 0) return 0
    kinds |= k
  }
  return kinds as 1 | 3
}

// 8-4-4-4-12 hexadecimal digits.
export function isUuid(s: string): boolean {
  return uuidCase(s) !== 0
}

// ---------------------------------------------------------------------------------------------------------------
// Calendar arithmetic on the proleptic Gregorian calendar, exact for any integer day (H. Hinnant's algorithms), so
// dates before 1970 and far outside JavaScript's Date range come out right.

/** Days since 1970-01-01 -> [year, month 1-12, day 1-31]. */
export function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468
  const era = Math.floor(z / 146097)
  const doe = z - era * 146097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0)
  return [year, month, day]
}

/** [year, month 1-12, day 1-31] -> days since 1970-01-01. */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0')

function formatYear(year: number): string {
  // ISO 8601: four digits for 0000-9999, otherwise a sign and at least four digits (year 0 is 1 BC).
  if (year >= 0 && year <= 9999) return pad(year, 4)
  return `${year < 0 ? '-' : '+'}${pad(Math.abs(year), 4)}`
}

/** Days since the epoch -> 'YYYY-MM-DD' (expanded years as '+12345-01-01' / '-0044-03-15'). */
export function formatEpochDay(days: number): string {
  const [y, m, d] = civilFromDays(days)
  return `${formatYear(y)}-${pad(m, 2)}-${pad(d, 2)}`
}

const DATE_TEXT = /^([+-]\d{4,}|\d{4})-(\d{2})-(\d{2})$/

function validDay(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  const lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
  return day <= lengths[month - 1]
}

/** 'YYYY-MM-DD' -> days since the epoch, or undefined when it is not a valid calendar date. */
export function parseEpochDay(text: string): number | undefined {
  const m = DATE_TEXT.exec(text)
  if (m === null) return undefined
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])]
  if (!Number.isSafeInteger(year) || !validDay(year, month, day)) return undefined
  return daysFromCivil(year, month, day)
}

const TIMESTAMP_TEXT =
  /^([+-]\d{4,}|\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)$/

/**
 * An ISO-8601 timestamp with a zone ('2026-01-02T03:04:05.123456Z', '...+02:00') -> milliseconds since the epoch as
 * a bigint, digits below the millisecond dropped (towards the past, as PostgreSQL's date_trunc does). Undefined when
 * it is not a valid timestamp.
 */
export function parseEpochMillis(text: string): bigint | undefined {
  const m = TIMESTAMP_TEXT.exec(text)
  if (m === null) return undefined
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number)
  if (!Number.isSafeInteger(year) || !validDay(year, month, day) || hour > 23 || minute > 59 || second > 59) {
    return undefined
  }
  const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'))
  let offsetMinutes = 0
  if (m[8] !== 'Z') {
    const sign = m[8][0] === '-' ? -1 : 1
    const digits = m[8].slice(1).replace(':', '')
    const oh = Number(digits.slice(0, 2))
    const om = digits.length > 2 ? Number(digits.slice(2)) : 0
    // PostgreSQL's limit (it never writes more): an offset beyond ±15:59 is not a timestamp it could have sent.
    if (oh > 15 || om > 59) return undefined
    offsetMinutes = sign * (oh * 60 + om)
  }
  const days = BigInt(daysFromCivil(year, month, day))
  const seconds = BigInt(hour * 3600 + minute * 60 + second - offsetMinutes * 60)
  return (days * 86_400n + seconds) * 1000n + BigInt(millis)
}

function formatEpochFraction(whole: bigint, fraction: bigint, digits: number): string {
  // whole: seconds since the epoch (floor); fraction: 0 <= fraction < 10^digits.
  const daySeconds = ((whole % 86_400n) + 86_400n) % 86_400n
  const days = Number((whole - daySeconds) / 86_400n)
  const s = Number(daySeconds)
  const time = `${pad(Math.floor(s / 3600), 2)}:${pad(Math.floor(s / 60) % 60, 2)}:${pad(s % 60, 2)}`
  const frac = digits === 0 ? '' : `.${fraction.toString().padStart(digits, '0')}`
  return `${formatEpochDay(days)}T${time}${frac}Z`
}

/** An epoch count in units of 10^-digits seconds (3: ms, 6: µs, 9: ns) -> ISO-8601 UTC with that many digits. */
export function formatEpochUnits(units: bigint, digits: number): string {
  const per = 10n ** BigInt(digits)
  let whole = units / per
  let fraction = units % per
  if (fraction < 0n) {
    whole -= 1n
    fraction += per
  }
  return formatEpochFraction(whole, fraction, digits)
}

// ---------------------------------------------------------------------------------------------------------------
// Decimals

/** Big-endian two's-complement bytes -> the integer they encode (Java's BigInteger(byte[]), as Connect writes). */
export function twosComplementToBigInt(bytes: Uint8Array): bigint {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  if (bytes.length > 0 && (bytes[0] & 0x80) !== 0) n -= 1n << BigInt(bytes.length * 8)
  return n
}

/** unscaled x 10^-scale as a plain decimal string: (-1250n, 2) -> '-12.50'; (5n, -2) -> '500'. */
export function formatScaledDecimal(unscaled: bigint, scale: number): string {
  if (scale <= 0) return (unscaled * 10n ** BigInt(-scale)).toString()
  const negative = unscaled < 0n
  const digits = (negative ? -unscaled : unscaled).toString().padStart(scale + 1, '0')
  return `${negative ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`
}

/**
 * A decimal as written (text, or a JSON number's shortest text), split by {@link scanDecimal} without building
 * anything: value = sign x digits(int . frac) x 10^exponent.
 */
export interface DecimalText {
  text: string
  negative: boolean
  int: string
  frac: string
  /** The exponent after e/E, 0 without one; clamped to +-1e12 (far beyond anything a column holds). */
  exponent: number
  hasExponent: boolean
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57
const EXPONENT_CLAMP = 1e12

/**
 * Scans [+-](digits[.digits]|.digits)[(e|E)[+-]digits] in one pass (a regular expression with \d+\.?\d* backtracks
 * quadratically on a long run of digits that then fails). Undefined when it is not that.
 */
export function scanDecimal(text: string): DecimalText | undefined {
  const n = text.length
  let i = 0
  let negative = false
  const c0 = text.charCodeAt(0)
  if (c0 === 43 /* + */ || c0 === 45 /* - */) {
    negative = c0 === 45
    i = 1
  }
  const intStart = i
  while (i < n && isDigit(text.charCodeAt(i))) i++
  const intEnd = i
  let fracStart = i
  let fracEnd = i
  if (text.charCodeAt(i) === 46 /* . */) {
    fracStart = ++i
    while (i < n && isDigit(text.charCodeAt(i))) i++
    fracEnd = i
  }
  if (intEnd === intStart && fracEnd === fracStart) return undefined
  let exponent = 0
  let hasExponent = false
  const e = text.charCodeAt(i)
  if (e === 101 /* e */ || e === 69 /* E */) {
    hasExponent = true
    i++
    let sign = 1
    const s = text.charCodeAt(i)
    if (s === 43 || s === 45) {
      sign = s === 45 ? -1 : 1
      i++
    }
    const expStart = i
    while (i < n && isDigit(text.charCodeAt(i))) {
      exponent = Math.min(exponent * 10 + text.charCodeAt(i) - 48, EXPONENT_CLAMP)
      i++
    }
    if (i === expStart) return undefined
    exponent *= sign
  }
  if (i !== n) return undefined
  return {
    text,
    negative,
    int: text.slice(intStart, intEnd),
    frac: text.slice(fracStart, fracEnd),
    exponent,
    hasExponent,
  }
}

/** A decimal column value (text, JSON number, bigint) scanned, or undefined when it is not a finite decimal. */
export function decimalOf(value: unknown): DecimalText | undefined {
  if (typeof value === 'bigint') return scanDecimal(value.toString())
  if (typeof value === 'number') return Number.isFinite(value) ? scanDecimal(String(value)) : undefined
  if (typeof value === 'string') return scanDecimal(value.trim())
  return undefined
}

/**
 * The significant digits a decimal needs before and after the point ('0012.50' -> 2 and 1, '1e100000' -> 100001
 * and 0), counted in O(length) without expanding the exponent: what decides whether numeric(p, s) can hold it.
 */
export function decimalSize(d: DecimalText): { intDigits: number; fracDigits: number } {
  const all = d.int + d.frac
  let first = 0
  while (first < all.length && all.charCodeAt(first) === 48) first++
  if (first === all.length) return { intDigits: 0, fracDigits: 0 }
  let last = all.length - 1
  while (all.charCodeAt(last) === 48) last--
  const point = d.int.length + d.exponent // digits of `all` before the point
  return { intDigits: Math.max(0, point - first), fracDigits: Math.max(0, last + 1 - point) }
}

/**
 * The most digits a decimal may need on either side of the point for {@link toDecimalString} to expand it:
 * PostgreSQL's numeric holds at most 131072 before and 16383 after.
 */
export const MAX_DECIMAL_DIGITS = { int: 131_072, frac: 16_383 } as const

/** A scanned decimal as a plain string without exponent ('1.5e3' -> '1500'; without exponent, as written). */
export function plainDecimal(d: DecimalText): string {
  if (!d.hasExponent) return d.text.startsWith('+') ? d.text.slice(1) : d.text
  // Exponent form: rebuild as unscaled digits and a scale.
  const digits = `${d.int}${d.frac}`
  if (/^0*$/.test(digits)) return formatScaledDecimal(0n, Math.min(Math.max(d.frac.length - d.exponent, 0), 16_383))
  const unscaled = BigInt(digits) * (d.negative ? -1n : 1n)
  return formatScaledDecimal(unscaled, d.frac.length - d.exponent)
}

/**
 * A decimal given as text or a JSON number (decimal.handling.mode=string/double, or no schema) -> a plain decimal
 * string without exponent ('1.5e3' -> '1500', '-0.25' stays). Undefined when it is not a finite decimal, or needs
 * more digits than PostgreSQL's numeric holds (MAX_DECIMAL_DIGITS: '1e100000000' is never expanded).
 */
export function toDecimalString(value: unknown): string | undefined {
  const d = decimalOf(value)
  if (d === undefined) return undefined
  const size = decimalSize(d)
  if (size.intDigits > MAX_DECIMAL_DIGITS.int || size.fracDigits > MAX_DECIMAL_DIGITS.frac) return undefined
  return plainDecimal(d)
}

// '12.5' with scale 2 -> '12.50' (the column's scale, as PostgreSQL shows it); longer fractions are left alone.
export function withScale(text: string, scale: number): string {
  if (scale <= 0) return text
  const dot = text.indexOf('.')
  const have = dot < 0 ? 0 : text.length - dot - 1
  if (have >= scale) return text
  return `${text}${dot < 0 ? '.' : ''}${'0'.repeat(scale - have)}`
}

import { ErrorCodes, PipelineError, show } from '../errors/index.js'

/** The environment to read: process.env or a plain object in tests. */
export type Env = Readonly<Record<string, string | undefined>>

/** Where one setting may come from, in order of precedence: flag, then environment variable, then default. */
export interface Setting<T> {
  /** The flag as typed, without dashes ('partitions', 'pg-url'); names the field in error messages. */
  flag: string
  /** The value yargs parsed for the flag; undefined when the flag was not given. */
  value?: unknown
  /** The environment variable read when the flag is absent. An empty variable counts as unset. */
  env?: string
  /** Used when neither flag nor variable is set; omit it to make the setting required. */
  default?: T
  /** Defaults to process.env. */
  environment?: Env
}

/** A raw value and the name to blame for it. */
export interface RawSetting {
  raw: unknown
  /** '--flag' or the environment variable's name. */
  label: string
  origin: 'flag' | 'env' | 'default'
}

/**
 * Picks the value by precedence without validating it; throws CONFIG_ERROR when a required setting is absent.
 * yargs turns a repeated flag into an array: the last one wins, as with most CLIs, unless `keepArray` (lists).
 */
export function resolveSetting<T>(setting: Setting<T>, keepArray = false): RawSetting {
  const flagLabel = `--${setting.flag}`
  const flagValue = Array.isArray(setting.value) && !keepArray ? setting.value.at(-1) : setting.value
  if (flagValue !== undefined && flagValue !== null) return { raw: flagValue, label: flagLabel, origin: 'flag' }
  if (setting.env !== undefined) {
    const envValue = (setting.environment ?? process.env)[setting.env]
    if (envValue !== undefined && envValue !== '') return { raw: envValue, label: setting.env, origin: 'env' }
  }
  if (setting.default !== undefined) return { raw: setting.default, label: flagLabel, origin: 'default' }
  const hint = setting.env === undefined ? '' : ` (or set ${setting.env})`
  throw configError(`${flagLabel} is required${hint}`)
}

/** A CONFIG_ERROR PipelineError. */
export function configError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.CONFIG_ERROR, message, cause === undefined ? {} : { cause })
}

function invalid(s: RawSetting, rule: string, shown: string = show(s.raw)): PipelineError {
  return configError(`${s.label} ${rule} (got ${shown})`)
}

function toNumber(raw: unknown, integer: boolean): number | undefined {
  if (typeof raw === 'number') return raw
  if (typeof raw !== 'string') return undefined
  const text = raw.trim()
  // Number('') is 0 and Number('0x10') is 16: accept plain decimal text only.
  const pattern = integer ? /^[+-]?\d+$/ : /^[+-]?(\d+\.?\d*|\.\d+)$/
  return pattern.test(text) ? Number(text) : undefined
}

/** An integer >= 1 ("--partitions must be a positive integer (got 'x')"). */
export function positiveInt(setting: Setting<number>): number {
  const s = resolveSetting(setting)
  const n = toNumber(s.raw, true)
  if (n === undefined || !Number.isSafeInteger(n) || n < 1) throw invalid(s, 'must be a positive integer')
  return n
}

/** An integer >= 0. */
export function nonNegativeInt(setting: Setting<number>): number {
  const s = resolveSetting(setting)
  const n = toNumber(s.raw, true)
  if (n === undefined || !Number.isSafeInteger(n) || n < 0) throw invalid(s, 'must be a non-negative integer')
  return n
}

/** A finite number >= 0 (rates, durations in seconds). */
export function nonNegativeNumber(setting: Setting<number>): number {
  const s = resolveSetting(setting)
  const n = toNumber(s.raw, false)
  if (n === undefined || !Number.isFinite(n) || n < 0) throw invalid(s, 'must be a non-negative number')
  return n
}

/** A non-empty string (surrounding blanks trimmed). */
export function nonEmptyString(setting: Setting<string>): string {
  const s = resolveSetting(setting)
  if (typeof s.raw !== 'string' || s.raw.trim() === '') throw invalid(s, 'must be a non-empty string')
  return s.raw.trim()
}

const DURATION = /^(\d+\.?\d*|\.\d+)\s*(ms|s|m|h)?$/
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/**
 * A duration as typed: a number with an optional unit (ms, s, m, h); a bare number is seconds ('10' = '10s' =
 * 10000 ms). Returns whole milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) && raw >= 0 ? Math.round(raw * 1000) : undefined
  if (typeof raw !== 'string') return undefined
  const m = DURATION.exec(raw.trim().toLowerCase())
  if (m === null) return undefined
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!)
  return Number.isSafeInteger(ms) ? ms : undefined
}

/** Milliseconds as a duration flag would take them: 0, 500ms, 10s, 1.5s. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0'
  return ms % 1000 === 0 || ms > 10_000 ? `${ms / 1000}s` : `${ms}ms`
}

const DURATION_RULE = 'must be a duration: seconds, or a number with a unit (500ms, 10s, 2m)'

/** A duration >= 0 in milliseconds ('10', '10s', '500ms', '2m'); a bare number is seconds. */
export function duration(setting: Setting<number>): number {
  const s = resolveSetting(setting)
  // A default is given in milliseconds already.
  if (s.origin === 'default' && typeof s.raw === 'number') return s.raw
  const ms = parseDuration(s.raw)
  if (ms === undefined) throw invalid(s, DURATION_RULE)
  return ms
}

/** A duration of at least 1 ms. */
export function positiveDuration(setting: Setting<number>): number {
  const ms = duration(setting)
  if (ms < 1) throw invalid(resolveSetting(setting), `${DURATION_RULE}, more than 0`)
  return ms
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on'])
const FALSE_WORDS = new Set(['false', '0', 'no', 'off'])

/**
 * A boolean: true/false, yes/no, 1/0, on/off in any case; `--flag` alone is true and `--no-flag` false. Anything
 * else, an empty `--flag=` included, is an error: a typo must not silently mean false.
 */
export function bool(setting: Setting<boolean>): boolean {
  const s = resolveSetting(setting)
  if (typeof s.raw === 'boolean') return s.raw
  const word = typeof s.raw === 'string' ? s.raw.trim().toLowerCase() : undefined
  if (word !== undefined && TRUE_WORDS.has(word)) return true
  if (word !== undefined && FALSE_WORDS.has(word)) return false
  throw invalid(s, 'must be true or false (or yes/no, 1/0, on/off)')
}

/** One of the given choices, compared exactly. */
export function oneOf<const C extends readonly string[]>(setting: Setting<C[number]>, choices: C): C[number] {
  const s = resolveSetting(setting)
  const found = choices.find((c) => c === s.raw)
  if (found === undefined) throw invalid(s, `must be one of ${choices.join(', ')}`)
  return found
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/

function validBroker(entry: string): boolean {
  const colon = entry.lastIndexOf(':')
  if (colon <= 0) return false
  const host = entry.slice(0, colon)
  const port = entry.slice(colon + 1)
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) return false
  return HOSTNAME.test(host) || IPV6.test(host)
}

/** 'host:port,host:port' -> ['host:port', 'host:port'], each entry checked (ports 1-65535, IPv6 in brackets). */
export function brokerList(setting: Setting<string | readonly string[]>): string[] {
  const s = resolveSetting(setting, true)
  const text = Array.isArray(s.raw) ? s.raw.join(',') : s.raw
  const rule = 'must be a comma-separated list of host:port with ports from 1 to 65535'
  if (typeof text !== 'string') throw invalid(s, rule)
  const entries = text.split(',').map((e) => e.trim())
  const bad = entries.find((e) => !validBroker(e))
  if (bad !== undefined) throw invalid(s, `${rule}; '${bad}' is not`)
  return entries
}

// Query parameters that carry a secret: node-postgres and libpq read ?password= (and ?sslpassword=) from the URL.
const SECRET_PARAM = /^(ssl)?password$/i

/** Hides the password of a URL (user:password@ and ?password=) so that an error message can quote it. */
export function redactUrl(text: string): string {
  try {
    const parsed = new URL(text)
    if (parsed.password !== '') parsed.password = '***'
    for (const key of new Set(parsed.searchParams.keys())) {
      if (SECRET_PARAM.test(key)) parsed.searchParams.set(key, '***')
    }
    return parsed.toString()
  } catch {
    // Unparseable: hide anything that looks like user:password@, or like password=... in a query or keyword list.
    return text
      .replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@')
      .replace(/(^|[?&\s])((?:ssl)?password=)[^&#\s]*/gi, '$1$2***')
  }
}

/** An absolute URL whose protocol is one of `protocols` (e.g. ['postgres:', 'postgresql:']); returned as given. */
export function url(setting: Setting<string>, protocols: readonly string[]): string {
  const s = resolveSetting(setting)
  const rule = `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`
  if (typeof s.raw !== 'string') throw invalid(s, rule)
  const text = s.raw.trim()
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    throw invalid(s, rule, `'${redactUrl(text)}'`)
  }
  if (!protocols.includes(parsed.protocol) || parsed.hostname === '') throw invalid(s, rule, `'${redactUrl(text)}'`)
  return text
}

/** A postgres:// or postgresql:// connection string. */
export function postgresUrl(setting: Setting<string>): string {
  return url(setting, ['postgres:', 'postgresql:'])
}

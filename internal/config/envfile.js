// The one reader of .env, shared by the commands (internal/config/dotenv.ts imports it) and the local stack
// (stack/lib/env.sh runs this file with node and reads what it prints, without eval). Plain JavaScript, so that the
// stack needs no build; type-checked with the TypeScript sources (checkJs).
//
// The syntax, a strict subset of what dotenv tools accept:
//   - blank lines and lines starting with # are skipped;
//   - every other line is KEY=VALUE, optionally preceded by `export `; KEY is [A-Za-z_][A-Za-z0-9_]*;
//   - VALUE unquoted: up to a # that follows a blank (a comment), surrounding blanks trimmed; a leading ~/ is $HOME/;
//   - VALUE in '...': taken as it is; in "...": \n is a newline, \" a quote, \\ a backslash; after the closing quote
//     only blanks or a # comment;
//   - nothing is expanded: $VAR, $(...) and `...` are plain text.
// A line that breaks these rules is an error naming the file and line (never echoing the line: it may hold a secret).
// The environment wins over the file; the stack's numeric settings are checked as digits before any shell uses them.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

/** A malformed .env or a bad value of a numeric setting; dotenv.ts turns it into a CONFIG_ERROR. */
export class EnvFileError extends Error {
  name = 'EnvFileError'
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Parses .env text into its entries, in file order (a repeated key: the last wins).
 * @param {string} text
 * @param {string} [fileName]
 * @param {string} [home] what a leading ~ of an unquoted value stands for
 * @returns {Map<string, string>}
 */
export function parseDotEnv(text, fileName = '.env', home = process.env.HOME ?? '') {
  const entries = new Map()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim()
    if (line === '' || line.startsWith('#')) continue
    const where = `${fileName} line ${i + 1}`
    const body = /^export\s/.test(line) ? line.slice('export'.length).trimStart() : line
    const eq = body.indexOf('=')
    const key = eq > 0 ? body.slice(0, eq).trim() : ''
    if (!KEY.test(key)) throw new EnvFileError(`${where} must be KEY=VALUE, a # comment or blank`)
    const value = parseValue(body.slice(eq + 1).trim(), where, home)
    if (value.includes('\0')) throw new EnvFileError(`${where}: ${key} holds a NUL character`)
    entries.set(key, value)
  }
  return entries
}

/**
 * @param {string} raw
 * @param {string} where
 * @param {string} home
 * @returns {string}
 */
function parseValue(raw, where, home) {
  const quote = raw[0]
  if (quote === '"' || quote === "'") {
    let end = -1
    for (let i = 1; i < raw.length; i++) {
      if (quote === '"' && raw[i] === '\\') i++
      else if (raw[i] === quote) {
        end = i
        break
      }
    }
    if (end < 0) throw new EnvFileError(`${where}: the value's ${quote} quote is not closed (on the same line)`)
    const rest = raw.slice(end + 1)
    if (rest.trim() !== '' && !/^\s+#/.test(rest)) {
      throw new EnvFileError(`${where}: only a # comment may follow the closing quote`)
    }
    const inner = raw.slice(1, end)
    return quote === "'" ? inner : inner.replace(/\\([n"\\])/g, (_, c) => (c === 'n' ? '\n' : c))
  }
  // Unquoted: a # preceded by a blank starts a comment (so 'a#b' stays whole).
  const comment = raw.search(/\s#/)
  const value = (comment >= 0 ? raw.slice(0, comment) : raw).trim()
  return value === '~' || value.startsWith('~/') ? home + value.slice(1) : value
}

/**
 * What each numeric setting of the local stack must look like. The shell uses them in $((...)) and [ -gt ], which
 * evaluate a value such as a[$(touch pwned)] as code: every one is checked here first.
 * @type {Readonly<Record<string, 'port' | 'port-base' | 'port-or-0' | 'count' | 'count-or-0' | 'heap'>>}
 */
export const STACK_NUMBERS = {
  KAFKA_PORT_BASE: 'port-base',
  KAFKA_CONTROLLER_PORT_BASE: 'port-base',
  CONNECT_PORT: 'port',
  PG_PORT: 'port',
  CASSANDRA_PORT: 'port',
  CASSANDRA_STORAGE_PORT: 'port',
  CASSANDRA_JMX_PORT: 'port-or-0',
  // The JMX exporters' ports (the brokers' is a base: it, +1, +2; stack/lib/prometheus.sh checks that bound) and
  // Prometheus's.
  KAFKA_JMX_EXPORTER_PORT_BASE: 'port-or-0',
  CONNECT_JMX_EXPORTER_PORT: 'port-or-0',
  CASSANDRA_JMX_EXPORTER_PORT: 'port-or-0',
  PROMETHEUS_PORT: 'port',
  // Redis for the cache (stack/lib/redis.sh).
  REDIS_PORT: 'port',
  CASSANDRA_RF: 'count',
  CASSANDRA_WAIT_S: 'count',
  CASSANDRA_STOP_S: 'count',
  DEBEZIUM_TOPIC_PARTITIONS: 'count',
  DEBEZIUM_TOPIC_RF: 'count',
  DEBEZIUM_MAX_BATCH_SIZE: 'count',
  DEBEZIUM_PRODUCER_LINGER_MS: 'count-or-0',
  DEBEZIUM_PRODUCER_BATCH_SIZE: 'count',
  SLOT_RETAINED_WAL_MAX_MB: 'count',
  KAFKA_HEAP: 'heap',
  CONNECT_HEAP: 'heap',
  CASSANDRA_HEAP: 'heap',
}

const RULES = {
  port: 'must be a port: digits, 1 to 65535',
  'port-base': 'must be a port: digits, 1 to 65533 (it and the next two are used)',
  'port-or-0': 'must be a port (digits, 1 to 65535) or 0 for off',
  count: 'must be a positive whole number: digits only',
  'count-or-0': 'must be a whole number: digits only',
  heap: 'must be a heap size: digits with an optional k, m or g (384m)',
}

/**
 * Checks one numeric setting; returns the error message, or undefined when the value is fine (or unset).
 * @param {string} name
 * @param {string | undefined} value
 * @returns {string | undefined}
 */
export function checkStackNumber(name, value) {
  const kind = STACK_NUMBERS[name]
  if (kind === undefined || value === undefined || value === '') return undefined
  const n = /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN
  const ok =
    kind === 'heap'
      ? /^\d{1,9}[kmgKMG]?$/.test(value) && Number.parseInt(value, 10) > 0
      : kind === 'port'
        ? n >= 1 && n <= 65535
        : kind === 'port-base'
          ? n >= 1 && n <= 65533
          : kind === 'port-or-0'
            ? n >= 0 && n <= 65535
            : kind === 'count'
              ? n >= 1
              : n >= 0
  // JSON.stringify shows blanks, quotes and control characters unambiguously.
  return ok ? undefined : `${name} ${RULES[kind]} (got ${JSON.stringify(value)})`
}

/**
 * The local stack's addresses, derived from the port variables the stack itself uses (moving a port in .env moves
 * the stack and the commands' defaults together). Throws an EnvFileError naming a variable that is not a port.
 * @param {Readonly<Record<string, string | undefined>>} env
 */
export function stackAddresses(env) {
  /** @param {string} name @param {number} fallback */
  const port = (name, fallback) => {
    const value = env[name]
    const problem = checkStackNumber(name, value)
    if (problem !== undefined) throw new EnvFileError(problem)
    return value === undefined || value === '' ? fallback : Number(value)
  }
  const kafka = port('KAFKA_PORT_BASE', 9092)
  const password = env.PG_APP_PASSWORD === undefined || env.PG_APP_PASSWORD === '' ? 'cdc_app' : env.PG_APP_PASSWORD
  return {
    brokers: [0, 1, 2].map((i) => `127.0.0.1:${kafka + i}`),
    pgUrl: `postgres://cdc_app:${encodeURIComponent(password)}@127.0.0.1:${port('PG_PORT', 5432)}/cdc_db`,
    cassandraContactPoints: [`127.0.0.1:${port('CASSANDRA_PORT', 9042)}`],
    connectUrl: `http://127.0.0.1:${port('CONNECT_PORT', 8083)}`,
  }
}

/**
 * What the stack exports from `text` (a .env file): the entries whose key the environment does not set, after
 * checking every numeric stack setting of the result (file and environment alike). Throws an EnvFileError.
 * @param {string} text
 * @param {string} fileName
 * @param {Readonly<Record<string, string | undefined>>} env
 * @returns {[string, string][]}
 */
export function stackEntries(text, fileName, env) {
  const fromFile = [...parseDotEnv(text, fileName, env.HOME ?? '')].filter(([k]) => env[k] === undefined)
  const file = new Map(fromFile)
  const problems = Object.keys(STACK_NUMBERS).flatMap((name) => {
    const problem = checkStackNumber(name, file.get(name) ?? env[name])
    if (problem === undefined) return []
    return [`${problem} in ${file.has(name) ? fileName : 'the environment'}`]
  })
  if (problems.length > 0) throw new EnvFileError(problems.join('; '))
  return fromFile
}

// `node internal/config/envfile.js FILE`: what stack/lib/env.sh runs. Prints NAME=value entries separated by NUL
// bytes (a value may hold any other byte); a missing file prints nothing; an error prints one line and exits 1.
const { argv } = process
if (argv[1] !== undefined && import.meta.url === pathToFileURL(argv[1]).href) {
  const file = argv[2] ?? '.env'
  try {
    /** @type {string} */
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ENOENT')
        throw new EnvFileError(`cannot read ${file}: ${err}`)
    }
    process.stdout.write(
      stackEntries(text, file, process.env)
        .map(([k, v]) => `${k}=${v}\0`)
        .join(''),
    )
  } catch (err) {
    process.stderr.write(`${err instanceof EnvFileError ? err.message : String(err)}\n`)
    process.exitCode = 1
  }
}

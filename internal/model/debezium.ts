// Decodes Debezium change events (PostgreSQL connector, Kafka Connect JSON converter) into typed changes.
//
// The connector (configure-debezium.sh) uses pgoutput, no embedded schema (schemas.enable=false: values are passed
// through as JSON gives them and the sink converts them by the target column's type, see toDecimalString,
// toEpochDay, toEpochMillis), decimal.handling.mode string (the text keeps the scale: '12.50'), time.precision.mode
// adaptive (date: days since the epoch; timestamptz: ISO-8601 string) and a tombstone after each delete. Messages
// with an embedded schema (the Connect worker's default, used by other connectors) are decoded with their field
// schemas: Decimal as base64 two's-complement bytes with the scale in the field's schema, Date, ZonedTimestamp.
//
// Everything here is pure: no I/O, no clock. Anything that cannot be decoded is a DECODE_ERROR PipelineError (not
// retriable: the engine sends the message to the DLQ), never a crash.
import { ErrorCodes, PipelineError, show } from '../errors/index.js'
import { parseJsonLossless } from './lossless-json.js'
import {
  formatEpochDay,
  formatEpochUnits,
  formatScaledDecimal,
  parseEpochMillis,
  toDecimalString,
  twosComplementToBigInt,
  withScale,
} from './values.js'

/** The operations of a Debezium change event: create, update, delete, read (snapshot), truncate. */
export const CHANGE_OPS = ['c', 'u', 'd', 'r', 't'] as const
export type ChangeOp = (typeof CHANGE_OPS)[number]

/**
 * A column value after decoding. With a schema: int8/16/32 and floats are numbers, int64 is a bigint, Date is
 * 'YYYY-MM-DD', ZonedTimestamp/Timestamp an ISO-8601 string, Decimal a plain decimal string ('-12.50'), bytes a
 * Uint8Array. Without a schema: what JSON gives (integers beyond 2^53 as bigint).
 */
export type CdcValue = string | number | bigint | boolean | null | Uint8Array | CdcValue[] | { [k: string]: CdcValue }

/** A row image (before, after) or a key: column name -> value. */
export type CdcRow = Record<string, CdcValue>

/** Where a change comes from in PostgreSQL (the envelope's source block). */
export interface SourcePosition {
  /**
   * The LSN of the change's WAL record (pgoutput: source.lsn). For snapshot (r) events, the LSN the snapshot was
   * taken at, the same for every row of the snapshot. Incremental-snapshot rows carry no source.lsn: theirs is the
   * first LSN of source.sequence (the last commit LSN when the chunk's close watermark was read).
   */
  lsn: bigint | null
  txId: bigint | null
  /** Commit time of the transaction in PostgreSQL, ms since the epoch; for snapshot events, when it was read. */
  tsMs: number | null
  /** True for rows of a snapshot (source.snapshot true/first/last/incremental...), false for streamed changes. */
  snapshot: boolean
  /** True for the rows of an incremental snapshot (source.snapshot 'incremental', read in chunks between watermarks). */
  incremental?: boolean
  /**
   * source.sequence, a JSON string ["<last commit LSN>", "<LSN>"] (either may be null): the last commit LSN the
   * connector had seen and the event's own LSN. Null when the event has none.
   */
  sequence?: readonly [bigint | null, bigint | null] | null
  db: string | null
  schema: string | null
  table: string | null
}

/** A row change: c (insert), u (update), d (delete) or r (a row read by a snapshot). */
export interface RowChange {
  kind: 'row'
  op: 'c' | 'u' | 'd' | 'r'
  /** The row before the change: null for c and r; complete for u and d with REPLICA IDENTITY FULL. */
  before: CdcRow | null
  /** The row after the change: null for d. */
  after: CdcRow | null
  /** The Kafka key (the primary key columns), or null when the message had none. */
  key: CdcRow | null
  source: SourcePosition
  /** When Debezium processed the change (envelope ts_ms), ms since the epoch. */
  emittedAtMs: number | null
}

/** A TRUNCATE of a table (op t). It has no row and no key. */
export interface TruncateChange {
  kind: 'truncate'
  op: 't'
  key: CdcRow | null
  source: SourcePosition
  emittedAtMs: number | null
}

/**
 * The null-valued message Debezium writes after each delete so that log compaction can drop the key. It carries
 * nothing to apply: sinks count it as stale.
 */
export interface Tombstone {
  kind: 'tombstone'
  key: CdcRow | null
}

export type DecodedChange = RowChange | TruncateChange | Tombstone

/** A Kafka Connect schema as the JSON converter embeds it. */
export interface ConnectSchema {
  type: string
  optional?: boolean
  name?: string
  version?: number
  parameters?: Record<string, string>
  field?: string
  fields?: ConnectSchema[]
  items?: ConnectSchema
  keys?: ConnectSchema
  values?: ConnectSchema
}

// Thrown (as a value, never escaping this module) when the native JSON parse rounded an int64 that matters:
// the message is parsed again with the lossless parser.
const NEEDS_LOSSLESS = Symbol('needs lossless JSON')

const utf8 = new TextDecoder('utf-8', { fatal: true })

function decodeError(message: string, cause?: unknown): PipelineError {
  return new PipelineError(ErrorCodes.DECODE_ERROR, message, cause === undefined ? {} : { cause })
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

// ---------------------------------------------------------------------------------------------------------------
// Decimals

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function base64Bytes(value: unknown, path: string): Uint8Array {
  if (typeof value !== 'string' || !BASE64.test(value)) {
    throw decodeError(`${path}: expected base64 bytes, got ${show(value)}`)
  }
  return new Uint8Array(Buffer.from(value, 'base64'))
}

// ---------------------------------------------------------------------------------------------------------------
// Conversion by schema

interface Ctx {
  /** false on the first, native-JSON pass: an unsafe integer there means "parse again losslessly". */
  lossless: boolean
}

function int64(value: unknown, path: string, ctx: Ctx): bigint {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isInteger(value)) {
    if (Number.isSafeInteger(value)) return BigInt(value)
    if (!ctx.lossless) throw NEEDS_LOSSLESS
  }
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value)
  throw decodeError(`${path}: expected an int64, got ${show(value)}`)
}

function intIn(value: unknown, path: string, bits: number): number {
  const limit = 2 ** (bits - 1)
  if (typeof value === 'number' && Number.isInteger(value) && value >= -limit && value < limit) return value
  throw decodeError(`${path}: expected an int${bits}, got ${show(value)}`)
}

// PostgreSQL's numeric has a display scale of at most 16383 (and a declared scale of -1000..1000): a larger one
// would only make formatScaledDecimal build a string of that many digits.
const MAX_DECIMAL_SCALE = 16_383

function checkScale(scale: number, path: string): number {
  if (Math.abs(scale) > MAX_DECIMAL_SCALE) {
    throw decodeError(
      `${path}: a decimal scale of ${scale} is beyond PostgreSQL's numeric (at most ${MAX_DECIMAL_SCALE})`,
    )
  }
  return scale
}

function decimalScale(schema: ConnectSchema, path: string): number {
  const raw = schema.parameters?.scale
  const scale = raw === undefined ? NaN : Number(raw)
  if (!Number.isSafeInteger(scale))
    throw decodeError(`${path}: Decimal schema has no valid scale parameter (got ${show(raw)})`)
  return checkScale(scale, path)
}

function convertLogical(schema: ConnectSchema, value: unknown, path: string, ctx: Ctx): CdcValue | undefined {
  switch (schema.name) {
    case 'io.debezium.time.Date':
    case 'org.apache.kafka.connect.data.Date': {
      // Days since the epoch; negative before 1970.
      const days = intIn(value, path, 32)
      return formatEpochDay(days)
    }
    case 'io.debezium.time.ZonedTimestamp': {
      if (typeof value !== 'string' || parseEpochMillis(value) === undefined) {
        throw decodeError(`${path}: expected an ISO-8601 timestamp with a zone, got ${show(value)}`)
      }
      return value
    }
    case 'io.debezium.time.Timestamp':
    case 'org.apache.kafka.connect.data.Timestamp':
      return formatEpochUnits(int64(value, path, ctx), 3)
    case 'io.debezium.time.MicroTimestamp':
      return formatEpochUnits(int64(value, path, ctx), 6)
    case 'io.debezium.time.NanoTimestamp':
      return formatEpochUnits(int64(value, path, ctx), 9)
    case 'org.apache.kafka.connect.data.Decimal': {
      const scale = decimalScale(schema, path)
      if (typeof value === 'string') {
        // Java's BigInteger has no zero-length form: Connect never writes ''.
        const bytes = value === '' ? undefined : base64Bytes(value, path)
        if (bytes === undefined) throw decodeError(`${path}: expected a Decimal as base64 bytes, got ''`)
        return formatScaledDecimal(twosComplementToBigInt(bytes), scale)
      }
      // The JSON converter's decimal.format=NUMERIC writes a JSON number.
      const text = typeof value === 'number' ? toDecimalString(value) : undefined
      if (text === undefined) throw decodeError(`${path}: expected a Decimal as base64 bytes, got ${show(value)}`)
      return withScale(text, scale)
    }
    case 'io.debezium.data.VariableScaleDecimal': {
      if (!isObject(value))
        throw decodeError(`${path}: expected a VariableScaleDecimal {scale, value}, got ${show(value)}`)
      const scale = checkScale(intIn(value.scale, `${path}.scale`, 32), `${path}.scale`)
      return formatScaledDecimal(twosComplementToBigInt(base64Bytes(value.value, `${path}.value`)), scale)
    }
    default:
      return undefined
  }
}

/**
 * How deep a change event's values may nest (a row is level 1). PostgreSQL columns of the replicated tables are
 * scalars, and Debezium sends json/jsonb as strings: deeper is hostile input, named as such rather than left to
 * overflow the stack ("Maximum call stack size exceeded").
 */
export const MAX_NESTING = 64

function checkDepth(depth: number, path: string): void {
  if (depth > MAX_NESTING) throw decodeError(`${path.slice(0, 60)}...: nesting deeper than ${MAX_NESTING} levels`)
}

// Converts one value by its Connect schema (see CdcValue for what each type becomes).
function convertBySchema(
  schema: ConnectSchema,
  value: unknown,
  path: string,
  ctx: Ctx = { lossless: true },
  depth = 1,
): CdcValue {
  if (value === null || value === undefined) return null
  checkDepth(depth, path)
  const logical = convertLogical(schema, value, path, ctx)
  if (logical !== undefined) return logical
  switch (schema.type) {
    case 'int8':
      return intIn(value, path, 8)
    case 'int16':
      return intIn(value, path, 16)
    case 'int32':
      return intIn(value, path, 32)
    case 'int64':
      return int64(value, path, ctx)
    case 'float32':
    case 'float64':
      if (typeof value === 'number') return value
      // Connect's JSON converter writes NaN and infinities as strings.
      if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value)
      throw decodeError(`${path}: expected a number, got ${show(value)}`)
    case 'boolean':
      if (typeof value === 'boolean') return value
      throw decodeError(`${path}: expected a boolean, got ${show(value)}`)
    case 'string':
      if (typeof value === 'string') return value
      throw decodeError(`${path}: expected a string, got ${show(value)}`)
    case 'bytes':
      return base64Bytes(value, path)
    case 'struct':
      return convertStruct(schema, value, path, ctx, depth)
    case 'array': {
      if (!Array.isArray(value)) throw decodeError(`${path}: expected an array, got ${show(value)}`)
      const items = schema.items
      return value.map((v, i) =>
        items ? convertBySchema(items, v, `${path}[${i}]`, ctx, depth + 1) : plain(v, `${path}[${i}]`, ctx, depth + 1),
      )
    }
    case 'map': {
      if (!isObject(value)) throw decodeError(`${path}: expected a map, got ${show(value)}`)
      const out: Record<string, CdcValue> = {}
      for (const [k, v] of Object.entries(value)) {
        out[k] = schema.values
          ? convertBySchema(schema.values, v, `${path}.${k}`, ctx, depth + 1)
          : plain(v, `${path}.${k}`, ctx, depth + 1)
      }
      return out
    }
    default:
      throw decodeError(`${path}: unknown schema type ${show(schema.type)}`)
  }
}

function convertStruct(schema: ConnectSchema, value: unknown, path: string, ctx: Ctx, depth = 1): CdcRow {
  checkDepth(depth, path)
  if (!isObject(value)) throw decodeError(`${path}: expected an object, got ${show(value)}`)
  const out: CdcRow = {}
  const known = new Set<string>()
  for (const field of schema.fields ?? []) {
    if (typeof field.field !== 'string') throw decodeError(`${path}: a field of the schema has no name`)
    known.add(field.field)
    out[field.field] = convertBySchema(field, value[field.field], `${path}.${field.field}`, ctx, depth + 1)
  }
  for (const [k, v] of Object.entries(value)) if (!known.has(k)) out[k] = plain(v, `${path}.${k}`, ctx, depth + 1)
  return out
}

/** A value without a schema: JSON as is, integers beyond 2^53 as bigint (never silently rounded). */
function plain(value: unknown, path: string, ctx: Ctx, depth = 1): CdcValue {
  if (value === null || value === undefined) return null
  if (typeof value === 'number') {
    if (Number.isInteger(value) && !Number.isSafeInteger(value) && !ctx.lossless) throw NEEDS_LOSSLESS
    return value
  }
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'bigint') return value
  checkDepth(depth, path)
  if (Array.isArray(value)) return value.map((v, i) => plain(v, `${path}[${i}]`, ctx, depth + 1))
  const out: CdcRow = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = plain(v, `${path}.${k}`, ctx, depth + 1)
  }
  return out
}

function row(schema: ConnectSchema | undefined, value: unknown, path: string, ctx: Ctx): CdcRow | null {
  if (value === null || value === undefined) return null
  if (!isObject(value)) throw decodeError(`${path}: expected a row object or null, got ${show(value)}`)
  return schema ? convertStruct(schema, value, path, ctx) : (plain(value, path, ctx) as CdcRow)
}

const fieldSchema = (schema: ConnectSchema | undefined, name: string): ConnectSchema | undefined =>
  schema?.fields?.find((f) => f.field === name)

function optionalNumber(value: unknown, path: string, ctx: Ctx): number | null {
  if (value === null || value === undefined) return null
  const n = int64(value, path, ctx)
  return Number(n)
}

function optionalString(value: unknown, path: string): string | null {
  if (value === null || value === undefined) return null
  if (typeof value !== 'string') throw decodeError(`${path}: expected a string, got ${show(value)}`)
  return value
}

const LSN_TEXT = /^[0-9]{1,20}$/

/** source.sequence: a JSON string of two LSNs (decimal strings or null), or absent. */
export function decodeSequence(value: unknown): readonly [bigint | null, bigint | null] | null {
  if (value === null || value === undefined) return null
  const bad = () => decodeError(`source.sequence: expected a JSON string ["<lsn>","<lsn>"], got ${show(value)}`)
  if (typeof value !== 'string') throw bad()
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch {
    throw bad()
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw bad()
  const lsn = (v: unknown): bigint | null => {
    if (v === null) return null
    if (typeof v !== 'string' || !LSN_TEXT.test(v)) throw bad()
    const n = BigInt(v)
    if (n >= 1n << 64n) throw bad()
    return n
  }
  return [lsn(parsed[0]), lsn(parsed[1])]
}

function sourcePosition(value: unknown, ctx: Ctx): SourcePosition {
  if (!isObject(value)) throw decodeError(`source: expected the source block, got ${show(value)}`)
  const snapshot = value.snapshot
  const incremental = snapshot === 'incremental'
  const sequence = decodeSequence(value.sequence)
  const lsn = value.lsn === null || value.lsn === undefined ? null : int64(value.lsn, 'source.lsn', ctx)
  return {
    // An incremental-snapshot row has no source.lsn: it is ordered by the last commit LSN (write-timestamp.ts).
    lsn: lsn === null && incremental ? (sequence?.[0] ?? null) : lsn,
    txId: value.txId === null || value.txId === undefined ? null : int64(value.txId, 'source.txId', ctx),
    tsMs: optionalNumber(value.ts_ms, 'source.ts_ms', ctx),
    // 'true', 'first', 'first_in_data_collection', 'last_in_data_collection', 'last', 'incremental'; older
    // connectors wrote a boolean.
    snapshot: snapshot !== undefined && snapshot !== null && snapshot !== false && snapshot !== 'false',
    incremental,
    sequence,
    db: optionalString(value.db, 'source.db'),
    schema: optionalString(value.schema, 'source.schema'),
    table: optionalString(value.table, 'source.table'),
  }
}

interface Envelope {
  schema: ConnectSchema | undefined
  payload: unknown
}

// {schema, payload} when the converter embeds schemas; the payload itself at the top level otherwise.
function unwrap(doc: unknown, what: string): Envelope {
  if (isObject(doc) && 'payload' in doc && 'schema' in doc) {
    const schema = doc.schema
    if (schema !== null && !(isObject(schema) && typeof schema.type === 'string')) {
      throw decodeError(`${what}: the embedded schema is not a Connect schema`)
    }
    return { schema: (schema ?? undefined) as ConnectSchema | undefined, payload: doc.payload }
  }
  return { schema: undefined, payload: doc }
}

// The JSON converter repeats the same schema (about 3.5 kB) in every message of a topic, before a payload of a few
// hundred bytes. Parsing it once per distinct schema text and only the payload per message makes decoding several
// times cheaper; anything that does not split cleanly takes the full parse.
const SCHEMA_PREFIX = '{"schema":'
const PAYLOAD_MARK = ',"payload":'
const SCHEMA_CACHE_SIZE = 64
const schemaCache = new Map<string, unknown>()

function parseEnvelopeFast(text: string, lossless: boolean): { schema: unknown; payload: unknown } | undefined {
  if (!text.startsWith(SCHEMA_PREFIX) || !text.endsWith('}')) return undefined
  // The first occurrence is the envelope's: a Connect schema has no "payload" key, and inside a JSON string the
  // quotes would be escaped. Whatever does not parse after the split takes the full parse.
  const at = text.indexOf(PAYLOAD_MARK, SCHEMA_PREFIX.length)
  if (at < 0) return undefined
  const schemaText = text.slice(SCHEMA_PREFIX.length, at)
  try {
    let schema = schemaCache.get(schemaText)
    if (schema === undefined) {
      schema = JSON.parse(schemaText) as unknown
      if (schemaCache.size >= SCHEMA_CACHE_SIZE) schemaCache.delete(schemaCache.keys().next().value as string)
      schemaCache.set(schemaText, schema)
    }
    const payloadText = text.slice(at + PAYLOAD_MARK.length, -1)
    return { schema, payload: lossless ? parseJsonLossless(payloadText) : JSON.parse(payloadText) }
  } catch {
    return undefined
  }
}

function parseJson(bytes: Uint8Array, what: string, lossless: boolean): unknown {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch (err) {
    throw decodeError(`${what} is not valid UTF-8`, err)
  }
  const fast = parseEnvelopeFast(text, lossless)
  if (fast !== undefined) return fast
  try {
    return lossless ? parseJsonLossless(text) : JSON.parse(text)
  } catch (err) {
    throw decodeError(`${what} is not valid JSON: ${(err as Error).message}`, err)
  }
}

function decodeKeyDoc(doc: unknown, ctx: Ctx): CdcRow | null {
  const { schema, payload } = unwrap(doc, 'key')
  if (payload === null || payload === undefined) return null
  if (!isObject(payload)) throw decodeError(`key: expected an object, got ${show(payload)}`)
  return row(schema, payload, 'key', ctx)
}

function decodeValueDoc(doc: unknown, key: CdcRow | null, ctx: Ctx): DecodedChange {
  const { schema, payload } = unwrap(doc, 'value')
  // A message whose payload is null (schemas enabled) is a tombstone too.
  if (payload === null) return { kind: 'tombstone', key }
  if (!isObject(payload)) throw decodeError(`value: expected a change event object, got ${show(payload)}`)
  const op = payload.op
  if (typeof op !== 'string' || !(CHANGE_OPS as readonly string[]).includes(op)) {
    throw decodeError(`value: op must be one of ${CHANGE_OPS.join(', ')} (got ${show(op)})`)
  }
  if (!('source' in payload)) throw decodeError('value: the change event has no source block')
  const source = sourcePosition(payload.source, ctx)
  const emittedAtMs = optionalNumber(payload.ts_ms, 'ts_ms', ctx)
  if (op === 't') return { kind: 'truncate', op, key, source, emittedAtMs }
  const before = row(fieldSchema(schema, 'before'), payload.before, 'before', ctx)
  const after = row(fieldSchema(schema, 'after'), payload.after, 'after', ctx)
  if ((op === 'c' || op === 'r' || op === 'u') && after === null)
    throw decodeError(`value: op ${op} without an after image`)
  if (op === 'd' && before === null && key === null)
    throw decodeError('value: a delete without a before image or a key')
  return { kind: 'row', op: op as RowChange['op'], before, after, key, source, emittedAtMs }
}

function decodeWith(value: Uint8Array | null, key: Uint8Array | null, lossless: boolean): DecodedChange {
  const ctx: Ctx = { lossless }
  if (value === null) {
    // Nothing to apply: a malformed key on a tombstone is not worth a DLQ entry.
    let k: CdcRow | null = null
    try {
      k = key === null ? null : decodeKeyDoc(parseJson(key, 'key', lossless), ctx)
    } catch (err) {
      if (err === NEEDS_LOSSLESS) throw err
    }
    return { kind: 'tombstone', key: k }
  }
  if (value.length === 0) throw decodeError('value is empty (neither a change event nor a tombstone)')
  const k = key === null || key.length === 0 ? null : decodeKeyDoc(parseJson(key, 'key', lossless), ctx)
  return decodeValueDoc(parseJson(value, 'value', lossless), k, ctx)
}

/**
 * Decodes one Debezium message (value and key bytes as Kafka holds them) into a typed change. A null value is a
 * tombstone. Throws a DECODE_ERROR PipelineError for anything malformed: invalid UTF-8 or JSON, an unknown op, a
 * value that does not fit its schema (a bad date, base64, a Decimal without scale...).
 */
export function decodeChange(value: Uint8Array | null, key: Uint8Array | null = null): DecodedChange {
  try {
    return decodeWith(value, key, false)
  } catch (err) {
    // An int64 beyond 2^53 was rounded by JSON.parse: parse again, keeping it exact.
    if (err === NEEDS_LOSSLESS) return decodeWith(value, key, true)
    if (err instanceof PipelineError) throw err
    throw decodeError(`undecodable change event: ${(err as Error)?.message ?? String(err)}`, err)
  }
}

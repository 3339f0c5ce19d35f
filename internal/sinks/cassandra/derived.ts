// A table replicated without an entity definition: its Cassandra table derived from the PostgreSQL catalog
// (catalog.ts, type-map.ts), its change events decoded per column type and written like users/orders: every write
// stamped USING TIMESTAMP from the change's LSN (write-timestamp.ts), a batch reduced per primary key to its newest
// change, a delete deleting the row. Plain data (it crosses into worker threads); pure apart from nothing: no I/O.
//
// Keys: the PostgreSQL primary key becomes the Cassandra partition key, all of its columns (a composite key
// (a, b) is PRIMARY KEY ((a, b)): one partition per row, as in PostgreSQL; no clustering columns).
import cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError, show } from '../../errors/index.js'
import { hasLoneSurrogate, type CdcRow, type CdcValue, type RowChange } from '../../model/index.js'
import { coerceValue, type BoundValue } from './coerce.js'
import { absentColumns } from './schema-drift.js'
import { mapPgType, type MappedType, type PgColumnType, type ValueKind } from './type-map.js'
import { writeTimestampOf } from './write-timestamp.js'

/** A column as the catalog describes it. */
export interface CatalogColumn {
  name: string
  notNull: boolean
  type: PgColumnType
}

/** A column of a derived table. */
export interface DerivedColumn {
  name: string
  /** The PostgreSQL type as people write it ('numeric(10,2)', 'text[]'). */
  pgType: string
  notNull: boolean
  /** Undefined for a type without a mapping. */
  mapped?: MappedType
}

/** A derived table definition. */
export interface DerivedTable {
  schema: string
  table: string
  /** The Cassandra table: the PostgreSQL name for schema public, <schema>_<table> otherwise. */
  target: string
  columns: DerivedColumn[]
  primaryKey: string[]
  /**
   * Why its changes cannot be replicated (a column of a type without a mapping, no primary key, a name Cassandra
   * cannot take): every change event of the table is dead-lettered with this reason, never dropped.
   */
  problem?: string
}

const MAX_CQL_NAME = 48

/** Builds the definition from catalog rows; a table that cannot be replicated gets its `problem`. */
export function deriveTable(
  schema: string,
  table: string,
  catalog: readonly CatalogColumn[],
  primaryKey: readonly string[],
): DerivedTable {
  const target = schema === 'public' ? table : `${schema}_${table}`
  const columns: DerivedColumn[] = catalog.map((c) => {
    const mapped = mapPgType(c.type)
    return { name: c.name, pgType: c.type.display, notNull: c.notNull, ...(mapped ? { mapped } : {}) }
  })
  const out: DerivedTable = { schema, table, target, columns, primaryKey: [...primaryKey] }
  const unmapped = columns.filter((c) => c.mapped === undefined)
  const name = `${schema}.${table}`
  if (unmapped.length > 0) {
    out.problem =
      `table ${name}: ${unmapped.map((c) => `column ${c.name} has type ${c.pgType}`).join(', ')}, which has no ` +
      'Cassandra mapping (docs/type-mapping.md): its changes are not replicated'
  } else if (primaryKey.length === 0) {
    out.problem = `table ${name} has no primary key: its rows have no Cassandra key, its changes are not replicated`
  } else if (target.length > MAX_CQL_NAME) {
    out.problem = `table ${name}: the Cassandra table name ${target} is longer than ${MAX_CQL_NAME} characters`
  }
  return out
}

/** A CQL identifier, quoted (PostgreSQL column names may be mixed case or reserved words in CQL). */
export const quoteCql = (name: string): string => `"${name.replace(/"/g, '""')}"`

/** CREATE TABLE IF NOT EXISTS of a replicable table. */
export function createTableCql(keyspace: string, t: DerivedTable): string {
  if (t.problem !== undefined) throw new PipelineError(ErrorCodes.CONFIG_ERROR, t.problem)
  const columns = t.columns.map((c) => `${quoteCql(c.name)} ${c.mapped!.cql}`)
  return (
    `CREATE TABLE IF NOT EXISTS ${keyspace}.${quoteCql(t.target)} (${columns.join(', ')}, ` +
    `PRIMARY KEY ((${t.primaryKey.map(quoteCql).join(', ')})))`
  )
}

/** INSERT of every column with a write timestamp (the last bound value). */
export function derivedInsertCql(keyspace: string, t: DerivedTable): string {
  return (
    `INSERT INTO ${keyspace}.${quoteCql(t.target)} (${t.columns.map((c) => quoteCql(c.name)).join(', ')}) ` +
    `VALUES (${t.columns.map(() => '?').join(', ')}) USING TIMESTAMP ?`
  )
}

/** DELETE of a row with a write timestamp (the first bound value), then the primary key. */
export function derivedDeleteCql(keyspace: string, t: DerivedTable): string {
  return (
    `DELETE FROM ${keyspace}.${quoteCql(t.target)} USING TIMESTAMP ? WHERE ` +
    t.primaryKey.map((c) => `${quoteCql(c)} = ?`).join(' AND ')
  )
}

// ---------------------------------------------------------------------------------------------------------------
// Values

/** What Debezium sends for a TOASTed value it could not read (REPLICA IDENTITY not FULL): never written. */
export const UNAVAILABLE_PLACEHOLDER = '__debezium_unavailable_value'
const UNAVAILABLE_BASE64 = Buffer.from(UNAVAILABLE_PLACEHOLDER).toString('base64')
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function invalid(column: string, kind: ValueKind, value: unknown, why = ''): PipelineError {
  return new PipelineError(
    ErrorCodes.VALIDATION_ERROR,
    `column ${column}: ${show(value, 60)} does not fit ${kind}${why === '' ? '' : ` (${why})`}`,
  )
}

function intOf(value: CdcValue): bigint | undefined {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) return BigInt(value)
  return undefined
}

function inRange(column: string, kind: ValueKind, value: CdcValue, bits: number): bigint {
  const n = intOf(value)
  const limit = 1n << BigInt(bits - 1)
  if (n === undefined || n < -limit || n >= limit) throw invalid(column, kind, value)
  return n
}

// Floor division: µs before 1970 round towards the past, as PostgreSQL's date_trunc('milliseconds') does.
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b
  return a % b < 0n ? q - 1n : q
}

function scalar(column: string, m: MappedType, value: CdcValue): BoundValue | Buffer {
  switch (m.kind) {
    case 'text':
    case 'json':
      if (value === UNAVAILABLE_PLACEHOLDER) {
        throw invalid(column, m.kind, value, 'Debezium did not have the value: set REPLICA IDENTITY FULL on the table')
      }
      if (typeof value === 'string' && !hasLoneSurrogate(value)) return value
      throw invalid(column, m.kind, value)
    case 'smallint':
      return Number(inRange(column, m.kind, value, 16))
    case 'int':
      return Number(inRange(column, m.kind, value, 32))
    case 'bigint':
      return inRange(column, m.kind, value, 64)
    case 'float':
    case 'double':
      if (typeof value === 'number') return value
      if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value)
      throw invalid(column, m.kind, value)
    case 'decimal':
      // The numeric(p, s) digit bound is checked before anything is parsed (coerce.ts).
      return coerceValue(column, 'decimal', value, m.numeric)
    case 'boolean':
      return coerceValue(column, 'boolean', value)
    case 'uuid':
      return coerceValue(column, 'uuid', value)
    case 'date':
      return coerceValue(column, 'date', value)
    case 'timestamptz':
      return coerceValue(column, 'timestamp', value)
    case 'timestamp-ms':
    case 'timestamp-us': {
      // Without a schema: an epoch count; decoded with one: an ISO-8601 string.
      if (typeof value === 'string' && !/^-?\d+$/.test(value)) return coerceValue(column, 'timestamp', value)
      const n = inRange(column, m.kind, value, 64)
      return m.kind === 'timestamp-ms' ? n : floorDiv(n, 1000n)
    }
    case 'blob': {
      if (value instanceof Uint8Array) return Buffer.from(value)
      if (typeof value === 'string' && BASE64.test(value)) {
        if (value === UNAVAILABLE_BASE64) {
          throw invalid(column, m.kind, value, 'Debezium did not have the value: set REPLICA IDENTITY FULL')
        }
        return Buffer.from(value, 'base64')
      }
      throw invalid(column, m.kind, value, 'base64 bytes are expected')
    }
  }
}

/** The driver value of one column, null for a NULL; throws VALIDATION_ERROR naming the column when it does not fit. */
export function coerceDerivedValue(column: string, m: MappedType, value: CdcValue | undefined): unknown {
  if (value === null || value === undefined) return null
  if (!m.list) return scalar(column, m, value)
  if (!Array.isArray(value)) throw invalid(column, m.kind, value, 'an array is expected')
  return value.map((v, i) => {
    if (v === null) {
      throw invalid(column, m.kind, value, `element ${i + 1} is NULL: a Cassandra list cannot hold null`)
    }
    if (Array.isArray(v)) throw invalid(column, m.kind, value, 'a multi-dimensional array has no list mapping')
    return scalar(`${column}[${i + 1}]`, m, v)
  })
}

/**
 * Every column of a row image, converted (a null as null). A column the image lacks altogether is one PostgreSQL no
 * longer has (schema-drift.ts): SCHEMA_MISMATCH, never written as null.
 */
export function coerceDerivedRow(t: DerivedTable, image: CdcRow): unknown[] {
  const absent = absentColumns(
    t.columns.map((c) => c.name),
    image,
  )
  if (absent.length > 0) {
    throw new PipelineError(
      ErrorCodes.SCHEMA_MISMATCH,
      `column${absent.length > 1 ? 's' : ''} ${absent.join(', ')} of ${t.schema}.${t.table} absent from the row image`,
    )
  }
  return t.columns.map((c) => coerceDerivedValue(c.name, c.mapped!, image[c.name]))
}

// A primary key's identity as text, for grouping a batch's changes.
function keyText(values: readonly unknown[]): string {
  return values
    .map((v) =>
      Buffer.isBuffer(v) ? v.toString('hex') : v instanceof cassandra.types.LocalDate ? v.toString() : String(v),
    )
    .join('\u0000')
}

/** A derived table's change, checked and converted. */
export interface DerivedChange {
  index: number
  change: RowChange
  timestamp: bigint
  key: string
  /** The primary key's bound values (in primaryKey order). */
  keyValues: unknown[]
  /** The after-image's bound values in column order, null for a delete. */
  values: unknown[] | null
  /** The definition `values` follow: the table's, with the columns added at run time the after-image has. */
  table: DerivedTable
}

/**
 * Checks one change of a derived table and converts it. Throws VALIDATION_ERROR (that message alone goes to the
 * DLQ) for a table that cannot be replicated, a change without an LSN, a key that is not the row's, a value that
 * does not fit its column.
 */
export function prepareDerivedChange(t: DerivedTable, index: number, change: RowChange): DerivedChange {
  if (t.problem !== undefined) throw new PipelineError(ErrorCodes.VALIDATION_ERROR, t.problem)
  const timestamp = writeTimestampOf(change)
  const image = change.op === 'd' ? change.before : change.after
  const byName = new Map(t.columns.map((c) => [c.name, c]))
  const pkOf = (row: CdcRow, what: string): unknown[] =>
    t.primaryKey.map((name) => {
      const v = coerceDerivedValue(name, byName.get(name)!.mapped!, row[name])
      if (v === null) {
        throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `${what} has no value for primary key column ${name}`)
      }
      return v
    })
  if (change.key === null) {
    throw new PipelineError(ErrorCodes.VALIDATION_ERROR, "the change has no key; the key must be the row's primary key")
  }
  const keyValues = pkOf(change.key, 'the key')
  const key = keyText(keyValues)
  if (image !== null) {
    const own = keyText(pkOf(image, `the ${change.op === 'd' ? 'before' : 'after'}-image`))
    if (own !== key) {
      throw new PipelineError(ErrorCodes.VALIDATION_ERROR, "the change's key is not the primary key of its row")
    }
  } else if (change.op !== 'd') {
    throw new PipelineError(ErrorCodes.VALIDATION_ERROR, 'the change has no after-image')
  }
  const values = change.op === 'd' ? null : coerceDerivedRow(t, change.after!)
  return { index, change, timestamp, key, keyValues, values, table: t }
}

/** One statement of a derived table's write, ready to execute. */
export interface CqlWrite {
  kind: 'cql'
  query: string
  params: unknown[]
}

/** The write of one primary key and the messages it settles (shaped like plan.ts's KeyPlan). */
export interface DerivedKeyPlan {
  id: string
  indexes: number[]
  winner: DerivedChange
  writes: CqlWrite[]
  warning?: undefined
}

/** Per primary key, the change with the highest write timestamp (on a tie the later message) is written. */
export function planDerivedWrites(
  keyspace: string,
  t: DerivedTable,
  changes: readonly DerivedChange[],
): DerivedKeyPlan[] {
  const byKey = new Map<string, DerivedChange[]>()
  for (const c of changes) {
    const list = byKey.get(c.key)
    if (list) list.push(c)
    else byKey.set(c.key, [c])
  }
  const plans: DerivedKeyPlan[] = []
  for (const [id, list] of byKey) {
    const winner = list.reduce((best, c) => (c.timestamp >= best.timestamp ? c : best))
    const write: CqlWrite =
      winner.values === null
        ? { kind: 'cql', query: derivedDeleteCql(keyspace, t), params: [winner.timestamp, ...winner.keyValues] }
        : { kind: 'cql', query: derivedInsertCql(keyspace, winner.table), params: [...winner.values, winner.timestamp] }
    plans.push({ id, indexes: list.map((c) => c.index), winner, writes: [write] })
  }
  return plans
}

/** The change topic of a table: <prefix>.<schema>.<table>, as Debezium names it. */
export const changeTopicOf = (prefix: string, schema: string, table: string): string => `${prefix}.${schema}.${table}`

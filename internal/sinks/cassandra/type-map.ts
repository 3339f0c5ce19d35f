// PostgreSQL column types -> the CQL type of the derived Cassandra column and how Debezium's value (connector
// settings in configure-debezium.sh: JSON without schemas, decimal.handling.mode string, time.precision.mode
// adaptive, binary.handling.mode bytes) is decoded. docs/type-mapping.md is this table for people; keep them equal.

/** How a change value of a column is read (Debezium's JSON form) and bound (cassandra-driver's value). */
export type ValueKind =
  | 'text'
  | 'smallint'
  | 'int'
  | 'bigint'
  | 'decimal'
  | 'float'
  | 'double'
  | 'boolean'
  | 'uuid'
  | 'date'
  /** timestamp(0..3): Debezium's io.debezium.time.Timestamp, ms since the epoch. */
  | 'timestamp-ms'
  /** timestamp(4..6), and timestamp without a precision: io.debezium.time.MicroTimestamp, µs since the epoch. */
  | 'timestamp-us'
  /** timestamptz: io.debezium.time.ZonedTimestamp, an ISO-8601 string. */
  | 'timestamptz'
  /** json, jsonb: io.debezium.data.Json, the text PostgreSQL gives. */
  | 'json'
  /** bytea: base64 bytes. */
  | 'blob'

/** The CQL type each kind is stored as. */
export const CQL_OF_KIND: Readonly<Record<ValueKind, string>> = {
  text: 'text',
  smallint: 'smallint',
  int: 'int',
  bigint: 'bigint',
  decimal: 'decimal',
  float: 'float',
  double: 'double',
  boolean: 'boolean',
  uuid: 'uuid',
  date: 'date',
  'timestamp-ms': 'timestamp',
  'timestamp-us': 'timestamp',
  timestamptz: 'timestamp',
  json: 'text',
  blob: 'blob',
}

/** A column's type as the catalog gives it (pg_type.typname of the column, or of an array's element). */
export interface PgColumnType {
  /** pg_type.typname: 'int4', 'varchar', 'numeric', '_int4' ... */
  typname: string
  /** pg_attribute.atttypmod (-1 when none). */
  typmod: number
  /** pg_type.typcategory = 'A': an array, whose element is elemTypname. */
  isArray: boolean
  elemTypname?: string | null
  /** format_type(atttypid, atttypmod): what people read, e.g. 'numeric(10,2)', 'point', 'integer[]'. */
  display: string
}

/** A mapped column: its kind, whether it is a list of that kind, and numeric(p, s) bounds. */
export interface MappedType {
  kind: ValueKind
  list: boolean
  numeric?: { precision: number; scale: number }
  /** The CQL type: 'decimal', 'frozen<list<int>>' ... */
  cql: string
}

const SCALARS: Readonly<Record<string, ValueKind>> = {
  text: 'text',
  varchar: 'text',
  bpchar: 'text',
  int2: 'smallint',
  int4: 'int',
  int8: 'bigint',
  numeric: 'decimal',
  float4: 'float',
  float8: 'double',
  bool: 'boolean',
  uuid: 'uuid',
  date: 'date',
  timestamp: 'timestamp-us',
  timestamptz: 'timestamptz',
  json: 'json',
  jsonb: 'json',
  bytea: 'blob',
}

/** numeric's typmod: ((precision << 16) | scale) + 4; the scale is 11-bit signed since PostgreSQL 15. */
export function numericTypmod(typmod: number): { precision: number; scale: number } | undefined {
  if (typmod < 4) return undefined
  const t = typmod - 4
  const precision = (t >> 16) & 0xffff
  const scale = ((t & 0x7ff) ^ 1024) - 1024
  return { precision, scale }
}

/**
 * The mapping of a column type, or undefined when it has none (a range, point, interval, money, an enum, a domain or
 * any other type not in the table: the table's changes are then dead-lettered, naming the column and type).
 */
export function mapPgType(t: PgColumnType): MappedType | undefined {
  const name = t.isArray ? t.elemTypname : t.typname
  if (name === undefined || name === null) return undefined
  let kind = SCALARS[name]
  if (kind === undefined) return undefined
  let numeric: MappedType['numeric']
  if (kind === 'decimal') {
    numeric = numericTypmod(t.typmod)
    // A negative scale (numeric(2,-3)) holds 1000s: Cassandra's decimal can, but the digit bounds below assume s >= 0.
    if (numeric !== undefined && numeric.scale < 0) return undefined
  }
  // Adaptive precision: timestamp(0..3) arrives in ms, timestamp(4..6) and plain timestamp in µs.
  if (kind === 'timestamp-us' && t.typmod >= 0 && t.typmod <= 3) kind = 'timestamp-ms'
  const scalar = CQL_OF_KIND[kind]
  return {
    kind,
    list: t.isArray,
    ...(numeric === undefined ? {} : { numeric }),
    // Frozen: a list is one cell, written whole at the change's timestamp (an empty list stays an empty list).
    cql: t.isArray ? `frozen<list<${scalar}>>` : scalar,
  }
}

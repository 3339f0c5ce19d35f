// Turns decoded change values into cassandra-driver values by the target column's CQL type. Values decoded with a
// schema arrive in canonical form ('YYYY-MM-DD', ISO timestamps, decimal strings, bigint); values of messages without
// a schema arrive as JSON gave them, and are accepted where the meaning is unambiguous (a date as a day count, a
// decimal as a string or a number).
import cassandra from 'cassandra-driver'
import { ErrorCodes, PipelineError, show } from '../../errors/index.js'
import {
  decimalOf,
  decimalSize,
  hasLoneSurrogate,
  isUuid,
  parseEpochDay,
  parseEpochMillis,
  plainDecimal,
  type CdcRow,
  type CdcValue,
} from '../../model/index.js'
import { absentColumns } from './schema-drift.js'
import type { CqlType, NumericSpec, TableSpec } from './tables.js'

const { BigDecimal, LocalDate } = cassandra.types
// The driver's typings only declare LocalDate(year, month, day); its constructor also takes days since the epoch,
// which covers every date Cassandra can hold (the Date-based constructor cannot go past year 275760).
const LocalDateOfDays = LocalDate as unknown as new (days: number) => InstanceType<typeof LocalDate>

const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1
const INT64_MIN = -(1n << 63n)
const INT64_MAX = (1n << 63n) - 1n

/** A value ready to bind: string, number, bigint, boolean, null, or a driver LocalDate/BigDecimal. */
export type BoundValue =
  string | number | bigint | boolean | null | InstanceType<typeof LocalDate> | InstanceType<typeof BigDecimal>

function invalid(column: string, type: CqlType, value: unknown, why = ''): PipelineError {
  return new PipelineError(
    ErrorCodes.VALIDATION_ERROR,
    `column ${column}: ${show(value, 60)} does not fit Cassandra type ${type}${why === '' ? '' : ` (${why})`}`,
  )
}

function toBigInt(value: CdcValue): bigint | undefined {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) return BigInt(value.trim())
  return undefined
}

/**
 * The digits a decimal column without a declared numeric(p, s) may have on either side of the point: 1000,
 * PostgreSQL's largest declared precision. It bounds the work BigDecimal.fromString does for one value.
 */
export const UNDECLARED_DECIMAL_DIGITS = 1000

/**
 * One value for a column of the given type; throws VALIDATION_ERROR naming the column when it does not fit. `numeric`
 * is the PostgreSQL numeric(p, s) a decimal column replicates.
 */
export function coerceValue(
  column: string,
  type: CqlType,
  value: CdcValue | undefined,
  numeric?: NumericSpec,
): BoundValue {
  if (value === null || value === undefined) return null
  switch (type) {
    case 'uuid':
      if (typeof value === 'string' && isUuid(value)) return value.toLowerCase()
      throw invalid(column, type, value)
    case 'text':
      // A lone surrogate has no UTF-8 form: the driver would write U+FFFD, not what PostgreSQL holds.
      if (typeof value === 'string' && !hasLoneSurrogate(value)) return value
      throw invalid(column, type, value, typeof value === 'string' ? 'it holds a lone UTF-16 surrogate' : '')
    case 'boolean':
      if (typeof value === 'boolean') return value
      throw invalid(column, type, value)
    case 'int':
      if (typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) return value
      throw invalid(column, type, value)
    case 'bigint': {
      const n = toBigInt(value)
      if (n !== undefined && n >= INT64_MIN && n <= INT64_MAX) return n
      throw invalid(column, type, value)
    }
    case 'decimal': {
      const d = decimalOf(value)
      if (d === undefined) throw invalid(column, type, value, 'a decimal string or number is expected')
      // Checked in O(length) before anything is expanded or parsed: BigDecimal.fromString is quadratic in the
      // digits, and no numeric(10,2) change could ever carry 1e100000.
      const { intDigits, fracDigits } = decimalSize(d)
      const maxInt = numeric ? numeric.precision - numeric.scale : UNDECLARED_DECIMAL_DIGITS
      const maxFrac = numeric ? numeric.scale : UNDECLARED_DECIMAL_DIGITS
      if (intDigits > maxInt || fracDigits > maxFrac) {
        throw invalid(
          column,
          type,
          value,
          numeric
            ? `no numeric(${numeric.precision},${numeric.scale}) can hold it`
            : `more than ${UNDECLARED_DECIMAL_DIGITS} digits before or after the point`,
        )
      }
      return BigDecimal.fromString(plainDecimal(d))
    }
    case 'date': {
      // Schema: 'YYYY-MM-DD'. No schema: Debezium's day count since the epoch.
      const days =
        typeof value === 'string'
          ? parseEpochDay(value)
          : typeof value === 'number' && Number.isInteger(value)
            ? value
            : undefined
      if (days === undefined || days < INT32_MIN || days > INT32_MAX) throw invalid(column, type, value)
      return new LocalDateOfDays(days)
    }
    case 'timestamp': {
      // Cassandra timestamps hold milliseconds: finer digits are dropped (towards the past). A number without a
      // schema could be ms, µs or ns: refused rather than guessed.
      const ms = typeof value === 'string' ? parseEpochMillis(value) : undefined
      if (ms === undefined) throw invalid(column, type, value, 'an ISO-8601 timestamp with a zone is expected')
      if (ms < INT64_MIN || ms > INT64_MAX) throw invalid(column, type, value, 'out of range')
      return ms
    }
  }
}

/**
 * The bound values of a row for `table`, in the table's column order: every column the table has, taken from the
 * row image (a null is written as null, like a NULL in PostgreSQL). A column the image lacks altogether is not a
 * NULL but a column PostgreSQL no longer has (dropped or renamed, schema-drift.ts): SCHEMA_MISMATCH, never a null.
 * Columns the image has and the table does not are left to the caller (added columns). Primary key columns must
 * be non-null.
 */
export function coerceRow(table: TableSpec, image: CdcRow): Record<string, BoundValue> {
  const absent = absentColumns(Object.keys(table.columns), image)
  if (absent.length > 0) {
    throw new PipelineError(
      ErrorCodes.SCHEMA_MISMATCH,
      `column${absent.length > 1 ? 's' : ''} ${absent.join(', ')} of ${table.name} absent from the row image`,
    )
  }
  const out: Record<string, BoundValue> = {}
  for (const [column, type] of Object.entries(table.columns)) {
    out[column] = coerceValue(column, type, image[column], table.numeric?.[column])
  }
  for (const column of [...table.partitionKey, ...table.clusteringKey]) {
    if (out[column] === null) {
      throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `column ${column} (primary key of ${table.name}) is missing`)
    }
  }
  return out
}

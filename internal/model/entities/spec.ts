// What one entity is, in one place: its topic and key, its typed fields and their rules, how concurrent versions
// merge, its PostgreSQL table and the Cassandra tables it maps to, and how the generator makes it. Validation
// (validator.ts, compiled once per entity), reduction and the upsert (sinks/postgres/sql.ts), the Cassandra tables
// (sinks/cassandra/tables.ts), the expected state, verify and the generator are all derived from these definitions.
import type { EventBase, EventType } from '../events.js'

/** The rule a field's value must meet (validator.ts states each as a message). */
export type FieldRule =
  | { kind: 'uuid' }
  /** Free text of 1 to maxChars code points, not blank, no NUL, valid Unicode. */
  | { kind: 'text'; maxChars: number }
  /** One of a fixed set of words. */
  | { kind: 'enum'; values: readonly string[] }
  /** YYYY-MM-DD. */
  | { kind: 'date' }
  /** ISO 8601 with a zone; notBefore: another timestamp field it must not precede. */
  | { kind: 'timestamp'; notBefore?: string }
  /** deletedFlag: true exactly for DELETE (soft delete). */
  | { kind: 'boolean'; deletedFlag?: boolean }
  /** An integer from min to max. */
  | { kind: 'int'; min: number; max: number }
  /** A number >= 0 with at most `scale` (2) decimals, below `below`: numeric(precision, scale). */
  | { kind: 'money'; below: number; precision: number; scale: number }

/** What a field check sees besides the value. */
export interface CheckContext {
  eventType: EventType
  /** occurred_at in epoch milliseconds. */
  occurredMs: number
  /** Throws VALIDATION_ERROR "<field> <rule> (got <value>)". */
  fail(rule: string): never
}

/** One field of an event and the column it is stored in. */
export interface FieldSpec {
  /** The event's field name. */
  field: string
  /** The column of the PostgreSQL and Cassandra tables. */
  column: string
  rule: FieldRule
  /**
   * How a later version meets the stored row: 'sticky' (stored OR new: once true, always true) or 'greatest'
   * (GREATEST(stored, new): never goes back). Without one, the higher version's value wins.
   */
  merge?: 'sticky' | 'greatest'
  /** A rule beyond the kind's, run right after the field parsed (e.g. an order's status per event type). */
  check?: (value: unknown, ctx: CheckContext) => void
}

/** A Cassandra query table besides the entity's own: the same columns, another primary key. */
export interface QueryTableSpec {
  name: string
  /** Column names; every one is a column of the entity's table. */
  partitionKey: readonly string[]
  clusteringKey: readonly string[]
}

/** A field that names a row of another entity, which must exist first (orders.user_id -> users). */
export interface ReferenceSpec {
  field: string
  entity: string
  /**
   * The parent's soft delete marks this row: its 'sticky' columns are ORed with the parent's is_deleted, its
   * 'greatest' columns take the parent's value when it is deleted (what the soft-delete trigger does).
   */
  cascadeDelete: boolean
}

/** What the generator needs from the shared state of a run. */
export interface GeneratorContext {
  uuid(): string
  /** Integer in [min, max]. */
  int(min: number, max: number): number
  /** Float in [0, 1). */
  float(): number
  /** A random element. */
  pick<T>(items: readonly T[]): T
  /** A product-like name / word of at most `maxChars`. */
  words(maxChars: number): string
}

/**
 * How the generator makes events of an entity that stands alone (no reference): its share of all operations, the
 * fields of a new one, and the change an update makes. Version, timestamps, is_deleted and ids are the generator's.
 */
export interface GeneratorHooks {
  /** Share of all operations, 0..1 (users and orders share the rest). */
  share: number
  /** The business fields of a new entity (not its key, version, timestamps or is_deleted). */
  create(g: GeneratorContext): Record<string, unknown>
  /** The business fields after an update of `current`. */
  update(g: GeneratorContext, current: Readonly<Record<string, unknown>>): Record<string, unknown>
  /** The field holding the creation time (created_at), set once. */
  createdField: string
}

/** One entity. */
export interface EntitySpec {
  /** Its name: 'user'. */
  entity: string
  /** Its default Kafka topic: 'users'. */
  topic: string
  /** Partitions of that topic created by node cmd/produce. */
  partitions: number
  /** The event field holding its id (the Kafka key and the primary key id). */
  keyField: string
  /** The PostgreSQL table (and the Cassandra table of the same name). */
  table: string
  /** Its fields after the key, in the order they are validated and stored. */
  fields: readonly FieldSpec[]
  reference?: ReferenceSpec
  /** Cassandra tables besides its own, kept in step by the CDC sink (orders_by_user). */
  queryTables: readonly QueryTableSpec[]
  /** How the generator makes it; entities with a reference are made by the generator's own lifecycle code. */
  generator?: GeneratorHooks
}

/** The ordering field every entity has: the event's version (the row's version column). */
export const VERSION_COLUMN = 'version'
/** The column holding the id of the event that wrote the row. */
export const LAST_EVENT_COLUMN = 'last_event_id'

/** The Cassandra types a field can map to. */
export type FieldCqlType = 'uuid' | 'text' | 'date' | 'timestamp' | 'boolean' | 'int' | 'decimal'

/** Each kind of field's column type in PostgreSQL and in Cassandra. */
const COLUMN_TYPES: Readonly<Record<FieldRule['kind'], { pg: string; cql: FieldCqlType }>> = {
  uuid: { pg: 'uuid', cql: 'uuid' },
  text: { pg: 'text', cql: 'text' },
  enum: { pg: 'text', cql: 'text' },
  date: { pg: 'date', cql: 'date' },
  timestamp: { pg: 'timestamptz', cql: 'timestamp' },
  boolean: { pg: 'boolean', cql: 'boolean' },
  int: { pg: 'int', cql: 'int' },
  money: { pg: 'numeric', cql: 'decimal' },
}

/** PostgreSQL type of a field's column. */
export const pgTypeOf = (rule: FieldRule): string => COLUMN_TYPES[rule.kind].pg

/** Cassandra type of a field's column. */
export const cqlTypeOf = (rule: FieldRule): FieldCqlType => COLUMN_TYPES[rule.kind].cql

/** Every column of the entity's table in order: id, the fields' columns, version, last_event_id. */
export function columnsOfEntity(spec: EntitySpec): string[] {
  return ['id', ...spec.fields.map((f) => f.column), VERSION_COLUMN, LAST_EVENT_COLUMN]
}

/** The id an event of this entity is keyed by. */
export function idOf(spec: EntitySpec, event: EventBase): string {
  return (event as unknown as Record<string, string>)[spec.keyField]
}

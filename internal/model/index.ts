export { EVENT_TYPES, LIMITS, ORDER_STATUSES, SCHEMA_VERSION } from './events.js'
export type { AnyEvent, Entity, EntityEvents, EventBase, EventOf, EventType, OrderStatus } from './events.js'
export * from './entities/index.js'
export { entityIdOf } from './entity-id.js'
export { decodeEvent, encodeEvent, hasLoneSurrogate, validateEvent } from './decode.js'
export { DEFAULT_TOPICS, allTopics, entityOfTopic, topicOfEntity } from './topics.js'
export type { TopicNames } from './topics.js'
export { ExpectedStateBuilder, applyEvents } from './expected-state.js'
export type { EntityRow, ExpectedState, OrderRow, UserRow } from './expected-state.js'
export { CHANGE_OPS, MAX_NESTING, decodeChange } from './debezium.js'
export type {
  CdcRow,
  CdcValue,
  ChangeOp,
  ConnectSchema,
  DecodedChange,
  RowChange,
  SourcePosition,
  Tombstone,
  TruncateChange,
} from './debezium.js'
export { parseJsonLossless } from './lossless-json.js'
export {
  MAX_DECIMAL_DIGITS,
  decimalOf,
  decimalSize,
  formatEpochDay,
  formatEpochUnits,
  formatScaledDecimal,
  isUuid,
  parseDate,
  parseEpochDay,
  parseEpochMillis,
  parseTimestamp,
  plainDecimal,
  scanDecimal,
  toDecimalString,
  twosComplementToBigInt,
} from './values.js'
export type { DecimalText } from './values.js'
export { reduceEvents, reducePerKey } from './reduce.js'

export {
  DATA_LOSS_POLICIES,
  DEFAULT_MAX_PARKED_BYTES,
  DEFAULT_MAX_PARKED_MESSAGES,
  Engine,
  defaultMaxWorkers,
  findGaps,
} from './engine.js'
export type { DataGap, DataLossPolicy, EngineFootprint, EngineOptions, EngineState } from './engine.js'
export {
  BISECT_AFTER_FAILURES,
  BatchProcessor,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_SINK_DOWN_BACKOFF_MAX_MS,
  newStats,
  tally,
  topicCounts,
} from './batch-processor.js'
export type {
  BatchControl,
  DeadLetter,
  DeadLetterWriter,
  EngineStats,
  MessageCounts,
  StatsObserver,
  TopicCountName,
  TopicCounts,
} from './batch-processor.js'
export type {
  BatchResult,
  BatchSink,
  Envelope,
  HeaderValue,
  MessageOutcome,
  OptionDef,
  OptionKind,
  OptionReader,
  OptionsSchema,
  OutgoingRecord,
  SinkLogSpec,
  SinkModule,
  SinkSpec,
  SourceHeaders,
  SourceMessage,
} from './types.js'
export { failedOutcome, toSource } from './types.js'
export { MISSING_REFERENCE_RETRY_POLICY, computeBackoffMs, validateRetryPolicy } from './retry.js'
export type { BackoffOptions, RetryPolicy } from './retry.js'
export { DLQ_HEADERS, buildDlqMessage, dlqTopicFor, parseDlqHeaders, replayHeaders } from './dlq.js'
export { KafkaDeadLetterWriter, TRUNCATED_VALUE_BYTES } from './dead-letter-writer.js'
export type { DlqSender } from './dead-letter-writer.js'
export {
  DATA_LOSS_EXIT_CODE,
  SOURCE_CHANGED_EXIT_CODE,
  DLQ_TOPIC_LAYOUT,
  dlqTopicSpec,
  formatRunSummary,
  reportRun,
  runPipeline,
} from './runner.js'
export { percentile, Reservoir } from './reservoir.js'
export type { RunOptions, RunSummary } from './runner.js'
export {
  REPLAYED_FROM_DLQ_OFFSET,
  REPLAYED_FROM_DLQ_PARTITION,
  parseErrorCodeFilter,
  planReplay,
  replayDlq,
} from './replay.js'
export type { DlqRecord, ReplayMessage, ReplayOptions, ReplayPlan, ReplayStats } from './replay.js'
export type { DlqInfo, MessageHeaders } from './dlq.js'

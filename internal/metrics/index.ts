// Prometheus metrics and health endpoints of the commands (README: Observability).
export { fetchLag, lagMetrics, type LagMetricsOptions, type PartitionLag } from './lag.js'
export {
  MESSAGE_OUTCOMES,
  engineMetrics,
  newRegistry,
  produceMetrics,
  replayMetrics,
  type EngineSource,
  type ProduceSource,
  type ReplaySource,
} from './registry.js'
export {
  pipelineTargetsDir,
  registerPrometheusTarget,
  startMetricsServer,
  type MetricsServer,
  type MetricsServerOptions,
  type Readiness,
} from './server.js'
export { readSlots, slotMetrics, SLOTS_SQL, WAL_STATUSES, type SlotReading } from './slots.js'
export { startCommandMetrics, type CommandMetrics } from './command.js'
export { progressLine, startProgress } from './progress.js'

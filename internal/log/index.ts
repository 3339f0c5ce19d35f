export { LOG_LEVELS, REDACT_PATHS, createLogger } from './logger.js'
export type { LogLevel, Logger, LoggerOptions } from './logger.js'

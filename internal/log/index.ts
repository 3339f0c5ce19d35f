export { LOG_FORMATS, LOG_LEVELS, REDACT_PATHS, createLogger, defaultLogFormat } from './logger.js'
export type { LogFormat, LogLevel, Logger, LoggerOptions } from './logger.js'

export { LOG_FORMATS, LOG_LEVELS, SECRET_KEYS, createLogger, redactSecrets, defaultLogFormat } from './logger.js'
export type { LogFormat, LogLevel, Logger, LoggerOptions } from './logger.js'

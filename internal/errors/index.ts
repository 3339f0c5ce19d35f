export {
  ErrorCodes,
  PipelineError,
  errorMessage,
  isPipelineError,
  isRetriable,
  isRetriableCode,
  toPipelineError,
} from './errors.js'
export type { ErrorCode, PipelineErrorOptions } from './errors.js'

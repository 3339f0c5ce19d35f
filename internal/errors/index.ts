export {
  ErrorCodes,
  PipelineError,
  errorMessage,
  fromErrorData,
  isErrorCode,
  isPipelineError,
  isPipelineErrorData,
  isRetriable,
  isRetriableCode,
  toErrorData,
  toPipelineError,
} from './errors.js'
export type { ErrorCode, ErrorData, PipelineErrorData, PipelineErrorOptions } from './errors.js'

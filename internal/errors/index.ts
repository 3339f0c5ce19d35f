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
export { MAX_SHOWN_DEPTH, show } from './show.js'
export { NETWORK_ERROR_CODES, classifiedError, socketErrorCode } from './classify.js'
export type { Classified } from './classify.js'

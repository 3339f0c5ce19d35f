export {
  bool,
  brokerList,
  configError,
  duration,
  formatDuration,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  parseDuration,
  positiveDuration,
  positiveInt,
  postgresUrl,
  redactUrl,
  resolveSetting,
  url,
} from './resolve.js'
export type { Env, RawSetting, Setting } from './resolve.js'
export { loadDotEnv, parseDotEnv, stackAddresses } from './dotenv.js'
export type { LoadDotEnvOptions } from './dotenv.js'

export {
  bool,
  brokerList,
  configError,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  positiveInt,
  postgresUrl,
  redactUrl,
  resolveSetting,
  url,
} from './resolve.js'
export type { Env, RawSetting, Setting } from './resolve.js'
export { loadDotEnv, parseDotEnv } from './dotenv.js'
export type { LoadDotEnvOptions } from './dotenv.js'

import type { Argv } from 'yargs'
import { MISSING_REFERENCE_RETRY_POLICY, validateRetryPolicy, type RetryPolicy } from '../pipeline/index.js'
import { withSettings } from './cli.js'
import { SETTINGS, readSetting, settingsOf } from './settings.js'

/**
 * Adds the flags every command built on the consume engine has (node cmd/consume, node cmd/replicate): the rows of
 * the settings table marked `engine`. A new engine flag is one row there and one line in engineSettings.
 */
export function withEngineFlags<T>(y: Argv<T>): Argv<T> {
  return withSettings(y, settingsOf('consume', 'engine'))
}

/** The flags as yargs parsed them: raw text, true/false, or arrays of a repeated flag; the table validates them. */
export type EngineArgs = Readonly<Record<string, unknown>>

/** The engine settings, validated: a bad value throws a CONFIG_ERROR that names the flag. */
export function engineSettings(argv: EngineArgs, env: Readonly<Record<string, string | undefined>> = process.env) {
  const get = <V>(def: Parameters<typeof readSetting<V>>[0]) => readSetting(def, argv, env)
  const retry: RetryPolicy = {
    ...MISSING_REFERENCE_RETRY_POLICY,
    attempts: get(SETTINGS.retryAttempts) || Number.POSITIVE_INFINITY,
    maxElapsedMs: get(SETTINGS.retryMaxTime),
  }
  validateRetryPolicy(retry)
  return {
    /** The engine's own options, to spread into runPipeline's. */
    options: {
      workers: get(SETTINGS.workers),
      maxWorkers: get(SETTINGS.maxWorkers),
      onDataLoss: get(SETTINGS.onDataLoss),
      idleTimeoutMs: get(SETTINGS.idleTimeout),
      fromBeginning: get(SETTINGS.fromBeginning),
      retry,
      maxParkedMessages: get(SETTINGS.maxParked),
      maxParkedBytes: get(SETTINGS.maxParkedBytes),
      maxValueBytes: get(SETTINGS.maxValueBytes),
      dlqRetentionMs: get(SETTINGS.dlqRetention) || -1,
      taskTimeoutMs: get(SETTINGS.taskTimeout),
      sessionTimeoutMs: get(SETTINGS.sessionTimeout),
    },
    summaryJson: get(SETTINGS.summaryJson),
    logLevel: get(SETTINGS.logLevel),
    logFormat: get(SETTINGS.logFormat),
    connectTimeoutMs: get(SETTINGS.connectTimeout),
  }
}

import type { Argv } from 'yargs'
import { nonNegativeInt, nonNegativeNumber, positiveInt } from '../config/index.js'
import { LOG_LEVELS, type LogLevel } from '../log/index.js'
import {
  DEFAULT_MAX_PARKED_BYTES,
  DEFAULT_MAX_PARKED_MESSAGES,
  MISSING_REFERENCE_RETRY_POLICY,
  type RetryPolicy,
} from '../pipeline/index.js'

/** The flags every command built on the consume engine has (node cmd/consume, node cmd/replicate). */
export function withEngineFlags<T>(y: Argv<T>) {
  return y.options({
    workers: {
      type: 'string',
      describe:
        'worker threads: 0 = the sink runs in the main thread (the default: on 2 cores it was measured faster and ' +
        'cheaper, see bench/results); auto = one thread per assigned partition (isolation, more cores); ' +
        'N = a pool of N threads the partitions share',
      default: '0',
    },
    'idle-timeout': {
      type: 'string',
      describe: 'exit cleanly after this many seconds without messages; 0 = run until signalled',
      default: '0',
    },
    'from-beginning': {
      type: 'boolean',
      describe: 'where a group without committed offsets starts: true = earliest, false = latest',
      default: true,
    },
    'retry-attempts': {
      type: 'string',
      describe:
        'tries of a message that failed retriably (e.g. an order whose user is not there yet) before the DLQ; ' +
        '0 = no limit but --retry-max-time',
      default: '0',
    },
    'retry-max-time': {
      type: 'string',
      describe: "seconds from a message's first failure after which it goes to the DLQ",
      default: String(MISSING_REFERENCE_RETRY_POLICY.maxElapsedMs / 1000),
    },
    'max-parked': {
      type: 'string',
      describe:
        "messages that may wait in a partition's waiting room (e.g. orders fetched before their user) before the " +
        'partition is paused until it drains',
      default: String(DEFAULT_MAX_PARKED_MESSAGES),
    },
    'max-parked-bytes': {
      type: 'string',
      describe: "bytes of messages that may wait in a partition's waiting room before the partition is paused",
      default: String(DEFAULT_MAX_PARKED_BYTES),
    },
    'task-timeout': {
      type: 'string',
      describe: 'seconds a worker may spend on one batch before it is replaced and the batch retried',
      default: '60',
    },
    'session-timeout': {
      type: 'string',
      describe: 'seconds before the group gives up on a member that stopped heartbeating (a crashed process)',
      default: '30',
    },
    'summary-json': {
      type: 'boolean',
      describe: 'print the final summary as one JSON line instead of text',
      default: false,
    },
    'log-level': { type: 'string', choices: LOG_LEVELS, describe: 'log level [env LOG_LEVEL]' },
  } as const)
}

/** The engine flags as parsed by yargs. */
export interface EngineArgs {
  workers: string
  'idle-timeout': string
  'from-beginning': boolean
  'retry-attempts': string
  'retry-max-time': string
  'max-parked': string
  'max-parked-bytes': string
  'task-timeout': string
  'session-timeout': string
  'summary-json': boolean
  'log-level'?: string
}

/** The engine settings, validated: a bad value throws a CONFIG_ERROR that names the flag. */
export function engineSettings(argv: EngineArgs) {
  const retry: RetryPolicy = {
    ...MISSING_REFERENCE_RETRY_POLICY,
    attempts: nonNegativeInt({ flag: 'retry-attempts', value: argv['retry-attempts'] }) || Number.POSITIVE_INFINITY,
    maxElapsedMs: nonNegativeNumber({ flag: 'retry-max-time', value: argv['retry-max-time'] }) * 1000,
  }
  return {
    /** The engine's own options, to spread into runPipeline's. */
    options: {
      workers: argv.workers === 'auto' ? ('auto' as const) : nonNegativeInt({ flag: 'workers', value: argv.workers }),
      idleTimeoutMs: nonNegativeNumber({ flag: 'idle-timeout', value: argv['idle-timeout'] }) * 1000,
      fromBeginning: argv['from-beginning'],
      retry,
      maxParkedMessages: positiveInt({ flag: 'max-parked', value: argv['max-parked'] }),
      maxParkedBytes: positiveInt({ flag: 'max-parked-bytes', value: argv['max-parked-bytes'] }),
      taskTimeoutMs: positiveInt({ flag: 'task-timeout', value: argv['task-timeout'] }) * 1000,
      sessionTimeoutMs: positiveInt({ flag: 'session-timeout', value: argv['session-timeout'] }) * 1000,
    },
    summaryJson: argv['summary-json'],
    logLevel: (argv['log-level'] ?? process.env.LOG_LEVEL ?? 'info') as LogLevel,
  }
}

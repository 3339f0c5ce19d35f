import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'

import { PipelineError } from '../errors/index.js'
import {
  bool,
  brokerList,
  duration,
  formatDuration,
  loadDotEnv,
  nonEmptyString,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  parseDotEnv,
  parseDuration,
  positiveDuration,
  positiveInt,
  postgresUrl,
  redactUrl,
  resolveSetting,
} from './index.js'

function configFailure(fn: () => unknown): PipelineError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PipelineError)
    expect((err as PipelineError).code).toBe('CONFIG_ERROR')
    expect((err as PipelineError).retriable).toBe(false)
    return err as PipelineError
  }
  throw new Error('expected a CONFIG_ERROR')
}

describe('resolveSetting precedence', () => {
  const environment = { PARTITIONS: '7', EMPTY: '' }

  it('prefers the flag, then the environment, then the default', () => {
    expect(resolveSetting({ flag: 'partitions', value: '3', env: 'PARTITIONS', default: 1, environment })).toEqual({
      raw: '3',
      label: '--partitions',
      origin: 'flag',
    })
    expect(resolveSetting({ flag: 'partitions', env: 'PARTITIONS', default: 1, environment })).toEqual({
      raw: '7',
      label: 'PARTITIONS',
      origin: 'env',
    })
    expect(resolveSetting({ flag: 'partitions', env: 'NOPE', default: 1, environment }).origin).toBe('default')
  })

  it('treats an empty environment variable as unset', () => {
    expect(resolveSetting({ flag: 'x', env: 'EMPTY', default: 2, environment }).raw).toBe(2)
  })

  it('takes the last of a repeated flag', () => {
    expect(resolveSetting({ flag: 'x', value: ['1', '2'] }).raw).toBe('2')
  })

  it('names the flag and the variable when a required setting is missing', () => {
    expect(configFailure(() => resolveSetting({ flag: 'pg-url', env: 'PG_URL', environment })).message).toBe(
      '--pg-url is required (or set PG_URL)',
    )
    expect(configFailure(() => resolveSetting({ flag: 'pg-url' })).message).toBe('--pg-url is required')
  })
})

describe('number validators', () => {
  it('positiveInt parses and rejects with the field and rule', () => {
    expect(positiveInt({ flag: 'partitions', value: '5' })).toBe(5)
    expect(positiveInt({ flag: 'partitions', value: 5 })).toBe(5)
    expect(configFailure(() => positiveInt({ flag: 'partitions', value: 'x' })).message).toBe(
      "--partitions must be a positive integer (got 'x')",
    )
    expect(configFailure(() => positiveInt({ flag: 'partitions', value: 0 })).message).toBe(
      '--partitions must be a positive integer (got 0)',
    )
    for (const bad of ['1.5', '', '0x10', '1e3', NaN]) configFailure(() => positiveInt({ flag: 'p', value: bad }))
  })

  it('blames the environment variable when the value came from it', () => {
    const environment = { BATCH_SIZE: '-1' }
    expect(configFailure(() => positiveInt({ flag: 'batch-size', env: 'BATCH_SIZE', environment })).message).toBe(
      "BATCH_SIZE must be a positive integer (got '-1')",
    )
  })

  it('nonNegativeInt accepts 0 and rejects negatives', () => {
    expect(nonNegativeInt({ flag: 'idle-timeout', value: '0' })).toBe(0)
    expect(configFailure(() => nonNegativeInt({ flag: 'idle-timeout', value: '-2' })).message).toBe(
      "--idle-timeout must be a non-negative integer (got '-2')",
    )
  })

  it('nonNegativeNumber accepts decimals', () => {
    expect(nonNegativeNumber({ flag: 'rate', value: '2.5' })).toBe(2.5)
    expect(nonNegativeNumber({ flag: 'rate', value: '.5' })).toBe(0.5)
    expect(configFailure(() => nonNegativeNumber({ flag: 'rate', value: 'fast' })).message).toBe(
      "--rate must be a non-negative number (got 'fast')",
    )
    configFailure(() => nonNegativeNumber({ flag: 'rate', value: Infinity }))
  })
})

describe('durations', () => {
  it('a bare number is seconds; ms, s, m and h are units', () => {
    expect(parseDuration('10')).toBe(10_000)
    expect(parseDuration('10s')).toBe(10_000)
    expect(parseDuration('10 s')).toBe(10_000)
    expect(parseDuration('10S')).toBe(10_000)
    expect(parseDuration('500ms')).toBe(500)
    expect(parseDuration('2m')).toBe(120_000)
    expect(parseDuration('1h')).toBe(3_600_000)
    expect(parseDuration('1.5')).toBe(1_500)
    expect(parseDuration('.5s')).toBe(500)
    expect(parseDuration('0')).toBe(0)
    for (const bad of ['', 's', '-1', '-1s', '10x', '1e3', '0x10', '10 seconds', '1m30s', 'soon']) {
      expect(parseDuration(bad), bad).toBeUndefined()
    }
  })

  it('--idle-timeout 10s and --idle-timeout 10 are the same', () => {
    expect(duration({ flag: 'idle-timeout', value: '10s' })).toBe(duration({ flag: 'idle-timeout', value: '10' }))
    expect(duration({ flag: 'idle-timeout', value: '10000ms' })).toBe(10_000)
  })

  it('takes its default in milliseconds, and names the field and the rule', () => {
    expect(duration({ flag: 'retry-max-time', default: 60_000 })).toBe(60_000)
    expect(duration({ flag: 'x', env: 'X', environment: { X: '2m' }, default: 1 })).toBe(120_000)
    expect(configFailure(() => duration({ flag: 'idle-timeout', value: 'soon' })).message).toBe(
      "--idle-timeout must be a duration: seconds, or a number with a unit (500ms, 10s, 2m) (got 'soon')",
    )
    expect(configFailure(() => positiveDuration({ flag: 'task-timeout', value: '0s' })).message).toBe(
      "--task-timeout must be a duration: seconds, or a number with a unit (500ms, 10s, 2m), more than 0 (got '0s')",
    )
  })

  it('formats milliseconds the way the flags take them', () => {
    expect([0, 500, 1_000, 10_000, 60_000, 1_500].map(formatDuration)).toEqual([
      '0',
      '500ms',
      '1s',
      '10s',
      '60s',
      '1500ms',
    ])
    for (const ms of [0, 500, 1_000, 10_000, 60_000, 1_500, 12_345]) expect(parseDuration(formatDuration(ms))).toBe(ms)
  })
})

describe('other validators', () => {
  it('nonEmptyString trims and rejects blanks', () => {
    expect(nonEmptyString({ flag: 'group', value: ' g1 ' })).toBe('g1')
    expect(configFailure(() => nonEmptyString({ flag: 'group', value: '  ' })).message).toBe(
      "--group must be a non-empty string (got '  ')",
    )
  })

  it('bool understands the usual words', () => {
    expect(bool({ flag: 'pretty', value: true })).toBe(true)
    expect(bool({ flag: 'pretty', env: 'P', environment: { P: 'no' } })).toBe(false)
    expect(configFailure(() => bool({ flag: 'pretty', value: 'maybe' })).message).toBe(
      "--pretty must be true or false (or yes/no, 1/0, on/off) (got 'maybe')",
    )
  })

  // Regression: yargs read --dry-run=yes as false, and node cmd/replay-dlq replayed for real.
  it('bool accepts exactly true/false, yes/no, 1/0, on/off in any case, and nothing else', () => {
    for (const word of ['true', 'TRUE', 'yes', 'Yes', '1', 'on', 'ON', ' true ']) {
      expect(bool({ flag: 'dry-run', value: word }), word).toBe(true)
    }
    for (const word of ['false', 'False', 'no', 'NO', '0', 'off', 'Off']) {
      expect(bool({ flag: 'dry-run', value: word }), word).toBe(false)
    }
    for (const bad of ['maybe', '', 'y', 'n', '2', 'truee', 'yes please']) {
      configFailure(() => bool({ flag: 'dry-run', value: bad }))
    }
    expect(configFailure(() => bool({ flag: 'dry-run', env: 'DRY', environment: { DRY: 'si' } })).message).toBe(
      "DRY must be true or false (or yes/no, 1/0, on/off) (got 'si')",
    )
  })

  it('oneOf returns the choice or lists the choices', () => {
    expect(oneOf({ flag: 'log-level', value: 'debug' }, ['info', 'debug'] as const)).toBe('debug')
    expect(configFailure(() => oneOf({ flag: 'log-level', value: 'loud' }, ['info', 'debug'])).message).toBe(
      "--log-level must be one of info, debug (got 'loud')",
    )
  })

  it('brokerList splits and checks each entry', () => {
    expect(brokerList({ flag: 'brokers', value: 'a:9092, b.example.com:9093,[::1]:9094' })).toEqual([
      'a:9092',
      'b.example.com:9093',
      '[::1]:9094',
    ])
    expect(brokerList({ flag: 'brokers', value: ['a:1', 'b:2'] })).toEqual(['a:1', 'b:2'])
    expect(configFailure(() => brokerList({ flag: 'brokers', value: 'a:9092,kafka2' })).message).toBe(
      "--brokers must be a comma-separated list of host:port with ports from 1 to 65535; 'kafka2' is not " +
        "(got 'a:9092,kafka2')",
    )
    for (const bad of ['a:0', 'a:65536', ':9092', 'a:', 'a:92x', 'a_b:1', '', 'a:1,']) {
      configFailure(() => brokerList({ flag: 'brokers', value: bad }))
    }
  })

  it('postgresUrl accepts postgres URLs and never echoes the password', () => {
    const good = 'postgres://cdc_app:secret@127.0.0.1:5432/cdc_db'
    expect(postgresUrl({ flag: 'pg-url', value: good })).toBe(good)
    expect(postgresUrl({ flag: 'pg-url', value: 'postgresql://h/db' })).toBe('postgresql://h/db')
    const err = configFailure(() => postgresUrl({ flag: 'pg-url', value: 'mysql://u:secret@h/db' }))
    expect(err.message).toBe(
      "--pg-url must be a URL starting with postgres:// or postgresql:// (got 'mysql://u:***@h/db')",
    )
    expect(err.message).not.toContain('secret')
    expect(configFailure(() => postgresUrl({ flag: 'pg-url', value: 'not a url' })).message).toContain(
      "(got 'not a url')",
    )
  })

  it('redactUrl hides passwords even in unparseable text', () => {
    expect(redactUrl('postgres://u:pw@h:1/db')).toBe('postgres://u:***@h:1/db')
    expect(redactUrl('postgres://u:pw@h:bad port/db')).toBe('postgres://u:***@h:bad port/db')
  })

  it('redactUrl hides ?password= and ?sslpassword= in the query string', () => {
    expect(redactUrl('postgres://h:5432/db?user=u&password=s3cret&sslmode=require')).toBe(
      'postgres://h:5432/db?user=u&password=***&sslmode=require',
    )
    expect(redactUrl('postgres://u:pw@h/db?sslpassword=s3cret&PASSWORD=s3cret')).toBe(
      'postgres://u:***@h/db?sslpassword=***&PASSWORD=***',
    )
    // Unparseable (a bad port), and a libpq keyword list.
    expect(redactUrl('postgres://h:bad port/db?user=u&password=s3cret')).toBe(
      'postgres://h:bad port/db?user=u&password=***',
    )
    expect(redactUrl('host=h password=s3cret dbname=cdc_db')).toBe('host=h password=*** dbname=cdc_db')
  })
})

describe('dotenv', () => {
  let dir: string | undefined
  afterEach(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    dir = undefined
  })

  it('parses KEY=VALUE lines, comments, export and quotes', () => {
    const parsed = parseDotEnv(
      [
        '# comment',
        '',
        'A=1',
        'export B = two words ',
        'C="quoted # not a comment"',
        "D='single'",
        'E=value # trailing comment',
        'F=a#b',
        'G=',
        'H=x=y',
        'I="line\\nbreak"',
      ].join('\n'),
    )
    expect(Object.fromEntries(parsed)).toEqual({
      A: '1',
      B: 'two words',
      C: 'quoted # not a comment',
      D: 'single',
      E: 'value',
      F: 'a#b',
      G: '',
      H: 'x=y',
      I: 'line\nbreak',
    })
  })

  it('names the line of a malformed entry without echoing it', () => {
    const err = configFailure(() => parseDotEnv('A=1\nsecret-without-key\n'))
    expect(err.message).toBe('.env line 2 must be KEY=VALUE, a # comment or blank')
  })

  it('loads a file without overriding existing variables', () => {
    dir = mkdtempSync(join(tmpdir(), 'dotenv-'))
    const path = join(dir, '.env')
    writeFileSync(path, 'KAFKA_BROKERS=file:1\nLOG_LEVEL=debug\n')
    const env: Record<string, string | undefined> = { KAFKA_BROKERS: 'real:1' }
    expect(loadDotEnv({ path, env })).toEqual(['LOG_LEVEL'])
    expect(env).toEqual({ KAFKA_BROKERS: 'real:1', LOG_LEVEL: 'debug' })
  })

  it('does nothing when the file is absent', () => {
    expect(loadDotEnv({ path: '/nonexistent/.env', env: {} })).toEqual([])
  })
})

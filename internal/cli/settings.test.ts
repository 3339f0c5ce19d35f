import { describe, expect, it } from 'vitest'

import { ErrorCodes, PipelineError } from '../errors/index.js'
import {
  COMMANDS,
  ExitCodes,
  SETTINGS,
  commandLine,
  exitCodeOf,
  helpText,
  readSetting,
  readSettings,
  readmeTable,
  settingsOf,
  withEngineFlags,
  type CommandName,
} from './index.js'

async function parse(command: CommandName, args: string[]) {
  const y = commandLine(command, 'test', args)
  return (command === 'consume' || command === 'replicate' ? withEngineFlags(y) : y).parseAsync()
}

async function usageError(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(PipelineError)
  expect((err as PipelineError).code).toBe('CONFIG_ERROR')
  return (err as PipelineError).message
}

describe('the settings table', () => {
  it('has one row per flag and command, each with a one-line doc', () => {
    for (const command of COMMANDS) {
      const flags = settingsOf(command).map((r) => r.flag)
      expect(new Set(flags).size, command).toBe(flags.length)
    }
    for (const row of Object.values(SETTINGS)) {
      expect(row.flag).toMatch(/^[a-z][a-z0-9-]*$/)
      expect(row.doc).not.toMatch(/\n/)
      expect(row.commands.length).toBeGreaterThan(0)
      if (row.env !== undefined) expect(row.env).toMatch(/^[A-Z][A-Z0-9_]*$/)
    }
  })

  it('shows numbers as numbers and durations with their unit in --help', () => {
    expect(helpText(SETTINGS.count)).toBe(
      'events to produce; 0 = no limit (then set --duration or stop with Ctrl-C)\n[number] [default: 10000]',
    )
    expect(helpText(SETTINGS.retryMaxTime)).toMatch(/\[duration\] \[default: 60s\]$/)
    expect(helpText(SETTINGS.brokers)).toMatch(
      /\[list\] \[env KAFKA_BROKERS\] \[default: the local stack: 127\.0\.0\.1 at KAFKA_PORT_BASE, \+1, \+2 \(9092,9093,9094\)\]$/,
    )
  })

  it('says in --help what a derived default is now when its port variable is set, password hidden', () => {
    expect(helpText(SETTINGS.brokers, { KAFKA_PORT_BASE: '19092' })).toMatch(
      /\(9092,9093,9094\); with KAFKA_PORT_BASE=19092: 127\.0\.0\.1:19092,127\.0\.0\.1:19093,127\.0\.0\.1:19094\]$/,
    )
    const pg = helpText(SETTINGS.pgUrl, { PG_PORT: '15433', PG_APP_PASSWORD: 'sekret' })
    expect(pg).toMatch(
      /with PG_PORT=15433 PG_APP_PASSWORD=\*\*\*: postgres:\/\/cdc_app:\*\*\*@127\.0\.0\.1:15433\/cdc_db\]$/,
    )
    expect(pg).not.toContain('sekret')
    expect(helpText(SETTINGS.brokers, { KAFKA_PORT_BASE: 'x' })).toMatch(
      /with KAFKA_PORT_BASE=x: invalid: KAFKA_PORT_BASE must/,
    )
    expect(helpText(SETTINGS.brokers, {})).toBe(helpText(SETTINGS.brokers))
  })

  it('generates the README table of a command, engine flags after its own', () => {
    const table = readmeTable('replay-dlq')
    expect(table.slice(0, 2)).toEqual(['| flag | env | default | meaning |', '| --- | --- | --- | --- |'])
    expect(table).toContain('| `--dry-run` | | false | list and count the matching records, produce nothing |')
    const consume = readmeTable('consume').map((l) => l.split(' | ')[0])
    expect(consume.indexOf('| `--workers`')).toBeGreaterThan(consume.indexOf('| `--log-format`'))
  })
})

describe('reading a setting', () => {
  it('takes the flag, then the environment variable, then the default', () => {
    expect(readSetting(SETTINGS.logLevel, { 'log-level': 'debug' }, { LOG_LEVEL: 'warn' })).toBe('debug')
    expect(readSetting(SETTINGS.logLevel, {}, { LOG_LEVEL: 'warn' })).toBe('warn')
    expect(readSetting(SETTINGS.logLevel, {}, {})).toBe('info')
  })

  it('validates LOG_LEVEL like any other setting', () => {
    expect(() => readSetting(SETTINGS.logLevel, {}, { LOG_LEVEL: 'loud' })).toThrow(
      "LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent (got 'loud')",
    )
  })

  it('computes a fallback from other settings when nothing is given', () => {
    expect(readSetting(SETTINGS.replayTopics, {}, { USERS_TOPIC: 'u1' })).toEqual(['u1', 'orders', 'products'])
    expect(readSetting(SETTINGS.replayTopics, { topic: ['a,b', 'c'] }, {})).toEqual(['a', 'b', 'c'])
    expect(readSetting(SETTINGS.consumeTopics, { 'users-topic': 'u2' }, {})).toEqual(['u2', 'orders', 'products'])
  })

  it('--idle-timeout 10s and 10 mean the same', () => {
    expect(readSetting(SETTINGS.idleTimeout, { 'idle-timeout': '10s' })).toBe(10_000)
    expect(readSetting(SETTINGS.idleTimeout, { 'idle-timeout': '10' })).toBe(10_000)
    expect(readSetting(SETTINGS.connectTimeout, {})).toBe(10_000)
  })

  it('says that --no-X is no flag when X takes a value', () => {
    expect(() => readSetting(SETTINGS.count, { count: false })).toThrow(
      '--no-count is not a flag: --count takes a value',
    )
  })

  it('validates every setting of the command at once, read or not', () => {
    expect(() => readSettings('produce', { 'batch-size': '0' }, {})).toThrow('--batch-size must be a positive integer')
    expect(() => readSettings('consume', { 'session-timeout': 'soon' }, {})).toThrow('--session-timeout must be')
  })
})

describe('the command line', () => {
  it('requires a value where one is expected', async () => {
    expect(await usageError(parse('produce', ['--count']))).toBe('--count needs a value (see node cmd/produce --help)')
    expect(await usageError(parse('produce', ['--count', '--rate', '5']))).toMatch(/^--count needs a value/)
    expect(await usageError(parse('replay-dlq', ['--topic']))).toMatch(/^--topic needs a value/)
  })

  it('rejects unknown flags and stray words', async () => {
    expect(await usageError(parse('produce', ['--bogus', '1']))).toMatch(/^Unknown argument: bogus/)
    expect(await usageError(parse('replay-dlq', ['--dry-run', 'maybe', 'extra']))).toMatch(/Unknown argument/)
  })

  // Regression: --dry-run=yes was read as false, and node cmd/replay-dlq replayed for real.
  it('reads a boolean as typed: --flag, --no-flag, =yes/no/1/0/on/off/true/false; anything else is an error', async () => {
    const dryRun = async (...args: string[]) =>
      readSettings('replay-dlq', await parse('replay-dlq', args), {})(SETTINGS.dryRun)
    expect(await dryRun()).toBe(false)
    expect(await dryRun('--dry-run')).toBe(true)
    expect(await dryRun('--no-dry-run')).toBe(false)
    for (const word of ['yes', 'YES', 'true', '1', 'on']) expect(await dryRun(`--dry-run=${word}`), word).toBe(true)
    for (const word of ['no', 'false', '0', 'off', 'Off']) expect(await dryRun(`--dry-run=${word}`), word).toBe(false)
    expect(await dryRun('--dry-run', 'yes')).toBe(true)
    for (const bad of ['--dry-run=maybe', '--dry-run=']) {
      await expect(() => dryRun(bad)).rejects.toThrow(/^--dry-run must be true or false/)
    }
  })

  it('keeps numbers as typed for the validators (no 0x10 = 16, no abc = NaN)', async () => {
    const get = readSettings('produce', await parse('produce', ['--count', '007', '--seed', '12']), {})
    expect(get(SETTINGS.count)).toBe(7)
    expect(get(SETTINGS.seed)).toBe(12)
    await expect(async () => readSettings('produce', await parse('produce', ['--count', '0x10']), {})).rejects.toThrow(
      "--count must be a non-negative integer (got '0x10')",
    )
  })

  it('takes durations with a unit in every command', async () => {
    const consume = readSettings(
      'consume',
      await parse('consume', ['--idle-timeout', '10s', '--task-timeout', '2m']),
      {},
    )
    expect(consume(SETTINGS.idleTimeout)).toBe(10_000)
    expect(consume(SETTINGS.taskTimeout)).toBe(120_000)
    const produce = readSettings('produce', await parse('produce', ['--duration', '500ms', '--connect-timeout=3']), {})
    expect(produce(SETTINGS.duration)).toBe(500)
    expect(produce(SETTINGS.connectTimeout)).toBe(3_000)
    expect(readSettings('demo', await parse('demo', ['--quiet', '1m']), {})(SETTINGS.quiet)).toBe(60_000)
  })
})

describe('exit codes', () => {
  it('2 for misuse, 3 for a dependency unreachable at start, 4 for data lost to retention, 5 for another source cluster, 1 for anything else', () => {
    expect(exitCodeOf(new PipelineError(ErrorCodes.CONFIG_ERROR, 'x'))).toBe(ExitCodes.usage)
    expect(exitCodeOf(new PipelineError(ErrorCodes.UNREACHABLE, 'x'))).toBe(ExitCodes.unreachable)
    expect(exitCodeOf(new PipelineError(ErrorCodes.SINK_UNAVAILABLE, 'x'))).toBe(ExitCodes.failure)
    expect(exitCodeOf(new PipelineError(ErrorCodes.DATA_LOSS, 'x'))).toBe(ExitCodes.dataLoss)
    expect(exitCodeOf(new PipelineError(ErrorCodes.SOURCE_CHANGED, 'x'))).toBe(ExitCodes.sourceChanged)
    expect(exitCodeOf(new Error('x'))).toBe(ExitCodes.failure)
    expect(ExitCodes).toEqual({
      ok: 0,
      failure: 1,
      usage: 2,
      unreachable: 3,
      dataLoss: 4,
      sourceChanged: 5,
      forced: 130,
    })
  })
})

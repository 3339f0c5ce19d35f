// The one .env reader: what the commands get from a file, and that the local stack's shell gets the same values
// from the same file (stack/lib/env.sh runs internal/config/envfile.js), ports derived alike, and that no value is
// ever run as code. The stack parts run bash against a temporary CDC_STACK_HOME: no server is started or touched.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

import { SETTINGS, readSetting } from '../cli/settings.js'
import { PipelineError } from '../errors/index.js'
import { STACK_NUMBERS } from './envfile.js'
import { loadDotEnv, parseDotEnv, stackAddresses } from './index.js'

const repo = new URL('../..', import.meta.url).pathname

// The variables this test's children must not inherit from whoever runs the suite.
const OURS = /^(KAFKA_|PG_|CASSANDRA_|CONNECT_|DEBEZIUM_|CDC_|CQLSH_|A_|B_|C_|D_|E_|F_|G_|H_)/
const cleanEnv = (extra: Record<string, string>): Record<string, string> => ({
  ...(Object.fromEntries(Object.entries(process.env).filter(([k]) => !OURS.test(k))) as Record<string, string>),
  ...extra,
})

let home: string
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'cdc-envfile-'))
})
afterEach(() => rmSync(home, { recursive: true, force: true }))

/** Runs `script` in bash with the stack's env loading done, against $home/.env and CDC_STACK_HOME=$home. */
function stackShell(script: string, env: Record<string, string> = {}) {
  const prelude = `set -euo pipefail; REPO_DIR=${JSON.stringify(repo)}; source "$REPO_DIR/stack/lib/env.sh"; stack_load_env "$CDC_ENV_FILE"`
  const r = spawnSync('bash', ['-c', `${prelude}; ${script}`], {
    cwd: home,
    encoding: 'utf8',
    env: cleanEnv({ CDC_STACK_HOME: home, CDC_ENV_FILE: join(home, '.env'), HOME: '/home/someone', ...env }),
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

function stackCli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync('bash', [join(repo, 'stack/stack.sh'), ...args], {
    cwd: home,
    encoding: 'utf8',
    env: cleanEnv({ CDC_STACK_HOME: home, CDC_ENV_FILE: join(home, '.env'), ...env }),
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** What the commands' loader puts in an empty environment from $home/.env. */
function commandsEnv(env: Record<string, string> = {}): Record<string, string | undefined> {
  const target: Record<string, string | undefined> = { HOME: '/home/someone', ...env }
  loadDotEnv({ path: join(home, '.env'), env: target })
  return target
}

const TRICKY = [
  '# a comment line',
  'export A_EXPORTED=9  ',
  'B_COMMENT=5433 # the port',
  'C_DOUBLE="two words # not a comment"',
  "D_SINGLE='$(touch pwned) `id` $HOME'",
  'E_HASH=a#b',
  'F_ESCAPES="say \\"hi\\"\\nline two\\\\"',
  'G_TILDE=~/.cache/x',
  'H_EMPTY=',
  '  export   KAFKA_PORT_BASE = 19092',
  'PG_PORT="15433" # moved',
  "CASSANDRA_PORT='19042'",
  'CONNECT_PORT=18083',
  'PG_APP_PASSWORD="p@ss word"',
].join('\n')

describe('the .env reader of the commands and the stack', () => {
  it('parses quotes, # comments, export and ~ as documented, expanding nothing', () => {
    writeFileSync(join(home, '.env'), TRICKY)
    const env = commandsEnv()
    expect(env).toMatchObject({
      A_EXPORTED: '9',
      B_COMMENT: '5433',
      C_DOUBLE: 'two words # not a comment',
      D_SINGLE: '$(touch pwned) `id` $HOME',
      E_HASH: 'a#b',
      F_ESCAPES: 'say "hi"\nline two\\',
      G_TILDE: '/home/someone/.cache/x',
      H_EMPTY: '',
      KAFKA_PORT_BASE: '19092',
      PG_PORT: '15433',
    })
  })

  it('gives the stack the same values from the same file, and the environment wins in both', () => {
    writeFileSync(join(home, '.env'), TRICKY)
    const inEnv = { CONNECT_PORT: '28083' }
    const names = [...parseDotEnv(TRICKY).keys()]
    // NUL-separated NAME=value, so that a newline in a value survives the trip.
    const dump = names.map((n) => `printf '%s=%s\\0' ${n} "$${n}"`).join('; ')
    const shell = stackShell(dump, inEnv)
    expect(shell.stderr).toBe('')
    expect(shell.code).toBe(0)
    const fromShell = Object.fromEntries(
      shell.stdout
        .split('\0')
        .filter((e) => e !== '')
        .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
    )
    const fromNode = commandsEnv(inEnv)
    expect(fromShell).toEqual(Object.fromEntries(names.map((n) => [n, fromNode[n]])))
    expect(fromShell.CONNECT_PORT).toBe('28083')
    expect(existsSync(join(home, 'pwned'))).toBe(false)
  })

  it('moves the stack and the commands to the same ports (KAFKA_PORT_BASE, PG_PORT, CASSANDRA_PORT, CONNECT_PORT)', () => {
    writeFileSync(join(home, '.env'), TRICKY)
    const stack = stackCli(['env'])
    expect(stack.stderr).toBe('')
    expect(stack.code).toBe(0)
    const fromStack = Object.fromEntries(
      stack.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/=(.*)/s).slice(0, 2)),
    )
    const env = commandsEnv()
    // The commands' defaults, as node cmd/* resolves them with no flag and no KAFKA_BROKERS/PG_URL/... set.
    const brokers = readSetting(SETTINGS.brokers, {}, env)
    const pgUrl = readSetting(SETTINGS.pgUrl, {}, env)
    const cassandra = readSetting(SETTINGS.cassandraContactPoints, {}, env)
    expect(brokers).toEqual(['127.0.0.1:19092', '127.0.0.1:19093', '127.0.0.1:19094'])
    expect(fromStack.KAFKA_BROKERS).toBe(brokers.join(','))
    expect(new URL(pgUrl).port).toBe('15433')
    expect(decodeURIComponent(new URL(pgUrl).password)).toBe('p@ss word')
    expect(fromStack.PG_URL).toBe('postgres://cdc_app:p@ss word@127.0.0.1:15433/cdc_db')
    expect(cassandra).toEqual(['127.0.0.1:19042'])
    expect(fromStack.CASSANDRA_CONTACT_POINTS).toBe(cassandra.join(','))
    expect(fromStack.CONNECT_URL).toBe(stackAddresses(env).connectUrl)
    expect(fromStack.CONNECT_URL).toBe('http://127.0.0.1:18083')
  })

  it('still lets KAFKA_BROKERS, PG_URL, CASSANDRA_CONTACT_POINTS and flags win over the derived defaults', () => {
    const env = { KAFKA_PORT_BASE: '19092', KAFKA_BROKERS: 'k:1', PG_PORT: '1', PG_URL: 'postgres://h/db' }
    expect(readSetting(SETTINGS.brokers, {}, env)).toEqual(['k:1'])
    expect(readSetting(SETTINGS.brokers, { brokers: 'f:2' }, env)).toEqual(['f:2'])
    expect(readSetting(SETTINGS.pgUrl, {}, env)).toBe('postgres://h/db')
    expect(readSetting(SETTINGS.cassandraContactPoints, {}, { CASSANDRA_CONTACT_POINTS: 'c:3' })).toEqual(['c:3'])
    expect(readSetting(SETTINGS.brokers, {}, {})).toEqual(['127.0.0.1:9092', '127.0.0.1:9093', '127.0.0.1:9094'])
    expect(readSetting(SETTINGS.pgUrl, {}, {})).toBe('postgres://cdc_app:cdc_app@127.0.0.1:5432/cdc_db')
  })

  for (const [value, form] of [
    ['$(touch pwned)', 'a command substitution'],
    ['PATH[$(touch pwned)]', 'an array subscript, which bash arithmetic runs'],
    ['`touch pwned`', 'backquotes'],
    ['"9092 + 1"', 'an expression'],
  ] as const) {
    it(`rejects ${form} as a port, naming the variable, and runs nothing (stack and commands)`, () => {
      writeFileSync(join(home, '.env'), `PG_PORT=5432\nKAFKA_PORT_BASE=${value}\n`)
      const stack = stackCli(['status'])
      expect(stack.code).not.toBe(0)
      expect(stack.stderr).toMatch(/^\[stack\] error: KAFKA_PORT_BASE must be a port: digits/)
      expect(stack.stderr.trim().split('\n')).toHaveLength(1)
      expect(stack.stdout).toBe('')
      // The commands: the derived broker list names the same variable (exit 2, see test/env-ports.test.ts).
      expect(() => readSetting(SETTINGS.brokers, {}, commandsEnv())).toThrow(/^KAFKA_PORT_BASE must be a port/)
      expect(existsSync(join(home, 'pwned'))).toBe(false)
    })
  }

  it('reads .env.example, which users copy, the same in the stack and the commands', () => {
    writeFileSync(join(home, '.env'), readFileSync(join(repo, '.env.example'), 'utf8'))
    const env = commandsEnv()
    const stack = stackCli(['env'])
    expect(stack.stderr).toBe('')
    expect(stack.stdout).toBe(
      [
        `KAFKA_BROKERS=${readSetting(SETTINGS.brokers, {}, env).join(',')}`,
        `PG_URL=${readSetting(SETTINGS.pgUrl, {}, env)}`,
        `PG_READER_URL=${readSetting(SETTINGS.apiPgUrl, {}, env)}`,
        `CASSANDRA_CONTACT_POINTS=${readSetting(SETTINGS.cassandraContactPoints, {}, env).join(',')}`,
        `CONNECT_URL=${stackAddresses(env).connectUrl}`,
        `REDIS_URL=${readSetting(SETTINGS.redisUrl, {}, env)}`,
        '',
      ].join('\n'),
    )
    expect(env.CDC_STACK_HOME).toBe('/home/someone/.cache/cdc-pipeline')
  })

  it('checks a numeric setting that comes from the environment as well', () => {
    writeFileSync(join(home, '.env'), '')
    const stack = stackCli(['status'], { CASSANDRA_WAIT_S: 'x[$(touch pwned)]' })
    expect(stack.code).toBe(1)
    expect(stack.stderr).toMatch(/CASSANDRA_WAIT_S must be a positive whole number.* in the environment/)
    expect(existsSync(join(home, 'pwned'))).toBe(false)
  })

  it('knows every numeric variable the stack sets a default for', () => {
    // A new `: "${X_PORT:=...}"` in stack/lib must be checked too.
    const r = spawnSync('bash', ['-c', `grep -ho ': "\\\${[A-Z_]*:=[0-9][0-9kmg]*}"' ${repo}stack/lib/*.sh`], {
      encoding: 'utf8',
    })
    const numeric = [...r.stdout.matchAll(/\{([A-Z_]+):=/g)].map((m) => m[1]!)
    expect(numeric.length).toBeGreaterThan(10)
    for (const name of numeric) expect(Object.keys(STACK_NUMBERS), name).toContain(name)
  })

  it('rejects a line the stack and the commands could read differently', () => {
    for (const [text, message] of [
      ['A="open', '.env line 1: the value\'s " quote is not closed (on the same line)'],
      ["A='x' y", '.env line 1: only a # comment may follow the closing quote'],
      ['not a line', '.env line 1 must be KEY=VALUE, a # comment or blank'],
      ['1A=x', '.env line 1 must be KEY=VALUE, a # comment or blank'],
    ] as const) {
      let err: unknown
      try {
        parseDotEnv(text)
      } catch (e) {
        err = e
      }
      expect(err, text).toBeInstanceOf(PipelineError)
      expect((err as Error).message).toBe(message)
      writeFileSync(join(home, '.env'), text)
      const stack = stackCli(['status'])
      expect(stack.code).toBe(1)
      expect(stack.stderr).toBe(`[stack] error: ${message.replace('.env', join(home, '.env'))}; nothing was started\n`)
    }
  })
})

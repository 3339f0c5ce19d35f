import { describe, expect, it } from 'vitest'
import * as cassandraModule from '../sinks/cassandra/module.js'
import { cassandraSinkModule } from '../sinks/cassandra/index.js'
import * as postgresModule from '../sinks/postgres/module.js'
import { postgresSinkModule } from '../sinks/postgres/index.js'
import { exitCodeOf, readSettings } from './cli.js'
import { settingsOf } from './settings.js'
import { sinkOptionsOf } from './sink-command.js'

const env = { PG_APP_PASSWORD: 'pw' }

describe('sink modules', () => {
  it.each([
    ['consume', postgresModule, postgresSinkModule],
    ['replicate', cassandraModule, cassandraSinkModule],
  ] as const)(
    '%s: the module a worker loads exports the contract, and every option is a row of the command',
    (command, mod, typed) => {
      for (const key of ['name', 'optionsSchema', 'preflight', 'createBatchSink'] as const) {
        expect(mod[key], key).toBeDefined()
        expect(typed[key]).toBe(mod[key])
      }
      expect(typed.url).toMatch(/\/module\.(ts|js)$/)
      const flags = settingsOf(command).map((r) => r.flag)
      for (const def of Object.values(typed.optionsSchema)) expect(flags).toContain(def!.flag)
    },
  )
})

describe('sinkOptionsOf', () => {
  it("reads the sink's options through the command's validated rows", () => {
    const get = readSettings('replicate', { consistency: 'one', 'cassandra-keyspace': 'ks', concurrency: '8' }, env)
    expect(sinkOptionsOf('replicate', cassandraSinkModule.optionsSchema, get)).toEqual({
      contactPoints: ['127.0.0.1:9042'],
      keyspace: 'ks',
      localDataCenter: 'datacenter1',
      consistency: 'ONE',
      concurrency: 8,
      pgUrl: 'postgres://cdc_app:pw@127.0.0.1:5432/cdc_db',
      onTruncate: 'apply',
    })
    expect(
      sinkOptionsOf(
        'consume',
        postgresSinkModule.optionsSchema,
        readSettings('consume', { 'pg-url': 'postgres://a@b/c' }),
      ),
    ).toEqual({ pgUrl: 'postgres://a@b/c' })
  })

  it('rejects a bad option once, in the main thread, naming the flag, as a usage error (exit 2)', () => {
    let failure: unknown
    try {
      readSettings('replicate', { concurrency: '0' }, env)
    } catch (err) {
      failure = err
    }
    expect(failure).toMatchObject({ code: 'CONFIG_ERROR', message: expect.stringMatching(/^--concurrency /) })
    expect(exitCodeOf(failure)).toBe(2)
  })

  it('refuses a sink option that the command has no row for (it would be missing from --help and the README)', () => {
    const get = readSettings('consume', {}, env)
    expect(() => sinkOptionsOf('consume', cassandraSinkModule.optionsSchema, get)).toThrow(
      'node cmd/consume has no --cassandra-contact-points row for sink option contactPoints',
    )
  })
})

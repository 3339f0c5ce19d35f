import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'

import { createLogger, defaultLogFormat } from './index.js'

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString())
      callback()
    },
  })
  return { stream, text: () => chunks.join('') }
}

describe('createLogger', () => {
  it('writes JSON lines with the level filter applied', () => {
    const out = sink()
    const log = createLogger({ level: 'info', pretty: false, destination: out.stream })
    log.debug('hidden')
    log.info({ topic: 'users' }, 'hello')
    const lines = out.text().trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, msg: 'hello', topic: 'users' })
  })

  it('redacts passwords and connection strings', () => {
    const out = sink()
    const log = createLogger({ pretty: false, destination: out.stream })
    const pgUrl = 'postgres://u:secret@h/db'
    log.info({ pgUrl, config: { pgUrl, pg: { password: 'secret', connectionString: pgUrl } } }, 'config')
    log.info({ password: 'secret' }, 'top-level')
    const text = out.text()
    expect(text).not.toContain('secret')
    expect(text).toContain('[redacted]')
  })

  it('redacts secrets at any depth, in arrays, in bindings and in a logged error, and leaves the object alone', () => {
    const out = sink()
    const log = createLogger({ pretty: false, destination: out.stream })
    const deep = { a: { b: { c: { d: { e: { password: 'secret-1', keep: 'visible' } } } } } }
    log.info({ deep, list: [{ sinks: [{ pg: { connectionString: 'postgres://u:secret-2@h/db' } }] }] }, 'deep')
    log.info({ connector: { config: { nested: { 'database.password': 'secret-3', PG_APP_PASSWORD: 'secret-4' } } } })
    log.child({ engine: { sink: { pool: { options: { pgUrl: 'postgres://u:secret-5@h/db' } } } } }).info('bound')
    const err = Object.assign(new Error('boom'), { config: { db: { pg: { password: 'secret-6' } } } })
    log.error({ err }, 'failed')
    const text = out.text()
    for (let i = 1; i <= 6; i++) expect(text).not.toContain(`secret-${i}`)
    expect(text.match(/\[redacted\]/g)).toHaveLength(6)
    expect(text).toContain('visible')
    expect(text).toContain('boom')
    expect(deep.a.b.c.d.e.password).toBe('secret-1')
    expect(err.config.db.pg.password).toBe('secret-6')
  })

  it('logs a circular object without looping', () => {
    const out = sink()
    const log = createLogger({ pretty: false, destination: out.stream })
    const loop: Record<string, unknown> = { password: 'secret' }
    loop.self = loop
    log.info({ loop }, 'circular')
    expect(out.text()).not.toContain('secret')
    expect(out.text()).toContain('circular')
  })

  it('child loggers carry the module', () => {
    const out = sink()
    const log = createLogger({ pretty: false, destination: out.stream, name: 'consume' })
    log.child({ module: 'sink' }).warn('slow')
    expect(JSON.parse(out.text())).toMatchObject({ name: 'consume', module: 'sink', msg: 'slow' })
  })

  it('pretty mode prints human-readable lines', () => {
    const out = sink()
    const log = createLogger({ pretty: true, destination: out.stream })
    log.info({ partition: 2 }, 'started')
    const text = out.text()
    expect(text).toContain('INFO')
    expect(text).toContain('started')
    expect(() => JSON.parse(text)).toThrow()
  })

  it('defaults to pretty on a terminal and JSON lines otherwise, judged by stderr, where the logs go', () => {
    const was = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY')
    try {
      Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true })
      expect(defaultLogFormat()).toBe('pretty')
      Object.defineProperty(process.stderr, 'isTTY', { value: undefined, configurable: true })
      expect(defaultLogFormat()).toBe('json')
    } finally {
      if (was === undefined) delete (process.stderr as { isTTY?: boolean }).isTTY
      else Object.defineProperty(process.stderr, 'isTTY', was)
    }
  })
})

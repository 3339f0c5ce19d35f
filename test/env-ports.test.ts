// Moving the stack's ports in .env moves the commands too: real command processes given nothing but a .env
// (CDC_ENV_FILE) with KAFKA_PORT_BASE and PG_PORT moved find Kafka and PostgreSQL on the new ports. A second stack is
// too heavy here, so the "moved" stack is TCP forwarders on the new ports in front of the running one, counting the
// connections they get. That the stack script reads the same values from the same file is
// internal/config/envfile.test.ts; a port value that is code is refused before anything runs, by both.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import { brokers, pgUrl, repoDir } from './helpers.js'
import {
  expectExit,
  expectedStateOf,
  parseJsonSummary,
  pipelineTest,
  readEvents,
  runCommand,
} from './pipeline-helpers.js'

interface Forwarder {
  port: number
  connections: number
}

/** Listens on 127.0.0.1:`port` (0: any) and forwards every connection to `target` (host:port). */
async function forwarder(port: number, target: string): Promise<Forwarder> {
  const colon = target.lastIndexOf(':')
  const sockets = new Set<Socket>()
  const f: Forwarder = { port, connections: 0 }
  const server: Server = createServer((client) => {
    f.connections++
    const upstream = connect({ host: target.slice(0, colon), port: Number(target.slice(colon + 1)) })
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', resolve)
  })
  f.port = (server.address() as AddressInfo).port
  onTestFinished(async () => {
    sockets.forEach((s) => s.destroy())
    await new Promise((resolve) => server.close(resolve))
  })
  return f
}

/** Three forwarders on consecutive free ports (the brokers at KAFKA_PORT_BASE, +1, +2) to the stack's brokers. */
async function kafkaForwarders(): Promise<Forwarder[]> {
  for (let attempt = 0; ; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000)
    const made: Forwarder[] = []
    try {
      for (let i = 0; i < 3; i++) made.push(await forwarder(base + i, brokers[i % brokers.length]!))
      return made
    } catch (err) {
      // A taken port: the forwarders made so far close with the test; try another base.
      if (attempt > 20) throw err
    }
  }
}

/** A temporary .env with `text`, and the environment a command gets it through (nothing else pointing anywhere). */
function envFile(text: string): { dir: string; env: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-env-ports-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, '.env'), text)
  // Empty counts as unset for a setting; the .env does not override a variable that is set, even empty.
  const unset = ['KAFKA_BROKERS', 'PG_URL', 'CASSANDRA_CONTACT_POINTS']
  return { dir, env: { CDC_ENV_FILE: join(dir, '.env'), ...Object.fromEntries(unset.map((v) => [v, ''])) } }
}

describe('ports moved in .env', () => {
  it('node cmd/produce and node cmd/consume find Kafka at KAFKA_PORT_BASE and PostgreSQL at PG_PORT', async () => {
    for (const v of ['KAFKA_PORT_BASE', 'PG_PORT', 'PG_APP_PASSWORD']) {
      expect(process.env[v], `${v} set in the test's environment would win over the .env`).toBeUndefined()
    }
    const kafka = await kafkaForwarders()
    const pgTarget = new URL(pgUrl)
    const pg = await forwarder(0, `${pgTarget.hostname}:${pgTarget.port || '5432'}`)
    const { env } = envFile(
      [
        `export KAFKA_PORT_BASE=${kafka[0]!.port} # moved`,
        `PG_PORT="${pg.port}"`,
        `PG_APP_PASSWORD='${decodeURIComponent(pgTarget.password)}'`,
      ].join('\n'),
    )
    const ctx = pipelineTest('env-ports')

    const produced = await runCommand('produce', [...ctx.topicArgs, '--count', '40', '--seed', String(ctx.seed)], {
      env,
    })
    expectExit(produced)
    // The preflight asks every bootstrap address; kafkajs then follows the brokers' advertised addresses.
    for (const f of kafka) expect(f.connections, `connections to 127.0.0.1:${f.port}`).toBeGreaterThan(0)
    expectedStateOf(ctx, (await readEvents(ctx)).events)

    const before = kafka.map((f) => f.connections)
    const args = [...ctx.topicArgs, '--group', ctx.group(), '--idle-timeout', '3s', '--summary-json']
    const consumed = await runCommand('consume', args, { env })
    expectExit(consumed)
    expect(parseJsonSummary<{ processed: number }>(consumed.stdout).processed).toBe(40)
    expect(kafka.map((f, i) => f.connections - before[i]!).reduce((a, b) => a + b)).toBeGreaterThan(0)
    expect(pg.connections).toBeGreaterThan(0)
  })

  it('a port in .env that is code: exit 2, one line naming the variable, nothing run', async () => {
    const { dir, env } = envFile('KAFKA_PORT_BASE=$(touch pwned)\n')
    // Should the variable be ignored, the commands would reach the real stack: only this test's topics, one event.
    const ctx = pipelineTest('env-pwned')
    const harmless = { produce: ['--count', '1'], consume: ['--group', ctx.group()], 'replay-dlq': ['--dry-run'] }
    for (const name of ['produce', 'consume', 'replay-dlq'] as const) {
      const args = [...(name === 'replay-dlq' ? ['--topic', ctx.users] : ctx.topicArgs), ...harmless[name]]
      const result = await runCommand(name, args, { env, timeoutMs: 30_000 })
      expect(result.code, result.stderr).toBe(2)
      expect(result.stderr).toBe(
        `${name}: KAFKA_PORT_BASE must be a port: digits, 1 to 65533 (it and the next two are used) ` +
          `(got "$(touch pwned)")\n`,
      )
      expect(result.stdout).toBe('')
    }
    expect(existsSync(join(dir, 'pwned'))).toBe(false)
    expect(existsSync(join(repoDir, 'pwned'))).toBe(false)
  })
})

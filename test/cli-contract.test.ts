// The command-line contract, on the real commands as child processes: strict flags (a value where one is expected,
// booleans as typed), --version, durations with a unit, exit codes (2 usage, 3 a dependency unreachable at start,
// within --connect-timeout, naming the address), logs on stderr and only the result on stdout. Misuse cases pass a
// refused broker address too, so that a regression fails the test instead of producing into the shared stack.
import { createServer as createHttpServer } from 'node:http'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { buildDlqMessage, dlqTopicFor } from '../internal/pipeline/index.js'
import { ErrorCodes, PipelineError } from '../internal/errors/index.js'
import { createTopicsLed, brokers, kafka, repoDir, testAdmin } from './helpers.js'
import {
  expectExit,
  expectedStateOf,
  parseJsonSummary,
  pipelineTest,
  readEvents,
  runCommand,
  topicEndOffsets,
  type CommandName,
  type CommandResult,
} from './pipeline-helpers.js'

const run = promisify(execFile)
const REFUSED = ['--brokers', '127.0.0.1:1']
const version = (JSON.parse(readFileSync(`${repoDir}package.json`, 'utf8')) as { version: string }).version

/** Exactly one non-empty line on stderr, starting with the command's name; returns it. */
function oneErrorLine(name: string, result: CommandResult): string {
  const lines = result.stderr.split('\n').filter((l) => l !== '')
  expect(lines, `stderr of ${name}:\n${result.stderr}`).toHaveLength(1)
  expect(lines[0]).toMatch(new RegExp(`^${name}: `))
  return lines[0]!
}

/** A TCP server on 127.0.0.1 that accepts connections and never says a word; closed when the test ends. */
async function silentListener(): Promise<number> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
  })
  return listen(server, () => sockets.forEach((s) => s.destroy()))
}

/**
 * A listener on 127.0.0.1 that relays its first `relayed` connections to the stack's first broker and then goes
 * silent: every later connection is accepted and never answered.
 */
async function goesSilent(relayed: number): Promise<{ port: number; connections: () => number }> {
  const sockets = new Set<Socket>()
  const [host, brokerPort] = [brokers[0]!.slice(0, brokers[0]!.lastIndexOf(':')), brokers[0]!.split(':').at(-1)!]
  let connections = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => undefined)
    if (++connections > relayed) return
    const upstream = connect({ host, port: Number(brokerPort) })
    sockets.add(upstream)
    upstream.on('error', () => socket.destroy())
    socket.pipe(upstream).pipe(socket)
  })
  const port = await listen(server, () => sockets.forEach((s) => s.destroy()))
  return { port, connections: () => connections }
}

/** A small HTTP server on 127.0.0.1 (what answers at a port given by mistake, Connect's for one). */
async function httpServer(): Promise<number> {
  const server = createHttpServer((_, res) => res.end('hello\n'))
  return listen(server, () => server.closeAllConnections())
}

async function listen(server: Server, closeConnections: () => void): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => {
    closeConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return (server.address() as AddressInfo).port
}

describe('the command-line contract', () => {
  for (const name of ['produce', 'consume', 'replicate', 'replay-dlq', 'demo'] as const) {
    it(`node cmd/${name} --version prints the package version`, async () => {
      const result = await runCommand(name as CommandName, ['--version'], { timeoutMs: 30_000 })
      expectExit(result)
      expect(result.stdout).toBe(`${version}\n`)
      expect(result.stderr).toBe('')
    })
  }

  const misuse: { name: string; args: string[]; error: RegExp; env?: Record<string, string> }[] = [
    // Regression: produced 10,000 events.
    { name: 'produce', args: ['--count', ...REFUSED], error: /--count needs a value/ },
    { name: 'produce', args: [...REFUSED, '--count'], error: /--count needs a value/ },
    { name: 'consume', args: [...REFUSED, '--idle-timeout'], error: /--idle-timeout needs a value/ },
    { name: 'replay-dlq', args: ['--dry-run=maybe', ...REFUSED], error: /--dry-run must be true or false .*'maybe'/ },
    { name: 'replay-dlq', args: ['--dry-run', 'maybe', ...REFUSED], error: /--dry-run must be true or false/ },
    { name: 'replay-dlq', args: ['--dry-run=', ...REFUSED], error: /--dry-run must be true or false .*''/ },
    {
      name: 'consume',
      args: ['--from-beginning=perhaps', ...REFUSED],
      error: /--from-beginning must be true or false/,
    },
    { name: 'produce', args: ['--progress=2', ...REFUSED], error: /--progress must be true or false/ },
    { name: 'produce', args: ['--duration', '5x', ...REFUSED], error: /--duration must be a duration/ },
    { name: 'replicate', args: ['--session-timeout', '0s', ...REFUSED], error: /--session-timeout must be a dur/ },
    { name: 'produce', args: ['--count', '0x10', ...REFUSED], error: /--count must be a non-negative integer/ },
    { name: 'consume', args: ['--no-workers', ...REFUSED], error: /--no-workers is not a flag/ },
    { name: 'replicate', args: ['--log-format', 'xml', ...REFUSED], error: /--log-format must be one of json, pretty/ },
    { name: 'produce', args: REFUSED, error: /^produce: LOG_LEVEL must be one of trace,/, env: { LOG_LEVEL: 'loud' } },
    { name: 'replay-dlq', args: REFUSED, error: /LOG_FORMAT must be one of json, pretty/, env: { LOG_FORMAT: 'x' } },
    { name: 'demo', args: ['--quiet'], error: /--quiet needs a value/ },
    { name: 'demo', args: ['--rate', 'many'], error: /--rate must be a positive integer/ },
    { name: 'demo', args: ['--bogus'], error: /Unknown argument: bogus/ },
  ]
  for (const m of misuse) {
    const env = m.env === undefined ? '' : `${Object.entries(m.env).map(([k, v]) => `${k}=${v} `)}`
    it(`${env}node cmd/${m.name} ${m.args.join(' ')}: exit 2, one line on stderr, nothing on stdout`, async () => {
      const result = await runCommand(m.name as CommandName, m.args, { timeoutMs: 30_000, env: m.env ?? {} })
      expect(result.code, result.stderr).toBe(2)
      expect(oneErrorLine(m.name, result)).toMatch(m.error)
      expect(result.stdout).toBe('')
    })
  }

  it('a listener that accepts and never answers: exit 3 within the default 10 s, naming the address', async () => {
    const port = await silentListener()
    const result = await runCommand('replay-dlq', ['--brokers', `127.0.0.1:${port}`], { timeoutMs: 30_000 })
    expect(result.code, result.stderr).toBe(3)
    expect(oneErrorLine('replay-dlq', result)).toBe(
      `replay-dlq: cannot reach Kafka at 127.0.0.1:${port} within 10 s: no answer to the API versions request — ` +
        'is it a Kafka listener? npm run stack:status',
    )
    expect(result.durationMs).toBeGreaterThanOrEqual(10_000)
    expect(result.durationMs).toBeLessThan(15_000)
  })

  for (const name of ['produce', 'consume', 'replicate', 'replay-dlq'] as const) {
    it(`node cmd/${name} --connect-timeout 2s on a silent listener: exit 3 within the bound`, async () => {
      const port = await silentListener()
      const args = ['--brokers', `127.0.0.1:${port}`, '--connect-timeout', '2s']
      const result = await runCommand(name, args, { timeoutMs: 30_000 })
      expect(result.code, result.stderr).toBe(3)
      expect(oneErrorLine(name, result)).toMatch(
        new RegExp(`cannot reach Kafka at 127\\.0\\.0\\.1:${port} within 2 s: no answer to the API versions request`),
      )
      expect(result.durationMs).toBeLessThan(7_000)
      expect(result.stdout).toBe('')
    })
  }

  // consume and replicate check Kafka twice: in main, then in the pipeline runner (topics, DLQ topics). The second
  // check had a fixed 10 s bound. Here the first check passes (the forwarder relays its two connections to the real
  // stack) and the runner's finds a listener that never answers.
  for (const name of ['consume', 'replicate'] as const) {
    it(`node cmd/${name}: the pipeline's own Kafka check honours --connect-timeout too`, async () => {
      const port = await goesSilent(2)
      const args = ['--brokers', `127.0.0.1:${port.port}`, '--connect-timeout', '2s', '--group']
      const result = await runCommand(name, [...args, `test-cli-runner-bound-${port.port}`], { timeoutMs: 30_000 })
      expect(result.code, result.stderr).toBe(3)
      expect(oneErrorLine(name, result)).toBe(
        `${name}: cannot reach Kafka at 127.0.0.1:${port.port} within 2 s: no answer to the API versions request — ` +
          'is it a Kafka listener? npm run stack:status',
      )
      // Main's check (its probe and kafkajs' connection), then the runner's probe.
      expect(port.connections()).toBe(3)
      expect(result.durationMs).toBeLessThan(7_000)
      expect(result.stdout).toBe('')
    })
  }

  it('an HTTP port given as the broker: exit 3 at once, saying what answered', async () => {
    const port = await httpServer()
    const result = await runCommand('produce', ['--brokers', `127.0.0.1:${port}`], { timeoutMs: 30_000 })
    expect(result.code, result.stderr).toBe(3)
    expect(oneErrorLine('produce', result)).toMatch(
      new RegExp(
        `^produce: cannot reach Kafka at 127\\.0\\.0\\.1:${port}: .*not as Kafka \\('HTTP/1\\.1 400 Bad Request'\\) — ` +
          'is it a Kafka listener\\? npm run stack:status$',
      ),
    )
    expect(result.durationMs).toBeLessThan(10_000)
  })

  it('several bootstrap addresses, all refused: exit 3 naming them', async () => {
    const result = await runCommand('replay-dlq', ['--brokers', '127.0.0.1:1,127.0.0.1:2'], { timeoutMs: 30_000 })
    expect(result.code).toBe(3)
    expect(oneErrorLine('replay-dlq', result)).toMatch(
      /cannot reach Kafka at 127\.0\.0\.1:1,127\.0\.0\.1:2: connection refused/,
    )
  })

  it('PostgreSQL that never answers: node cmd/consume exits 3 within --connect-timeout, naming host:port', async () => {
    const ctx = pipelineTest('cli-pg-silent')
    await ctx.createTopics()
    const port = await silentListener()
    const args = [...ctx.topicArgs, '--group', ctx.group(), '--connect-timeout', '2s']
    const result = await runCommand('consume', [...args, '--pg-url', `postgres://u:secret@127.0.0.1:${port}/db`], {
      timeoutMs: 60_000,
    })
    expect(result.code, result.stderr).toBe(3)
    const line = oneErrorLine('consume', result)
    expect(line).toMatch(new RegExp(`^consume: cannot reach PostgreSQL at 127\\.0\\.0\\.1:${port} within 2 s: `))
    expect(line).not.toContain('secret')
  })

  it('Cassandra that never answers: node cmd/replicate exits 3 within --connect-timeout, naming the address', async () => {
    const port = await silentListener()
    const args = ['--cassandra-contact-points', `127.0.0.1:${port}`, '--connect-timeout', '2s', '--group']
    const result = await runCommand('replicate', [...args, `test-cli-cassandra-${port}`], { timeoutMs: 60_000 })
    expect(result.code, result.stderr).toBe(3)
    expect(oneErrorLine('replicate', result)).toMatch(
      new RegExp(`^replicate: Cassandra is not reachable at 127\\.0\\.0\\.1:${port} .*within 2 s`),
    )
  })

  // Regression: --dry-run=yes was read as false, and the records were replayed for real.
  it('node cmd/replay-dlq --dry-run=yes lists the dead letters and produces nothing', async () => {
    const ctx = pipelineTest('cli-dry-run')
    await ctx.createTopics()
    const dlq = dlqTopicFor(ctx.orders)
    const admin = await testAdmin()
    await createTopicsLed(admin, { topics: [{ topic: dlq, numPartitions: 1, replicationFactor: 3 }] })
    const producer = kafka.producer()
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    const letter = buildDlqMessage({
      original: { topic: ctx.orders, partition: 2, offset: '7', key: 'order-1', value: Buffer.from('{}') },
      error: new PipelineError(ErrorCodes.MISSING_REFERENCE, 'user u-1 is not there'),
      attempts: 3,
      firstFailureAt: new Date(),
      lastFailureAt: new Date(),
    })
    await producer.send({ topic: dlq, acks: -1, messages: [letter] })
    const before = await topicEndOffsets([ctx.orders])

    for (const flag of ['--dry-run=yes', '--dry-run=ON', '--dry-run', '--dry-run=1']) {
      const result = await runCommand('replay-dlq', ['--topic', ctx.orders, flag, '--summary-json'])
      expectExit(result)
      const lines = result.stdout.trim().split('\n')
      expect(lines, flag).toHaveLength(2)
      expect(lines[0]).toBe(
        `${dlq}/0@0 <- ${ctx.orders}/2@7 key=order-1 MISSING_REFERENCE (attempts 3): user u-1 is not there`,
      )
      expect(parseJsonSummary(result.stdout, 'matched')).toMatchObject({
        read: 1,
        matched: 1,
        replayed: 0,
        dryRun: true,
      })
    }
    expect(await topicEndOffsets([ctx.orders])).toEqual(before)
  })

  it('node cmd/consume --idle-timeout 10s takes the unit: it stops after 10 s without messages', async () => {
    const ctx = pipelineTest('cli-duration')
    await ctx.createTopics()
    const args = [...ctx.topicArgs, '--group', ctx.group(), '--idle-timeout', '10s', '--summary-json']
    const result = await runCommand('consume', args, { timeoutMs: 60_000 })
    expectExit(result)
    expect(parseJsonSummary<{ reason: string }>(result.stdout).reason).toMatch(/^idle for 1[01] s$/)
    expect(result.durationMs).toBeGreaterThanOrEqual(10_000)
  })

  it('consume --summary-json --log-level debug 2>/dev/null | jq .processed: the count, in a run that warns', async () => {
    const ctx = pipelineTest('cli-jq')
    const produced = await runCommand('produce', [...ctx.topicArgs, '--count', '20', '--seed', String(ctx.seed)])
    expectExit(produced)
    expectedStateOf(ctx, (await readEvents(ctx)).events)
    // A record that cannot be decoded: it goes to the DLQ, with a warning on stderr.
    const producer = kafka.producer()
    await producer.connect()
    onTestFinished(() => producer.disconnect())
    await producer.send({ topic: ctx.users, acks: -1, messages: [{ key: 'not-an-event', value: 'not json' }] })
    const dir = mkdtempSync(join(tmpdir(), 'cdc-cli-jq-'))
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const args = [...ctx.topicArgs, '--group', ctx.group(), '--summary-json', '--log-level', 'debug']
    // As a user types it, but with stderr kept in a file (not /dev/null) to show the run did warn.
    const line = `node cmd/consume ${args.join(' ')} --idle-timeout 3s 2>"$1" | jq .processed`
    const { stdout } = await run('bash', ['-o', 'pipefail', '-c', line, 'bash', join(dir, 'stderr')], { cwd: repoDir })
    expect(stdout).toBe('21\n')
    const records = readFileSync(join(dir, 'stderr'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string })
    expect(records.filter((r) => r.level === 40).map((r) => r.msg)).toContainEqual(
      expect.stringMatching(/^sent to DLQ/),
    )
  })

  it('consume --summary-json --log-level debug: stdout is one JSON line, the logs are on stderr', async () => {
    const ctx = pipelineTest('cli-stdout')
    const produced = await runCommand('produce', [...ctx.topicArgs, '--count', '50', '--seed', String(ctx.seed)])
    expectExit(produced)
    expect(produced.stdout).toMatch(/^produce summary\n/)
    expectedStateOf(ctx, (await readEvents(ctx)).events)
    const args = [...ctx.topicArgs, '--group', ctx.group(), '--summary-json', '--log-level', 'debug']
    const result = await runCommand('consume', [...args, '--idle-timeout', '3s'])
    expectExit(result)
    const lines = result.stdout.split('\n').filter((l) => l !== '')
    expect(lines, result.stdout).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({ processed: 50 })
    // It did log, as JSON lines (stderr is no terminal here).
    const records = result.stderr
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string })
    expect(records.map((r) => r.msg)).toContain('consuming')
  })
})

// Issue 3: the commands' contract with the people and scripts running them. --help lists the flags and exits 0;
// misuse (an unknown flag, a bad value, an unreachable broker, a database without the tables) gets one clear line on
// stderr and a non-zero exit; SIGTERM mid-run exits 0 with the summary, and the offsets of what was processed are
// committed.
import { describe, expect, it } from 'vitest'
import { freePort, pgSuperUrl } from './helpers.js'
import {
  committedCount,
  committedOffsets,
  consumeSummary,
  countRows,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  pipelineTest,
  readEvents,
  runCommand,
  startCommand,
  waitFor,
  type CommandName,
  type CommandResult,
} from './pipeline-helpers.js'

// The flags of every command built on the consume engine (withEngineFlags: consume, replicate, cache-sync).
const ENGINE_FLAGS = [
  '--workers',
  '--idle-timeout',
  '--from-beginning',
  '--retry-attempts',
  '--retry-max-time',
  '--max-parked',
  '--max-parked-bytes',
  '--max-value-bytes',
  '--max-workers',
  '--on-data-loss',
  '--dlq-retention',
  '--task-timeout',
  '--session-timeout',
  '--summary-json',
  '--progress',
  '--metrics-port',
  '--metrics-host',
  '--log-level',
  '--log-format',
  '--connect-timeout',
]

const FLAGS: Record<CommandName, string[]> = {
  produce: [
    '--count',
    '--rate',
    '--duration',
    '--seed',
    '--batch-size',
    '--mix',
    '--brokers',
    '--users-topic',
    '--orders-topic',
    '--products-topic',
    '--users-partitions',
    '--orders-partitions',
    '--replication-factor',
    '--min-insync-replicas',
    '--progress',
    '--metrics-port',
    '--metrics-host',
    '--log-level',
    '--log-format',
    '--connect-timeout',
    '--help',
    '--version',
  ],
  consume: [
    '--brokers',
    '--pg-url',
    '--group',
    '--users-topic',
    '--orders-topic',
    '--products-topic',
    '--topics',
    ...ENGINE_FLAGS,
    '--help',
    '--version',
  ],
  replicate: [
    '--brokers',
    '--pg-url',
    '--group',
    '--topics',
    '--tables',
    '--topic-prefix',
    '--cassandra-contact-points',
    '--cassandra-keyspace',
    '--cassandra-local-dc',
    '--consistency',
    '--concurrency',
    '--on-truncate',
    ...ENGINE_FLAGS,
    '--help',
    '--version',
  ],
  'cache-sync': [
    '--brokers',
    '--pg-url',
    '--group',
    '--topics',
    '--redis-url',
    '--mode',
    '--tombstone-ttl',
    '--on-truncate',
    ...ENGINE_FLAGS,
    '--help',
    '--version',
  ],
  'replay-dlq': [
    '--brokers',
    '--topic',
    '--error-code',
    '--dry-run',
    '--metrics-port',
    '--metrics-host',
    '--summary-json',
    '--log-level',
    '--log-format',
    '--connect-timeout',
    '--help',
    '--version',
  ],
}

/** Exactly one non-empty line on stderr, starting with the command's name; returns it. */
function oneErrorLine(name: CommandName, result: CommandResult): string {
  const lines = result.stderr.split('\n').filter((l) => l !== '')
  expect(lines, `stderr of ${name}:\n${result.stderr}`).toHaveLength(1)
  expect(lines[0]).toMatch(new RegExp(`^${name}: `))
  return lines[0]!
}

/** A consume run in `group` until its topics have been quiet for 5 s: the summary. */
async function finishInGroup(ctx: ReturnType<typeof pipelineTest>, group: string) {
  const rest = await runCommand('consume', [
    ...ctx.topicArgs,
    '--group',
    group,
    '--summary-json',
    '--idle-timeout',
    '5',
  ])
  expectExit(rest)
  return consumeSummary(rest.stdout)
}

describe('command line', () => {
  for (const name of Object.keys(FLAGS) as CommandName[]) {
    it(`node cmd/${name} --help lists its flags and exits 0`, async () => {
      const result = await runCommand(name, ['--help'], { timeoutMs: 30_000 })
      expectExit(result)
      expect(result.stderr).toBe('')
      expect(result.stdout).toMatch(new RegExp(`^node cmd/${name} \\[options\\]`))
      const listed = [...result.stdout.matchAll(/^\s+(?:-h, )?(--[a-z-]+)/gm)].map((m) => m[1])
      expect(listed.sort()).toEqual([...FLAGS[name]].sort())
      if (name === 'replay-dlq') expect(result.stdout).toMatch(/version-guarded/)
    })
  }

  // Exit 2 for misuse, 3 for a dependency that cannot be reached at start.
  const misuse: { name: CommandName; args: string[]; error: RegExp; what: string; code?: number }[] = [
    { name: 'produce', args: ['--bogus', '1'], error: /Unknown argument: bogus/, what: 'an unknown flag' },
    { name: 'consume', args: ['--bogus-flag'], error: /Unknown arguments?: bogus-flag/, what: 'an unknown flag' },
    { name: 'replay-dlq', args: ['--bogus'], error: /Unknown argument: bogus/, what: 'an unknown flag' },
    {
      name: 'produce',
      args: ['--count', '-5'],
      error: /--count must be a non-negative integer \(got '-5'\)/,
      what: 'a bad value',
    },
    {
      name: 'consume',
      args: ['--idle-timeout', 'soon'],
      // A duration now (10s, 500ms or bare seconds), no longer a plain number.
      error: /--idle-timeout must be a duration: seconds, or a number with a unit .* \(got 'soon'\)/,
      what: 'a bad value',
    },
    {
      name: 'consume',
      args: ['--pg-url', 'mysql://localhost/db'],
      error: /--pg-url must be a URL starting with postgres:\/\/ or postgresql:\/\//,
      what: 'a bad value',
    },
    {
      name: 'replay-dlq',
      args: ['--error-code', 'MISSING_USER'],
      error: /--error-code must be one of .*MISSING_REFERENCE.* \(got 'MISSING_USER'\)/,
      what: 'a bad value',
    },
    {
      name: 'produce',
      args: ['--brokers', '127.0.0.1:1', '--count', '1'],
      error: /cannot reach Kafka at 127\.0\.0\.1:1/,
      what: 'an unreachable broker',
      code: 3,
    },
    {
      name: 'consume',
      args: ['--brokers', '127.0.0.1:1'],
      error: /cannot reach Kafka at 127\.0\.0\.1:1/,
      what: 'an unreachable broker',
      code: 3,
    },
    {
      name: 'replay-dlq',
      args: ['--brokers', '127.0.0.1:1'],
      error: /cannot reach Kafka at 127\.0\.0\.1:1/,
      what: 'an unreachable broker',
      code: 3,
    },
  ]
  for (const m of misuse) {
    it(`node cmd/${m.name} with ${m.what} (${m.args.join(' ')}) says so in one line and exits non-zero`, async () => {
      const result = await runCommand(m.name, m.args, { timeoutMs: 30_000 })
      expect(result.code).toBe(m.code ?? 2)
      expect(oneErrorLine(m.name, result)).toMatch(m.error)
    })
  }

  it('node cmd/consume against a database without the tables says so in one line and exits non-zero', async () => {
    const ctx = pipelineTest('cli-schema')
    await ctx.createTopics()
    const noTables = new URL(pgSuperUrl)
    noTables.pathname = '/postgres'
    const result = await runCommand(
      'consume',
      [...ctx.topicArgs, '--group', ctx.group(), '--pg-url', noTables.href, '--idle-timeout', '5'],
      { timeoutMs: 60_000 },
    )
    expect(result.code).not.toBe(0)
    expect(result.code).toBe(2)
    expect(oneErrorLine('consume', result)).toMatch(/table users is missing/)
    expect(result.stderr).not.toContain('postgres:postgres')
  })

  it('node cmd/consume on topics that do not exist says so in one line and exits non-zero', async () => {
    const ctx = pipelineTest('cli-notopics')
    const result = await runCommand('consume', [...ctx.topicArgs, '--group', ctx.group()], { timeoutMs: 60_000 })
    expect(result.code).not.toBe(0)
    expect(result.code).toBe(2)
    expect(oneErrorLine('consume', result)).toMatch(
      new RegExp(`${ctx.users}, ${ctx.orders}, ${ctx.products} do not exist`),
    )
  })

  // Regression: batches that finished after the signal were reported processed but never committed, because kafkajs'
  // consumer.commitOffsets silently does nothing once consumer.stop() has begun.
  it('SIGTERM mid-run exits 0, prints the summary, and commits the offsets of everything processed', async () => {
    const ctx = pipelineTest('cli-sigterm')
    const events = 20_000
    expectExit(await runCommand('produce', [...ctx.topicArgs, '--count', String(events), '--seed', String(ctx.seed)]))
    const { events: all } = await readEvents(ctx)
    const expected = expectedStateOf(ctx, all)
    const userIds = [...expected.users.keys()]
    const orderIds = [...expected.orders.keys()]

    const group = ctx.group()
    const consumer = startCommand('consume', [...ctx.topicArgs, '--group', group, '--summary-json'])
    await waitFor('rows to appear', async () => (await countRows(userIds, orderIds)) > 0, 60_000, 100)
    consumer.kill('SIGTERM')
    const result = await consumer.exited
    expectExit(result)
    expect(result.durationMs).toBeLessThan(60_000)
    const summary = consumeSummary(result.stdout)
    console.log(`[cli] after SIGTERM: ${JSON.stringify(summary)}`)
    expect(summary.reason).toBe('SIGTERM')
    expect(summary.processed).toBeGreaterThan(0)
    expect(summary.deadLettered).toBe(0)
    // Logs go to stderr; stdout carries only the summary.
    expect(result.stderr).toMatch(/SIGTERM: stopping cleanly/)

    // One consumer from offset 0, no rebalance: the committed offsets count exactly the messages it processed.
    // Batches waiting in a retry when the signal came are abandoned uncommitted (and redelivered next time); the
    // summary counts them apart.
    const committed = committedCount(await committedOffsets(group, [ctx.users, ctx.orders, ctx.products]))
    expect(committed).toBe(summary.processed)
    expect(summary.processed + summary.abandoned).toBeLessThanOrEqual(events)

    // Nothing was lost by stopping: a second run in the same group finishes the topics exactly.
    const rest = await finishInGroup(ctx, group)
    expect(rest.processed).toBe(events - committed)
    await expectRowsMatch(expected)
  })

  // Regression: the signal handlers were installed only once the engine had joined its group, so a SIGTERM during
  // start-up (here the join waits for a killed member's session to expire) took its default action and killed the
  // process by signal, with no summary.
  it('SIGTERM while still joining the group exits 0 with the summary once it has joined, and loses nothing', async () => {
    const ctx = pipelineTest('cli-sigterm-start')
    const events = 500
    expectExit(await runCommand('produce', [...ctx.topicArgs, '--count', String(events), '--seed', String(ctx.seed)]))
    const { events: all } = await readEvents(ctx)
    const expected = expectedStateOf(ctx, all)
    const group = ctx.group()
    const session = ['--session-timeout', '10']
    // A member that dies without leaving: the next join waits for its session (10 s) to expire.
    const dead = startCommand('consume', [...ctx.topicArgs, '--group', group, ...session])
    await waitFor('the first member to apply rows', async () => (await countRows([...expected.users.keys()], [])) > 0)
    dead.kill('SIGKILL')
    await dead.exited
    const port = await freePort()
    const joining = startCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      group,
      ...session,
      '--summary-json',
      '--metrics-port',
      String(port),
    ])
    await waitFor(
      'the second member to be joining its group',
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined)
        return res !== undefined && ((await res.json()) as { reason?: string }).reason?.startsWith('joining') === true
      },
      60_000,
      50,
    )
    joining.kill('SIGTERM')
    const result = await joining.exited
    expect(result.signal, result.stderr.slice(-2000)).toBeNull()
    expectExit(result)
    expect(consumeSummary(result.stdout).reason).toBe('SIGTERM')

    await finishInGroup(ctx, group)
    await expectRowsMatch(expected)
  })
})

// Issue 3: the core pipeline is exact. 50,000 generated events go through node cmd/produce and node cmd/consume,
// and PostgreSQL ends up holding, row for row and column for column, what the events say it must: computed from the
// events read back from Kafka (decodeEvent + applyEvents), not from SQL. Then the same events consumed again in a new
// group change nothing.
import { describe, expect, it } from 'vitest'
import { ENTITY_TABLES } from '../internal/model/index.js'
import {
  consumeSummary,
  expectExit,
  expectRowsMatch,
  expectedStateOf,
  loadTables,
  pipelineTest,
  readDlq,
  readEvents,
  runCommand,
} from './pipeline-helpers.js'

const EVENTS = 50_000

describe('events -> PostgreSQL exactness', () => {
  it('applies 50,000 mixed events exactly, and a second full consumption in a new group changes nothing', async () => {
    const ctx = pipelineTest('exact')
    const produced = await runCommand('produce', [
      ...ctx.topicArgs,
      '--count',
      String(EVENTS),
      '--seed',
      String(ctx.seed),
      '--log-level',
      'warn',
    ])
    expectExit(produced)
    expect(produced.stdout).toMatch(new RegExp(`produced\\s+${EVENTS}\\b`))

    const { events, rejected } = await readEvents(ctx)
    expect(events).toHaveLength(EVENTS)
    expect(rejected).toEqual([])
    const expected = expectedStateOf(ctx, events)
    // The mix really is mixed: creates, updates and deletes of both entities, soft-deleted users with orders.
    const types = new Set(events.map((e) => `${'order_id' in e ? 'order' : 'user'} ${e.event_type}`))
    expect(types.size).toBe(6)
    expect([...expected.users.values()].some((u) => u.is_deleted)).toBe(true)
    expect([...expected.orders.values()].some((o) => o.status === 'DELIVERED')).toBe(true)
    expect(expected.orphanOrderIds.size).toBe(0)

    const group = ctx.group('first')
    const first = await runCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      group,
      '--idle-timeout',
      '5',
      '--summary-json',
      '--log-level',
      'warn',
    ])
    expectExit(first)
    const s1 = consumeSummary(first.stdout)
    console.log(`[exact] first consume: ${JSON.stringify(s1)} in ${Math.round(first.durationMs)} ms`)
    expect(s1.reason).toMatch(/^idle/)
    expect(s1.processed).toBe(EVENTS)
    expect(s1.deadLettered).toBe(0)
    expect(s1.applied).toBeGreaterThan(0)

    const before = await expectRowsMatch(expected)
    // Every entity of the generator's mix was compared (products are a tenth of it).
    for (const table of ENTITY_TABLES) expect(before[table]!.size, table).toBeGreaterThan(0)
    expect(await readDlq(ctx)).toEqual([])

    // Idempotency: everything again from offset 0 in a new group.
    const second = await runCommand('consume', [
      ...ctx.topicArgs,
      '--group',
      ctx.group('again'),
      '--idle-timeout',
      '5',
      '--summary-json',
      '--log-level',
      'warn',
    ])
    expectExit(second)
    const s2 = consumeSummary(second.stdout)
    console.log(`[exact] second consume: ${JSON.stringify(s2)} in ${Math.round(second.durationMs)} ms`)
    expect(s2.processed).toBe(EVENTS)
    expect(s2.applied).toBe(0)
    expect(s2.stale).toBe(EVENTS)
    expect(s2.deadLettered).toBe(0)

    const after = await loadTables(Object.fromEntries(ENTITY_TABLES.map((t) => [t, before[t]!.keys()])))
    for (const table of ENTITY_TABLES) expect(after[table]!.size, table).toBe(before[table]!.size)
    const changed = ENTITY_TABLES.flatMap((table) =>
      [...before[table]!]
        .filter(([id, row]) => JSON.stringify(after[table]!.get(id)) !== JSON.stringify(row))
        .map(([id]) => `${table} ${id}`),
    )
    expect(changed, 'rows changed by the second consumption').toEqual([])
    await expectRowsMatch(expected)
    expect(await readDlq(ctx)).toEqual([])
  })
})

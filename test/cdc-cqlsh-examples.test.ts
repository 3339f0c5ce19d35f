// Runs every example of docs/cqlsh-examples.md, as written there (placeholders replaced), and checks the output.
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it, onTestFinished } from 'vitest'
import { cqlsh, psql, repoDir } from './helpers.js'
import {
  STREAMED_BAND,
  deletePgRows,
  prepareReplicateGroup,
  replicateArgs,
  start,
  summaryOf,
  uniqueName,
  waitForReplicated,
} from './cdc-helpers.js'

const doc = readFileSync(`${repoDir}docs/cqlsh-examples.md`, 'utf8')

/** The statement of the example marked `<!-- example: name -->`, with its placeholders filled in. */
function example(name: string, values: Record<string, string>): string {
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`sql\\n([\\s\\S]*?)\`\`\``).exec(doc)
  if (!m) throw new Error(`docs/cqlsh-examples.md has no example '${name}'`)
  const statement = m[1].replace(/<([a-z-]+)>/g, (_all, key: string) => {
    if (values[key] === undefined) throw new Error(`example '${name}': no value for <${key}>`)
    return values[key]
  })
  return statement.replace(/\s+/g, ' ').trim()
}

describe('docs/cqlsh-examples.md', () => {
  it('every example runs against the replicated data and answers what the text says', async () => {
    const user = randomUUID()
    const orders = [randomUUID(), randomUUID(), randomUUID()]
    onTestFinished(() => deletePgRows([user], orders))
    const group = uniqueName('cdc-cqlsh-replicate')
    await prepareReplicateGroup(group)
    const replicate = start('replicate', replicateArgs(group, ['--idle-timeout', '60']))

    // Far in the future, so that no other test's cancellation is more recent than this one.
    const cancelledAt = '2099-06-01 12:00:00.123+00'
    await psql(
      `INSERT INTO users (id, name, dob, created_at, modified_at) VALUES ('${user}', 'Ada', '1815-12-10', now(), now())`,
    )
    await psql(
      `INSERT INTO orders (id, status, user_id, quantity, total_amount, placed_at, modified_at, is_deleted) VALUES ` +
        `('${orders[0]}', 'PLACED', '${user}', 2, 295.12, now(), now(), false), ` +
        `('${orders[1]}', 'SHIPPED', '${user}', 1, 10.00, now(), now(), false), ` +
        `('${orders[2]}', 'CANCELLED', '${user}', 4, 66.64, now(), '${cancelledAt}', true)`,
    )
    const lsnBefore = await psql('SELECT pg_current_wal_lsn()')
    await psql(`UPDATE users SET name = 'Ada Lovelace', modified_at = now() WHERE id = '${user}'`)
    const lsnAfter = await psql('SELECT pg_current_wal_lsn()')
    await waitForReplicated(group)

    // One user's orders: all three, from one partition.
    const mine = await cqlsh(example('user-orders', { 'user-id': user }))
    for (const id of orders) expect(mine).toContain(id)
    expect(mine).toMatch(/\|\s+CANCELLED \|\s+4 \|\s+66\.64 \|/)
    expect(mine).toMatch(/\|\s+PLACED \|\s+2 \|\s+295\.12 \|/)
    expect(mine).toContain('(3 rows)')

    // Recent cancellations: since just before this one, only this one.
    const recent = await cqlsh(example('recent-cancellations', { since: '2099-06-01 12:00:00.000+0000' }))
    expect(recent).toMatch(
      new RegExp(`${orders[2]}\\s+\\|\\s+${user}\\s+\\|\\s+66\\.64\\s+\\|\\s+2099-06-01 12:00:00\\.123000\\+0000`),
    )
    expect(recent).toContain('(1 rows)')

    // WRITETIME: in the streamed band, and the LSN it encodes is the rename's, between the two positions read around it.
    const written = await cqlsh(example('writetime', { 'user-id': user }))
    const m = /Ada Lovelace \|\s+(\d+)/.exec(written)
    expect(m, written).not.toBeNull()
    const writetime = BigInt(m![1])
    expect(writetime >= STREAMED_BAND).toBe(true)
    const lsn = await psql(example('writetime-lsn', { written: writetime.toString() }))
    const inRange = await psql(
      `SELECT '${lsn}'::pg_lsn >= '${lsnBefore}'::pg_lsn AND '${lsn}'::pg_lsn < '${lsnAfter}'::pg_lsn`,
    )
    expect(inRange, `${lsnBefore} <= ${lsn} < ${lsnAfter}`).toBe('t')

    replicate.kill('SIGTERM')
    const done = await replicate.exited
    expect(done.code, done.stderr).toBe(0)
    expect(summaryOf(done).deadLettered).toBe(0)
  })
})

// Issue 15, "It must show" item 4: ALTER TABLE ... ADD COLUMN mid-stream appears in Cassandra with its values, and a
// RENAME of a column the sink requires never writes a null: the affected changes go to the DLQ as SCHEMA_MISMATCH
// while other tables keep flowing.
//
// The first test works on a table of its own (created here, replicated with cdc:add-table and --tables). The second
// alters the shared users table (ADD COLUMN nickname, RENAME name for a few seconds), which other engineers' tests
// use: the schema is restored in onTestFinished. CDC_TEST_SKIP_SCHEMA_USERS=1 skips it.
import { randomUUID } from 'node:crypto'
import { describe, expect, it, onTestFinished } from 'vitest'
import { DLQ_HEADERS, dlqTopicFor } from '../internal/pipeline/index.js'
import { consumeUntil, endOffsets, groupAtEnd, pgOwnerUrl, psql, sleep } from './helpers.js'
import {
  CDC_TOPICS,
  KEYSPACE,
  cassandraClient,
  replicateArgs,
  resnapshot,
  runOk,
  start,
  summaryOf,
  type Running,
} from './cdc-helpers.js'
import { addTableOk, cleanUpAfter } from './own-tables.js'

async function until<T>(what: string, replicate: Running, probe: () => Promise<T | undefined>, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`${what}: ${replicate.stderr().slice(-3000)}`)
    await sleep(500)
  }
}

const cassandraColumns = async (table: string): Promise<string[]> =>
  (
    await cassandraClient().execute(
      'SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
      [KEYSPACE, table],
    )
  ).rows.map((r) => r.column_name as string)

type Letter = Awaited<ReturnType<typeof consumeUntil>>[number]
const header = (l: Letter, name: string) => l.message.headers?.[name]?.toString()

describe('schema changes replicated into Cassandra', () => {
  it('a table of its own: ADD COLUMN is added and written; RENAME of a column goes to the DLQ, never a null', async () => {
    const tag = randomUUID().replaceAll('-', '').slice(0, 8)
    const table = `sc_${tag}`
    const topic = `cdc.public.${table}`
    cleanUpAfter(table)
    await psql(`CREATE TABLE public.${table} (id int PRIMARY KEY, v text NOT NULL)`, pgOwnerUrl)
    await psql(`ALTER TABLE public.${table} REPLICA IDENTITY FULL`, pgOwnerUrl)
    await addTableOk(`public.${table}`)
    // users and orders from their end: their history is not this test's (and once held a users column since
    // dropped). resetOffsets(earliest: false) commits -1, which replicate's fromBeginning turned into the beginning.
    const group = await groupAtEnd(`cdc-test-schema-${tag}`, ['cdc.public.users', 'cdc.public.orders'])
    const replicate = start(
      'replicate',
      replicateArgs(group, ['--topics', 'cdc.public.users,cdc.public.orders', '--tables', `public.${table}`]),
    )
    const rows = async () =>
      new Map(
        (await cassandraClient().execute(`SELECT * FROM ${KEYSPACE}."${table}"`)).rows.map((r) => [
          r.id as number,
          r as Record<string, unknown>,
        ]),
      )

    await psql(`INSERT INTO public.${table} SELECT g, 'v' || g FROM generate_series(1, 20) g`, pgOwnerUrl)
    await until('the first rows did not reach Cassandra', replicate, async () =>
      (await rows()).size >= 20 ? true : undefined,
    )

    // ADD COLUMN mid-stream: the column appears in Cassandra and takes the values, a NULL one included.
    await psql(`ALTER TABLE public.${table} ADD COLUMN nickname text, ADD COLUMN score int`, pgOwnerUrl)
    await psql(
      `INSERT INTO public.${table} SELECT g, 'v' || g, 'nick ' || g, g * 10 FROM generate_series(21, 30) g; ` +
        `UPDATE public.${table} SET nickname = 'late', score = NULL WHERE id = 1`,
      pgOwnerUrl,
    )
    await until('the added columns were not written', replicate, async () => {
      const r = await rows()
      return r.get(30)?.nickname === 'nick 30' && r.get(1)?.nickname === 'late' ? r : undefined
    })
    expect(await cassandraColumns(table)).toEqual(expect.arrayContaining(['id', 'v', 'nickname', 'score']))
    const after = await rows()
    expect(after.get(21)).toMatchObject({ v: 'v21', nickname: 'nick 21', score: 210 })
    expect(after.get(1)).toMatchObject({ v: 'v1', nickname: 'late', score: null })
    expect(after.get(2)).toMatchObject({ v: 'v2', nickname: null })

    // RENAME of v, which the Cassandra table requires: the changes go to the DLQ, v is never written as null, and
    // another table (users) keeps flowing.
    await psql(`ALTER TABLE public.${table} RENAME COLUMN v TO v_renamed`, pgOwnerUrl)
    await psql(
      `UPDATE public.${table} SET nickname = 'renamed' WHERE id IN (2, 3); ` +
        `INSERT INTO public.${table} (id, v_renamed) VALUES (31, 'v31')`,
      pgOwnerUrl,
    )
    const user = randomUUID()
    await psql(`INSERT INTO users (id, name, dob) VALUES ('${user}', 'schema test', '1990-01-01')`)
    onTestFinished(async () => {
      await psql(`DELETE FROM users WHERE id = '${user}'`, pgOwnerUrl)
    })
    const letters = await consumeUntil(dlqTopicFor(topic), (rs) => rs.length >= 3, { timeoutMs: 180_000 }).catch(
      (err: Error) => {
        throw new Error(`${err.message}: ${replicate.stderr().slice(-3000)}`)
      },
    )
    expect(letters).toHaveLength(3)
    for (const l of letters) {
      expect(header(l, DLQ_HEADERS.errorCode)).toBe('SCHEMA_MISMATCH')
      expect(header(l, DLQ_HEADERS.errorMessage)).toMatch(
        new RegExp(
          `^table public\\.${table}: column v absent from the change's after-image .*${KEYSPACE}\\.${table} requires it: ` +
            `never written as null.*npm run resnapshot -- --table public\\.${table}`,
        ),
      )
    }
    await until('the user inserted after the rename did not reach Cassandra', replicate, async () => {
      const r = await cassandraClient().execute(`SELECT name FROM ${KEYSPACE}.users WHERE id = ?`, [user], {
        prepare: true,
      })
      return r.first()?.name === 'schema test' ? true : undefined
    })
    const renamed = await rows()
    expect(renamed.get(2)).toMatchObject({ v: 'v2', nickname: null })
    expect(renamed.get(3)).toMatchObject({ v: 'v3', nickname: null })
    expect(renamed.has(31)).toBe(false)
    expect([...renamed.values()].filter((r) => r.v === null)).toEqual([])

    // The recovery the letters name: the column restored, then a re-snapshot of the rows the window changed (the
    // letters themselves lack v and cannot be applied). The snapshot rows carry v again: the table's stop ends and
    // Cassandra gets the window's changes (2 and 3 renamed, 31 inserted).
    await psql(`ALTER TABLE public.${table} RENAME COLUMN v_renamed TO v`, pgOwnerUrl)
    const out = await resnapshot(['--table', `public.${table}`, '--where', 'id IN (2, 3, 31)'])
    expect(out).toMatch(new RegExp(`public\\.${table}: 3 rows read, SUCCEEDED`))
    const repaired = await until('the re-snapshot did not repair the window', replicate, async () => {
      const r = await rows()
      return r.get(31)?.v === 'v31' && r.get(2)?.nickname === 'renamed' && r.get(3)?.nickname === 'renamed'
        ? r
        : undefined
    })
    expect(repaired.get(2)).toMatchObject({ v: 'v2', nickname: 'renamed' })
    expect(repaired.get(31)).toMatchObject({ v: 'v31', nickname: null })

    replicate.kill('SIGTERM')
    const stopped = await replicate.exited
    expect(stopped.code, stopped.stderr.slice(-2000)).toBe(0)
    // Counted on the test's table alone: users and orders carry other engineers' changes.
    expect(summaryOf(stopped).byTopic[topic]?.deadLettered).toBe(3)
  }, 600_000)

  it.skipIf(process.env.CDC_TEST_SKIP_SCHEMA_USERS === '1')(
    'users: ADD COLUMN nickname appears in Cassandra; RENAME name never writes a null name, orders keep flowing',
    async () => {
      const group = await groupAtEnd('cdc-test-schema-users', ['cdc.public.users', 'cdc.public.orders'])
      let renamed = false
      onTestFinished(async () => {
        if (renamed) await psql('ALTER TABLE users RENAME COLUMN full_name TO name', pgOwnerUrl)
        await psql('ALTER TABLE users DROP COLUMN IF EXISTS nickname', pgOwnerUrl)
        const cols = await cassandraColumns('users')
        if (cols.includes('nickname')) await cassandraClient().execute(`ALTER TABLE ${KEYSPACE}.users DROP nickname`)
      })
      const replicate = start('replicate', replicateArgs(group, ['--log-level', 'info']))
      const ids = Array.from({ length: 5 }, () => randomUUID())
      onTestFinished(async () => {
        await psql(`DELETE FROM orders WHERE user_id IN (${ids.map((id) => `'${id}'`).join(', ')})`, pgOwnerUrl)
        await psql(`DELETE FROM users WHERE id IN (${ids.map((id) => `'${id}'`).join(', ')})`, pgOwnerUrl)
      })
      const users = async () =>
        new Map(
          (
            await cassandraClient().execute(`SELECT id, name, nickname FROM ${KEYSPACE}.users WHERE id IN ?`, [ids], {
              prepare: true,
            })
          ).rows.map((r) => [String(r.id), r as Record<string, unknown>]),
        )

      // Users written before the ADD COLUMN (the sink must be streaming users first).
      await psql(
        `INSERT INTO users (id, name, dob) VALUES ${ids.map((id, i) => `('${id}', 'before ${i}', '1990-01-01')`).join(', ')}`,
      )
      await until('the users did not reach Cassandra', replicate, async () => {
        const r = await cassandraClient()
          .execute(`SELECT id FROM ${KEYSPACE}.users WHERE id IN ?`, [ids], { prepare: true })
          .then((x) => x.rows.length)
        return r === ids.length ? true : undefined
      })

      await psql('ALTER TABLE users ADD COLUMN nickname text', pgOwnerUrl)
      await psql(
        ids
          .slice(0, 3)
          .map((id, i) => `UPDATE users SET nickname = 'nick ${i}' WHERE id = '${id}';`)
          .join(' '),
      )
      const added = await until('the nicknames did not reach Cassandra', replicate, async () => {
        const u = await users().catch(() => undefined)
        return u !== undefined && ids.slice(0, 3).every((id, i) => u.get(id)?.nickname === `nick ${i}`) ? u : undefined
      })
      expect(await cassandraColumns('users')).toContain('nickname')
      expect(added.get(ids[3])).toMatchObject({ name: 'before 3', nickname: null })

      // RENAME name for as short as possible: one update of two of the test's users inside it, then back.
      const usersDlq = dlqTopicFor('cdc.public.users')
      const from = await endOffsets(usersDlq).catch(() => undefined)
      renamed = true
      await psql(
        'ALTER TABLE users RENAME COLUMN name TO full_name; ' +
          `UPDATE users SET full_name = 'renamed', nickname = 'r' WHERE id IN ('${ids[3]}', '${ids[4]}'); ` +
          'ALTER TABLE users RENAME COLUMN full_name TO name',
        pgOwnerUrl,
      )
      renamed = false
      // Orders keep flowing: one placed for a test user after the rename.
      const order = randomUUID()
      await psql(
        `INSERT INTO orders (id, user_id, status, quantity, total_amount) VALUES ('${order}', '${ids[0]}', 'PLACED', 1, 2.50)`,
      )
      const mine = (l: Letter) => ids.slice(3).some((id) => header(l, DLQ_HEADERS.originalKey)?.includes(id) === true)
      const letters = (
        await consumeUntil(usersDlq, (rs) => rs.filter(mine).length >= 2, {
          ...(from === undefined ? {} : { from }),
          timeoutMs: 240_000,
        })
      ).filter(mine)
      expect(letters).toHaveLength(2)
      for (const l of letters) {
        expect(header(l, DLQ_HEADERS.errorCode)).toBe('SCHEMA_MISMATCH')
        expect(header(l, DLQ_HEADERS.errorMessage)).toMatch(
          /^table public\.users: column name absent from the change's after-image .*requires it: never written as null/,
        )
      }
      await until('the order placed after the rename did not reach Cassandra', replicate, async () => {
        const r = await cassandraClient().execute(`SELECT status FROM ${KEYSPACE}.orders WHERE id = ?`, [order], {
          prepare: true,
        })
        return r.first()?.status === 'PLACED' ? true : undefined
      })
      // The column back: the table flows again, without a restart.
      await psql(`UPDATE users SET name = 'after' WHERE id = '${ids[0]}'`)
      await until('the user updated after the rename back did not reach Cassandra', replicate, async () => {
        const u = await users()
        return u.get(ids[0])?.name === 'after' ? true : undefined
      })
      const end = await users()
      for (const id of ids) expect(end.get(id)?.name, id).not.toBeNull()
      expect(end.get(ids[3])).toMatchObject({ name: 'before 3', nickname: null })
      expect(end.get(ids[4])).toMatchObject({ name: 'before 4', nickname: null })

      replicate.kill('SIGTERM')
      const stopped = await replicate.exited
      expect(stopped.code, stopped.stderr.slice(-2000)).toBe(0)
      expect(summaryOf(stopped).byTopic['cdc.public.users']?.deadLettersByCode).toMatchObject({ SCHEMA_MISMATCH: 2 })

      // The two changes of the rename stay in cdc.public.users for good, and the shared baseline group (which every
      // CDC test and the integration setup expect to dead-letter nothing) would meet them in its next run: it is
      // brought past them now, while they are the only mismatches, and the nickname column still exists.
      if (process.env.CDC_TEST_FULL_REPLAY !== '1') {
        const baseline = process.env.CDC_TEST_BASELINE_GROUP ?? 'cdc-test-baseline'
        const res = await runOk(
          'replicate',
          replicateArgs(baseline, ['--topics', CDC_TOPICS.join(','), '--idle-timeout', '4']),
          600_000,
        )
        const byCode = summaryOf(res).byTopic['cdc.public.users']?.deadLettersByCode ?? {}
        expect(Object.keys(byCode)).toEqual(['SCHEMA_MISMATCH'])
        expect(summaryOf(res).deadLettered).toBe(byCode.SCHEMA_MISMATCH)
      }
    },
    600_000,
  )
})

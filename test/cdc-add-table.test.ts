// Issue 13, "It must show" item 2: tables created in psql, with no entity definition, are replicated after
// `node cmd/cdc-add-table` (npm run cdc:add-table): one with a column of every mapped type (docs/type-mapping.md),
// one with a composite primary key, and one with an unmappable column (point). Rows with edge values are inserted,
// updated (a primary key change too) and deleted; node cmd/replicate --tables replicates them; Cassandra is compared
// with PostgreSQL column by column, and every change of the unmappable table is in its DLQ, naming the column and
// type. The test's tables, topics and connector entries are removed afterwards (the stack is shared).
import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { DLQ_HEADERS, dlqTopicFor } from '../internal/pipeline/index.js'
import { consumeUntil, groupAtEnd, pgOwnerUrl, psql, sleep, testPool } from './helpers.js'
import { KEYSPACE, cassandraClient, replicateArgs, start, summaryOf } from './cdc-helpers.js'
import { committedOffsets, runCommand, topicEndOffsets } from './pipeline-helpers.js'
import { addTable, cleanUpAfter, connectorConfig } from './own-tables.js'

// How each column is compared: a PostgreSQL expression giving text, and the same text from the Cassandra value.
type Kind = 'text' | 'int' | 'float' | 'bool' | 'numeric' | 'date' | 'ts' | 'tstz' | 'bytea'

const pgText = (kind: Kind, col: string): string => {
  switch (kind) {
    case 'float':
      return `${col}::float8::text`
    case 'ts':
      return `to_char(date_trunc('milliseconds', ${col}), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    case 'tstz':
      return `to_char(date_trunc('milliseconds', ${col} AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
    case 'bytea':
      return `encode(${col}, 'hex')`
    default:
      return `${col}::text`
  }
}

function cassandraText(kind: Kind, v: unknown): string | null {
  if (v === null || v === undefined) return null
  switch (kind) {
    case 'float':
      return String(v)
    case 'ts':
    case 'tstz':
      return (v as Date).toISOString()
    case 'bytea':
      return (v as Buffer).toString('hex')
    default:
      return String(v)
  }
}

// A float's text from PostgreSQL as JavaScript writes the same double (1e+308, NaN, Infinity).
const normal = (kind: Kind, s: string | null): string | null => (s !== null && kind === 'float' ? String(Number(s)) : s)

/** PostgreSQL and Cassandra, row by row and column by column, as { id: { column: text | text[] | null } }. */
async function compareTables(table: string, key: string[], columns: Record<string, [Kind, 'scalar' | 'array']>) {
  const pool = testPool(pgOwnerUrl)
  const exprs = Object.entries(columns).map(([c, [kind, shape]]) =>
    shape === 'scalar'
      ? `${pgText(kind, c)} AS ${c}`
      : `(SELECT json_agg(${pgText(kind, 'x')} ORDER BY o) FROM unnest(${c}) WITH ORDINALITY AS u(x, o))::text AS ${c}`,
  )
  const pgRows = await pool.query<Record<string, string | null>>(
    `SELECT ${key.map((k) => `${k}::text AS "__${k}"`).join(', ')}, ${exprs.join(', ')} FROM public.${table}`,
  )
  const fromPg: Record<string, Record<string, unknown>> = {}
  for (const r of pgRows.rows) {
    const row: Record<string, unknown> = {}
    for (const [c, [kind, shape]] of Object.entries(columns)) {
      row[c] =
        shape === 'scalar'
          ? normal(kind, r[c])
          : r[c] === null
            ? null
            : (JSON.parse(r[c]) as (string | null)[]).map((x) => normal(kind, x))
    }
    fromPg[key.map((k) => r[`__${k}`]).join('/')] = row
  }
  const cass = await cassandraClient().execute(`SELECT * FROM ${KEYSPACE}."${table}"`)
  const fromCassandra: Record<string, Record<string, unknown>> = {}
  for (const r of cass.rows) {
    const row: Record<string, unknown> = {}
    for (const [c, [kind, shape]] of Object.entries(columns)) {
      const v = r[c] as unknown
      row[c] =
        shape === 'scalar'
          ? cassandraText(kind, v)
          : v === null
            ? null
            : (v as unknown[]).map((x) => cassandraText(kind, x))
    }
    fromCassandra[key.map((k) => String(r[k])).join('/')] = row
  }
  return { fromPg, fromCassandra }
}

describe('cdc-add-table: any table replicated, its Cassandra table derived from the catalog', () => {
  it('replicates every mapped type with edge values, a composite key, and dead-letters an unmappable column', async () => {
    const tag = randomUUID().replaceAll('-', '').slice(0, 8)
    const all = `at_${tag}_all`
    const comp = `at_${tag}_comp`
    const bad = `at_${tag}_bad`
    cleanUpAfter(all, comp, bad)

    const columns: Record<string, [Kind, 'scalar' | 'array', string]> = {
      c_text: ['text', 'scalar', 'text'],
      c_varchar: ['text', 'scalar', 'varchar(40)'],
      c_int2: ['int', 'scalar', 'int2'],
      c_int4: ['int', 'scalar', 'int4'],
      c_int8: ['int', 'scalar', 'int8'],
      c_num: ['numeric', 'scalar', 'numeric(38,10)'],
      c_real: ['float', 'scalar', 'real'],
      c_double: ['float', 'scalar', 'double precision'],
      c_bool: ['bool', 'scalar', 'boolean'],
      c_uuid: ['text', 'scalar', 'uuid'],
      c_date: ['date', 'scalar', 'date'],
      c_ts: ['ts', 'scalar', 'timestamp'],
      c_ts3: ['ts', 'scalar', 'timestamp(3)'],
      c_tstz: ['tstz', 'scalar', 'timestamptz'],
      c_jsonb: ['text', 'scalar', 'jsonb'],
      c_bytea: ['bytea', 'scalar', 'bytea'],
      a_text: ['text', 'array', 'text[]'],
      a_int2: ['int', 'array', 'int2[]'],
      a_int4: ['int', 'array', 'int4[]'],
      a_int8: ['int', 'array', 'int8[]'],
      a_num: ['numeric', 'array', 'numeric(6,2)[]'],
      a_double: ['float', 'array', 'float8[]'],
      a_bool: ['bool', 'array', 'boolean[]'],
      a_uuid: ['text', 'array', 'uuid[]'],
      a_date: ['date', 'array', 'date[]'],
      a_tstz: ['tstz', 'array', 'timestamptz[]'],
      a_jsonb: ['text', 'array', 'jsonb[]'],
    }
    await psql(
      `CREATE TABLE public.${all} (id bigint PRIMARY KEY, ` +
        Object.entries(columns)
          .map(([c, [, , type]]) => `${c} ${type}`)
          .join(', ') +
        `); CREATE TABLE public.${comp} (region int, code text, label text, PRIMARY KEY (region, code));` +
        ` CREATE TABLE public.${bad} (id int PRIMARY KEY, name text, spot point)`,
      pgOwnerUrl,
    )

    // Misuse first: a bad name and a table that does not exist get one line and exit 2.
    const badName = await addTable('public.No-Such')
    expect(badName.code).toBe(2)
    expect(badName.stderr.trim().split('\n')).toHaveLength(1)
    const missing = await addTable(`public.at_${tag}_missing`)
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/does not exist/)
    const unreachable = await addTable(
      `public.${all}`,
      '--connect-url',
      'http://127.0.0.1:1',
      '--connect-timeout',
      '2s',
    )
    expect(unreachable.code).toBe(3)
    expect(unreachable.stderr).toMatch(/Kafka Connect at http:\/\/127\.0\.0\.1:1 unreachable/)

    // replicate --tables naming a table that does not exist: one line, exit 2.
    const noTable = await runCommand('replicate', ['--tables', `public.at_${tag}_missing`, '--idle-timeout', '1'])
    expect(noTable.code).toBe(2)
    expect(noTable.stderr.trim()).toMatch(new RegExp(`^replicate: table public\\.at_${tag}_missing does not exist`))

    for (const t of [all, comp, bad]) {
      const res = await addTable(`public.${t}`)
      expect(res.code, res.stderr).toBe(0)
      // Idempotent: the second run finds everything in place.
      const again = await addTable(`public.${t}`)
      expect(again.code, again.stderr).toBe(0)
      expect(again.stdout).toMatch(/already in table.include.list/)
      expect(again.stdout).toMatch(/already has/)
    }
    // Least privilege: the app role got what the consumer needs on the table, no DELETE, and may not touch cdc_pub.
    const rights = (priv: string) => psql(`SELECT has_table_privilege('cdc_app', 'public.${all}', '${priv}')`)
    expect([await rights('SELECT'), await rights('INSERT'), await rights('UPDATE'), await rights('DELETE')]).toEqual([
      't',
      't',
      't',
      'f',
    ])
    expect(await psql(`SELECT has_table_privilege('cdc_debezium', 'public.${all}', 'SELECT')`)).toBe('t')
    await expect(psql(`ALTER PUBLICATION cdc_pub DROP TABLE public.${all}`)).rejects.toThrow(/must be owner/)
    const include = (await connectorConfig())['table.include.list']
    expect(include.split(',')).toEqual(expect.arrayContaining(['public.users', 'public.orders', `public.${all}`]))
    expect(
      await psql(
        `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'cdc_pub' AND tablename LIKE 'at_${tag}_%'`,
      ),
    ).toBe('3')

    const cols = Object.keys(columns).join(', ')
    const values = (id: number, v: string[]) =>
      `INSERT INTO public.${all} (id, ${cols}) VALUES (${id}, ${v.join(', ')})`
    const maxRow = [
      `'héllo wörld 🌍 — ∑ 日本 ''quoted'' \\ back'`,
      `'${'v'.repeat(40)}'`,
      '32767',
      '-2147483648',
      '9223372036854775807',
      `'9999999999999999999999999999.9999999999'`,
      `'3.4028235e38'`,
      `'Infinity'`,
      'true',
      `'${randomUUID()}'`,
      `'9999-12-31'`,
      `'9999-12-31 23:59:59.999999'`,
      `'2026-12-01 12:34:56.789'`,
      `'0001-01-01 00:00:00.000001+00'`,
      `'{"a":{"b":{"c":[1,{"d":[true,null,"x"]}]}},"e":"","f":1.50}'`,
      `'\\x00ff00ff'`,
      `'{"",x,"日本","with,comma","with \\"quote\\""}'`,
      `'{-32768,32767}'`,
      `'{-2147483648,0,2147483647}'`,
      `'{-9223372036854775808,9223372036854775807}'`,
      `'{9999.99,-0.01,0}'`,
      `'{1.5,-1e308,NaN}'`,
      `'{true,false}'`,
      `'{${randomUUID()}}'`,
      `'{1970-01-01,0001-01-01,9999-12-31}'`,
      `'{"1969-12-31 23:59:59.9995+00","2038-01-19 03:14:08.123456+00"}'`,
      `ARRAY['{"k":[1,2]}'::jsonb, '"s"'::jsonb]`,
    ]
    const minRow = [
      `''`,
      `''`,
      '-32768',
      '2147483647',
      '-9223372036854775808',
      `'-0.0000000001'`,
      `'-1.17549435e-38'`,
      `'-1e308'`,
      'false',
      `'00000000-0000-0000-0000-000000000000'`,
      `'0001-01-01'`,
      `'1969-12-31 23:59:59.9995'`,
      `'1900-02-28 00:00:00.001'`,
      `'2026-12-01 12:34:56.789012+05:30'`,
      `'[]'`,
      `'\\x'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
      `'{}'`,
    ]
    const nulls = Object.keys(columns).map(() => 'NULL')
    await psql(values(1, maxRow), pgOwnerUrl)
    await psql(values(2, minRow), pgOwnerUrl)
    await psql(values(3, nulls), pgOwnerUrl)
    await psql(values(4, maxRow), pgOwnerUrl)
    await psql(values(5, minRow), pgOwnerUrl)
    // Updates, a primary key change (Debezium: a delete, a tombstone, a create), deletes.
    await psql(`UPDATE public.${all} SET c_text = 'updated ✓', c_int8 = -1, a_int4 = '{7}' WHERE id = 1`, pgOwnerUrl)
    await psql(
      `UPDATE public.${all} SET c_num = 0.5, c_double = 'NaN', c_jsonb = '{"n":{"m":{}}}' WHERE id = 5`,
      pgOwnerUrl,
    )
    await psql(`UPDATE public.${all} SET c_bool = NULL, c_bytea = '\\xff00' WHERE id = 5`, pgOwnerUrl)
    await psql(`UPDATE public.${all} SET id = 30 WHERE id = 3`, pgOwnerUrl)
    await psql(`DELETE FROM public.${all} WHERE id = 4`, pgOwnerUrl)
    await psql(`INSERT INTO public.${comp} VALUES (1, 'a', 'x'), (1, 'b', 'y'), (2, 'a', 'z')`, pgOwnerUrl)
    await psql(`UPDATE public.${comp} SET label = 'yy' WHERE region = 1 AND code = 'b'`, pgOwnerUrl)
    await psql(`DELETE FROM public.${comp} WHERE region = 2 AND code = 'a'`, pgOwnerUrl)
    await psql(`INSERT INTO public.${bad} VALUES (1, 'one', '(1,2)'), (2, 'two', NULL)`, pgOwnerUrl)
    await psql(`UPDATE public.${bad} SET name = 'uno' WHERE id = 1`, pgOwnerUrl)
    await psql(`DELETE FROM public.${bad} WHERE id = 2`, pgOwnerUrl)
    // Last: one more change per table, whose arrival says Debezium has emitted the table's earlier ones.
    await psql(`DELETE FROM public.${all} WHERE id = 30`, pgOwnerUrl)
    await psql(`INSERT INTO public.${comp} VALUES (9, 'sentinel', NULL)`, pgOwnerUrl)
    await psql(`INSERT INTO public.${bad} VALUES (9, 'sentinel', NULL)`, pgOwnerUrl)
    await psql(`INSERT INTO public.${all} (id) VALUES (9)`, pgOwnerUrl)
    const arrived = (marker: RegExp) => (rs: { message: { value: Buffer | null } }[]) =>
      rs.some((r) => r.message.value !== null && marker.test(r.message.value.toString()))
    await consumeUntil(`cdc.public.${all}`, arrived(/"after":\{"id":9,/), { timeoutMs: 120_000 })
    await consumeUntil(`cdc.public.${comp}`, arrived(/"sentinel"/), { timeoutMs: 60_000 })
    await consumeUntil(`cdc.public.${bad}`, arrived(/"sentinel"/), { timeoutMs: 60_000 })
    await sleep(1_000)

    // node cmd/replicate: the entity topics from their end (this test is about its own tables), --tables for ours.
    // (resetOffsets(earliest: false) commits -1, which replicate's fromBeginning read as the beginning.)
    const group = await groupAtEnd(`cdc-test-add-table-${tag}`, ['cdc.public.users', 'cdc.public.orders'])
    // The change topics of other tests keep growing: replicate runs until it has committed past the end of ours,
    // then stops cleanly on SIGTERM.
    const ours = [all, comp, bad].map((t) => `cdc.public.${t}`)
    const replicate = start(
      'replicate',
      replicateArgs(group, [
        '--topics',
        'cdc.public.users,cdc.public.orders',
        '--tables',
        ours.map((t) => t.slice(4)).join(','),
      ]),
    )
    const ends = await topicEndOffsets(ours)
    const deadline = Date.now() + 180_000
    for (;;) {
      const committed = await committedOffsets(group, ours)
      // A partition that never had a message has nothing to commit.
      if ([...ends].every(([k, end]) => end === '0' || BigInt(committed.get(k) ?? '-1') >= BigInt(end))) break
      if (Date.now() > deadline) throw new Error(`replicate did not catch up: ${replicate.stderr().slice(-2000)}`)
      await sleep(1_000)
    }
    replicate.kill('SIGTERM')
    const res = await replicate.exited
    expect(res.code, res.stderr.slice(-2000)).toBe(0)
    const summary = summaryOf(res)
    // The unmappable table's changes: 3 inserts, 1 update, 1 delete (its tombstone carries nothing to apply).
    expect(summary.deadLettered).toBe(5)

    const compared = await compareTables(
      all,
      ['id'],
      Object.fromEntries(Object.entries(columns).map(([c, [kind, shape]]) => [c, [kind, shape]])),
    )
    expect(Object.keys(compared.fromCassandra).sort()).toEqual(['1', '2', '5', '9'])
    // Cassandra keeps no empty collection apart from null (docs/type-mapping.md): an empty array reads back as null.
    for (const row of Object.values(compared.fromPg)) {
      for (const [c, v] of Object.entries(row)) if (Array.isArray(v) && v.length === 0) row[c] = null
    }
    for (const id of Object.keys(compared.fromPg)) {
      for (const c of Object.keys(columns)) {
        expect({ id, column: c, value: compared.fromCassandra[id]?.[c] }).toEqual({
          id,
          column: c,
          value: compared.fromPg[id][c],
        })
      }
    }
    const comps = await compareTables(comp, ['region', 'code'], { label: ['text', 'scalar'] })
    expect(comps.fromCassandra).toEqual(comps.fromPg)
    expect(Object.keys(comps.fromCassandra).sort()).toEqual(['1/a', '1/b', '9/sentinel'])

    // The unmappable table: no Cassandra table, every change in its DLQ with the column and type named.
    const tablesInKeyspace = await cassandraClient().execute(
      'SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?',
      [KEYSPACE],
    )
    expect(tablesInKeyspace.rows.map((r) => r.table_name as string)).not.toContain(bad)
    const letters = await consumeUntil(dlqTopicFor(`cdc.public.${bad}`), (rs) => rs.length >= 5, { timeoutMs: 60_000 })
    for (const l of letters) {
      expect(l.message.headers?.[DLQ_HEADERS.errorCode]?.toString()).toBe('VALIDATION_ERROR')
      expect(l.message.headers?.[DLQ_HEADERS.errorMessage]?.toString()).toMatch(
        new RegExp(`table public\\.${bad}: column spot has type point, which has no Cassandra mapping`),
      )
    }
  }, 600_000)
})

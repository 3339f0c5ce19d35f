// Least privilege on the local stack's cdc_db (stack/postgres/roles.sql, publication.sql): cdc_owner owns the database,
// the tables and the trigger function; cdc_app, the role the running consumer uses, may SELECT, INSERT and UPDATE and
// nothing that changes the schema; cdc_debezium may replicate logically and SELECT, and pg_hba.conf gives no role a
// physical replication connection (a pg_basebackup of the whole cluster).
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import pg from 'pg'
import { describe, expect, it, onTestFinished } from 'vitest'
import { pgOwnerUrl, pgSuperUrl, pgUrl, psql } from './helpers.js'

const run = promisify(execFile)

/**
 * Runs `sql` as the runtime role in a transaction that is always rolled back (so that on a cluster without the fix
 * the test cannot drop or empty the shared tables) and returns the SQLSTATE it failed with, or 'ok'. A short
 * lock_timeout: on such a cluster the statement would queue for its lock in front of everyone else's writes. (With
 * the fix the permission check comes before the lock.)
 */
/**
 * Runs `sql` as a role in a transaction rolled back afterwards: 'ok', or the error's SQLSTATE. readWrite: the session
 * asks for a read-write transaction first (what it may do then is down to its rights alone).
 */
async function attemptAs(url: string, sql: string, readWrite = false): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query('BEGIN')
    if (readWrite) await client.query('SET TRANSACTION READ WRITE')
    await client.query("SET LOCAL lock_timeout = '2s'")
    await client.query(sql)
    return 'ok'
  } catch (err) {
    return (err as { code?: string }).code ?? String(err)
  } finally {
    await client.query('ROLLBACK').catch(() => undefined)
    await client.end()
  }
}

const asRuntimeRole = (sql: string): Promise<string> => attemptAs(pgUrl, sql)

const debeziumPassword = process.env.PG_DEBEZIUM_PASSWORD ?? 'cdc_debezium'
const pgPort = process.env.PG_PORT ?? '5432'

/** psql as cdc_debezium on a replication connection (`replication`: 'true' is physical, 'database' logical). */
async function replicationConnection(replication: 'true' | 'database'): Promise<string> {
  const conninfo = `host=127.0.0.1 port=${pgPort} user=cdc_debezium dbname=cdc_db replication=${replication}`
  try {
    const { stdout } = await run('psql', ['-X', '-tA', conninfo, '-c', 'IDENTIFY_SYSTEM'], {
      env: { ...process.env, PGPASSWORD: debeziumPassword },
    })
    return `ok ${stdout.trim()}`
  } catch (err) {
    return String((err as { stderr?: string }).stderr ?? err)
  }
}

describe('PostgreSQL roles on the local stack', () => {
  it('the runtime role cannot drop, truncate or alter the tables, nor switch off the soft-delete trigger', async () => {
    const denied = {
      'DROP TABLE users': await asRuntimeRole('DROP TABLE users CASCADE'),
      'DROP TABLE orders': await asRuntimeRole('DROP TABLE orders'),
      'TRUNCATE orders': await asRuntimeRole('TRUNCATE orders'),
      'TRUNCATE users': await asRuntimeRole('TRUNCATE users CASCADE'),
      'REPLICA IDENTITY DEFAULT': await asRuntimeRole('ALTER TABLE users REPLICA IDENTITY DEFAULT'),
      'ALTER TABLE ADD COLUMN': await asRuntimeRole('ALTER TABLE orders ADD COLUMN probe int'),
      'DISABLE TRIGGER': await asRuntimeRole('ALTER TABLE users DISABLE TRIGGER users_soft_delete_cascade'),
      'DISABLE TRIGGER ALL': await asRuntimeRole('ALTER TABLE users DISABLE TRIGGER ALL'),
      'DROP TRIGGER': await asRuntimeRole('DROP TRIGGER users_soft_delete_cascade ON users'),
      'replace the trigger function': await asRuntimeRole(
        "CREATE OR REPLACE FUNCTION mark_user_orders_deleted() RETURNS trigger AS 'BEGIN RETURN NEW; END' LANGUAGE plpgsql",
      ),
      // session_replication_role = replica would skip every trigger for the session.
      session_replication_role: await asRuntimeRole('SET session_replication_role = replica'),
      'CREATE TABLE': await asRuntimeRole('CREATE TABLE public.probe (x int)'),
    }
    expect(denied).toEqual(Object.fromEntries(Object.keys(denied).map((k) => [k, '42501'])))
  })

  it('cdc_owner owns cdc_db, the tables and the trigger function; cdc_app and cdc_debezium own nothing', async () => {
    const owners = await psql(
      `SELECT string_agg(what || '=' || owner, ' ' ORDER BY what) FROM (
         SELECT 'db' AS what, datdba::regrole::text AS owner FROM pg_database WHERE datname = current_database()
         UNION ALL SELECT relname, relowner::regrole::text FROM pg_class WHERE oid IN ('users'::regclass, 'orders'::regclass)
         UNION ALL SELECT proname, proowner::regrole::text FROM pg_proc WHERE oid = 'mark_user_orders_deleted'::regproc
       ) o`,
    )
    expect(owners).toBe('db=cdc_owner mark_user_orders_deleted=cdc_owner orders=cdc_owner users=cdc_owner')
    const roles = await psql(
      `SELECT string_agg(format('%s:super=%s,replication=%s,createdb=%s,createrole=%s', rolname, rolsuper, rolreplication, rolcreatedb, rolcreaterole), ' ' ORDER BY rolname)
         FROM pg_roles WHERE rolname IN ('cdc_owner', 'cdc_app', 'cdc_debezium')`,
      pgSuperUrl,
    )
    expect(roles.split(' ')).toEqual([
      'cdc_app:super=f,replication=f,createdb=f,createrole=f',
      'cdc_debezium:super=f,replication=t,createdb=f,createrole=f',
      'cdc_owner:super=f,replication=f,createdb=f,createrole=f',
    ])
    const memberships = await psql(
      `SELECT count(*) FROM pg_auth_members WHERE roleid = 'cdc_owner'::regrole
          AND member IN ('cdc_app'::regrole, 'cdc_debezium'::regrole)`,
      pgSuperUrl,
    )
    expect(memberships).toBe('0')
    const rights = await psql(
      `SELECT string_agg(r || '.' || t || '.' || p || '=' || has_table_privilege(r, t, p)::text, ' ' ORDER BY r, t, p)
         FROM unnest('{cdc_app,cdc_debezium}'::text[]) r, unnest('{orders,users}'::text[]) t,
              unnest('{INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE}'::text[]) p`,
      pgSuperUrl,
    )
    // DELETE is not granted by publication.sql either; it is left out here so that a DBA's temporary grant on a shared
    // stack does not fail the rest of this check.
    const granted: Record<string, string[]> = { cdc_app: ['SELECT', 'INSERT', 'UPDATE'], cdc_debezium: ['SELECT'] }
    const expected = ['cdc_app', 'cdc_debezium'].flatMap((r) =>
      ['orders', 'users'].flatMap((t) =>
        ['INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'].map(
          (p) => `${r}.${t}.${p}=${granted[r]!.includes(p)}`,
        ),
      ),
    )
    expect(rights.split(' ')).toEqual(expected)
  })

  it("Debezium's signal table: cdc_debezium SELECT and INSERT, cdc_app INSERT only, cdc_reader nothing; in cdc_pub", async () => {
    const rights = await psql(
      `SELECT string_agg(r || '.' || p || '=' || has_table_privilege(r, 'public.debezium_signal', p)::text, ' ' ORDER BY r, p)
         FROM unnest('{cdc_app,cdc_debezium,cdc_reader}'::text[]) r,
              unnest('{DELETE,INSERT,REFERENCES,SELECT,TRIGGER,TRUNCATE,UPDATE}'::text[]) p`,
      pgSuperUrl,
    )
    const granted: Record<string, string[]> = {
      cdc_app: ['INSERT'],
      cdc_debezium: ['INSERT', 'SELECT'],
      cdc_reader: [],
    }
    const expected = ['cdc_app', 'cdc_debezium', 'cdc_reader'].flatMap((r) =>
      ['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'].map(
        (p) => `${r}.${p}=${granted[r]!.includes(p)}`,
      ),
    )
    expect(rights.split(' ')).toEqual(expected)
    expect(
      await psql(
        "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'cdc_pub' AND schemaname = 'public' AND tablename = 'debezium_signal'",
        pgSuperUrl,
      ),
    ).toBe('1')
  })

  it('the runtime role still upserts, share-locks and soft-deletes, and the trigger cascades for it', async () => {
    const user = randomUUID()
    const order = randomUUID()
    onTestFinished(async () => {
      await psql(`DELETE FROM orders WHERE user_id = '${user}'; DELETE FROM users WHERE id = '${user}'`, pgOwnerUrl)
    })
    await psql(
      `INSERT INTO users (id, name, dob, modified_at, version) VALUES ('${user}', 'roles', '2000-01-01', now(), 1)
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name WHERE users.version < EXCLUDED.version;
       INSERT INTO orders (id, status, user_id, quantity, total_amount, modified_at, version)
         VALUES ('${order}', 'PLACED', '${user}', 1, 1.00, now() - interval '1 day', 1);
       BEGIN; SELECT 1 FROM users WHERE id = '${user}' FOR SHARE; COMMIT;
       UPDATE users SET is_deleted = true, modified_at = now(), version = 2 WHERE id = '${user}';`,
    )
    expect(await psql(`SELECT is_deleted FROM orders WHERE id = '${order}'`)).toBe('t')
  })

  it("node cmd/api's role cdc_reader may SELECT the tables and nothing else, read-only even with a right granted", async () => {
    const readerUrl = `postgres://cdc_reader:${process.env.PG_READER_PASSWORD ?? 'cdc_reader'}@127.0.0.1:${pgPort}/cdc_db`
    const attempt = (sql: string, readWrite = false): Promise<string> => attemptAs(readerUrl, sql, readWrite)
    const id = randomUUID()
    const writes = {
      INSERT: `INSERT INTO users (id, name, dob) VALUES ('${id}', 'reader', '2000-01-01')`,
      UPDATE: `UPDATE users SET name = 'reader' WHERE id = '${id}'`,
      DELETE: `DELETE FROM orders WHERE id = '${id}'`,
      TRUNCATE: 'TRUNCATE orders',
      'CREATE TABLE': 'CREATE TABLE public.reader_probe (x int)',
    }
    const reads = ['users', 'orders', 'products'].map((t) => attempt(`SELECT count(*) FROM ${t}`))
    expect(await Promise.all(reads)).toEqual(['ok', 'ok', 'ok'])
    const results = async (readWrite: boolean) =>
      Object.fromEntries(
        await Promise.all(Object.entries(writes).map(async ([k, sql]) => [k, await attempt(sql, readWrite)])),
      ) as Record<string, string>
    // By default every transaction is read-only (25006); asked for read-write, the rights refuse (42501).
    expect(await results(false)).toEqual(Object.fromEntries(Object.keys(writes).map((k) => [k, '25006'])))
    expect(await results(true)).toEqual(Object.fromEntries(Object.keys(writes).map((k) => [k, '42501'])))
    const roles = await psql(
      `SELECT rolsuper::text || rolreplication::text || rolcreatedb::text || rolcreaterole::text || ' ' ||
              (SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                WHERE s.setrole = r.oid AND d.datname = 'cdc_db')
         FROM pg_roles r WHERE rolname = 'cdc_reader'`,
      pgSuperUrl,
    )
    expect(roles).toBe('falsefalsefalsefalse default_transaction_read_only=on')
  })

  it('pg_hba.conf has no physical replication line: cdc_debezium replicates logically only', async () => {
    const lines = await psql(
      `SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) OR error IS NOT NULL`,
      pgSuperUrl,
    )
    expect(lines).toBe('0')
    expect(await replicationConnection('true')).toMatch(/no pg_hba\.conf entry for replication connection/)
    // What Debezium uses (replication=database) still connects.
    expect(await replicationConnection('database')).toMatch(/^ok .*\|cdc_db$/)
  })
})

// The benchmark's uncaptured database: the same schema and roles as cdc_db (table-creation.sql applied by the owner
// role, the application role with SELECT, INSERT and UPDATE), in the same PostgreSQL cluster, but outside Debezium's reach (no publication, no replication slot is on it), so that
// consume -> PostgreSQL can be measured with and without the CDC leg.
import { readFileSync } from 'node:fs'
import pg from 'pg'
import { stackAddresses } from '../internal/config/index.js'
import { ENTITY_TABLES } from '../internal/model/index.js'

/** The uncaptured database's name. */
export const PLAIN_DB = 'cdc_bench_plain'

/** The application role's URL of `database`: PG_URL (the stack's cdc_db by default) with the database replaced. */
export function appUrl(database: string, env: NodeJS.ProcessEnv = process.env): string {
  const u = new URL(env.PG_URL || stackAddresses(env).pgUrl)
  u.pathname = `/${database}`
  return u.toString()
}

/**
 * The local stack's superuser connection, as stack/lib/postgres.sh's pg_super reaches it: user postgres over TCP
 * with PG_SUPERUSER_PASSWORD (the stack's throwaway default unless .env sets one), on PG_URL's host and port.
 */
function superUrl(env: NodeJS.ProcessEnv = process.env): string {
  const u = new URL(env.PG_URL || stackAddresses(env).pgUrl)
  u.username = 'postgres'
  u.password = env.PG_SUPERUSER_PASSWORD || 'postgres'
  if (env.PG_PORT) u.port = env.PG_PORT
  u.pathname = '/postgres'
  return u.toString()
}

/** The owner role's URL of `database` (cdc_owner with PG_OWNER_PASSWORD, as stack/postgres/roles.sql makes it). */
function ownerUrl(database: string, env: NodeJS.ProcessEnv = process.env): string {
  const u = new URL(appUrl(database, env))
  u.username = 'cdc_owner'
  u.password = env.PG_OWNER_PASSWORD || 'cdc_owner'
  return u.toString()
}

async function withClient<T>(url: string, f: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'cdc-bench-setup' })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await f(client)
  } finally {
    await client.end()
  }
}

/**
 * Creates the uncaptured database if it is not there (idempotent, like stack/postgres/roles.sql does cdc_db: a
 * superuser creates it owned by cdc_owner; one an older benchmark made cdc_app's is made again), applies
 * table-creation.sql to it as cdc_owner and grants cdc_app what stack/postgres/publication.sql grants it in cdc_db,
 * so the consumer runs with the same rights in both. Throws when a replication slot or a publication covers it: then it would not be
 * uncaptured. Returns the application role's URL of it.
 */
export async function ensurePlainDatabase(repoRoot: string): Promise<string> {
  const appRole = pg.escapeIdentifier(new URL(appUrl(PLAIN_DB)).username)
  const db = pg.escapeIdentifier(PLAIN_DB)
  await withClient(superUrl(), async (c) => {
    const exists = await c.query<{ owner: string }>(
      'SELECT datdba::regrole::text AS owner FROM pg_database WHERE datname = $1',
      [PLAIN_DB],
    )
    if (exists.rows[0] !== undefined && exists.rows[0].owner !== 'cdc_owner') {
      await c.query(`DROP DATABASE ${db} WITH (FORCE)`)
    }
    if (exists.rows[0]?.owner !== 'cdc_owner') {
      try {
        await c.query(`CREATE DATABASE ${db} OWNER cdc_owner`)
      } catch (err) {
        // Another run created it in between.
        if ((err as { code?: string }).code !== '42P04') throw err
      }
    }
    const slots = await c.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots WHERE database = $1',
      [PLAIN_DB],
    )
    if (slots.rows.length > 0) {
      throw new Error(`${PLAIN_DB} is not uncaptured: replication slot(s) ${slots.rows.map((r) => r.slot_name)} on it`)
    }
  })
  await withClient(ownerUrl(PLAIN_DB), async (c) => {
    await c.query(readFileSync(`${repoRoot}table-creation.sql`, 'utf8'))
    await c.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
    await c.query(`GRANT CONNECT ON DATABASE ${db} TO ${appRole}`)
    await c.query(`GRANT USAGE ON SCHEMA public TO ${appRole}`)
    const tables = ENTITY_TABLES.map((t) => `public.${t}`).join(', ')
    await c.query(`GRANT SELECT, INSERT, UPDATE ON ${tables} TO ${appRole}`)
    const pubs = await c.query<{ pubname: string }>('SELECT pubname FROM pg_publication')
    if (pubs.rows.length > 0) {
      throw new Error(`${PLAIN_DB} is not uncaptured: publication(s) ${pubs.rows.map((r) => r.pubname)} in it`)
    }
  })
  return appUrl(PLAIN_DB)
}

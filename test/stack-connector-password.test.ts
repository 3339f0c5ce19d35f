// configure-debezium.sh on the real Kafka Connect with a password holding " and \: a throwaway Debezium role and a
// throwaway connector (its own name, slot and topic prefix, no snapshot) beside cdc-postgres, which this test never
// touches. The connector reaching RUNNING means its task logged in to PostgreSQL with the password exactly as set.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import {
  connectApi,
  connectUrl,
  pgSuperUrl,
  psql,
  repoDir,
  sleep,
  testAdmin,
  waitForDebeziumStreaming,
} from './helpers.js'

const run = promisify(execFile)

describe('configure-debezium.sh on the local stack', () => {
  it('registers a connector whose password holds " and \\ and it runs', { timeout: 300_000 }, async () => {
    const suffix = randomUUID().replaceAll('-', '').slice(0, 10)
    const role = `cdc_dbz_${suffix}`
    const password = `pw"\\${suffix}\\"x`
    const name = `test-password-${suffix}`
    const slot = `test_pw_${suffix}`
    const prefix = `pw${suffix}`
    await waitForDebeziumStreaming()

    // Debezium's rights, as publication.sql gives cdc_debezium. SQL quoting: only ' needs doubling, and there is none.
    await psql(
      `CREATE ROLE ${role} REPLICATION LOGIN PASSWORD '${password}';
       GRANT CONNECT ON DATABASE cdc_db TO ${role}; GRANT USAGE ON SCHEMA public TO ${role};
       GRANT SELECT ON public.users, public.orders TO ${role};`,
      pgSuperUrl,
    )
    onTestFinished(async () => {
      await connectApi('DELETE', `/connectors/${name}`)
      for (let i = 0; i < 30; i++) {
        const active = await psql(
          `SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${slot}' AND active`,
          pgSuperUrl,
        )
        if (active === '0') break
        await sleep(1_000)
      }
      await psql(
        `SELECT pg_drop_replication_slot('${slot}') FROM pg_replication_slots WHERE slot_name = '${slot}';
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${role}';
         DROP OWNED BY ${role}; DROP ROLE ${role};`,
        pgSuperUrl,
      )
      const admin = await testAdmin()
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`) || t.endsWith(`.${prefix}`))
      await admin.deleteTopics({ topics }).catch(() => undefined)
      // Registering and deleting a connector restarts every task, cdc-postgres's too: leave it streaming.
      await waitForDebeziumStreaming()
    })

    const { stdout } = await run('bash', [`${repoDir}configure-debezium.sh`], {
      env: {
        ...process.env,
        CONNECT_URL: connectUrl,
        CONNECTOR_NAME: name,
        DEBEZIUM_PG_USER: role,
        DEBEZIUM_PG_PASSWORD: password,
        DEBEZIUM_SLOT_NAME: slot,
        DEBEZIUM_TOPIC_PREFIX: prefix,
        DEBEZIUM_SNAPSHOT_MODE: 'no_data',
        DEBEZIUM_WAIT_S: '180',
      },
      timeout: 240_000,
    })
    expect(stdout).toContain(`connector ${name} and its task are RUNNING`)
    const { json } = await connectApi('GET', `/connectors/${name}/config`)
    const config = json as Record<string, string>
    expect(config['database.password']).toBe(password)
    expect(config['database.user']).toBe(role)
    expect(config['slot.name']).toBe(slot)
    // Its task is streaming from its own slot, logged in as the throwaway role.
    const slotActive = await psql(`SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`, pgSuperUrl)
    expect(slotActive).toBe('t')
    const sessions = await psql(`SELECT count(*) > 0 FROM pg_stat_activity WHERE usename = '${role}'`, pgSuperUrl)
    expect(sessions).toBe('t')
  })
})

// Issue 15, "It must show" item 6: `stack.sh status` shows the replication slot's retained WAL, lag, wal_status and
// active; it exits non-zero when the retained WAL passes SLOT_RETAINED_WAL_MAX_MB (a slot of the test's own,
// inactive, so that it holds every byte of WAL written since it was made) and names the slot and the figure; with
// the default threshold cdc_slot passes. A lost slot (wal_status lost, which cannot be produced on the shared stack
// without losing cdc_slot too) is checked through the verdict function status uses: unhealthy, with the recovery.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { pgSuperUrl, psql, repoDir } from './helpers.js'

const run = promisify(execFile)

async function status(env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run('bash', [`${repoDir}stack/stack.sh`, 'status'], {
      timeout: 300_000,
      env: { ...process.env, ...env },
    })
    return { code: 0, stdout }
  } catch (err) {
    const e = err as { code?: number; stdout?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '' }
  }
}

const slotLine = (out: string): string => out.split('\n').find((l) => l.includes('replication slot')) ?? ''

describe('stack.sh status: the replication slot', () => {
  it('stack:up on a slot holding more WAL than the threshold starts with a warning; status fails', async () => {
    // WAL another database of the cluster writes (a bench's) is retained by cdc_slot until cdc_db changes again: a
    // used stack must still come up (npm test runs stack:up first), and status must still say so.
    const db = `status_test_${randomUUID().replaceAll('-', '').slice(0, 8)}`
    await psql(`CREATE DATABASE ${db}`, pgSuperUrl)
    onTestFinished(async () => {
      await psql(`DROP DATABASE IF EXISTS ${db}`, pgSuperUrl)
    })
    const otherUrl = pgSuperUrl.replace(/\/cdc_db$/, `/${db}`)
    await psql(`CREATE TABLE filler AS SELECT repeat(md5(g::text), 32) AS v FROM generate_series(1, 3000) g`, otherUrl)
    const env = { ...process.env, SLOT_RETAINED_WAL_MAX_MB: '1' }
    const up = await run('bash', [`${repoDir}stack/stack.sh`, 'up'], { timeout: 600_000, env })
    expect(up.stderr).toMatch(/warning:.*replication slot: cdc_slot .*more than SLOT_RETAINED_WAL_MAX_MB=1 MB/)
    const { code, stdout } = await status({ SLOT_RETAINED_WAL_MAX_MB: '1' })
    expect(code).not.toBe(0)
    expect(slotLine(stdout)).toMatch(/^FAIL +replication slot +cdc_slot .*more than SLOT_RETAINED_WAL_MAX_MB=1 MB/)
  })

  it('passes with the default threshold and shows retained WAL, lag, wal_status and active', async () => {
    const { code, stdout } = await status()
    const line = slotLine(stdout)
    expect(line).toMatch(
      /^ok +replication slot +cdc_slot active=(true|false), wal_status=\w+, retained WAL .+, lag .+$/,
    )
    expect(code, stdout).toBe(0)
  })

  it('exits non-zero past SLOT_RETAINED_WAL_MAX_MB, naming the slot and the figure', async () => {
    const slot = `status_test_${randomUUID().replaceAll('-', '').slice(0, 8)}`
    await psql(`SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')`, pgSuperUrl)
    onTestFinished(async () => {
      await psql(`SELECT pg_drop_replication_slot('${slot}')`, pgSuperUrl)
    })
    // WAL written after the slot was made: the inactive slot retains all of it. Rows of a scratch table outside the
    // publication (Debezium decodes them to nothing), not a logical decoding message: Debezium turns a message into a
    // record on cdc.message, and one over Connect's 1 MB max.request.size killed its task.
    const scratch = `${slot}_wal`
    await psql(
      `CREATE TABLE public.${scratch} AS SELECT repeat(md5(g::text), 32) AS v FROM generate_series(1, 3000) g; ` +
        `DROP TABLE public.${scratch}`,
      pgSuperUrl,
    )
    const retained = Number(
      await psql(
        `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = '${slot}'`,
        pgSuperUrl,
      ),
    )
    expect(retained).toBeGreaterThan(2 * 1048576)
    const { code, stdout } = await status({ DEBEZIUM_SLOT_NAME: slot, SLOT_RETAINED_WAL_MAX_MB: '1' })
    expect(code).not.toBe(0)
    const line = slotLine(stdout)
    expect(line).toMatch(
      new RegExp(
        `^FAIL +replication slot +${slot} active=false, wal_status=\\w+, retained WAL \\d+ (bytes|kB|MB)` +
          `.*: more than SLOT_RETAINED_WAL_MAX_MB=1 MB`,
      ),
    )
    const figure = Number(/retained WAL (?:\d+ \w+ \()?(\d+) bytes/.exec(line)![1])
    expect(figure).toBeGreaterThanOrEqual(retained)
    // The same slot under the default threshold (2048 MB) is fine.
    const fine = await status({ DEBEZIUM_SLOT_NAME: slot })
    expect(slotLine(fine.stdout)).toMatch(new RegExp(`^ok +replication slot +${slot} active=false`))
  })

  it('a lost slot is unhealthy and the line names the recovery commands', async () => {
    const script =
      `source "${repoDir}stack/lib/common.sh" >/dev/null 2>&1 || true; source "${repoDir}stack/lib/postgres.sh"; ` +
      'slot_verdict cdc_slot f lost 0 0 2048'
    const res = await run('bash', ['-c', `${script}; echo "rc=$?"`], {
      env: { ...process.env, CONNECT_URL: 'http://127.0.0.1:8083', PG_PORT: '5432', DATA_DIR: '/tmp' },
    })
    expect(res.stdout).toMatch(/rc=1\s*$/)
    expect(res.stdout).toMatch(
      /^cdc_slot active=false, wal_status=lost, retained WAL .*: PostgreSQL removed WAL the slot still needed/,
    )
    expect(res.stdout).toContain('/connectors/cdc-postgres/offsets')
    expect(res.stdout).toContain("pg_drop_replication_slot('cdc_slot')")
    // The fresh slot's initial snapshot repairs nothing (written below every streamed change): the re-snapshot does.
    expect(res.stdout).toContain('npm run resnapshot -- --table users,orders,products')
  })
})

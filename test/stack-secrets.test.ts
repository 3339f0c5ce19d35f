// File modes of the local stack: the superuser's password file initdb reads is 0600 (it was made 0644 so that initdb,
// run as the postgres user when the stack runs as root, could read it: it now belongs to that user instead), and the
// stack's data, log, pid and config folders and PostgreSQL's data directory are 0700. Also: a cluster made by the
// stack has no physical replication line in pg_hba.conf, and an older one loses its lines on the next start.
import { execFile } from 'node:child_process'
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { homedir, tmpdir, userInfo } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it, onTestFinished } from 'vitest'
import { pgSuperUrl, psql, repoDir } from './helpers.js'

const run = promisify(execFile)
const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8)
const REPLICATION_LINE = /^\s*(local|host\w*)\s+replication\s/m

/** Sources stack/lib/common.sh and postgres.sh with a private CDC_STACK_HOME and PG_DATA_DIR, then runs `script`. */
async function withStackLibs(home: string, pgData: string, script: string): Promise<string> {
  const { stdout } = await run(
    'bash',
    [
      '-c',
      `set -euo pipefail
       STACK_DIR=${repoDir}stack REPO_DIR=${repoDir}
       source "$STACK_DIR/lib/common.sh"
       source "$STACK_DIR/lib/postgres.sh"
       ${script}`,
    ],
    { env: { ...process.env, CDC_STACK_HOME: home, PG_DATA_DIR: pgData, PG_PORT: '1' }, timeout: 120_000 },
  )
  return stdout
}

/** A scratch folder the postgres user can reach (the stack runs initdb as that user when it runs as root). */
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cdc-secrets-'))
  chmodSync(dir, 0o711)
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('stack file modes', () => {
  it(
    'a new cluster: initdb reads a 0600 password file, and every folder made is 0700',
    { timeout: 120_000 },
    async () => {
      const dir = scratch()
      const home = path.join(dir, 'home')
      const pgData = path.join(dir, 'pg', 'data')
      // The password file as initdb's caller sees it: its mode, owner and path, recorded when initdb starts.
      const out = await withStackLibs(
        home,
        pgData,
        `eval "orig_$(declare -f pg_as_owner)"
       pg_as_owner() {
         local a
         for a in "$@"; do
           case $a in --pwfile=*) echo "pwfile $(stat -c '%a %U' "\${a#--pwfile=}") \${a#--pwfile=}" >&3 ;; esac
         done
         orig_pg_as_owner "$@"
       }
       pg_init_cluster 3>&1 >/dev/null`,
      )
      const [, pwMode, pwOwner, pwPath] = /^pwfile (\d+) (\S+) (\S+)$/m.exec(out) ?? []
      expect({ pwMode, pwOwner }).toEqual({
        pwMode: '600',
        pwOwner: userInfo().uid === 0 ? 'postgres' : userInfo().username,
      })
      expect(existsSync(pwPath!), 'the password file is removed after initdb').toBe(false)
      const modes = Object.fromEntries(
        ['data', 'logs', 'run', 'conf'].map((d) => [d, mode(path.join(home, d))] as const),
      )
      expect(modes).toEqual({ data: '700', logs: '700', run: '700', conf: '700' })
      expect(mode(pgData)).toBe('700')
      expect(mode(path.dirname(pgData)), "the folder made for the data directory and the server's log").toBe('700')
      expect(readFileSync(path.join(pgData, 'pg_hba.conf'), 'utf8')).not.toMatch(REPLICATION_LINE)
      expect(readFileSync(path.join(pgData, 'pg_hba.conf'), 'utf8')).toMatch(
        /^host\s+all\s+all\s+127\.0\.0\.1\/32\s+scram-sha-256/m,
      )

      // A cluster made before: initdb's replication lines and the one the stack used to add go at the next start.
      appendFileSync(
        path.join(pgData, 'pg_hba.conf'),
        'local   replication     all                                     scram-sha-256\n' +
          'host    replication     all             127.0.0.1/32            scram-sha-256\n',
      )
      const again = await withStackLibs(
        home,
        pgData,
        'if pg_drop_replication_hba; then echo changed; fi; if pg_drop_replication_hba; then echo changed again; fi',
      )
      expect(again.trim()).toBe('changed')
      const hba = readFileSync(path.join(pgData, 'pg_hba.conf'), 'utf8')
      expect(hba).not.toMatch(REPLICATION_LINE)
      expect(hba).toMatch(/^host\s+all\s+all\s+127\.0\.0\.1\/32\s+scram-sha-256/m)
    },
  )

  it('an existing tree made under umask 022 becomes 0700 when the stack scripts next run', async () => {
    const dir = scratch()
    const home = path.join(dir, 'home')
    for (const d of ['data', 'logs', 'run', 'conf']) mkdirSync(path.join(home, d), { recursive: true, mode: 0o755 })
    await withStackLibs(home, path.join(dir, 'pg', 'data'), 'true')
    expect(['data', 'logs', 'run', 'conf'].map((d) => mode(path.join(home, d)))).toEqual(['700', '700', '700', '700'])
  })

  it("the running stack's folders and PostgreSQL's data directory are 0700, its log 0600", async () => {
    const home = (process.env.CDC_STACK_HOME ?? path.join(homedir(), '.cache', 'cdc-pipeline')).replace(/^~/, homedir())
    const modes = Object.fromEntries(['data', 'logs', 'run', 'conf'].map((d) => [d, mode(path.join(home, d))] as const))
    expect(modes).toEqual({ data: '700', logs: '700', run: '700', conf: '700' })
    const pgData = await psql('SHOW data_directory', pgSuperUrl)
    expect(mode(pgData)).toBe('700')
    expect(mode(path.join(path.dirname(pgData), 'postgres.log'))).toBe('600')
  })
})

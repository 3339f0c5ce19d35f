// The cassandra.yaml stack/lib/cassandra.sh writes, for each commit log sync mode (CASSANDRA_COMMITLOG_SYNC), in a
// throwaway CDC_STACK_HOME: nothing is started.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const lib = new URL('./lib/', import.meta.url).pathname
const homes: string[] = []
afterEach(() => {
  for (const h of homes.splice(0)) rmSync(h, { recursive: true, force: true })
})

/** Writes the config with the given sync mode; returns the yaml, or throws with the script's stderr. */
async function writeConfig(sync: string | undefined): Promise<string> {
  const home = mkdtempSync(path.join(tmpdir(), 'cdc-cassandra-conf-'))
  homes.push(home)
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: home, CDC_STACK_HOME: home }
  if (sync !== undefined) env.CASSANDRA_COMMITLOG_SYNC = sync
  await run('bash', ['-c', `set -euo pipefail; . ${lib}common.sh; . ${lib}cassandra.sh; cassandra_write_config`], {
    env,
  })
  return readFileSync(path.join(home, 'conf/cassandra/cassandra.yaml'), 'utf8')
}

describe('cassandra.yaml commit log sync', () => {
  it('is periodic every 10 s by default', async () => {
    const yaml = await writeConfig(undefined)
    expect(yaml).toMatch(/^commitlog_sync: periodic\ncommitlog_sync_period: 10000ms$/m)
  })

  it('group waits for the sync of a 15 ms window; batch syncs every write batch', async () => {
    expect(await writeConfig('group')).toMatch(/^commitlog_sync: group\ncommitlog_sync_group_window: 15ms$/m)
    const batch = await writeConfig('batch')
    expect(batch).toMatch(/^commitlog_sync: batch$/m)
    expect(batch).not.toMatch(/commitlog_sync_period|commitlog_sync_group_window/)
  })

  it('refuses any other mode with one line and writes nothing', async () => {
    const err = (await writeConfig('sometimes').catch((e: unknown) => e)) as { stderr: string; code: number }
    expect(err.code).toBe(1)
    expect(err.stderr.trim()).toBe(
      "[stack] error: CASSANDRA_COMMITLOG_SYNC must be periodic, group or batch (got 'sometimes')",
    )
  })
})

// Tests that replicate a table of their own (created in psql, added with node cmd/cdc-add-table, replicated with
// --tables): adding it, and removing every trace of it afterwards, since the stack is shared.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { onTestFinished } from 'vitest'
import { dlqTopicFor } from '../internal/pipeline/index.js'
import { connectUrl, pgOwnerUrl, psql, repoDir, testAdmin } from './helpers.js'
import { KEYSPACE, cassandraClient } from './cdc-helpers.js'

const run = promisify(execFile)
export const CONNECTOR = 'cdc-postgres'

/** The connector's current config, as Connect's REST API returns it. */
export async function connectorConfig(): Promise<Record<string, string>> {
  const res = await fetch(`${connectUrl}/connectors/${CONNECTOR}/config`)
  if (!res.ok) throw new Error(`GET ${CONNECTOR}/config: HTTP ${res.status}`)
  return (await res.json()) as Record<string, string>
}

/** Runs node cmd/cdc-add-table; resolves with its exit code and output (a non-zero exit does not throw). */
export async function addTable(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['cmd/cdc-add-table', ...args], {
      cwd: repoDir,
      timeout: 180_000,
      env: { ...process.env, LOG_LEVEL: 'warn' },
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

/** node cmd/cdc-add-table for one table; throws with its output unless it exits 0. */
export async function addTableOk(table: string): Promise<void> {
  const res = await addTable(table)
  if (res.code !== 0) throw new Error(`cdc-add-table ${table} exited ${res.code}: ${res.stderr}${res.stdout}`)
}

/** Removes the tables from the connector's include list, drops them (and so from cdc_pub), their topics and Cassandra tables. */
export function cleanUpAfter(...tables: string[]): void {
  onTestFinished(async () => {
    const config = await connectorConfig()
    const list = (config['table.include.list'] ?? '').split(',').filter((e) => e !== '')
    const kept = list.filter((e) => !tables.some((t) => e === `public.${t}`))
    if (kept.length !== list.length) {
      await fetch(`${connectUrl}/connectors/${CONNECTOR}/config`, {
        method: 'PUT',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...config, 'table.include.list': kept.join(',') }),
      })
    }
    for (const t of tables) await psql(`DROP TABLE IF EXISTS public.${t}`, pgOwnerUrl)
    const admin = await testAdmin()
    const existing = new Set(await admin.listTopics())
    const topics = tables.flatMap((t) => [`cdc.public.${t}`, dlqTopicFor(`cdc.public.${t}`)])
    await admin.deleteTopics({ topics: topics.filter((t) => existing.has(t)) }).catch(() => undefined)
    const client = cassandraClient()
    for (const t of tables) await client.execute(`DROP TABLE IF EXISTS ${KEYSPACE}."${t}"`)
  })
}

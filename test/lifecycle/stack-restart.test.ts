// Runs after every other test (its own vitest project): it takes the whole stack down and brings it back.
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { cqlsh, pgOwnerUrl, psql, stack } from '../helpers.js'

const run = promisify(execFile)
const runDir = join(process.env.CDC_STACK_HOME ?? join(homedir(), '.cache/cdc-pipeline'), 'run')
const stackPorts = [9092, 9093, 9094, 9192, 9193, 9194, 8083, 5432, 9042, 7000, 7199, 6379]

async function listeningPorts(): Promise<number[]> {
  const { stdout } = await run('ss', ['-Hltn'])
  const open = new Set(stdout.split('\n').map((l) => Number(l.trim().split(/\s+/)[3]?.split(':').pop())))
  return stackPorts.filter((p) => open.has(p))
}

function recordedPids(): number[] {
  return readdirSync(runDir)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(runDir, f), 'utf8').trim()))
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    // A zombie (exited, not yet reaped by whoever adopted it) answers kill 0 but runs nothing; the same rule as
    // stack/lib/common.sh's alive(): a JVM's main thread turns Z while its other threads are still exiting.
    if (!readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) return true
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 1) > 1
  } catch {
    return false
  }
}

describe('stack lifecycle', () => {
  it('stack:down leaves no stack process or port, and stack:up brings everything back with the data kept', async () => {
    const id = randomUUID()
    await psql(`INSERT INTO users (id, name, dob) VALUES ('${id}', 'restart probe', '2000-01-01')`)
    await cqlsh(`INSERT INTO cdc_keyspace.users (id, name) VALUES (${id}, 'restart probe')`)
    const pidsBefore = recordedPids()
    expect(pidsBefore.length).toBeGreaterThanOrEqual(6)

    await stack('down')
    expect(pidsBefore.filter(isAlive)).toEqual([])
    expect(await listeningPorts()).toEqual([])

    await stack('up')
    await expect(stack('status')).resolves.toBeTruthy()
    expect(await psql(`SELECT name FROM users WHERE id = '${id}'`)).toBe('restart probe')
    expect(await cqlsh(`SELECT name FROM cdc_keyspace.users WHERE id = ${id}`)).toContain('restart probe')
    const topics = await stack('kafka', 'topics', '--list')
    expect(topics.split('\n')).toContain('cdc.public.users')

    await psql(`DELETE FROM users WHERE id = '${id}'`, pgOwnerUrl)
    await cqlsh(`DELETE FROM cdc_keyspace.users WHERE id = ${id}`)
  })
})

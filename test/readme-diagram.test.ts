// The README's Mermaid diagram names commands, topics, tables and the keyspace: each must be what the code uses.
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { SETTINGS } from '../internal/cli/index.js'
import { DEFAULT_TOPICS } from '../internal/model/index.js'
import { repoDir } from './helpers.js'

const read = (f: string) => readFileSync(`${repoDir}${f}`, 'utf8')
const diagram = /```mermaid\n([\s\S]*?)```/.exec(read('README.md'))?.[1] ?? ''

describe('README diagram', () => {
  it('exists', () => expect(diagram).toContain('flowchart'))

  it('names commands that exist', () => {
    const commands = [...diagram.matchAll(/node (cmd\/[a-z-]+)/g)].map((m) => m[1])
    expect(commands).toEqual(expect.arrayContaining(['cmd/produce', 'cmd/consume', 'cmd/replicate']))
    for (const c of commands) expect(existsSync(`${repoDir}${c}/index.js`), c).toBe(true)
  })

  it('names the default topics, the change topics, the slot and the publication the code uses', () => {
    expect(diagram).toContain(`${DEFAULT_TOPICS.user} (3 partitions)`)
    expect(diagram).toContain(`${DEFAULT_TOPICS.order} (5)`)
    expect(SETTINGS.usersPartitions.default).toBe(3)
    expect(SETTINGS.ordersPartitions.default).toBe(5)
    const connector = read('configure-debezium.sh')
    for (const [name, setting] of [
      ['cdc_slot', 'slot.name'],
      ['cdc_pub', 'publication.name'],
    ]) {
      expect(diagram).toContain(name)
      expect(connector).toContain(`"${setting}": "${name}"`)
    }
    expect(connector).toContain('"topic.prefix": "cdc"')
    expect(connector).toContain('"table.include.list": "public.users,public.orders"')
    expect(diagram).toContain('cdc.public.users')
    expect(diagram).toContain('cdc.public.orders')
    expect(SETTINGS.replicateTopics.default).toEqual(['cdc.public.users', 'cdc.public.orders'])
  })

  it('names the tables and the keyspace the schemas create', () => {
    const sql = read('table-creation.sql')
    const cql = read('cassandra-schema.cql')
    expect(diagram).toContain('PostgreSQL cdc_db')
    expect(read('stack/postgres/roles.sql')).toContain('CREATE DATABASE cdc_db')
    for (const t of ['users', 'orders']) expect(sql).toContain(`CREATE TABLE IF NOT EXISTS ${t} (`)
    expect(diagram).toContain('Cassandra cdc_keyspace')
    for (const t of ['users', 'orders', 'orders_by_user']) {
      expect(diagram).toContain(t)
      expect(cql).toContain(`CREATE TABLE IF NOT EXISTS cdc_keyspace.${t} (`)
    }
    expect(diagram).toContain('.dlq')
    expect(read('internal/pipeline/dlq.ts')).toContain('`${topic}.dlq`')
  })
})

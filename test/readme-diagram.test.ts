// The README's Mermaid diagram names commands, topics, tables and the keyspace: each must be what the code uses.
// docs/design.md's layout names the code's folders, and its ports claim holds: only internal/kafka imports kafkajs,
// which an eslint rule enforces; internal/ has no import cycle.
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'
import { SETTINGS } from '../internal/cli/index.js'
import { ENTITIES } from '../internal/model/index.js'
import { TARGETS_OF } from '../internal/sinks/cassandra/index.js'
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
    // Every entity's topic with its partitions (the first one says "partitions"), as the produce defaults are.
    const topics = ENTITIES.map((e, i) => `${e.topic} (${e.partitions}${i === 0 ? ' partitions' : ''})`)
    expect(diagram).toContain(topics.join(', '))
    expect(SETTINGS.usersPartitions.default).toBe(ENTITIES[0]!.partitions)
    expect(SETTINGS.ordersPartitions.default).toBe(ENTITIES[1]!.partitions)
    const connector = read('configure-debezium.sh')
    for (const [name, setting] of [
      ['cdc_slot', 'slot.name'],
      ['cdc_pub', 'publication.name'],
    ]) {
      expect(diagram).toContain(name)
      expect(connector).toContain(`"${setting}": "${name}"`)
    }
    expect(connector).toContain('"topic.prefix": "cdc"')
    const tables = ENTITIES.map((e) => e.table)
    expect(connector).toContain(`"table.include.list": "${tables.map((t) => `public.${t}`).join(',')}"`)
    for (const t of tables) expect(diagram).toContain(`cdc.public.${t}`)
    expect(SETTINGS.replicateTopics.default).toEqual(tables.map((t) => `cdc.public.${t}`))
  })

  it('names the tables and the keyspace the schemas create', () => {
    const sql = read('table-creation.sql')
    const cql = read('cassandra-schema.cql')
    expect(diagram).toContain('PostgreSQL cdc_db')
    expect(read('stack/postgres/roles.sql')).toContain('CREATE DATABASE cdc_db')
    for (const t of ENTITIES.map((e) => e.table)) {
      expect(diagram).toContain(t)
      expect(sql).toContain(`CREATE TABLE IF NOT EXISTS ${t} (`)
    }
    expect(diagram).toContain('Cassandra cdc_keyspace')
    for (const t of Object.values(TARGETS_OF).flatMap((targets) => targets.map((x) => x.name))) {
      expect(diagram).toContain(t)
      expect(cql).toContain(`CREATE TABLE IF NOT EXISTS cdc_keyspace.${t} (`)
    }
    expect(diagram).toContain('.dlq')
    expect(read('internal/pipeline/dlq.ts')).toContain('`${topic}.dlq`')
  })
})

// docs/design.md's Layout section: the folders it lists are the code's, and its claims about them hold.
const layout = /## Layout\n+```\n([\s\S]*?)```/.exec(read('docs/design.md'))?.[1] ?? ''

/** Every .ts and .js file under `dir` (relative to the repository), node_modules and dist left out. */
function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(`${repoDir}${dir}`, { withFileTypes: true })) {
    const path = `${dir}/${e.name}`
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'dist') out.push(...sources(path))
    } else if (/\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

describe('docs/design.md layout', () => {
  it('lists every command and every internal folder, and nothing that does not exist', () => {
    const listedCommands = [...layout.matchAll(/^(cmd\/[a-z-]+)/gm)].map((m) => m[1]).sort()
    const commands = readdirSync(`${repoDir}cmd`)
      .filter((d) => existsSync(`${repoDir}cmd/${d}/main.ts`))
      .map((d) => `cmd/${d}`)
      .sort()
    expect(listedCommands).toEqual(commands)
    const block = layout.slice(layout.indexOf('internal/\n'), layout.indexOf('\nstack/'))
    const listed = [...block.matchAll(/^ {2}([a-z][a-z/, ]*?)(?= {2,})/gm)]
      .flatMap((m) => m[1].split(','))
      .map((f) => f.trim())
      .sort()
    const folders = readdirSync(`${repoDir}internal`, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .flatMap((e) =>
        e.name === 'sinks'
          ? readdirSync(`${repoDir}internal/sinks`, { withFileTypes: true })
              .filter((s) => s.isDirectory())
              .map((s) => `sinks/${s.name}`)
          : [e.name],
      )
      .sort()
    expect(listed).toEqual(folders)
  })

  it('has no import cycle among the modules of internal/', () => {
    const files = sources('internal').filter((f) => !/\.test\.ts$/.test(f))
    const edges = new Map<string, string[]>()
    for (const f of files) {
      const text = read(f)
      const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => {
        const target = new URL(m[1], `file:///${f}`).pathname.slice(1)
        return target.replace(/\.js$/, existsSync(`${repoDir}${target.replace(/\.js$/, '.ts')}`) ? '.ts' : '.js')
      })
      edges.set(f, targets)
    }
    const cycles: string[] = []
    const state = new Map<string, 'open' | 'done'>()
    const visit = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return
      if (state.get(f) === 'open') return void cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '))
      state.set(f, 'open')
      for (const t of edges.get(f) ?? []) visit(t, [...path, f])
      state.set(f, 'done')
    }
    for (const f of files) visit(f, [])
    expect(cycles).toEqual([])
  })
})

describe('kafkajs behind the ports of internal/kafka', () => {
  const importsKafkajs = /(?:from\s*|import\s*\(\s*|require\(\s*|import\s+)'kafkajs(?:\/[^']*)?'/

  it('is imported by internal/kafka only, and by the tests eslint.config.js allows (each saying why)', async () => {
    const { KAFKAJS_ALLOWED } = (await import(`${repoDir}eslint.config.js`)) as { KAFKAJS_ALLOWED: string[] }
    const allowed = (f: string) => f.startsWith('internal/kafka/') || KAFKAJS_ALLOWED.includes(f)
    const files = ['cmd', 'internal', 'test', 'bench', 'stack'].flatMap(sources)
    const offenders = files.filter((f) => importsKafkajs.test(read(f)) && !allowed(f))
    expect(offenders).toEqual([])
    // The exceptions are real (a stale entry would hide nothing, but it would claim something untrue) and named.
    for (const f of KAFKAJS_ALLOWED.filter((a) => !a.includes('*'))) {
      expect(importsKafkajs.test(read(f)), f).toBe(true)
      expect(read('eslint.config.js')).toContain(`${f} `)
    }
    // The files the ports replaced kafkajs in.
    for (const f of [
      'internal/pipeline/engine.ts',
      'internal/pipeline/runner.ts',
      'internal/pipeline/replay.ts',
      'internal/pipeline/dead-letter-writer.ts',
      'internal/producer/sender.ts',
    ]) {
      expect(importsKafkajs.test(read(f)), f).toBe(false)
    }
  })

  it('is enforced by eslint: a value or type import of kafkajs outside internal/kafka fails the lint', async () => {
    const eslint = new ESLint({ cwd: repoDir })
    const lint = async (file: string, text: string) =>
      (await eslint.lintText(text, { filePath: `${repoDir}${file}` }))[0]!.messages.map((m) => m.ruleId)
    // Spelled so that this file does not read as importing it.
    const lib = ['kafka', 'js'].join('')
    const value = `import { CompressionTypes } from '${lib}'\nexport const gzip = CompressionTypes.GZIP\n`
    const type = `import type { Admin } from '${lib}'\nexport type A = Admin\n`
    const deep = `import type { Admin } from '${lib}/types'\nexport type A = Admin\n`
    for (const file of ['internal/pipeline/probe.ts', 'cmd/consume/probe.ts', 'bench/probe.ts', 'test/probe.ts']) {
      for (const text of [value, type, deep]) {
        expect(await lint(file, text), `${file}: ${text}`).toEqual(
          expect.arrayContaining(['no-restricted-imports', '@typescript-eslint/no-restricted-imports']),
        )
      }
    }
    expect(await lint('internal/kafka/probe.ts', value)).toEqual([])
    expect(await lint('internal/kafka/probe.ts', type)).toEqual([])
  })

  it('is what design.md says', () => {
    expect(layout).toMatch(/kafka\s+the only place that knows kafkajs/)
    const design = read('docs/design.md')
    expect(design).toContain('Nothing outside `internal/kafka` imports kafkajs')
    expect(design).toContain('`no-restricted-imports`')
  })
})

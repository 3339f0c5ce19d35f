// The README's configuration tables are the contract users read: each must be exactly what the settings table
// (internal/cli/settings.ts) generates for its command, every flag a command's --help prints must be in its table,
// and the table must name no flag the command does not have. The exit codes likewise.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { COMMANDS, EXIT_CODE_DOCS, readmeTable, type CommandName } from '../internal/cli/index.js'
import { repoDir } from './helpers.js'

const run = promisify(execFile)
const readme = readFileSync(`${repoDir}README.md`, 'utf8')
const commands = [...readme.matchAll(/^### node (cmd\/[a-z-]+)$/gm)].map((m) => m[1])

function section(heading: string): string {
  return readme.split(`${heading}\n`)[1]?.split(/\n#{2,3} /)[0] ?? ''
}

/** The lines of the first table in a section. */
function tableLines(text: string): string[] {
  const lines = text.split('\n')
  const start = lines.findIndex((l) => l.startsWith('|'))
  if (start < 0) return []
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'))
  return lines.slice(start, end < 0 ? undefined : end)
}

function tableFlags(command: string): string[] {
  return [...section(`### node ${command}`).matchAll(/^\| `(--[a-z0-9-]+)` \|/gm)].map((m) => m[1]).sort()
}

async function helpFlags(command: string): Promise<string[]> {
  const { stdout } = await run('node', [command, '--help'], { cwd: repoDir })
  const options = stdout.split(/^Options:$/m)[1] ?? ''
  // A flag starts its line at yargs' option column; wrapped descriptions are indented further.
  const flags = [...options.matchAll(/^(?: {2}-[a-z], | {6})(--[a-z0-9-]+)/gm)].map((m) => m[1])
  // Every command has these two; the README says so once.
  return flags.filter((f) => f !== '--help' && f !== '--version').sort()
}

describe('README configuration tables', () => {
  it('documents the commands users run', () => {
    expect(commands).toEqual(expect.arrayContaining(['cmd/produce', 'cmd/consume']))
    expect([...commands].sort()).toEqual(COMMANDS.map((c) => `cmd/${c}`).sort())
  })

  for (const command of COMMANDS) {
    it(`has the table the settings table generates for node cmd/${command}`, () => {
      expect(tableLines(section(`### node cmd/${command}`)).join('\n')).toBe(
        readmeTable(command as CommandName).join('\n'),
      )
    })
  }

  it('lists the exit codes --help lists', async () => {
    const rows = EXIT_CODE_DOCS.map(([code, meaning]) => `| ${code} | ${meaning} |`)
    expect(tableLines(section('### Exit codes'))).toEqual(['| code | meaning |', '| --- | --- |', ...rows])
    const { stdout } = await run('node', ['cmd/produce', '--help'], { cwd: repoDir })
    for (const [code, meaning] of EXIT_CODE_DOCS) expect(stdout).toContain(`${String(code).padEnd(4)} ${meaning}`)
  })

  for (const command of commands) {
    it(`lists exactly the flags of node ${command} --help`, async () => {
      const help = await helpFlags(command)
      expect(help.length).toBeGreaterThan(0)
      expect(tableFlags(command)).toEqual(help)
    })
  }

  it('lists in .env.example every environment variable the commands read', async () => {
    const example = readFileSync(`${repoDir}.env.example`, 'utf8')
    const { stdout } = await run(
      'grep',
      ['-rhoE', '--exclude=*.test.ts', "env: '[A-Z][A-Z0-9_]+'|process\\.env\\.[A-Z][A-Z0-9_]+", 'cmd', 'internal'],
      {
        cwd: repoDir,
      },
    )
    const read = new Set(
      stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/^env: '|'$|^process\.env\./g, '')),
    )
    // Set by the code for kafkajs, only for debugging output, or the user's home (for ~ in .env): not configuration.
    for (const internal of ['KAFKAJS_NO_PARTITIONER_WARNING', 'DEBUG', 'HOME']) read.delete(internal)
    expect(read.size).toBeGreaterThan(0)
    for (const v of read) expect(example, `${v} is read by the code`).toMatch(new RegExp(`^#? ?${v}=`, 'm'))
  })

  it('lists in .env.example every environment variable the README tables name', () => {
    const example = readFileSync(`${repoDir}.env.example`, 'utf8')
    const vars = [...readme.matchAll(/\| `([A-Z][A-Z0-9_]+)` \|/g)].map((m) => m[1])
    expect(vars.length).toBeGreaterThan(0)
    for (const v of vars) expect(example).toMatch(new RegExp(`^#? ?${v}=`, 'm'))
  })
})

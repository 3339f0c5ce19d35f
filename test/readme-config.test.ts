// The README's configuration tables are the contract users read: every flag a command's --help prints must be in
// its table, and the table must name no flag the command does not have.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { repoDir } from './helpers.js'

const run = promisify(execFile)
const readme = readFileSync(`${repoDir}README.md`, 'utf8')
const commands = [...readme.matchAll(/^### node (cmd\/[a-z-]+)$/gm)].map((m) => m[1])

function tableFlags(command: string): string[] {
  const section = readme.split(`### node ${command}\n`)[1]?.split(/\n#{2,3} /)[0] ?? ''
  return [...section.matchAll(/^\| `(--[a-z0-9-]+)` \|/gm)].map((m) => m[1]).sort()
}

async function helpFlags(command: string): Promise<string[]> {
  const { stdout } = await run('node', [command, '--help'], { cwd: repoDir })
  const options = stdout.split(/^Options:$/m)[1] ?? ''
  // A flag starts its line at yargs' option column; wrapped descriptions are indented further.
  const flags = [...options.matchAll(/^(?: {2}-[a-z], | {6})(--[a-z0-9-]+)/gm)].map((m) => m[1])
  return flags.filter((f) => f !== '--help').sort()
}

describe('README configuration tables', () => {
  it('documents the commands users run', () => {
    expect(commands).toEqual(expect.arrayContaining(['cmd/produce', 'cmd/consume']))
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
    // Set by the code for kafkajs, or only for debugging output: not configuration.
    for (const internal of ['KAFKAJS_NO_PARTITIONER_WARNING', 'DEBUG']) read.delete(internal)
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

import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { configError } from './resolve.js'

/** Options of {@link loadDotEnv}. */
export interface LoadDotEnvOptions {
  /** Defaults to `.env` in the current directory. */
  path?: string
  /** The environment to fill; defaults to process.env. */
  env?: Record<string, string | undefined>
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Parses simple dotenv text: KEY=VALUE lines, optional `export `, quotes, # comments. */
export function parseDotEnv(text: string, fileName = '.env'): Map<string, string> {
  const entries = new Map<string, string>()
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    const body = line.startsWith('export ') ? line.slice('export '.length).trimStart() : line
    const eq = body.indexOf('=')
    const key = eq > 0 ? body.slice(0, eq).trim() : ''
    // The line is not echoed: a malformed line may well hold a secret.
    if (!KEY.test(key)) throw configError(`${fileName} line ${i + 1} must be KEY=VALUE, a # comment or blank`)
    entries.set(key, parseValue(body.slice(eq + 1).trim()))
  }
  return entries
}

function parseValue(raw: string): string {
  const quote = raw[0]
  if ((quote === '"' || quote === "'") && raw.length >= 2) {
    const end = raw.indexOf(quote, 1)
    if (end > 0) {
      const inner = raw.slice(1, end)
      return quote === '"' ? inner.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1') : inner
    }
  }
  // Unquoted: a # preceded by a blank starts a comment (so 'a#b' stays whole).
  const comment = raw.search(/\s#/)
  return (comment >= 0 ? raw.slice(0, comment) : raw).trim()
}

/**
 * Reads an optional .env file into the environment without overriding variables that are already set, so the real
 * environment (and flags, resolved later) win. Returns the keys it set; a missing file sets nothing.
 */
export function loadDotEnv(options: LoadDotEnvOptions = {}): string[] {
  const path = options.path ?? join(process.cwd(), '.env')
  const env = options.env ?? process.env
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw configError(`cannot read ${path}: ${(err as Error).message}`, err)
  }
  const set: string[] = []
  for (const [key, value] of parseDotEnv(text, path)) {
    if (env[key] !== undefined) continue
    env[key] = value
    set.push(key)
  }
  return set
}

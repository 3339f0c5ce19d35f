import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { EnvFileError, parseDotEnv as parseEnvFile, stackAddresses as stackAddressesOf } from './envfile.js'
import { configError, type Env } from './resolve.js'

/** Options of {@link loadDotEnv}. */
export interface LoadDotEnvOptions {
  /** Defaults to $CDC_ENV_FILE, else `.env` in the current directory. */
  path?: string
  /** The environment to fill; defaults to process.env. */
  env?: Record<string, string | undefined>
}

function asConfigError<T>(read: () => T): T {
  try {
    return read()
  } catch (err) {
    if (err instanceof EnvFileError) throw configError(err.message, err)
    throw err
  }
}

/**
 * Parses .env text with the reader the local stack uses too (internal/config/envfile.js, where the syntax is
 * described): KEY=VALUE lines, optional `export `, quotes, # comments, nothing expanded. Throws a CONFIG_ERROR naming
 * the line of a malformed entry.
 */
export function parseDotEnv(text: string, fileName = '.env', home = process.env.HOME ?? ''): Map<string, string> {
  return asConfigError(() => parseEnvFile(text, fileName, home))
}

/**
 * The local stack's addresses as the stack derives them from KAFKA_PORT_BASE, PG_PORT (and PG_APP_PASSWORD),
 * CASSANDRA_PORT and CONNECT_PORT: the commands' default addresses. Throws a CONFIG_ERROR naming a variable that is
 * not a port.
 */
export function stackAddresses(env: Env = process.env): {
  brokers: string[]
  pgUrl: string
  cassandraContactPoints: string[]
  connectUrl: string
} {
  return asConfigError(() => stackAddressesOf(env))
}

/**
 * Reads an optional .env file into the environment without overriding variables that are already set, so the real
 * environment (and flags, resolved later) win. Returns the keys it set; a missing file sets nothing.
 */
export function loadDotEnv(options: LoadDotEnvOptions = {}): string[] {
  const env = options.env ?? process.env
  const path = options.path ?? (env.CDC_ENV_FILE || join(process.cwd(), '.env'))
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw configError(`cannot read ${path}: ${(err as Error).message}`, err)
  }
  const set: string[] = []
  for (const [key, value] of parseDotEnv(text, path, env.HOME ?? process.env.HOME)) {
    if (env[key] !== undefined) continue
    env[key] = value
    set.push(key)
  }
  return set
}

// The lease operations on Redis: the three scripts of scripts.ts through one node-redis client.
import type { RedisClientType } from 'redis'
import { SCRIPTS, type ScriptName } from './scripts.js'

/** What a read of the cache found (READ_SCRIPT's answer). */
export type CacheLookup =
  | { kind: 'hit'; row: string }
  /** A versioned tombstone: the row was deleted (cache-sync wrote it; a re-created row replaces it). */
  | { kind: 'gone' }
  /** The caller holds the lease: it reads PostgreSQL and fills with this token. */
  | { kind: 'lease'; token: string }
  /** Another reader holds the lease. */
  | { kind: 'busy' }

/** The cache operations a read needs (unit tests pass a fake; the real one runs the Lua scripts). */
export interface CacheStore {
  lookup(key: string, token: string, leaseMs: number): Promise<CacheLookup>
  /** True when written, false when refused (the lease is no longer this token's). */
  fill(key: string, token: string, row: string, ttlMs: number, ref: string): Promise<boolean>
  release(key: string, token: string): Promise<void>
}

/** The minimal part of a node-redis client the store calls. */
export type ScriptRunner = Pick<RedisClientType, 'evalSha' | 'scriptLoad'>

/** CacheStore on Redis: EVALSHA, and on NOSCRIPT (a restarted or flushed Redis) SCRIPT LOAD and once more. */
export class RedisCacheStore implements CacheStore {
  readonly #redis: ScriptRunner

  constructor(redis: ScriptRunner) {
    this.#redis = redis
  }

  async #run(name: ScriptName, keys: string[], args: string[]): Promise<unknown> {
    const { sha, source } = SCRIPTS[name]
    try {
      return await this.#redis.evalSha(sha, { keys, arguments: args })
    } catch (err) {
      if (!/^NOSCRIPT\b/.test(String((err as Error)?.message))) throw err
      await this.#redis.scriptLoad(source)
      return await this.#redis.evalSha(sha, { keys, arguments: args })
    }
  }

  async lookup(key: string, token: string, leaseMs: number): Promise<CacheLookup> {
    const reply = (await this.#run('read', [key], [token, String(leaseMs)])) as string[]
    switch (reply[0]) {
      case 'hit':
        return { kind: 'hit', row: reply[1]! }
      case 'gone':
        return { kind: 'gone' }
      case 'lease':
        return { kind: 'lease', token }
      case 'busy':
        return { kind: 'busy' }
      default:
        throw new Error(`unexpected answer of the cache read script: ${JSON.stringify(reply)}`)
    }
  }

  async fill(key: string, token: string, row: string, ttlMs: number, ref: string): Promise<boolean> {
    return Number(await this.#run('fill', [key], [token, row, String(ttlMs), ref])) === 1
  }

  async release(key: string, token: string): Promise<void> {
    await this.#run('release', [key], [token])
  }
}

// The Lua scripts of node cmd/api's cache-aside reads (EVALSHA, loaded again on NOSCRIPT). They share the row and
// list keys with node cmd/cache-sync's script (internal/sinks/redis/script.ts), which replaces a key whole on every
// change it applies (DEL, then HSET): that is what cancels a lease. These scripts never touch `v`, `deleted` or a
// key's version guard; they add two fields to the same hash:
//   lease  '<token>:<deadline ms>'  a reader is filling the key from PostgreSQL (one reader at a time)
//   row    the JSON the reader filled (the same field a --mode refresh change writes)
import { createHash } from 'node:crypto'

/**
 * KEYS[1] the key; ARGV[1] a fresh lease token; ARGV[2] the lease's lifetime in ms.
 * Returns {'hit', row} | {'gone'} (a versioned tombstone: the row was deleted) | {'lease'} (the caller holds the
 * lease now: read PostgreSQL, then FILL) | {'busy'} (another reader holds a lease that has not expired).
 *
 * A new lease keeps every field the key has (`v` of an invalidation, `ref`) and its TTL, only making the key live
 * at least as long as the lease (a key that did not exist gets the lease's lifetime, so an abandoned lease goes away
 * by itself). Time is Redis' own (TIME), so the deadline means the same on every API instance.
 */
export const READ_SCRIPT = `
local key = KEYS[1]
local h = redis.call('HMGET', key, 'row', 'deleted', 'lease')
if h[1] then return {'hit', h[1]} end
if h[2] == '1' then return {'gone'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if h[3] then
  local deadline = tonumber(string.match(h[3], ':(%d+)$'))
  if deadline and deadline > now then return {'busy'} end
end
local ms = tonumber(ARGV[2])
redis.call('HSET', key, 'lease', ARGV[1] .. ':' .. (now + ms))
if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
return {'lease'}
`

/**
 * KEYS[1] the key; ARGV[1] the lease token; ARGV[2] the row JSON read from PostgreSQL; ARGV[3] the filled row's
 * lifetime in ms; ARGV[4] the row's parent id ('' for none).
 * Returns 1 when written, 0 when refused: the lease is gone (a change replaced the key since the lease was taken,
 * or a purge deleted it) or another reader's lease replaced an expired one. Only the holder of the lease that is
 * still there writes, so a fill can never put back a value older than an invalidation it raced with.
 *
 * An expired lease that nobody replaced still lets its holder write: the key is as it was when the lease was taken
 * (no change replaced it), so what the reader read from PostgreSQL after taking it is not older than the cache's
 * last invalidation. The row keeps `v` (cache-sync's guard) and lives at least ARGV[3] ms (a longer tombstone TTL
 * stays, so the version guard is not shortened).
 */
export const FILL_SCRIPT = `
local key, token = KEYS[1], ARGV[1]
local lease = redis.call('HGET', key, 'lease')
if not lease or string.sub(lease, 1, #token + 1) ~= token .. ':' then return 0 end
redis.call('HDEL', key, 'lease')
redis.call('HSET', key, 'row', ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', key, 'ref', ARGV[4]) end
local ms = tonumber(ARGV[3])
if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
return 1
`

/**
 * KEYS[1] the key; ARGV[1] the lease token. Gives a lease back (the PostgreSQL read failed, or found no row):
 * removes it if it is still this token's. Returns 1 when removed.
 */
export const RELEASE_SCRIPT = `
local lease = redis.call('HGET', KEYS[1], 'lease')
if not lease or string.sub(lease, 1, #ARGV[1] + 1) ~= ARGV[1] .. ':' then return 0 end
redis.call('HDEL', KEYS[1], 'lease')
return 1
`

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex')

/** The scripts by name, with their SHA1s. */
export const SCRIPTS = {
  read: { source: READ_SCRIPT, sha: sha1(READ_SCRIPT) },
  fill: { source: FILL_SCRIPT, sha: sha1(FILL_SCRIPT) },
  release: { source: RELEASE_SCRIPT, sha: sha1(RELEASE_SCRIPT) },
} as const
export type ScriptName = keyof typeof SCRIPTS

// The one Lua script every cache write goes through (EVALSHA, loaded again on NOSCRIPT): the version guard, the
// write, the list invalidations and the pub/sub announcements, atomically.
import { createHash } from 'node:crypto'
import { listKey, type CachePlan } from './plan.js'

/**
 * KEYS[1]  the row's key; KEYS[2..] the lists its images name (cdc:user-orders:<id>).
 * ARGV[1]  the version (20 digits); ARGV[2] set | invalidate | delete; ARGV[3] the row JSON (set); ARGV[4] the
 *          tombstone TTL in ms; ARGV[5] the channel; ARGV[6] the table; ARGV[7] the id; ARGV[8] the row's parent
 *          id after the change ('' for none); ARGV[9] the list key prefix ('' for none); ARGV[10] the list's name;
 *          ARGV[11..] the parent ids of KEYS[2..].
 * Returns 0 when the row's key already holds this version or a newer one (nothing is written, nothing announced),
 * else 1 + the number of lists invalidated.
 *
 * The row's key is replaced whole: set -> {v, row} without a TTL; invalidate -> {v} (the cached row gone, the
 * version kept so that an older change is still refused) with the tombstone TTL; delete -> {v, deleted=1} with the
 * tombstone TTL. A list is invalidated by every change of one of its rows, never refused (a second invalidation
 * only costs a fill): its key becomes {v = the highest version seen} with the TTL. The parent id the row's key
 * stored before the change is invalidated too, so an order moved to another user invalidates the old user's list
 * even when the change has no before-image. Versions are compared as strings: they all have 20 digits.
 */
export const APPLY_SCRIPT = `
local key, v, action = KEYS[1], ARGV[1], ARGV[2]
local cur = redis.call('HGET', key, 'v')
if cur and cur >= v then return 0 end
local ttl, channel = tonumber(ARGV[4]), ARGV[5]
local oldRef = redis.call('HGET', key, 'ref')
redis.call('DEL', key)
if action == 'set' then
  redis.call('HSET', key, 'v', v, 'row', ARGV[3])
elseif action == 'invalidate' then
  redis.call('HSET', key, 'v', v)
  redis.call('PEXPIRE', key, ttl)
else
  redis.call('HSET', key, 'v', v, 'deleted', '1')
  redis.call('PEXPIRE', key, ttl)
end
if ARGV[8] ~= '' then redis.call('HSET', key, 'ref', ARGV[8]) end
redis.call('PUBLISH', channel, cjson.encode({table = ARGV[6], id = ARGV[7], version = v}))
local n = 1
if ARGV[9] ~= '' then
  local ids, seen = {}, {}
  for i = 11, #ARGV do
    if not seen[ARGV[i]] then seen[ARGV[i]] = true; ids[#ids + 1] = ARGV[i] end
  end
  if oldRef and oldRef ~= '' and not seen[oldRef] then ids[#ids + 1] = oldRef end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local lk = ARGV[9] .. id
    local lv = redis.call('HGET', lk, 'v')
    if not lv or lv < v then lv = v end
    redis.call('DEL', lk)
    redis.call('HSET', lk, 'v', lv)
    redis.call('PEXPIRE', lk, ttl)
    redis.call('PUBLISH', channel, cjson.encode({table = ARGV[10], id = id, version = v}))
    n = n + 1
  end
end
return n
`

export const APPLY_SCRIPT_SHA1 = createHash('sha1').update(APPLY_SCRIPT).digest('hex')

/** The keys and arguments of the script for one planned change. */
export function scriptArgs(
  p: CachePlan,
  tombstoneTtlMs: number,
  channel: string,
): { keys: string[]; arguments: string[] } {
  const listPrefix = p.list === undefined ? '' : listKey(p.list, '')
  return {
    keys: [p.key, ...p.listIds.map((id) => listPrefix + id)],
    arguments: [
      p.version,
      p.action,
      p.row ?? '',
      String(tombstoneTtlMs),
      channel,
      p.table,
      p.id,
      p.ref,
      listPrefix,
      p.list ?? '',
      ...p.listIds,
    ],
  }
}

// The Lua scripts every cache write goes through (EVALSHA, loaded again on NOSCRIPT): a row change's (the version
// guard, the write, the list invalidations and the pub/sub announcements, atomically), and a TRUNCATE's.
import { createHash } from 'node:crypto'
import { listKey, truncatedKey, type CachePlan } from './plan.js'

/**
 * KEYS[1]  the row's key; KEYS[2] its table's truncate mark (cdc:~truncated:<table>); KEYS[3..] the lists its
 *          images name (cdc:user-orders:<id>).
 * ARGV[1]  the version (20 digits); ARGV[2] set | invalidate | delete; ARGV[3] the row JSON (set); ARGV[4] the
 *          tombstone TTL in ms; ARGV[5] the channel; ARGV[6] the table; ARGV[7] the id; ARGV[8] the row's parent
 *          id after the change ('' for none); ARGV[9] the list key prefix ('' for none); ARGV[10] the list's name;
 *          ARGV[11..] the parent ids of KEYS[2..].
 * Returns 0 when the row's key already holds this version or a newer one, or the table was truncated at a newer
 * version (nothing is written, nothing announced), else 1 + the number of lists invalidated.
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
local truncated = redis.call('GET', KEYS[2])
if truncated and truncated >= v then return 0 end
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
    keys: [p.key, truncatedKey(p.table), ...p.listIds.map((id) => listPrefix + id)],
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

/**
 * A TRUNCATE of a table at version V, for one page of the keys a SCAN found (the first call may have none).
 * KEYS[1]  the table's truncate mark; KEYS[2..] row keys (ARGV[2] = rows) or list keys (ARGV[2] = lists) of the table.
 * ARGV[1]  V (20 digits); ARGV[2] rows | lists; ARGV[3] the channel; ARGV[4] the table or the list's name (announced);
 *          ARGV[5] the length of the keys' prefix (what follows it is the id announced); ARGV[6] the lists' TTL in ms.
 * The mark is raised to V (never lowered): from then on the row script refuses every change of the table at or
 * below V, whichever partition or redelivery brings it. A row key holding an older version is deleted (its row, a
 * reader's lease, an invalidated row's version: the mark refuses older changes now); a list key holding an older
 * version becomes {v = V} with the TTL, as any change of one of its rows leaves it. Keys at a newer version (a change
 * after the truncate, applied first) are kept. Every key changed is announced. Returns how many.
 */
export const TRUNCATE_SCRIPT = `
local v = ARGV[1]
local mark = redis.call('GET', KEYS[1])
if not mark or mark < v then redis.call('SET', KEYS[1], v) end
local kind, channel, name, skip, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local n = 0
for i = 2, #KEYS do
  local key = KEYS[i]
  local cur = redis.call('HGET', key, 'v')
  if not cur or cur < v then
    redis.call('DEL', key)
    if kind == 'lists' then
      redis.call('HSET', key, 'v', v)
      redis.call('PEXPIRE', key, ttl)
    end
    redis.call('PUBLISH', channel, cjson.encode({table = name, id = string.sub(key, skip + 1), version = v}))
    n = n + 1
  end
end
return n
`

export const TRUNCATE_SCRIPT_SHA1 = createHash('sha1').update(TRUNCATE_SCRIPT).digest('hex')

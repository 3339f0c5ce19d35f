// node cmd/purge's protocol, on Redis alone (no other server): the command deletes the cache's keys (SCAN + UNLINK
// by prefix, never FLUSHDB: the Redis may be shared), then PUBLISHes a purge request; every API instance subscribed
// empties its L1 and pushes an acknowledgement onto the request's reply list, which the command pops until it has
// one from each instance PUBLISH reached, or its timeout.
import { randomUUID } from 'node:crypto'
import type { RedisClientType } from 'redis'
import { KEY_PREFIX, truncatedKey } from '../sinks/redis/index.js'

/** The channel purge requests are published on: {"id","replyTo"} JSON. */
export const PURGE_CHANNEL = 'cdc:purge'

/** The reply list of a request: outside KEY_PREFIX, so a concurrent purge's SCAN never deletes it. */
export const replyListOf = (requestId: string): string => `cdc-purge-acks:${requestId}`

/** How long an unread reply list is kept. */
const REPLY_TTL_MS = 60_000

export interface PurgeRequest {
  id: string
  replyTo: string
}

/** One instance's acknowledgement. */
export interface PurgeAck {
  id: string
  instance: string
  /** L1 entries it dropped. */
  dropped: number
}

type Redis = RedisClientType

const MARKS = truncatedKey('')

/**
 * Deletes every key under `prefix` (SCAN, UNLINK a batch at a time); returns how many. The tables' truncate marks
 * (cdc:~truncated:<table>) are kept: they hold no cached data, and without one a change from before a TRUNCATE that
 * cache-sync meets later could write a truncated row back.
 */
export async function deleteByPrefix(redis: Redis, prefix = KEY_PREFIX, count = 1_000): Promise<number> {
  let deleted = 0
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
  for await (const batch of redis.scanIterator({ MATCH: pattern, COUNT: count })) {
    const keys = (Array.isArray(batch) ? batch : [batch]).map(String).filter((k) => !k.startsWith(MARKS))
    if (keys.length > 0) deleted += Number(await redis.unlink(keys))
  }
  return deleted
}

/** What a purge did. */
export interface PurgeResult {
  deleted: number
  /** Instances the request reached (PUBLISH's count of subscribers). */
  reached: number
  acks: PurgeAck[]
}

/**
 * Purges: keys first, then the request, so that an instance that empties its L1 cannot refill it from a key
 * about to be deleted. Waits up to `timeoutMs` for the acknowledgements of every instance reached. `redis` must be
 * a connection of its own (BLPOP blocks it).
 */
export async function purge(redis: Redis, o: { timeoutMs: number; prefix?: string }): Promise<PurgeResult> {
  const deleted = await deleteByPrefix(redis, o.prefix)
  const id = randomUUID()
  const request: PurgeRequest = { id, replyTo: replyListOf(id) }
  const reached = Number(await redis.publish(PURGE_CHANNEL, JSON.stringify(request)))
  const acks: PurgeAck[] = []
  const deadline = Date.now() + o.timeoutMs
  while (acks.length < reached) {
    const left = deadline - Date.now()
    if (left <= 0) break
    // BLPOP's timeout is in seconds, fractions allowed (Redis 6+).
    const popped = await redis.blPop(request.replyTo, Math.max(left, 10) / 1000)
    if (popped === null) break
    acks.push(JSON.parse(popped.element) as PurgeAck)
  }
  await redis.unlink(request.replyTo).catch(() => undefined)
  return { deleted, reached, acks }
}

/** An instance's answer to a request (after it emptied its L1). */
export async function acknowledgePurge(
  redis: Redis,
  message: string,
  ack: Omit<PurgeAck, 'id'>,
): Promise<PurgeRequest> {
  const request = JSON.parse(message) as PurgeRequest
  // The reply list is derived from the id: a message cannot make an instance push onto any other key.
  if (typeof request?.id !== 'string' || request.replyTo !== replyListOf(request.id)) {
    throw new Error(`not a purge request: ${message.slice(0, 200)}`)
  }
  const reply: PurgeAck = { id: request.id, ...ack }
  await redis.rPush(request.replyTo, JSON.stringify(reply))
  await redis.pExpire(request.replyTo, REPLY_TTL_MS)
  return request
}

import { ErrorCodes, PipelineError, toPipelineError } from '../../errors/index.js'
import {
  DEFAULT_TOPICS,
  decodeEvent,
  entityOfTopic,
  idOf,
  isReferenced,
  parseTimestamp,
  specOf,
  type AnyEvent,
  type Entity,
  type EntitySpec,
  type TopicNames,
} from '../../model/index.js'
import type { Logger } from '../../log/index.js'
import {
  failedOutcome,
  type BatchResult,
  type BatchSink,
  type MessageOutcome,
  type SourceMessage,
} from '../../pipeline/types.js'
import { PostgresSink, type WriteResult } from './sink.js'

/** Options of the events -> PostgreSQL batch sink (plain data: they are passed into worker threads). */
export interface PostgresBatchSinkOptions {
  pgUrl: string
  /** Connections at most (default 16). */
  poolSize?: number
  topics?: TopicNames
  statementTimeoutMs?: number
}

/** The writing half of {@link PostgresSink}, replaceable in unit tests. */
export interface EventWriter {
  writeBatch(entity: Entity, events: readonly AnyEvent[]): Promise<WriteResult>
  close(): Promise<void>
}

interface Decoded {
  index: number
  event: AnyEvent
}

/**
 * Decodes and validates each message, writes the valid ones in one transaction, and reports per message.
 * Bad input is reported (not retriable); an order whose user is missing is reported retriable; a batch the database
 * rejects (a constraint the validator did not foresee) is split in halves until the offending events are isolated,
 * so one bad record never sinks its batch. Connection-level failures throw: the engine retries the whole batch.
 */
export class PostgresBatchSink implements BatchSink {
  readonly #sink: EventWriter
  readonly #topics: TopicNames
  readonly #specs = new Map<string, EntitySpec>()

  /** `writer` replaces the real PostgreSQL writer in unit tests; `log` gets the writer's warnings. */
  constructor(options: PostgresBatchSinkOptions, writer?: EventWriter, log?: Logger) {
    this.#sink =
      writer ??
      new PostgresSink({
        connectionString: options.pgUrl,
        // One connection per partition batch in flight: in the main thread every assigned partition's batch may be
        // writing at once (a worker thread has one batch at a time and so opens one). Opened on demand.
        poolSize: options.poolSize ?? 16,
        statementTimeoutMs: options.statementTimeoutMs,
        applicationName: 'cdc-consume',
        log,
      })
    this.#topics = options.topics ?? DEFAULT_TOPICS
  }

  async apply(messages: SourceMessage[]): Promise<BatchResult> {
    const outcomes: MessageOutcome[] = messages.map(() => ({ status: 'ok' }))
    const good: Decoded[] = []
    for (let index = 0; index < messages.length; index++) {
      const m = messages[index]
      try {
        const spec = this.#specOf(m.topic)
        const event = decodeEvent(spec.entity as Entity, m.value)
        checkKey(m.key, idOf(spec, event), spec.keyField)
        good.push({ index, event })
      } catch (err) {
        outcomes[index] = failedOutcome(toPipelineError(err, ErrorCodes.DECODE_ERROR))
      }
    }
    const result: BatchResult = { outcomes, applied: 0, stale: 0, latenciesMs: [] }
    if (good.length > 0) await this.#write(entityOfTopic(messages[0].topic, this.#topics), good, result)
    return result
  }

  // A topic's entity definition, looked up once per topic (a batch is one partition's: every message asks the same).
  #specOf(topic: string): EntitySpec {
    let spec = this.#specs.get(topic)
    if (spec === undefined) this.#specs.set(topic, (spec = specOf(entityOfTopic(topic, this.#topics))))
    return spec
  }

  async #write(entity: Entity, items: Decoded[], result: BatchResult): Promise<void> {
    let written
    try {
      written = await this.#sink.writeBatch(
        entity,
        items.map((d) => d.event),
      )
    } catch (err) {
      const e = toPipelineError(err)
      // Only a rejection of the data is the messages' fault; anything else (connection, configuration) is thrown
      // for the engine to retry the whole batch or stop.
      if (e.code !== ErrorCodes.SINK_REJECTED) throw e
      if (items.length === 1) {
        result.outcomes[items[0].index] = failedOutcome(e)
        return
      }
      const half = Math.ceil(items.length / 2)
      await this.#write(entity, items.slice(0, half), result)
      await this.#write(entity, items.slice(half), result)
      return
    }
    result.applied += written.applied
    result.stale += written.stale + written.superseded
    // An event whose version is too far ahead of its row's (MAX_VERSION_JUMP) is bad input. The events of its id
    // that were folded into it were not written either: they are written again without it (each round drops one
    // rejected event, so this ends).
    const spec = specOf(entity)
    const rejected = new Map<AnyEvent, PipelineError>((written.rejected ?? []).map((r) => [r.event, r.error]))
    let again: Decoded[] = []
    if (rejected.size > 0) {
      const rejectedIds = new Set([...rejected.keys()].map((e) => idOf(spec, e)))
      again = items.filter((d) => !rejected.has(d.event) && rejectedIds.has(idOf(spec, d.event)))
      result.stale -= again.length // counted as superseded above
      for (const d of items) {
        const error = rejected.get(d.event)
        if (error !== undefined) result.outcomes[d.index] = failedOutcome(error)
      }
    }
    // Every row of a batch of a referenced entity (users) is in PostgreSQL now (written, or already there at a later
    // version): rows that wait for one of them (orders) can go.
    if (isReferenced(spec)) {
      for (const d of items) {
        if (!rejected.has(d.event)) (result.provides ??= []).push(`${entity}/${idOf(spec, d.event)}`)
      }
    }
    const ref = spec.reference
    const missing = new Set<AnyEvent>(written.missingRefs)
    const now = Date.now()
    for (const d of items) {
      if (missing.has(d.event)) {
        const parent = ref === undefined ? '?' : (d.event as unknown as Record<string, string>)[ref.field]
        const parentEntity = ref?.entity ?? '?'
        result.outcomes[d.index] = {
          ...failedOutcome(
            new PipelineError(
              ErrorCodes.MISSING_REFERENCE,
              `${parentEntity} ${parent} of this ${entity} is not in PostgreSQL (yet)`,
            ),
          ),
          // Wakes the row as soon as a batch of any partition has written its parent.
          awaits: `${parentEntity}/${parent}`,
        }
      } else if (written.appliedIds.has(idOf(spec, d.event))) {
        // Latency only for what this batch wrote: a replayed event's age says nothing about the pipeline.
        // occurred_at was validated by parseTimestamp, which reads it as Date.parse does, at half the cost.
        const created = parseTimestamp(d.event.occurred_at)
        if (Number.isFinite(created)) result.latenciesMs.push(now - created)
      }
    }
    if (again.length > 0) await this.#write(entity, again, result)
  }

  async close(): Promise<void> {
    await this.#sink.close()
  }
}

/**
 * The message key must be the entity id (SPEC: key = entity id): Kafka keeps one entity's events in one partition,
 * in order, only by the key. A null or different key means a producer that breaks that contract; its events would
 * race each other across partitions, so they are rejected (to the DLQ) instead of applied on luck.
 */
function checkKey(key: Uint8Array | null, id: string, field: string): void {
  if (key === null) {
    throw new PipelineError(ErrorCodes.VALIDATION_ERROR, `message has no key; the key must be the ${field} (${id})`)
  }
  // The id is a validated uuid (ASCII): the key is its text exactly when its bytes are the id's characters, so the
  // key is decoded only to report a mismatch.
  if (sameAscii(key, id)) return
  const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('utf8')
  if (text !== id) {
    throw new PipelineError(
      ErrorCodes.VALIDATION_ERROR,
      `message key ${JSON.stringify(text.slice(0, 100))} is not the event's ${field} (${id})`,
    )
  }
}

// Whether `bytes` are the characters of `ascii` (a string of code points below 128), one byte each.
function sameAscii(bytes: Uint8Array, ascii: string): boolean {
  if (bytes.length !== ascii.length) return false
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ascii.charCodeAt(i) || bytes[i] > 127) return false
  return true
}

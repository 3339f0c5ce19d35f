// The sink module bench/cpu-path.ts runs in worker threads (--workers): the events -> PostgreSQL batch sink of the
// checkout named by options.tree, writing through a stubbed pg pool. Also the stub itself, for the in-thread runs.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/** What the stubbed pool was asked to send. */
export interface Sent {
  statements: number
  /** Characters of statement text and parameters: each parameter is read, as the driver would. */
  chars: number
}

// A pg pool whose one client answers every statement at once: an upsert with every id it was given (all written),
// anything else with no rows. The sink builds every statement exactly as it would for PostgreSQL.
export function stubPool(sent: Sent) {
  const client = {
    async query(s: string | { text: string; values: unknown[] }) {
      sent.statements++
      if (typeof s === 'string') {
        sent.chars += s.length
        return { rows: [] }
      }
      sent.chars += s.text.length
      for (const v of s.values) sent.chars += String(v).length
      if (!s.text.startsWith('INSERT')) return { rows: [] }
      const ids = String(s.values[0])
      return {
        rows:
          ids.length <= 2
            ? []
            : ids
                .slice(1, -1)
                .split(',')
                .map((id) => ({ id })),
      }
    },
    release(): void {},
    on() {
      return client
    },
    removeListener() {
      return client
    },
  }
  return {
    // pg's pool gives every checkout a fresh release() (the sink wraps it for the checkout)
    connect: async () => Object.assign(client, { release() {} }),
    on: () => undefined,
    end: async () => undefined,
  }
}

/** The events -> PostgreSQL batch sink of the build under `tree`, writing through the stubbed pool. */
export async function stubbedSink(tree: string, sent: Sent): Promise<unknown> {
  const dir = pathToFileURL(join(tree, 'dist/internal/sinks/postgres/')).href
  const { PostgresBatchSink } = (await import(`${dir}batch-sink.js`)) as {
    PostgresBatchSink: new (o: { pgUrl: string }, writer: unknown) => unknown
  }
  const { PostgresSink } = (await import(`${dir}sink.js`)) as { PostgresSink: new (o: { pool: unknown }) => unknown }
  return new PostgresBatchSink({ pgUrl: 'postgres://unused' }, new PostgresSink({ pool: stubPool(sent) }))
}

/** The sink-module entry point (in each worker thread): {@link stubbedSink} of `options.tree`. */
export async function createBatchSink(options: { tree: string }): Promise<unknown> {
  return stubbedSink(options.tree, { statements: 0, chars: 0 })
}

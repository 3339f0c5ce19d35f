// node dist/bench/bare-upsert.js: the benchmark's ceiling for consume -> PostgreSQL. The project's own generator and
// statement builders (reduce, batched UNNEST upsert, the users lock of an orders batch), in batches of --batch-size
// events per transaction on one connection, entity by entity (users, orders, products): no Kafka, no decoding, no workers, no offsets.
//
//   --pg-url URL       where to write (the benchmark gives it its uncaptured database)
//   --events N         events to pre-generate (not timed) and upsert (timed)
//   --batch-size N     events per transaction (default 2000)
//   --seed N           generator seed (default: random)
//   --wait-for-go      print "ready" when generated and connected, start on a line on stdin (the benchmark opens its
//                      CPU window in between)
//
// Prints one JSON line: events, seconds, ratePerSec, cpuMs (this process, the timed loop only), rows written.
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { positiveInt, nonNegativeInt, postgresUrl } from '../internal/config/index.js'
import { ENTITIES, specOf, type AnyEvent } from '../internal/model/index.js'
import { EventGenerator } from '../internal/producer/index.js'
import { buildLockParentsQuery, buildUpsert, reduceBatch, type Statement } from '../internal/sinks/postgres/index.js'

/** The one JSON line bare-upsert prints. */
export interface BareResult {
  events: number
  /** Events generated per entity table. */
  byEntity: Record<string, number>
  batchSize: number
  transactions: number
  rowsWritten: number
  /** Reduced events of a child entity (orders) the upsert did not write (their parent missing, or stale): 0 expected
   * on fresh events. */
  childrenNotWritten: number
  seconds: number
  ratePerSec: number
  /** CPU of this process during the timed loop (user + system). */
  cpuMs: number
}

function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size))
  return out
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'pg-url': { type: 'string' },
      events: { type: 'string' },
      'batch-size': { type: 'string' },
      seed: { type: 'string' },
      'wait-for-go': { type: 'boolean', default: false },
    },
    strict: true,
  })
  const pgUrl = postgresUrl({ flag: 'pg-url', value: values['pg-url'], env: 'PG_URL' })
  const events = positiveInt({ flag: 'events', value: values.events })
  const batchSize = positiveInt({ flag: 'batch-size', value: values['batch-size'], default: 2000 })
  const seed = nonNegativeInt({ flag: 'seed', value: values.seed, default: Math.floor(Math.random() * 2 ** 31) })

  const generated = new EventGenerator({ seed }).take(events)
  // Entity by entity, in the registry's order (users before the orders that refer to them).
  const byEntity = ENTITIES.map((spec) => ({
    spec,
    events: generated.filter((g) => g.entity === spec.entity).map((g) => g.event as AnyEvent),
  }))

  const client = new pg.Client({ connectionString: pgUrl, application_name: 'cdc-bench-bare' })
  client.on('error', (err) => {
    process.stderr.write(`bare-upsert: PostgreSQL connection failed: ${err.message}\n`)
    process.exit(1)
  })
  await client.connect()
  const query = (st: Statement) => client.query(st)

  if (values['wait-for-go']) {
    process.stdout.write('ready\n')
    const lines = createInterface({ input: process.stdin })
    await new Promise<void>((resolve) => lines.once('line', () => resolve()))
    lines.close()
  }

  let transactions = 0
  let rowsWritten = 0
  let childrenNotWritten = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (const { spec, events: ofEntity } of byEntity) {
    const ref = spec.reference
    for (const batch of chunks(ofEntity, batchSize)) {
      const reduced = reduceBatch(spec, batch)
      await client.query('BEGIN')
      // A child batch share-locks its parents first, as the sink does.
      if (ref !== undefined) {
        const parentIds = reduced.map((e) => (e as unknown as Record<string, string>)[ref.field]!)
        await query(buildLockParentsQuery(specOf(ref.entity), parentIds))
      }
      const written = (await query(buildUpsert(spec, reduced))).rowCount ?? 0
      await client.query('COMMIT')
      rowsWritten += written
      if (ref !== undefined) childrenNotWritten += reduced.length - written
      transactions++
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  await client.end()

  const result: BareResult = {
    events,
    byEntity: Object.fromEntries(byEntity.map((e) => [e.spec.table, e.events.length])),
    batchSize,
    transactions,
    rowsWritten,
    childrenNotWritten,
    seconds: Number(seconds.toFixed(3)),
    ratePerSec: Math.round(events / seconds),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`bare-upsert: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})

// node dist/bench/bare-upsert.js: the benchmark's ceiling for consume -> PostgreSQL. The project's own generator and
// statement builders (reduce, batched UNNEST upsert, the users lock of an orders batch), in batches of --batch-size
// events per transaction on one connection, users first then orders: no Kafka, no decoding, no workers, no offsets.
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
import { ORDER, USER, type OrderEvent, type UserEvent } from '../internal/model/index.js'
import { EventGenerator } from '../internal/producer/index.js'
import { buildLockParentsQuery, buildUpsert, reduceBatch, type Statement } from '../internal/sinks/postgres/index.js'

/** The one JSON line bare-upsert prints. */
export interface BareResult {
  events: number
  users: number
  orders: number
  batchSize: number
  transactions: number
  rowsWritten: number
  /** Reduced order events the upsert did not write (their user missing, or stale): 0 expected on fresh events. */
  ordersNotWritten: number
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
  const users = generated.filter((g) => g.entity === 'user').map((g) => g.event as UserEvent)
  const orders = generated.filter((g) => g.entity === 'order').map((g) => g.event as OrderEvent)

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
  let ordersNotWritten = 0
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (const batch of chunks(users, batchSize)) {
    await client.query('BEGIN')
    rowsWritten += (await query(buildUpsert(USER, reduceBatch(USER, batch)))).rowCount ?? 0
    await client.query('COMMIT')
    transactions++
  }
  for (const batch of chunks(orders, batchSize)) {
    const reduced = reduceBatch(ORDER, batch)
    await client.query('BEGIN')
    await query(
      buildLockParentsQuery(
        USER,
        reduced.map((e) => e.user_id),
      ),
    )
    const written = (await query(buildUpsert(ORDER, reduced))).rowCount ?? 0
    await client.query('COMMIT')
    rowsWritten += written
    ordersNotWritten += reduced.length - written
    transactions++
  }
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  await client.end()

  const result: BareResult = {
    events,
    users: users.length,
    orders: orders.length,
    batchSize,
    transactions,
    rowsWritten,
    ordersNotWritten,
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

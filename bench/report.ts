// bench/results/latest.md: every figure of one run of bench/run.ts as markdown tables (medians, the individual runs
// in parentheses), the machine, and the ratios measured side by side in that run.
import { renderApiSection, type ApiBenchResult } from './api-report.js'
import type { CpuReport } from './cpu.js'

/** What bench/run.ts writes to latest.json (the parts the report reads; every section is optional). */
export interface BenchOutput {
  date: string
  quick: boolean
  only: string
  repeats: number
  events: number
  seconds: number
  argv?: string[]
  machine: Record<string, unknown>
  results: Record<string, unknown>
}

interface CpuSummary {
  medianMsPer1000: Record<string, number>
  medianTotalMsPer1000: number
  medianNetTotalMsPer1000?: number
  runs: CpuReport[]
}

interface Rates {
  events: number
  ratesPerSec: number[]
  medianPerSec: number
}

interface ConsumeResult extends Rates {
  database?: string
  realRatesPerSec?: number[]
  medianRealPerSec?: number
  amplifications?: number[]
  medianAmplification?: number
  amplificationFrom?: string
  cpu?: CpuSummary
  debeziumDoneAfterLastWriteMs?: number[]
  medianDebeziumDoneAfterLastWriteMs?: number
}

interface Redelivery {
  amplification: number
  amplificationFrom: string
  realPerSec: number
}

interface LatencyRow {
  producedPerSec: number
  consumedPerSec: number
  p50: number
  p95: number
  p99: number
  redelivery?: Redelivery
  cpu?: CpuReport
}

interface CdcRow {
  producedPerSec: number
  appliedToPostgresPerSec: number
  changeEventsReplicated: number
  replicatedPerSec: number
  p50: number
  p95: number
  p99: number
  consumeRedelivery?: Redelivery
  cpu?: CpuReport
  /** Set when the window held changes of other writers of cdc_db. */
  note?: string
}

interface CpuPathRow {
  events: number
  runs: number[]
  median: number
}

interface KafkaPerf {
  records: number
  recordBytes: number
  producerPerfRecordsPerSec: number
  producerPerfLine: string
  consumerPerfRecordsPerSec?: number
  consumerPerfFetchRecordsPerSec?: number
}

/** Integers with thousands separators; '-' for a missing or non-finite value. */
export function int(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toLocaleString('en-US')
}

/** ms figures: one decimal below 100, whole above. */
function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-'
  return Math.abs(x) < 100 ? x.toFixed(1) : int(x)
}

/** "median (run; run; run)", or just the value of a single run. */
export function cell(medianValue: number | undefined, runs: readonly number[], f: (x: number) => string = int): string {
  if (medianValue === undefined) return '-'
  const m = `**${f(medianValue)}**`
  return runs.length > 1 ? `${m} (${runs.map(f).join('; ')})` : m
}

function pct(a: number | undefined, b: number | undefined): string | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return undefined
  return `${Math.round((a / b) * 100)}%`
}

const WORKERS = ['0', 'auto'] as const
const GROUPS = [
  'consume',
  'replicate',
  'produce',
  'bare',
  'postgres',
  'kafka-1',
  'kafka-2',
  'kafka-3',
  'connect',
  'cassandra',
]

function table(header: string[], rows: string[][]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ]
}

/** The markdown report of one benchmark run. */
export function renderReport(out: BenchOutput): string {
  const r = out.results
  const consume = (db: 'consume' | 'consume_plain', w: string) => r[`${db}_workers_${w}`] as ConsumeResult | undefined
  const producer = r.producer as Rates | undefined
  const bare = r.bare as (Rates & { cpu?: CpuSummary; batchSize?: number }) | undefined
  const kafka = r.kafkaPerfTools as KafkaPerf | undefined
  const metrics = r.metrics_overhead as
    { onRatesPerSec: number[]; offRatesPerSec: number[]; medianOnPerSec: number; medianOffPerSec: number } | undefined
  const latency = r.endToEndLatencyMs as Record<string, LatencyRow> | undefined
  const cdc = r.postgresToCassandraLatencyMs as Record<string, CdcRow> | undefined
  const m = out.machine
  const lines: string[] = []

  lines.push(`# Benchmark run ${out.date}`, '')
  lines.push(
    `\`npm run bench${out.argv && out.argv.length > 0 ? ` -- ${out.argv.join(' ')}` : ''}\`: sections ${out.only}, ` +
      `${out.repeats} run${out.repeats > 1 ? 's' : ''} each, ${int(out.events)} events per throughput run, ` +
      `${out.seconds} s per paced run${out.quick ? ' (--quick: a smoke run, not a measurement)' : ''}.`,
    '',
  )
  lines.push(
    `Machine: ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node ${m.node}; Kafka ${m.kafka}; ${m.note}.`,
    '',
    'Figures are medians, the individual runs in parentheses.',
    '',
  )

  // Throughput.
  const rows: string[][] = []
  if (producer) rows.push(['producer, `node cmd/produce`', cell(producer.medianPerSec, producer.ratesPerSec)])
  for (const db of ['consume', 'consume_plain'] as const) {
    for (const w of WORKERS) {
      const c = consume(db, w)
      if (!c) continue
      const what = `consume -> PostgreSQL ${c.database ?? db}, \`--workers ${w}\``
      rows.push([`${what}: events produced / active s`, cell(c.medianRealPerSec, c.realRatesPerSec ?? [])])
      rows.push([`${what}: summary ratePerSec (processed / active s)`, cell(c.medianPerSec, c.ratesPerSec)])
      if (c.debeziumDoneAfterLastWriteMs) {
        rows.push([
          `${what}: Debezium's last change in Kafka, ms after the consumer's last write`,
          cell(c.medianDebeziumDoneAfterLastWriteMs, c.debeziumDoneAfterLastWriteMs),
        ])
      }
    }
  }
  if (metrics) {
    const what = 'consume -> PostgreSQL uncaptured, `--workers auto`, events produced / active s, metrics'
    rows.push([`${what} on (scraped by Prometheus)`, cell(metrics.medianOnPerSec, metrics.onRatesPerSec)])
    rows.push([`${what} off (\`--metrics-port 0\`)`, cell(metrics.medianOffPerSec, metrics.offRatesPerSec)])
  }
  if (bare) {
    rows.push([
      `bare batched UNNEST upsert loop (${int(bare.batchSize ?? 2000)} events per transaction, one connection, uncaptured)`,
      cell(bare.medianPerSec, bare.ratesPerSec),
    ])
  }
  if (kafka) {
    rows.push([
      `kafka-producer-perf-test (${int(kafka.records)} records of ${kafka.recordBytes} bytes, acks=all)`,
      int(kafka.producerPerfRecordsPerSec),
    ])
    rows.push(['kafka-consumer-perf-test', int(kafka.consumerPerfRecordsPerSec)])
  }
  if (rows.length > 0) lines.push('## Throughput (events/s)', '', ...table(['measure', 'median (runs)'], rows), '')

  // Ratios, each from two medians of this run.
  const ratios: string[][] = []
  const add = (what: string, a: number | undefined, b: number | undefined, target = '') => {
    const v = pct(a, b)
    ratios.push([what, v ?? 'not measured in this run (run both sections)', target])
  }
  for (const w of WORKERS) {
    if (consume('consume_plain', w) || bare) {
      add(
        `consumer uncaptured / bare loop, \`--workers ${w}\``,
        consume('consume_plain', w)?.medianRealPerSec,
        bare?.medianPerSec,
        '>= 60%',
      )
    }
  }
  for (const w of WORKERS) {
    if (consume('consume', w) || consume('consume_plain', w)) {
      add(
        `consumer captured / uncaptured, \`--workers ${w}\` (what the CDC leg costs the consumer)`,
        consume('consume', w)?.medianRealPerSec,
        consume('consume_plain', w)?.medianRealPerSec,
      )
    }
  }
  for (const w of WORKERS) {
    if (consume('consume', w) && bare) {
      add(
        `consumer captured / bare loop, \`--workers ${w}\``,
        consume('consume', w)?.medianRealPerSec,
        bare.medianPerSec,
      )
    }
  }
  if (metrics) {
    add(
      'consumer with metrics on / off (what the metrics cost)',
      metrics.medianOnPerSec,
      metrics.medianOffPerSec,
      '>= 97%',
    )
  }
  if (producer || kafka) {
    add('producer / kafka-producer-perf-test', producer?.medianPerSec, kafka?.producerPerfRecordsPerSec)
  }
  if (ratios.length > 0) {
    lines.push(
      '## Ratios measured side by side in this run',
      '',
      'Consumer rates are events produced / active seconds (the summary rate counts each message once, when committed; before 2026-12-01 it counted deliveries).',
      '',
      ...table(['ratio', 'value', 'target'], ratios),
      '',
    )
  }

  // Redelivered work.
  const amp: string[][] = []
  for (const db of ['consume', 'consume_plain'] as const) {
    for (const w of WORKERS) {
      const c = consume(db, w)
      if (!c?.amplifications) continue
      amp.push([
        `consume ${c.database ?? db}, \`--workers ${w}\``,
        cell(c.medianAmplification, c.amplifications, (x) => x.toFixed(3)),
        c.amplificationFrom ?? '-',
      ])
    }
  }
  for (const [rate, row] of Object.entries(latency ?? {})) {
    if (row.redelivery) {
      amp.push([
        `latency run at ${rate}`,
        `**${row.redelivery.amplification.toFixed(3)}**`,
        row.redelivery.amplificationFrom,
      ])
    }
  }
  for (const [rate, row] of Object.entries(cdc ?? {})) {
    if (row.consumeRedelivery) {
      amp.push([
        `cdc run at ${rate} (consume)`,
        `**${row.consumeRedelivery.amplification.toFixed(3)}**`,
        row.consumeRedelivery.amplificationFrom,
      ])
    }
  }
  if (amp.length > 0) {
    lines.push(
      '## Redelivered work: messages handed to a sink / events produced (target <= 1.02)',
      '',
      '`handed` counts retries; where the consumer does not report it, processed + abandoned (what it received) is ' +
        'used, which does not see retries inside a batch.',
      '',
      ...table(['run', 'median (runs)', 'from'], amp),
      '',
    )
  }

  // CPU.
  const cpuRows: { what: string; s: CpuSummary }[] = []
  for (const db of ['consume', 'consume_plain'] as const) {
    for (const w of WORKERS) {
      const c = consume(db, w)
      if (c?.cpu) cpuRows.push({ what: `consume ${c.database ?? db}, \`--workers ${w}\``, s: c.cpu })
    }
  }
  if (bare?.cpu) cpuRows.push({ what: 'bare upsert loop', s: bare.cpu })
  const single = (c: CpuReport): CpuSummary => ({
    medianMsPer1000: c.msPer1000,
    medianTotalMsPer1000: c.totalMsPer1000,
    medianNetTotalMsPer1000: c.netTotalMsPer1000,
    runs: [c],
  })
  for (const [rate, row] of Object.entries(latency ?? {})) {
    if (row.cpu) cpuRows.push({ what: `latency run at ${rate}`, s: single(row.cpu) })
  }
  for (const [rate, row] of Object.entries(cdc ?? {})) {
    if (row.cpu) cpuRows.push({ what: `cdc run at ${rate}`, s: single(row.cpu) })
  }
  if (cpuRows.length > 0) {
    const groups = GROUPS.filter((g) => cpuRows.some((c) => g in c.s.medianMsPer1000))
    const f = (x: number) => ms(x)
    lines.push(
      '## CPU per 1,000 events (ms)',
      '',
      'From /proc/<pid>/stat (utime + stime, children that ended included): our processes over their whole life ' +
        '(start-up and idle timeout included; the bare loop: its timed loop only), PostgreSQL as the postmaster and ' +
        'all its backends, each broker, Connect and Cassandra over the same window. "net" subtracts what the servers ' +
        'spent per second just before the section, doing nothing for us (other load on the machine included). The ' +
        'servers are shared: other load during a window counts too. Small runs are dominated by start-up and the ' +
        'idle timeout.',
      '',
      ...table(
        ['run', ...groups, 'total', 'total net of background'],
        cpuRows.map(({ what, s }) => [
          what,
          ...groups.map((g) =>
            g in s.medianMsPer1000
              ? cell(
                  s.medianMsPer1000[g],
                  s.runs.map((x) => x.msPer1000[g] ?? NaN),
                  f,
                )
              : '-',
          ),
          cell(
            s.medianTotalMsPer1000,
            s.runs.map((x) => x.totalMsPer1000),
            f,
          ),
          s.medianNetTotalMsPer1000 === undefined
            ? '-'
            : cell(
                s.medianNetTotalMsPer1000,
                s.runs.map((x) => x.netTotalMsPer1000 ?? NaN),
                f,
              ),
        ]),
      ),
      '',
    )
    const bg = cpuRows.map(({ what, s }) => ({
      what,
      b: s.runs[0]?.backgroundMsPerSec,
      sec: s.runs.map((x) => x.seconds),
    }))
    const servers = GROUPS.filter((g) => bg.some((x) => x.b && g in x.b))
    if (servers.length > 0) {
      lines.push(
        'Background (ms of CPU per second, measured over 2 s before the section) and window lengths:',
        '',
        ...table(
          ['run', ...servers, 'window s'],
          bg.map(({ what, b, sec }) => [
            what,
            ...servers.map((g) => ms(b?.[g])),
            sec.map((x) => x.toFixed(1)).join('; '),
          ]),
        ),
        '',
      )
    }
  }

  if (latency && Object.keys(latency).length > 0) {
    const highest = (latency as Record<string, unknown>).highestPacedRateWithP95Under1s
    lines.push(
      '## End-to-end latency: event created -> row committed in PostgreSQL (ms)',
      '',
      ...table(
        ['producer paced at', 'produced/s', 'consumed/s', 'p50', 'p95', 'p99'],
        Object.entries(latency)
          .filter(([, x]) => typeof x === 'object')
          .map(([rate, x]) => [rate, int(x.producedPerSec), int(x.consumedPerSec), int(x.p50), int(x.p95), int(x.p99)]),
      ),
      '',
      ...(typeof highest === 'number' ? [`Highest paced rate with p95 under 1 s: ${int(highest)} events/s.`, ''] : []),
    )
  }
  const scale = r.scaleOut as
    | {
        partitions: number
        produced: number
        producedPerSec: number
        seconds: number
        committedOnKilledMembersPartitions: number
        processedBySurvivorAndAdded: number
        everyMessageCommitted: boolean
        p50Ms: number
        p95Ms: number
        members: { survivor: { processed: number }; added: { processed: number } }
      }
    | undefined
  if (scale) {
    lines.push(
      '## Scale-out: three consume processes in one group',
      '',
      `${scale.partitions} partitions, the producer paced at 5,000 events/s for ${scale.seconds} s ` +
        `(${int(scale.producedPerSec)}/s reached, ${int(scale.produced)} events); two members from the start, one ` +
        'SIGKILLed a third of the way in, a third added halfway.',
      '',
      ...table(
        ['measure', 'value'],
        [
          [
            "committed on the killed member's partitions before the kill",
            int(scale.committedOnKilledMembersPartitions),
          ],
          ['processed by the surviving first member', int(scale.members.survivor.processed)],
          ['processed by the added member', int(scale.members.added.processed)],
          ['every message committed at the end', scale.everyMessageCommitted ? 'yes' : 'NO'],
          ['event -> PostgreSQL p50 / p95 (worst member)', `${int(scale.p50Ms)} / ${int(scale.p95Ms)} ms`],
        ],
      ),
      '',
    )
  }
  if (cdc && Object.keys(cdc).length > 0) {
    lines.push(
      '## PostgreSQL commit -> row in Cassandra (ms)',
      '',
      ...table(
        [
          'producer paced at',
          'produced/s',
          'applied to PostgreSQL/s',
          'changes replicated',
          'replicated/s',
          'p50',
          'p95',
          'p99',
        ],
        Object.entries(cdc).map(([rate, x]) => [
          rate,
          int(x.producedPerSec),
          int(x.appliedToPostgresPerSec),
          int(x.changeEventsReplicated),
          int(x.replicatedPerSec),
          int(x.p50),
          int(x.p95),
          int(x.p99),
        ]),
      ),
      '',
      ...Object.entries(cdc).flatMap(([rate, x]) => (x.note ? [`Note at ${rate}: ${x.note}.`, ''] : [])),
    )
  }
  if (kafka) lines.push('kafka-producer-perf-test: `' + kafka.producerPerfLine + '`', '')
  lines.push(...renderApiSection(r.api as ApiBenchResult | undefined))
  const cpuPath = r.cpuPath as Record<'workers0' | 'workersPool', CpuPathRow | undefined> | undefined
  if (cpuPath) {
    const rows = (
      [
        ['in the thread that fetched (`--workers 0`)', cpuPath.workers0],
        ['through worker threads, one per partition (`--workers auto`)', cpuPath.workersPool],
      ] as const
    ).filter(([, x]) => x !== undefined)
    lines.push(
      "## The consumer's CPU per event, no network (`bench/cpu-path.ts`)",
      '',
      "Kafka message bytes -> decode and validate -> reduce -> the PostgreSQL sink's statements, through the sink's " +
        'own classes with the pg pool stubbed, over a fixed seeded set of events; CPU of the whole process ' +
        '(process.cpuUsage) per 1,000 events, after two warm-up passes.',
      '',
      ...table(
        ['path', 'events', 'CPU ms per 1,000 events'],
        rows.map(([what, x]) => [what, int(x!.events), cell(x!.median, x!.runs, (v) => v.toFixed(2))]),
      ),
      '',
    )
  }
  return lines.join('\n')
}

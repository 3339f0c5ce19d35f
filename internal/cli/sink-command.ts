// The body every sink command shares (node cmd/consume, node cmd/replicate, and later sinks): flags -> settings ->
// the sink's options, validated once here in the main thread -> Kafka preflight -> the sink's preflight (in
// runPipeline, before any worker starts) -> the engine -> the summary -> the exit code.
import { hideBin } from 'yargs/helpers'
import { loadDotEnv } from '../config/index.js'
import { connectPreflightAdmin, createKafka } from '../kafka/index.js'
import { createLogger, type Logger } from '../log/index.js'
import {
  engineMetrics,
  fetchLag,
  lagMetrics,
  slotMetrics,
  startCommandMetrics,
  startProgress,
} from '../metrics/index.js'
import {
  reportRun,
  runPipeline,
  type Engine,
  type OptionsSchema,
  type SinkModule,
  type StatsObserver,
} from '../pipeline/index.js'
import { commandLine, onShutdownSignals, readSettings, runCommand } from './cli.js'
import { engineSettings, withEngineFlags } from './engine-flags.js'
import { SETTINGS, settingsOf, type CommandName, type SettingDef, type SettingReader } from './settings.js'

/** What a sink command is: its name and text, its sink, its group and the topics it consumes. */
export interface SinkCommand<O> {
  name: CommandName
  description: string
  /** The sink module, with its URL (worker threads load it by that). */
  sink: SinkModule<O> & { url: string }
  /** The --group row of the command (its default differs per command). */
  group: SettingDef<string>
  /** Kafka client id. */
  clientId: string
  /** The --metrics-port row of the command (its default differs per command). */
  metricsPort: SettingDef<number>
  /** The PostgreSQL URL whose database's replication slots the command exports (node cmd/replicate), if any. */
  slotsOf?: (options: O) => string | undefined
  /**
   * The topics to consume, the sink options that do not come from the sink's own flags (topic names, the topic ->
   * table map), and which topics wait for which (see EngineOptions.dependsOn). Throws a CONFIG_ERROR naming the flag.
   */
  plan(get: SettingReader): {
    topics: string[]
    options: Partial<O>
    dependsOn?: Record<string, string[]>
  }
  /**
   * Once Kafka answered, before the pipeline starts: what only a server can tell (a table's definition from
   * PostgreSQL's catalog), as more topics to consume and more options.
   */
  resolve?(
    options: O,
    get: SettingReader,
    context: { log: Logger; timeoutMs: number },
  ): Promise<{ topics?: string[]; options?: Partial<O> }>
}

/**
 * The sink's options from the command's validated settings: every option of its schema must be one of the
 * command's rows (so --help, the README and the validation all know it), and is read through that row.
 */
export function sinkOptionsOf<O>(command: CommandName, schema: OptionsSchema<O>, get: SettingReader): Partial<O> {
  const rows = settingsOf(command)
  const out: Record<string, unknown> = {}
  for (const [key, def] of Object.entries(schema) as [string, { flag: string } | undefined][]) {
    if (def === undefined) continue
    const row = rows.find((r) => r.flag === def.flag)
    if (row === undefined) throw new Error(`node cmd/${command} has no --${def.flag} row for sink option ${key}`)
    out[key] = get(row)
  }
  return out as Partial<O>
}

/** Runs a sink command as the process' main (see runCommand for the exit codes). */
export function runSinkCommand<O>(c: SinkCommand<O>): void {
  runCommand(c.name, () => sinkCommandMain(c))
}

async function sinkCommandMain<O>(c: SinkCommand<O>): Promise<number> {
  loadDotEnv()
  const argv = await withEngineFlags(commandLine(c.name, c.description, hideBin(process.argv))).parseAsync()
  const get = readSettings(c.name, argv)
  const brokers = get(SETTINGS.brokers)
  const groupId = get(c.group)
  const plan = c.plan(get)
  const options = { ...sinkOptionsOf(c.name, c.sink.optionsSchema, get), ...plan.options } as O
  const engine = engineSettings(argv)
  const pretty = engine.logFormat === 'pretty'
  const log = createLogger({ level: engine.logLevel, pretty, name: c.name })
  // The endpoint first: a port in use is a usage error, named before anything connects.
  const metrics = await startCommandMetrics({
    command: c.name,
    host: get(SETTINGS.metricsHost),
    port: get(c.metricsPort),
    log,
  })
  try {
    return await consume(c, { get, brokers, groupId, plan, options, engine, pretty, log, metrics })
  } finally {
    await metrics?.close()
  }
}

async function consume<O>(
  c: SinkCommand<O>,
  x: {
    get: SettingReader
    brokers: string[]
    groupId: string
    plan: ReturnType<SinkCommand<O>['plan']>
    options: O
    engine: ReturnType<typeof engineSettings>
    pretty: boolean
    log: Logger
    metrics: Awaited<ReturnType<typeof startCommandMetrics>>
  },
): Promise<number> {
  const { get, brokers, groupId, plan, options, engine, pretty, log, metrics } = x
  // A signal stops cleanly whenever it comes. One that arrives while the command is still starting (connecting,
  // checking topics, joining the group: seconds when a dead member's session has to expire first) is kept and
  // applied the moment the engine runs; without a handler yet, its default action killed the process mid-start.
  let stopEngine: ((why: string) => void) | undefined
  let stopAsked: string | undefined
  onShutdownSignals(
    (signal) => (stopEngine === undefined ? (stopAsked = signal) : stopEngine(signal)),
    (line) => log.info(line),
  )

  // Kafka first, within --connect-timeout: an unreachable broker is named before anything else starts.
  await (await connectPreflightAdmin(brokers, { timeoutMs: engine.connectTimeoutMs })).disconnect()
  const resolved = (await c.resolve?.(options, get, { log, timeoutMs: engine.connectTimeoutMs })) ?? {}
  Object.assign(options as object, resolved.options)
  const topics = [...plan.topics, ...(resolved.topics ?? [])]
  const kafka = createKafka({ brokers, clientId: c.clientId, logger: log })
  // The metrics read the engine's own counters and state (the summary's), once it exists.
  let running: Engine | undefined
  let observer: StatsObserver | undefined
  if (metrics !== undefined) {
    observer = engineMetrics(metrics.registry, { stats: () => running?.stats, state: () => running?.state() })
    const lag = lagMetrics(metrics.registry, {
      groupId,
      assignment: () => running?.state().assignment ?? {},
      admin: () => kafka.admin(),
    })
    metrics.onClose(() => lag.close())
    const pgUrl = c.slotsOf?.(options)
    if (pgUrl !== undefined) {
      const slots = slotMetrics(metrics.registry, { pgUrl, log: log.child({ module: 'metrics' }) })
      metrics.onClose(() => slots.stop())
    }
    metrics.setReadiness(() => {
      const s = running?.state()
      if (s === undefined) return { ready: false, reason: 'starting: checking Kafka, the topics and the sink' }
      if (s.phase === 'stopping') return { ready: false, reason: 'stopping' }
      if (s.phase === 'starting') return { ready: false, reason: `joining consumer group ${groupId}` }
      const partitions = Object.values(s.assignment).reduce((n, ps) => n + ps.length, 0)
      if (partitions === 0) return { ready: false, reason: `in consumer group ${groupId} with no partition assigned` }
      return { ready: true, detail: { group: groupId, partitions } }
    })
  }
  // On a terminal: a live line (processed, rate, lag, DLQ, p95), its lag asked of the brokers with an admin of its own.
  let progress: { stop(): void } | undefined
  if (get(SETTINGS.progress)) {
    const admin = kafka.admin()
    let connected: Promise<void> | undefined
    const line = startProgress({
      stats: () => running?.stats,
      lag: async () => {
        const assignment = running?.state().assignment
        if (assignment === undefined) return undefined
        await (connected ??= admin.connect())
        return (await fetchLag(admin, groupId, assignment)).reduce((n, p) => n + p.lag, 0n)
      },
      write: (text) => process.stderr.write(text),
    })
    progress = {
      stop: () => {
        line.stop()
        if (connected !== undefined) void admin.disconnect().catch(() => undefined)
      },
    }
  }
  try {
    return await run()
  } finally {
    progress?.stop()
  }

  function run(): Promise<number> {
    return reportRun(c.name, log, engine.summaryJson, () =>
      runPipeline(
        kafka,
        brokers,
        {
          kafka,
          groupId,
          topics,
          sink: {
            module: c.sink.url,
            options: options as Record<string, unknown>,
            log: { level: engine.logLevel, pretty, name: c.name },
          },
          ...engine.options,
          ...(c.sink.sinkDownBackoffMaxMs === undefined ? {} : { sinkDownBackoffMaxMs: c.sink.sinkDownBackoffMaxMs }),
          connectTimeoutMs: engine.connectTimeoutMs,
          ...(plan.dependsOn === undefined ? {} : { dependsOn: plan.dependsOn }),
          log,
          ...(observer === undefined ? {} : { observer }),
          onEngine: (e) => (running = e),
          // In the main thread, before any worker starts (runPipeline runs it after the topics are checked).
          preflight: () => c.sink.preflight(options, log, { timeoutMs: engine.connectTimeoutMs }),
          onStarted: (stop) => {
            stopEngine = stop
            if (stopAsked !== undefined) stop(stopAsked)
          },
        },
        log,
      ),
    )
  }
}

// The body every sink command shares (node cmd/consume, node cmd/replicate, and later sinks): flags -> settings ->
// the sink's options, validated once here in the main thread -> Kafka preflight -> the sink's preflight (in
// runPipeline, before any worker starts) -> the engine -> the summary -> the exit code.
import { hideBin } from 'yargs/helpers'
import { loadDotEnv } from '../config/index.js'
import { connectPreflightAdmin, createKafka } from '../kafka/index.js'
import { createLogger, type Logger } from '../log/index.js'
import { reportRun, runPipeline, type OptionsSchema, type SinkModule } from '../pipeline/index.js'
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

  // Kafka first, within --connect-timeout: an unreachable broker is named before anything else starts.
  await (await connectPreflightAdmin(brokers, { timeoutMs: engine.connectTimeoutMs })).disconnect()
  const resolved = (await c.resolve?.(options, get, { log, timeoutMs: engine.connectTimeoutMs })) ?? {}
  Object.assign(options as object, resolved.options)
  const topics = [...plan.topics, ...(resolved.topics ?? [])]
  const kafka = createKafka({ brokers, clientId: c.clientId, logger: log })
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
        connectTimeoutMs: engine.connectTimeoutMs,
        ...(plan.dependsOn === undefined ? {} : { dependsOn: plan.dependsOn }),
        log,
        // In the main thread, before any worker starts (runPipeline runs it after the topics are checked).
        preflight: () => c.sink.preflight(options, log, { timeoutMs: engine.connectTimeoutMs }),
        onStarted: (stop) => onShutdownSignals(stop, (line) => log.info(line)),
      },
      log,
    ),
  )
}

export { ExitCodes, commandLine, formatSummary, onShutdownSignals, runCommand } from './cli.js'
export { engineSettings, withEngineFlags } from './engine-flags.js'
export type { EngineArgs } from './engine-flags.js'

export {
  EXIT_CODE_DOCS,
  ExitCodes,
  commandLine,
  exitCodeOf,
  formatSummary,
  onShutdownSignals,
  packageVersion,
  readSettings,
  runCommand,
  withSettings,
} from './cli.js'
export { engineSettings, withEngineFlags } from './engine-flags.js'
export type { EngineArgs } from './engine-flags.js'
export { COMMANDS, SETTINGS, defaultText, helpText, readSetting, readmeTable, settingsOf } from './settings.js'
export type { CommandName, SettingDef, SettingKind, SettingReader } from './settings.js'
export { runSinkCommand, sinkOptionsOf } from './sink-command.js'
export type { SinkCommand } from './sink-command.js'

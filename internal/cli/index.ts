export { ExitCodes, commandLine, formatSummary, onShutdownSignals, runCommand } from './cli.js'

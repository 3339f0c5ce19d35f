export { ExitCodes, commandLine, formatSummary, onShutdownSignals, percentile, runCommand } from './cli.js'

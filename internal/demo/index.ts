export { formatDemoReport, runDemo } from './demo.js'
export type { DemoOptions, DemoReport } from './demo.js'

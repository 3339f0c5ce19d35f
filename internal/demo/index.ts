export { formatDemoReport, runDemo } from './demo.js'
export type { DemoOptions, DemoReport } from './demo.js'
export { canonicalJson, checkThroughApi, differenceOf, keyNameOf } from './cache-check.js'
export type { CacheCheck, CacheTableCheck, CheckIo } from './cache-check.js'

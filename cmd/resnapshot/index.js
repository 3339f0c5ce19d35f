// `node cmd/resnapshot` runs the compiled TypeScript (npm ci builds it; npm run build rebuilds it).
import { existsSync } from 'node:fs'

const entry = new URL('../../dist/cmd/resnapshot/main.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('resnapshot: not built yet: run `npm ci` (or `npm run build`) first\n')
  process.exit(1)
}
await import(entry.href)

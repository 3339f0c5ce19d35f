// Summarises a V8 CPU profile (node --cpu-prof) as the markdown committed in bench/results: the busy time, the
// functions with the most self time, and self time by package. Usage:
//   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/cmd/consume/main.js ...   then
//   node dist/bench/profile-summary.js /tmp/prof/CPU.*.cpuprofile [rows]
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Where a frame's code lives: our folder under dist/, a package, or the runtime. */
export function packageOf(url: string, name: string): string {
  if (url.includes('node_modules/')) return `node_modules/${url.split('node_modules/')[1].split('/')[0]}`
  const ours = /\/dist\/(?:internal|cmd|bench)\/([^/]+)/.exec(url)
  if (ours) return `ours: ${ours[1]}`
  if (url.startsWith('node:')) return 'node'
  return url === '' ? name : url
}

/** The summary as markdown lines. */
export function summarise(profile: Profile, rows = 25): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  let idle = 0
  let total = 0
  const byFunction = new Map<string, number>()
  const byPackage = new Map<string, number>()
  for (const [id, us] of self) {
    total += us
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const name = functionName || '(anonymous)'
    if (name === '(idle)') {
      idle += us
      continue
    }
    const where = url.split('/').slice(-2).join('/')
    const key = where ? `${name} (${where}:${lineNumber + 1})` : name
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    const pkg = packageOf(url, name)
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  }
  const busy = total - idle
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1)}%`
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n)
  return [
    `Sampled ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s (idle ${(idle / 1e6).toFixed(2)} s).`,
    '',
    '| self time (of busy) | function |',
    '| --- | --- |',
    ...top(byFunction, rows).map(([k, us]) => `| ${pct(us)} | ${k.replace(/\|/g, '\\|')} |`),
    '',
    '| self time (of busy) | where |',
    '| --- | --- |',
    ...top(byPackage, 12).map(([k, us]) => `| ${pct(us)} | ${k.replace(/\|/g, '\\|')} |`),
  ]
}

if (process.argv[1]?.endsWith('profile-summary.js')) {
  const file = process.argv[2]
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [rows]')
    process.exit(2)
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  console.log(summarise(profile, Number(process.argv[3] ?? 25)).join('\n'))
}

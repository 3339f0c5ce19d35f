// Prints the medians and new/old ratios of an A/B run of bench/ab.sh: node bench/ab-summary.js DIR
// Reads DIR/old-N.json and DIR/new-N.json (each one bench run of one repeat) and writes DIR/summary.md.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'

const dir = process.argv[2]
if (!dir) {
  console.error('usage: node bench/ab-summary.js DIR')
  process.exit(2)
}
const runs = { old: [], new: [] }
for (const f of readdirSync(dir).sort()) {
  const m = /^(old|new)-\d+\.json$/.exec(f)
  if (m) runs[m[1]].push(JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')).results)
}
const median = (xs) => {
  const s = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b)
  if (s.length === 0) return undefined
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const measures = [
  ['consume uncaptured --workers 0, events/s', (r) => r.consume_plain_workers_0?.medianRealPerSec],
  ['consume uncaptured --workers auto, events/s', (r) => r.consume_plain_workers_auto?.medianRealPerSec],
  [
    'consume uncaptured --workers auto, CPU ms per 1,000 events (all processes)',
    (r) => r.consume_plain_workers_auto?.cpu?.medianTotalMsPer1000,
  ],
  ['consume captured --workers auto, events/s', (r) => r.consume_workers_auto?.medianRealPerSec],
  ['bare loop, events/s', (r) => r.bare?.medianPerSec],
]
for (const rate of ['1000/s', '5000/s', '10000/s']) {
  for (const p of ['p50', 'p95', 'p99']) {
    measures.push([`event -> PostgreSQL at ${rate}, ${p} ms`, (r) => r.endToEndLatencyMs?.[rate]?.[p]])
  }
}
for (const rate of ['500/s', '2000/s']) {
  measures.push([`PostgreSQL -> Cassandra at ${rate}, p95 ms`, (r) => r.postgresToCassandraLatencyMs?.[rate]?.p95])
}
const fmt = (v) => (v === undefined ? '-' : Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1))
const lines = [
  `A/B in one run: ${runs.old.length} old and ${runs.new.length} new runs, alternating (${readFileSync(`${dir}/README`, 'utf8').trim()})`,
  '',
  '| measure | old: median (runs) | new: median (runs) | new / old |',
  '| --- | --- | --- | --- |',
]
for (const [name, get] of measures) {
  const o = runs.old.map(get)
  const n = runs.new.map(get)
  const mo = median(o)
  const mn = median(n)
  if (mo === undefined && mn === undefined) continue
  const ratio = mo && mn ? `${((mn / mo) * 100).toFixed(0)}%` : '-'
  lines.push(
    `| ${name} | **${fmt(mo)}** (${o.map(fmt).join('; ')}) | **${fmt(mn)}** (${n.map(fmt).join('; ')}) | ${ratio} |`,
  )
}
const md = `${lines.join('\n')}\n`
writeFileSync(`${dir}/summary.md`, md)
console.log(md)

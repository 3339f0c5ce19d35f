// The live progress line of node cmd/consume and node cmd/replicate on a terminal (like produce's): processed and
// its rate, lag over the assigned partitions, dead letters and the latency p95, redrawn every second on stderr.
import type { EngineStats } from '../pipeline/index.js'

/** One progress line from the engine's counts (the summary's), the rate since the last line, and the lag. */
export function progressLine(
  s: Pick<EngineStats, 'processed' | 'deadLettered' | 'latencyMs'>,
  ratePerSec: number,
  lag: bigint | undefined,
): string {
  const p95 = s.latencyMs.percentile(95)
  return (
    `  processed ${s.processed}  ${Math.round(ratePerSec)} events/s  lag ${lag === undefined ? '-' : lag}  ` +
    `DLQ ${s.deadLettered}  p95 ${Number.isNaN(p95) ? '-' : `${Math.round(p95)} ms`}`
  )
}

/**
 * Redraws the line every `intervalMs` while `stats()` gives the engine's stats; `lag()` is asked in the background
 * (its last answer is shown). stop() draws the last line and ends it with a newline.
 */
export function startProgress(o: {
  stats: () => EngineStats | undefined
  lag: () => Promise<bigint | undefined>
  write: (text: string) => void
  intervalMs?: number
}): { stop(): void } {
  let lag: bigint | undefined
  let asking = false
  let last = { at: performance.now(), processed: 0 }
  let drawn = false
  const draw = () => {
    const s = o.stats()
    if (s === undefined) return
    const now = performance.now()
    const rate = ((s.processed - last.processed) * 1000) / Math.max(1, now - last.at)
    last = { at: now, processed: s.processed }
    // Padded: a shorter line overwrites all of the one before.
    o.write(`\r${progressLine(s, rate, lag).padEnd(80)}`)
    drawn = true
    if (!asking) {
      asking = true
      o.lag()
        .then((l) => (lag = l ?? lag))
        .catch(() => undefined)
        .finally(() => (asking = false))
    }
  }
  const timer = setInterval(draw, o.intervalMs ?? 1_000)
  timer.unref()
  return {
    stop() {
      clearInterval(timer)
      if (drawn) o.write('\n')
    },
  }
}

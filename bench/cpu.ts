// CPU time of the benchmark's processes and of the stack's servers, from /proc/<pid>/stat (Linux only), so that a
// run can say which process spent how much CPU per 1,000 events.
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

/** Clock ticks per second of the times in /proc/<pid>/stat (`getconf CLK_TCK`; 100 on Linux in practice). */
export const CLK_TCK = ((): number => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isInteger(n) && n > 0 ? n : 100
  } catch {
    return 100
  }
})()

/** The CPU fields of one /proc/<pid>/stat line, in clock ticks. */
export interface ProcStat {
  pid: number
  ppid: number
  /** utime + stime: the process's own CPU, all its threads included. */
  own: number
  /** cutime + cstime: CPU of its children that have exited and been waited for (a PostgreSQL backend that ended). */
  reaped: number
}

/**
 * Parses a /proc/<pid>/stat line. The command name (field 2) is in parentheses and may contain spaces and
 * parentheses itself, so the fields are counted from the last ')'.
 */
export function parseStat(line: string): ProcStat {
  const close = line.lastIndexOf(')')
  const pid = Number(line.slice(0, line.indexOf(' ')))
  // After ')': field 3 (state) is index 0, so field n is index n - 3.
  const f = line
    .slice(close + 2)
    .trim()
    .split(' ')
  const num = (field: number) => Number(f[field - 3])
  const stat = { pid, ppid: num(4), own: num(14) + num(15), reaped: num(16) + num(17) }
  if (close < 0 || ![stat.pid, stat.ppid, stat.own, stat.reaped].every(Number.isFinite)) {
    throw new Error(`not a /proc/<pid>/stat line: ${line.slice(0, 80)}`)
  }
  return stat
}

/** The stat of one process, or undefined when it is gone. */
export function readStat(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return undefined
  }
}

/** Every process's stat, by parent pid. */
function processesByParent(): Map<number, ProcStat[]> {
  const byParent = new Map<number, ProcStat[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = readStat(Number(name))
    if (s === undefined) continue
    const siblings = byParent.get(s.ppid)
    if (siblings) siblings.push(s)
    else byParent.set(s.ppid, [s])
  }
  return byParent
}

/**
 * CPU ticks of a process tree: the process's own, its exited children's (reaped), and its live descendants'.
 * The difference of two readings counts every child that lived between them, ended or not: a backend that ended
 * in between moved from the live sum into the parent's reaped times.
 */
export function treeTicks(root: ProcStat, byParent: ReadonlyMap<number, readonly ProcStat[]>): number {
  let ticks = root.own + root.reaped
  for (const child of byParent.get(root.pid) ?? []) ticks += treeTicks(child, byParent)
  return ticks
}

/** The stack's servers, each one process group: name -> pid, from the pid files stack/stack.sh records. */
export type Servers = Record<string, number>

/** The server names of stack/stack.sh, as its pid files name them. */
export const SERVER_NAMES = ['postgres', 'kafka-1', 'kafka-2', 'kafka-3', 'connect', 'cassandra', 'redis'] as const

/**
 * The running servers of the local stack from $CDC_STACK_HOME/run/<name>.pid (stack/lib/common.sh). For PostgreSQL
 * the pid is the postmaster's; its backends are its children. A missing or dead one is left out (and said).
 */
export function stackServers(warn: (line: string) => void = console.warn): Servers {
  const runDir = join(
    process.env.CDC_STACK_HOME?.replace(/^~/, homedir()) ?? join(homedir(), '.cache/cdc-pipeline'),
    'run',
  )
  const servers: Servers = {}
  for (const name of SERVER_NAMES) {
    let pid: number
    try {
      pid = Number(readFileSync(join(runDir, `${name}.pid`), 'utf8').trim())
    } catch {
      warn(`cpu: no pid file for ${name} in ${runDir}: its CPU is not measured`)
      continue
    }
    if (readStat(pid) === undefined) warn(`cpu: ${name} (pid ${pid}) is not running: its CPU is not measured`)
    else servers[name] = pid
  }
  return servers
}

/** CPU ticks of each server's process tree now; a server that is gone reads undefined. */
export function sampleServers(servers: Servers): Record<string, number | undefined> {
  const byParent = processesByParent()
  const out: Record<string, number | undefined> = {}
  for (const [name, pid] of Object.entries(servers)) {
    const root = readStat(pid)
    out[name] = root === undefined ? undefined : treeTicks(root, byParent)
  }
  return out
}

const ticksToMs = (ticks: number) => (ticks * 1000) / CLK_TCK

/**
 * Follows one child process of ours while it runs: its CPU (own + reaped children) is read every `everyMs` and on
 * demand, the last reading kept, since after it exits (and Node has waited for it) /proc has nothing left to read.
 * At most the last interval before the exit is not seen.
 */
export class ChildCpu {
  #lastTicks = 0
  readonly #timer: NodeJS.Timeout

  constructor(
    readonly pid: number,
    everyMs = 100,
  ) {
    this.#timer = setInterval(() => this.sample(), everyMs)
    this.#timer.unref()
  }

  /** Reads the child's CPU now (call it when the child has printed its summary, just before it exits). */
  sample(): void {
    const s = readStat(this.pid)
    // A zombie's times are still readable; once it is gone the last reading stands.
    if (s !== undefined) this.#lastTicks = Math.max(this.#lastTicks, s.own + s.reaped)
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  get ms(): number {
    return ticksToMs(this.#lastTicks)
  }
}

/** CPU of one measured run, per process group. */
export interface CpuReport {
  /** Events the run handled (the denominator). */
  events: number
  /** Length of the window the servers were measured over. */
  seconds: number
  /** CPU ms per group over the window. */
  ms: Record<string, number>
  /** ms of CPU per 1,000 events, per group and in total. */
  msPer1000: Record<string, number>
  totalMsPer1000: number
  /** The servers' CPU per second while nothing of the benchmark ran, measured just before (other load included). */
  backgroundMsPerSec?: Record<string, number>
  /** msPer1000 total minus the servers' background over the same window. */
  netTotalMsPer1000?: number
}

/** Servers' CPU ms per second over `ms` while the benchmark does nothing: what they spend anyway. */
export async function serverBackground(servers: Servers, ms = 2_000): Promise<Record<string, number>> {
  const a = sampleServers(servers)
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, ms))
  const b = sampleServers(servers)
  const s = (performance.now() - t0) / 1000
  const out: Record<string, number> = {}
  for (const name of Object.keys(servers)) {
    const x = a[name]
    const y = b[name]
    if (x !== undefined && y !== undefined) out[name] = round1(ticksToMs(y - x) / s)
  }
  return out
}

const round1 = (x: number) => Math.round(x * 10) / 10

/**
 * A measurement window over the servers: open it just before the measured processes start, close it when they have
 * exited, giving their CPU (from their ChildCpu) beside the servers'.
 */
export class CpuWindow {
  readonly #servers: Servers
  readonly #start: Record<string, number | undefined>
  readonly #t0 = performance.now()

  constructor(
    servers: Servers,
    readonly background?: Record<string, number>,
  ) {
    this.#servers = servers
    this.#start = sampleServers(servers)
  }

  /** Closes the window. `children` are our processes' CPU ms (ChildCpu.ms); `events` the run's events. */
  close(children: Record<string, number>, events: number): CpuReport {
    const end = sampleServers(this.#servers)
    const seconds = (performance.now() - this.#t0) / 1000
    const ms: Record<string, number> = {}
    for (const [name, v] of Object.entries(children)) ms[name] = Math.round(v)
    for (const name of Object.keys(this.#servers)) {
      const a = this.#start[name]
      const b = end[name]
      // A server restarted inside the window (a new pid, or gone) has no meaningful difference.
      if (a !== undefined && b !== undefined && b >= a) ms[name] = Math.round(ticksToMs(b - a))
    }
    const per = (v: number) => round1((v * 1000) / events)
    const msPer1000 = Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, per(v)]))
    const total = Object.values(ms).reduce((x, y) => x + y, 0)
    const report: CpuReport = {
      events,
      seconds: Number(seconds.toFixed(2)),
      ms,
      msPer1000,
      totalMsPer1000: per(total),
    }
    if (this.background) {
      const idle = Object.entries(this.background)
        .filter(([k]) => k in ms)
        .reduce((x, [, v]) => x + v * seconds, 0)
      report.backgroundMsPerSec = this.background
      report.netTotalMsPer1000 = per(total - idle)
    }
    return report
  }
}

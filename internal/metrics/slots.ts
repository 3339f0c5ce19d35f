// node cmd/replicate's PostgreSQL side: the logical replication slots of its database, polled every 15 s over its
// own short connection (--pg-url, the least-privileged cdc_app role: pg_replication_slots and pg_current_wal_lsn()
// are readable by any role). Retained WAL is what the slot keeps from being recycled (current - restart_lsn), lag
// what Debezium has not confirmed yet (current - confirmed_flush_lsn).
import pg from 'pg'
import { Gauge, type Registry } from 'prom-client'
import type { Logger } from '../log/index.js'

/** One slot as polled. */
export interface SlotReading {
  slot: string
  active: boolean
  walStatus: string | null
  retainedBytes: number | null
  lagBytes: number | null
}

/** The values wal_status may take (PostgreSQL 13+): one series each, 1 for the current one. */
export const WAL_STATUSES = ['reserved', 'extended', 'unreserved', 'lost'] as const

export const SLOTS_SQL = `SELECT slot_name, active, wal_status,
    pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 AS retained,
    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8 AS lag
  FROM pg_replication_slots WHERE slot_type = 'logical' AND database = current_database() ORDER BY slot_name`

/** Reads the slots once. */
export async function readSlots(pgUrl: string, timeoutMs = 5_000): Promise<SlotReading[]> {
  const client = new pg.Client({
    connectionString: pgUrl,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  })
  client.on('error', () => undefined)
  await client.connect()
  try {
    const { rows } = await client.query<{
      slot_name: string
      active: boolean
      wal_status: string | null
      retained: number | null
      lag: number | null
    }>(SLOTS_SQL)
    return rows.map((r) => ({
      slot: r.slot_name,
      active: r.active,
      walStatus: r.wal_status,
      retainedBytes: r.retained,
      lagBytes: r.lag,
    }))
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** Polls the slots every `intervalMs` (15 s) and exports them; stop() on exit. */
export function slotMetrics(
  registry: Registry,
  o: { pgUrl: string; log: Logger; intervalMs?: number; read?: () => Promise<SlotReading[]> },
): { stop(): void; poll(): Promise<void> } {
  let slots: SlotReading[] = []
  let failing = false
  const read = o.read ?? (() => readSlots(o.pgUrl))
  const poll = async () => {
    try {
      slots = await read()
      if (failing) o.log.info('reading the replication slots works again')
      failing = false
    } catch (err) {
      if (!failing) o.log.warn({ err: String((err as Error).message ?? err) }, 'cannot read the replication slots')
      failing = true
    }
  }
  const registers = [registry]
  const gauge = (name: string, help: string, value: (s: SlotReading) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['slot'],
      registers,
      collect() {
        this.reset()
        for (const s of slots) {
          const v = value(s)
          if (v !== null) this.set({ slot: s.slot }, v)
        }
      },
    })
  gauge(
    'cdc_replication_slot_retained_wal_bytes',
    'WAL the slot keeps from being recycled: pg_current_wal_lsn() - restart_lsn',
    (s) => s.retainedBytes,
  )
  gauge(
    'cdc_replication_slot_lag_bytes',
    'WAL not yet confirmed by the slot reader (Debezium): pg_current_wal_lsn() - confirmed_flush_lsn',
    (s) => s.lagBytes,
  )
  gauge('cdc_replication_slot_active', '1 when a reader (Debezium) is connected to the slot', (s) => (s.active ? 1 : 0))
  new Gauge({
    name: 'cdc_replication_slot_wal_status',
    help: "The slot's wal_status: 1 for the current one (reserved, extended, unreserved, lost)",
    labelNames: ['slot', 'status'],
    registers,
    collect() {
      this.reset()
      for (const s of slots)
        for (const status of WAL_STATUSES) this.set({ slot: s.slot, status }, s.walStatus === status ? 1 : 0)
    },
  })
  new Gauge({
    name: 'cdc_replication_slot_poll_ok',
    help: '1 when the last reading of pg_replication_slots succeeded',
    registers,
    collect() {
      this.set(failing ? 0 : 1)
    },
  })
  const timer = setInterval(() => void poll(), o.intervalMs ?? 15_000)
  timer.unref()
  void poll()
  return { stop: () => clearInterval(timer), poll }
}

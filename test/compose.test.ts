// docker-compose.yml, checked without a Docker engine: a real compose parser (`docker-compose config`) validates the
// file against the compose schema and prints the resolved configuration (anchors merged, defaults interpolated,
// relative paths made absolute); the assertions below read that output, not the raw file, so they see what Docker
// would run. They cover the faults of the reference compose file: clients pointed at a listener port that did not
// exist, broker data off the mounted volume, RF 1 internal topics, no min.insync.replicas. And the metrics: the JMX
// exporter agent in every JVM (jar from the fetching service's volume, the local stack's rules), Prometheus scraping
// exactly those services, Grafana provisioned with that Prometheus and the dashboards folder.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import { DEFAULT_METRICS_PORTS } from '../internal/cli/settings.js'

const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const composeFile = path.join(repoDir, 'docker-compose.yml')
const INSTALL_HINT =
  'Install it with `bash stack/ensure-test-tools.sh` (Debian: apt-get install -y --no-install-recommends ' +
  'docker-compose), or any Docker Compose that provides a `docker-compose` command.'

interface PortMapping {
  hostIp: string
  published: number | undefined
  target: number
}

interface Mount {
  type: 'bind' | 'volume' | 'tmpfs'
  source: string
  target: string
  readOnly: boolean
}

interface Service {
  name: string
  image: string
  hostname: string | undefined
  restart: string | undefined
  environment: Record<string, string>
  ports: PortMapping[]
  mounts: Mount[]
  dependsOn: Map<string, string>
  healthcheck: string | undefined
  command: string
  entrypoint: string
}

interface Listener {
  name: string
  host: string
  port: number
}

// ---------------------------------------------------------------------------------------------- running the parser

/** Runs `docker-compose config` on the repo's file and returns its stdout, or throws a message that says what to do. */
function composeConfig(): string {
  // An empty env file and a minimal environment: the test checks the file's own defaults, not a developer's .env.
  const dir = mkdtempSync(path.join(tmpdir(), 'compose-test-'))
  const envFile = path.join(dir, 'empty.env')
  writeFileSync(envFile, '')
  try {
    return execFileSync('docker-compose', ['--env-file', envFile, '-f', composeFile, 'config'], {
      cwd: repoDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? dir, LANG: 'C.UTF-8' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; status?: number | null }
    if (e.code === 'ENOENT')
      throw new Error(`docker-compose is not installed, so docker-compose.yml cannot be validated. ${INSTALL_HINT}`)
    throw new Error(
      `docker-compose rejected docker-compose.yml (exit ${e.status ?? e.code}):\n${e.stderr ?? e.message}`,
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function composeVersion(): string {
  try {
    return execFileSync('docker-compose', ['version', '--short'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim()
  } catch {
    return 'unknown'
  }
}

// ------------------------------------------------------- normalising the output (compose v1 and v2 print it differently)

type Raw = Record<string, unknown>

const asRecord = (v: unknown): Raw => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Raw) : {})
const asString = (v: unknown): string => (v === undefined || v === null ? '' : String(v))
const joinCommand = (v: unknown): string => (Array.isArray(v) ? v.map(asString).join(' ') : asString(v))

function environmentOf(raw: unknown): Record<string, string> {
  const env: Record<string, string> = {}
  if (Array.isArray(raw)) {
    for (const entry of raw.map(asString)) {
      const eq = entry.indexOf('=')
      if (eq < 0) env[entry] = ''
      else env[entry.slice(0, eq)] = entry.slice(eq + 1)
    }
  } else {
    for (const [k, v] of Object.entries(asRecord(raw))) env[k] = asString(v)
  }
  return env
}

function portsOf(raw: unknown): PortMapping[] {
  if (!Array.isArray(raw)) return []
  return raw.map((p): PortMapping => {
    if (typeof p === 'object' && p !== null) {
      const r = p as Raw
      const published = r.published === undefined ? undefined : Number(r.published)
      return { hostIp: asString(r.host_ip), published, target: Number(r.target) }
    }
    const parts = asString(p)
      .replace(/\/(tcp|udp)$/, '')
      .split(':')
    if (parts.length === 3) return { hostIp: parts[0], published: Number(parts[1]), target: Number(parts[2]) }
    if (parts.length === 2) return { hostIp: '', published: Number(parts[0]), target: Number(parts[1]) }
    return { hostIp: '', published: undefined, target: Number(parts[0]) }
  })
}

function mountsOf(raw: unknown): Mount[] {
  if (!Array.isArray(raw)) return []
  return raw.map((m): Mount => {
    if (typeof m === 'object' && m !== null) {
      const r = m as Raw
      const type = asString(r.type) as Mount['type']
      return { type, source: asString(r.source), target: asString(r.target), readOnly: r.read_only === true }
    }
    const [source, target, mode = ''] = asString(m).split(':')
    const isBind = source.startsWith('/') || source.startsWith('.') || source.startsWith('~')
    return { type: isBind ? 'bind' : 'volume', source, target, readOnly: mode.split(',').includes('ro') }
  })
}

function dependsOnOf(raw: unknown): Map<string, string> {
  if (Array.isArray(raw)) return new Map(raw.map((t) => [asString(t), 'service_started']))
  return new Map(
    Object.entries(asRecord(raw)).map(([t, v]) => [t, asString(asRecord(v).condition) || 'service_started']),
  )
}

function healthcheckOf(raw: unknown): string | undefined {
  const hc = asRecord(raw)
  if (hc.disable === true || hc.test === undefined) return undefined
  const test = Array.isArray(hc.test) ? hc.test.map(asString) : [asString(hc.test)]
  if (test[0] === 'NONE') return undefined
  return test.filter((t) => t !== 'CMD' && t !== 'CMD-SHELL').join(' ')
}

function servicesOf(config: Raw): Map<string, Service> {
  const services = new Map<string, Service>()
  for (const [name, raw] of Object.entries(asRecord(config.services))) {
    const s = asRecord(raw)
    services.set(name, {
      name,
      image: asString(s.image),
      hostname: s.hostname === undefined ? undefined : asString(s.hostname),
      restart: s.restart === undefined ? undefined : asString(s.restart),
      environment: environmentOf(s.environment),
      ports: portsOf(s.ports),
      mounts: mountsOf(s.volumes),
      dependsOn: dependsOnOf(s.depends_on),
      healthcheck: healthcheckOf(s.healthcheck),
      command: joinCommand(s.command),
      entrypoint: joinCommand(s.entrypoint),
    })
  }
  return services
}

/** Parses a Kafka listener list such as `INTERNAL://kafka-1:29092,EXTERNAL://:9092`. */
function listenersOf(value: string | undefined): Listener[] {
  if (!value) return []
  return value.split(',').map((entry) => {
    const m = /^([A-Za-z0-9_]+):\/\/(\[[^\]]*\]|[^:]*):(\d+)$/.exec(entry.trim())
    if (!m) throw new Error(`cannot parse Kafka listener '${entry}'`)
    return { name: m[1], host: m[2], port: Number(m[3]) }
  })
}

const hostPort = (host: string, port: number): string => `${host}:${port}`
const isUnder = (p: string, dir: string): boolean => {
  const rel = path.posix.relative(dir, p)
  return rel === '' || (!rel.startsWith('..') && !path.posix.isAbsolute(rel))
}
const splitList = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')

// ----------------------------------------------------------------------------------------------------------- tests

describe('docker-compose.yml', () => {
  let services: Map<string, Service>
  let brokers: Service[]
  let connect: Service
  let kafkaUi: Service

  const byEnv = (key: string): Service[] => [...services.values()].filter((s) => s.environment[key] !== undefined)
  const byImage = (re: RegExp): Service[] => [...services.values()].filter((s) => re.test(s.image))
  /** Every name another container can use to reach a service on the compose network. */
  const namesOf = (s: Service): string[] => [s.name, ...(s.hostname ? [s.hostname] : [])]
  /** host:port pairs that brokers advertise under a name reachable from other containers. */
  const internalAdvertised = (): Map<string, Service> => {
    const out = new Map<string, Service>()
    for (const b of brokers) {
      for (const l of listenersOf(b.environment.KAFKA_ADVERTISED_LISTENERS)) {
        if (namesOf(b).includes(l.host)) out.set(hostPort(l.host, l.port), b)
      }
    }
    return out
  }

  beforeAll(() => {
    const config = parse(composeConfig()) as Raw
    services = servicesOf(config)
    brokers = byEnv('KAFKA_PROCESS_ROLES')
    const connects = byEnv('BOOTSTRAP_SERVERS')
    const uis = byEnv('KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS')
    if (connects.length !== 1) throw new Error(`expected one Kafka Connect service, found ${connects.length}`)
    if (uis.length !== 1) throw new Error(`expected one Kafka UI service, found ${uis.length}`)
    connect = connects[0]
    kafkaUi = uis[0]
  })

  it(`is accepted by a real compose parser (docker-compose ${composeVersion()})`, () => {
    expect(services.size).toBeGreaterThan(0)
  })

  describe('Kafka', () => {
    it('runs three KRaft nodes in combined mode with distinct node ids, one cluster id and one voter set', () => {
      expect(brokers).toHaveLength(3)
      for (const b of brokers) {
        expect(b.image, b.name).toMatch(/^apache\/kafka:4\./)
        expect(splitList(b.environment.KAFKA_PROCESS_ROLES).sort(), b.name).toEqual(['broker', 'controller'])
      }
      const ids = brokers.map((b) => Number(b.environment.KAFKA_NODE_ID))
      expect(new Set(ids).size).toBe(3)
      expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true)
      const clusterIds = new Set(brokers.map((b) => b.environment.CLUSTER_ID))
      expect(clusterIds.size).toBe(1)
      expect([...clusterIds][0]).toMatch(/^[A-Za-z0-9_-]{22}$/)
      expect(new Set(brokers.map((b) => b.environment.KAFKA_CONTROLLER_QUORUM_VOTERS)).size).toBe(1)
    })

    it('lists every node in controller.quorum.voters at its own CONTROLLER listener', () => {
      const voters = splitList(brokers[0].environment.KAFKA_CONTROLLER_QUORUM_VOTERS)
      expect(voters).toHaveLength(3)
      for (const b of brokers) {
        const controllerName = b.environment.KAFKA_CONTROLLER_LISTENER_NAMES
        const controller = listenersOf(b.environment.KAFKA_LISTENERS).find((l) => l.name === controllerName)
        expect(controller, `${b.name} has no ${controllerName} listener`).toBeDefined()
        const mine = voters.filter((v) => v.startsWith(`${b.environment.KAFKA_NODE_ID}@`))
        expect(mine, b.name).toHaveLength(1)
        const [host, port] = mine[0].split('@')[1].split(':')
        expect(namesOf(b), `voter ${mine[0]} must name ${b.name}`).toContain(host)
        expect(Number(port), `voter ${mine[0]}`).toBe(controller?.port)
      }
    })

    it('advertises only listeners the broker really has, on the port it listens on', () => {
      for (const b of brokers) {
        const listening = new Map(listenersOf(b.environment.KAFKA_LISTENERS).map((l) => [l.name, l]))
        const protocolMap = new Map(
          splitList(b.environment.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP).map((e) => e.split(':') as [string, string]),
        )
        for (const l of listening.values())
          expect(protocolMap.has(l.name), `${b.name}: ${l.name} has no protocol`).toBe(true)
        expect(listening.has(b.environment.KAFKA_INTER_BROKER_LISTENER_NAME), b.name).toBe(true)
        const advertised = listenersOf(b.environment.KAFKA_ADVERTISED_LISTENERS)
        expect(advertised.length, b.name).toBeGreaterThanOrEqual(2)
        for (const a of advertised) {
          const l = listening.get(a.name)
          expect(l, `${b.name} advertises ${a.name} but does not listen on it`).toBeDefined()
          if (namesOf(b).includes(a.host)) {
            // Reached over the compose network: no port mapping in between.
            expect(a.port, `${b.name} ${a.name}`).toBe(l?.port)
          } else {
            // Reached from the host: the advertised port must be published to the listener's container port.
            expect(['localhost', '127.0.0.1'], `${b.name} ${a.name} host`).toContain(a.host)
            const mapping = b.ports.find((p) => p.published === a.port)
            expect(
              mapping,
              `${b.name} advertises ${a.host}:${a.port} but does not publish port ${a.port}`,
            ).toBeDefined()
            expect(mapping?.target, `${b.name} ${a.name}`).toBe(l?.port)
          }
        }
      }
    })

    it('is reachable from the host at 9092, 9093 and 9094, like the local stack', () => {
      const external = brokers.flatMap((b) =>
        listenersOf(b.environment.KAFKA_ADVERTISED_LISTENERS).filter((a) => !namesOf(b).includes(a.host)),
      )
      expect(external.map((a) => a.port).sort()).toEqual([9092, 9093, 9094])
    })

    it('keeps log.dirs on a named volume mounted into each broker, one volume per broker', () => {
      const volumes = new Set<string>()
      for (const b of brokers) {
        const dirs = splitList(b.environment.KAFKA_LOG_DIRS)
        expect(dirs.length, `${b.name} must set KAFKA_LOG_DIRS explicitly`).toBeGreaterThan(0)
        for (const dir of dirs) {
          const mount = b.mounts.find((m) => m.type === 'volume' && isUnder(dir, m.target))
          expect(mount, `${b.name}: log dir ${dir} is not on a mounted volume`).toBeDefined()
          if (mount) volumes.add(mount.source)
        }
      }
      expect(volumes.size).toBe(3)
    })

    it('replicates for durability: default RF 3, min.insync.replicas 2, no auto-created topics', () => {
      for (const b of brokers) {
        const env = b.environment
        expect(env.KAFKA_DEFAULT_REPLICATION_FACTOR, b.name).toBe('3')
        expect(env.KAFKA_MIN_INSYNC_REPLICAS, b.name).toBe('2')
        expect(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, b.name).toBe('false')
        expect(env.KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR, b.name).toBe('3')
        expect(env.KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR, b.name).toBe('3')
        expect(b.healthcheck, `${b.name} needs a healthcheck`).toBeDefined()
      }
    })
  })

  describe('Kafka clients inside the compose network', () => {
    for (const [what, key] of [
      ['Kafka Connect', 'BOOTSTRAP_SERVERS'],
      ['Kafka UI', 'KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS'],
    ] as const) {
      it(`${what} bootstraps from listeners the brokers actually advertise, one per broker`, () => {
        const client = what === 'Kafka Connect' ? connect : kafkaUi
        const advertised = internalAdvertised()
        const servers = splitList(client.environment[key])
        expect(servers.length, `${client.name} ${key}`).toBe(3)
        for (const server of servers) {
          expect(
            [...advertised.keys()],
            `${client.name} bootstraps from ${server}, which no broker advertises`,
          ).toContain(server)
        }
        expect(new Set(servers.map((s) => advertised.get(s)?.name)).size).toBe(3)
      })
    }

    it('Kafka Connect keeps its config, offset and status topics at RF 3', () => {
      const env = connect.environment
      expect(connect.image).toMatch(/^quay\.io\/debezium\/connect:3\./)
      const topics = [env.CONFIG_STORAGE_TOPIC, env.OFFSET_STORAGE_TOPIC, env.STATUS_STORAGE_TOPIC]
      expect(topics.every((t) => t !== undefined && t !== '')).toBe(true)
      expect(new Set(topics).size).toBe(3)
      expect(env.CONNECT_CONFIG_STORAGE_REPLICATION_FACTOR).toBe('3')
      expect(env.CONNECT_OFFSET_STORAGE_REPLICATION_FACTOR).toBe('3')
      expect(env.CONNECT_STATUS_STORAGE_REPLICATION_FACTOR).toBe('3')
      expect(connect.ports.some((p) => p.published === 8083 && p.target === 8083)).toBe(true)
      expect(connect.healthcheck ?? '(none)', 'Connect healthcheck').toMatch(/\/connectors/)
    })

    it('Kafka UI listens on 8080 and talks to Kafka Connect where it really is', () => {
      expect(kafkaUi.ports.some((p) => p.published === 8080 && p.target === 8080)).toBe(true)
      const url = new URL(kafkaUi.environment.KAFKA_CLUSTERS_0_KAFKACONNECT_0_ADDRESS)
      expect(namesOf(connect)).toContain(url.hostname)
      expect(Number(url.port)).toBe(Number(connect.environment.REST_PORT ?? 8083))
    })

    it('registers the Debezium connector once Connect is healthy, with RF 3 change topics', () => {
      const registrations = byEnv('CONNECT_URL')
      expect(registrations).toHaveLength(1)
      const reg = registrations[0]
      const env = reg.environment
      expect(reg.entrypoint).toMatch(/\bbash \/configure-debezium\.sh$/)
      const script = reg.mounts.find((m) => m.target === '/configure-debezium.sh')
      expect(script?.type).toBe('bind')
      expect(script?.readOnly).toBe(true)
      expect(script?.source).toBe(path.join(repoDir, 'configure-debezium.sh'))
      const url = new URL(env.CONNECT_URL)
      expect(namesOf(connect)).toContain(url.hostname)
      expect(Number(url.port)).toBe(8083)
      expect(reg.dependsOn.get(connect.name)).toBe('service_healthy')
      const postgres = services.get(env.PG_HOST)
      expect(postgres?.image, `PG_HOST=${env.PG_HOST} must name the postgres service`).toMatch(/^postgres:/)
      expect(env.PG_PORT).toBe('5432')
      expect(env.PG_DB).toBe('cdc_db')
      expect(env.DEBEZIUM_PG_USER).toBe('cdc_debezium')
      expect(env.DEBEZIUM_PG_PASSWORD).toBe(postgres?.environment.PG_DEBEZIUM_PASSWORD)
      expect(env.DEBEZIUM_TOPIC_RF).toBe('3')
      expect(reg.restart ?? 'no').toBe('no')
    })
  })

  describe('PostgreSQL', () => {
    it('runs PostgreSQL 15 with logical decoding, data on a volume and the init scripts', () => {
      const [pg, ...others] = byImage(/^postgres:/)
      expect(others).toHaveLength(0)
      expect(pg.image).toBe('postgres:15')
      expect(pg.command).toMatch(/-c wal_level=logical\b/)
      expect(pg.command).toMatch(/-c max_replication_slots=4\b/)
      expect(pg.command).toMatch(/-c max_wal_senders=4\b/)
      // The slot's WAL is bounded (stack/lib/postgres.sh says why 4GB): PG_MAX_SLOT_WAL_KEEP_SIZE.
      expect(pg.command).toMatch(/-c max_slot_wal_keep_size=4GB\b/)
      expect(pg.environment.POSTGRES_PASSWORD).not.toBe('')
      expect(pg.mounts.some((m) => m.type === 'volume' && m.target === '/var/lib/postgresql/data')).toBe(true)
      const init = pg.mounts.filter((m) => m.type === 'bind' && m.target.startsWith('/docker-entrypoint-initdb.d/'))
      expect(init.map((m) => path.relative(repoDir, m.source))).toEqual(['stack/postgres/docker-init.sh'])
      const sqlDir = pg.environment.CDC_SQL_DIR
      const sqlFiles = pg.mounts.filter((m) => m.type === 'bind' && path.posix.dirname(m.target) === sqlDir)
      expect(sqlFiles.map((m) => path.relative(repoDir, m.source)).sort()).toEqual([
        'stack/postgres/publication.sql',
        'stack/postgres/roles.sql',
        'table-creation.sql',
      ])
      expect(pg.healthcheck ?? '(none)', 'postgres healthcheck').toMatch(/^pg_isready\b/)
    })
  })

  describe('Redis', () => {
    it('runs Redis 7.0 on 127.0.0.1:6379 with a password, AOF fsynced on every write, data on a volume, a healthcheck', () => {
      const [redis, ...others] = byImage(/^redis:/)
      expect(others).toHaveLength(0)
      expect(redis.image).toBe('redis:7.0.15')
      expect(redis.ports).toEqual([{ hostIp: '127.0.0.1', published: 6379, target: 6379 }])
      expect(redis.environment.REDIS_PASSWORD).toBe('cdc_redis')
      expect(redis.command).toMatch(/redis-server --requirepass "\$\$REDIS_PASSWORD"/)
      expect(redis.command).toMatch(/--appendonly yes --appendfsync always --save ""/)
      expect(redis.mounts.some((m) => m.type === 'volume' && m.target === '/data')).toBe(true)
      expect(redis.healthcheck ?? '(none)', 'redis healthcheck').toMatch(
        /REDISCLI_AUTH="\$\$REDIS_PASSWORD" redis-cli .*ping/,
      )
    })
  })

  describe('Cassandra', () => {
    it('runs three Cassandra 5.0 nodes with a 1 GB heap, data on volumes and healthchecks', () => {
      const nodes = byImage(/^cassandra:5\./).filter((s) => s.environment.CASSANDRA_SEEDS !== undefined)
      expect(nodes).toHaveLength(3)
      expect(new Set(nodes.map((n) => n.environment.CASSANDRA_CLUSTER_NAME)).size).toBe(1)
      for (const n of nodes) {
        expect(n.environment.MAX_HEAP_SIZE, n.name).toMatch(/^(1G|1024M)$/i)
        expect(n.environment.HEAP_NEWSIZE, `${n.name}: cassandra-env.sh wants HEAP_NEWSIZE with MAX_HEAP_SIZE`).toMatch(
          /^\d+[MG]$/i,
        )
        for (const seed of splitList(n.environment.CASSANDRA_SEEDS))
          expect(services.has(seed), `seed ${seed}`).toBe(true)
        expect(
          n.mounts.some((m) => m.type === 'volume' && m.target === '/var/lib/cassandra'),
          n.name,
        ).toBe(true)
        expect(n.healthcheck ?? '(none)', `${n.name} healthcheck`).toMatch(/cqlsh|nodetool/)
      }
    })

    it('applies cassandra-schema.cql at replication factor 3 after all nodes are healthy', () => {
      const nodes = byImage(/^cassandra:5\./).filter((s) => s.environment.CASSANDRA_SEEDS !== undefined)
      const schema = [...services.values()].filter((s) =>
        s.mounts.some((m) => m.source.endsWith('cassandra-schema.cql')),
      )
      expect(schema).toHaveLength(1)
      const script = `${schema[0].entrypoint} ${schema[0].command}`
      expect(script).toMatch(/s\/__RF__\/3\/g/)
      expect(script).toMatch(/cqlsh .*-f /)
      for (const n of nodes) expect(schema[0].dependsOn.get(n.name), n.name).toBe('service_healthy')
    })
  })

  describe('metrics: JMX exporters, Prometheus and Grafana', () => {
    const AGENT = /-javaagent:(\S+?)=(\d+):(\S+)/
    const readYaml = <T>(rel: string): T => parse(readFileSync(path.join(repoDir, rel), 'utf8')) as T
    /** The JVM services that load the exporter, with the variable their image passes to the JVM. */
    const jvms = (): [Service, string][] => [
      ...brokers.map((b): [Service, string] => [b, 'KAFKA_OPTS']),
      [connect, 'KAFKA_OPTS'],
      ...byImage(/^cassandra:5\./)
        .filter((s) => s.environment.CASSANDRA_SEEDS !== undefined)
        .map((n): [Service, string] => [n, 'JVM_EXTRA_OPTS']),
    ]
    /** Every service s waits for, directly or through the services it waits for, with the condition. */
    const waitsFor = (s: Service, seen = new Map<string, string>()): Map<string, string> => {
      for (const [t, c] of s.dependsOn) {
        if (seen.has(t)) continue
        seen.set(t, c)
        const ts = services.get(t)
        if (ts) waitsFor(ts, seen)
      }
      return seen
    }

    it('loads the JMX exporter agent in every broker, Connect and Cassandra node, with the local stack rules', () => {
      const fetchers = [...services.values()].filter((s) => s.mounts.some((m) => m.source.endsWith('jmx-exporter.xml')))
      expect(fetchers).toHaveLength(1)
      const fetcher = fetchers[0]
      expect(fetcher.restart ?? 'no').toBe('no')
      expect(fetcher.entrypoint).toMatch(/mvn .*dependency:copy-dependencies/)
      const jarVolume = fetcher.mounts.find((m) => m.type === 'volume')
      expect(jarVolume, 'the fetcher writes the jar to a named volume').toBeDefined()
      expect(fetcher.entrypoint).toContain(`${jarVolume?.target}/jmx_prometheus_javaagent.jar`)
      expect(jvms()).toHaveLength(7)
      for (const [s, variable] of jvms()) {
        const m = AGENT.exec(s.environment[variable] ?? '')
        expect(m, `${s.name}: ${variable} has no -javaagent flag`).not.toBeNull()
        const [, jar, port, rules] = m!
        expect(Number(port), s.name).toBe(9404)
        const jarMount = s.mounts.find((x) => isUnder(jar, x.target))
        expect(jarMount?.source, `${s.name}: ${jar} is not on the ${jarVolume?.source} volume`).toBe(jarVolume?.source)
        expect(jar).toBe(`${jarMount?.target}/jmx_prometheus_javaagent.jar`)
        const rulesMount = s.mounts.find((x) => x.target === rules)
        const kind = variable === 'JVM_EXTRA_OPTS' ? 'cassandra' : s === connect ? 'connect' : 'kafka'
        expect(rulesMount?.source, `${s.name}: ${rules}`).toBe(
          path.join(repoDir, `stack/conf/jmx-exporter-${kind}.yml`),
        )
        expect(rulesMount?.readOnly, s.name).toBe(true)
        expect(waitsFor(s).get(fetcher.name), `${s.name} must start after ${fetcher.name} has fetched the jar`).toBe(
          'service_completed_successfully',
        )
      }
    })

    it('runs Prometheus on 127.0.0.1:9090 with deploy/prometheus/prometheus.yml and the alerting rules beside it', () => {
      const prometheus = byImage(/^prom\/prometheus:v\d/)
      expect(prometheus).toHaveLength(1)
      const p = prometheus[0]
      expect(p.ports).toEqual([{ hostIp: '127.0.0.1', published: 9090, target: 9090 }])
      const config = p.mounts.find((m) => m.source === path.join(repoDir, 'deploy/prometheus/prometheus.yml'))
      expect(config?.readOnly).toBe(true)
      expect(p.command).toContain(`--config.file=${config?.target}`)
      const alerts = p.mounts.find((m) => m.source === path.join(repoDir, 'stack/conf/prometheus-alerts.yml'))
      const cfg = readYaml<{ rule_files: string[] }>('deploy/prometheus/prometheus.yml')
      expect(alerts?.target).toBe(path.posix.join(path.posix.dirname(config!.target), cfg.rule_files[0]!))
      expect(p.mounts.some((m) => m.type === 'volume' && p.command.includes(`--storage.tsdb.path=${m.target}`))).toBe(
        true,
      )
      expect(p.healthcheck ?? '(none)').toMatch(/\/-\/ready/)
    })

    it('scrapes each JVM service at its exporter port, and the pipeline commands at their default ports', () => {
      const cfg = readYaml<{ scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] }>(
        'deploy/prometheus/prometheus.yml',
      )
      const targets = (job: string): string[] =>
        (cfg.scrape_configs.find((j) => j.job_name === job)?.static_configs ?? []).flatMap((c) => c.targets).sort()
      const at9404 = (ss: Service[]): string[] => ss.map((s) => `${s.hostname ?? s.name}:9404`).sort()
      expect(targets('kafka')).toEqual(at9404(brokers))
      expect(targets('connect')).toEqual(at9404([connect]))
      expect(targets('cassandra')).toEqual(
        at9404(byImage(/^cassandra:5\./).filter((s) => s.environment.CASSANDRA_SEEDS !== undefined)),
      )
      // Every command that serves metrics, at its default port (a command added without a target fails here).
      expect(targets('cdc-pipeline')).toEqual(
        Object.values(DEFAULT_METRICS_PORTS)
          .map((p) => `host.docker.internal:${p}`)
          .sort(),
      )
    })

    it('runs Grafana on 127.0.0.1:3000, provisioned with the Prometheus data source and the dashboards folder', () => {
      const grafana = byImage(/^grafana\/grafana:\d/)
      expect(grafana).toHaveLength(1)
      const g = grafana[0]
      expect(g.ports).toEqual([{ hostIp: '127.0.0.1', published: 3000, target: 3000 }])
      const prov = g.mounts.find((m) => m.target === '/etc/grafana/provisioning')
      expect(prov?.source).toBe(path.join(repoDir, 'deploy/grafana/provisioning'))
      const ds = readYaml<{ datasources: { uid: string; type: string; url: string }[] }>(
        'deploy/grafana/provisioning/datasources/prometheus.yml',
      ).datasources
      expect(ds).toHaveLength(1)
      expect(ds[0]!.type).toBe('prometheus')
      const url = new URL(ds[0]!.url)
      const prometheus = byImage(/^prom\/prometheus:v\d/)[0]
      expect(namesOf(prometheus)).toContain(url.hostname)
      expect(Number(url.port)).toBe(9090)
      const provider = readYaml<{ providers: { options: { path: string } }[] }>(
        'deploy/grafana/provisioning/dashboards/cdc.yml',
      ).providers[0]!
      const dashboards = g.mounts.find((m) => m.target === provider.options.path)
      expect(dashboards?.source).toBe(path.join(repoDir, 'deploy/grafana/dashboards'))
      for (const file of readdirSync(dashboards!.source).filter((f) => f.endsWith('.json'))) {
        const d = JSON.parse(readFileSync(path.join(dashboards!.source, file), 'utf8')) as {
          panels: { title: string; datasource: { uid: string } }[]
        }
        for (const p of d.panels) expect(p.datasource.uid, `${file}: ${p.title}`).toBe(ds[0]!.uid)
      }
      expect(g.dependsOn.get(prometheus.name)).toBe('service_healthy')
      expect(g.healthcheck ?? '(none)').toMatch(/\/api\/health/)
    })
  })

  describe('start-up order', () => {
    it('depends only on services that exist, with a healthcheck wherever it waits for health', () => {
      for (const s of services.values()) {
        for (const [target, condition] of s.dependsOn) {
          const t = services.get(target)
          expect(t, `${s.name} depends on missing service ${target}`).toBeDefined()
          expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(condition)
          if (condition === 'service_healthy')
            expect(t?.healthcheck, `${target} (waited on by ${s.name})`).toBeDefined()
          if (condition === 'service_completed_successfully') expect(t?.restart ?? 'no').toBe('no')
        }
      }
    })

    it('starts Kafka Connect only when every broker and PostgreSQL are healthy', () => {
      for (const b of brokers) expect(connect.dependsOn.get(b.name), b.name).toBe('service_healthy')
      const pg = byImage(/^postgres:/)[0]
      expect(connect.dependsOn.get(pg.name)).toBe('service_healthy')
    })

    it('mounts only files that exist in the repository', () => {
      for (const s of services.values()) {
        for (const m of s.mounts.filter((x) => x.type === 'bind')) {
          expect(isUnder(m.source, repoDir), `${s.name} mounts ${m.source} from outside the repository`).toBe(true)
          expect(existsSync(m.source), `${s.name} mounts ${m.source}, which does not exist`).toBe(true)
        }
      }
    })
  })
})

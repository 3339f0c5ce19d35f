// configure-debezium.sh against a fake Kafka Connect on a local port: the body it PUTs must be the JSON the
// environment says, whatever characters a value holds. A password with " and \ once broke the registration, and a
// crafted one added keys of its own: the script pasted values into a JSON template.
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const script = new URL('../configure-debezium.sh', import.meta.url).pathname

let server: Server
let connectUrl: string
const bodies = new Map<string, string>()

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? ''
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString('utf8')))
    req.on('end', () => {
      const put = /^\/connectors\/([^/]+)\/config$/.exec(url)
      res.setHeader('content-type', 'application/json')
      if (req.method === 'GET' && url === '/connector-plugins') {
        res.end(JSON.stringify([{ class: 'io.debezium.connector.postgresql.PostgresConnector', type: 'source' }]))
      } else if (req.method === 'PUT' && put) {
        bodies.set(put[1]!, body)
        try {
          JSON.parse(body)
          res.statusCode = 201
          res.end(body)
        } catch {
          // What Connect answers to a body that is not JSON.
          res.statusCode = 500
          res.end(JSON.stringify({ error_code: 500, message: 'Unexpected character' }))
        }
      } else if (req.method === 'GET' && /^\/connectors\/keep-tables[^/]*\/config$/.test(url)) {
        // A connector registered before, with a table cdc:add-table added (and one of the base tables again).
        res.end(JSON.stringify({ 'table.include.list': 'public.users,public.items, public.orders' }))
      } else if (req.method === 'GET' && /^\/connectors\/[^/]+\/status$/.test(url)) {
        res.end(JSON.stringify({ connector: { state: 'RUNNING' }, tasks: [{ id: 0, state: 'RUNNING' }] }))
      } else {
        res.statusCode = 404
        res.end('{}')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  connectUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

/** Runs the script with `env` on top of a clean environment; returns the config it PUT, parsed. */
async function register(name: string, env: Record<string, string>, pathDir?: string): Promise<Record<string, string>> {
  await run('bash', [script], {
    env: {
      PATH: pathDir ?? process.env.PATH ?? '/usr/bin:/bin',
      CONNECT_URL: connectUrl,
      CONNECTOR_NAME: name,
      DEBEZIUM_WAIT_S: '20',
      ...env,
    },
  })
  const body = bodies.get(name)
  expect(body, 'the script PUT a config').toBeDefined()
  return JSON.parse(body!) as Record<string, string>
}

// The config cdc-postgres had before the JSON was encoded (the template's defaults), key for key.
const DEFAULTS: Record<string, string> = {
  'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
  'tasks.max': '1',
  'plugin.name': 'pgoutput',
  'database.hostname': '127.0.0.1',
  'database.port': '5432',
  'database.user': 'cdc_debezium',
  'database.password': 'cdc_debezium',
  'database.dbname': 'cdc_db',
  'topic.prefix': 'cdc',
  'slot.name': 'cdc_slot',
  'publication.name': 'cdc_pub',
  'publication.autocreate.mode': 'disabled',
  'table.include.list': 'public.users,public.orders,public.products',
  'snapshot.mode': 'initial',
  'tombstones.on.delete': 'true',
  // Debezium skips truncates unless told (its default is 't'): the sink applies them (--on-truncate).
  'skipped.operations': 'none',
  // npm run resnapshot signals through this table (in cdc_pub, not in table.include.list).
  'signal.data.collection': 'public.debezium_signal',
  'incremental.snapshot.chunk.size': '2048',
  // npm run resnapshot --wait reads Debezium's snapshot notifications here.
  'notification.enabled.channels': 'sink',
  'notification.sink.topic.name': 'cdc.notifications',
  'message.prefix.exclude.list': '.*',
  'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'key.converter.schemas.enable': 'false',
  'value.converter.schemas.enable': 'false',
  'decimal.handling.mode': 'string',
  'poll.interval.ms': '100',
  'time.precision.mode': 'adaptive',
  'heartbeat.interval.ms': '10000',
  'max.batch.size': '2048',
  'producer.override.linger.ms': '20',
  'producer.override.batch.size': '524288',
  'producer.override.compression.type': 'none',
  'topic.creation.default.replication.factor': '3',
  'topic.creation.default.partitions': '3',
  'topic.creation.default.min.insync.replicas': '2',
  'topic.creation.default.cleanup.policy': 'delete',
}

const hostile = 'p"w\\d\\"x\nline two \u0001 é", "snapshot.mode": "never'

describe('configure-debezium.sh', () => {
  it('PUTs the default config of cdc-postgres', { timeout: 30_000 }, async () => {
    const config = await register('defaults', {})
    expect(config).toEqual(DEFAULTS)
  })

  it(
    'sends a password with ", \\, a newline and a would-be key exactly as it is, and no key of its own',
    {
      timeout: 30_000,
    },
    async () => {
      const config = await register('hostile', { DEBEZIUM_PG_PASSWORD: hostile, DEBEZIUM_PG_USER: 'u"\\' })
      expect(config).toEqual({ ...DEFAULTS, 'database.password': hostile, 'database.user': 'u"\\' })
    },
  )

  it('stamps every change event with PG_SYSTEM_IDENTIFIER (InsertHeader), and refuses one that is not digits', async () => {
    const config = await register('identity', { PG_SYSTEM_IDENTIFIER: '7714444904059866470' })
    expect(config).toEqual({
      ...DEFAULTS,
      transforms: 'pgIdentity',
      'transforms.pgIdentity.type': 'org.apache.kafka.connect.transforms.InsertHeader',
      'transforms.pgIdentity.header': 'cdc.pg.system_identifier',
      'transforms.pgIdentity.value.literal': '7714444904059866470',
    })
    const bad = await run('bash', [script], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CONNECT_URL: connectUrl, PG_SYSTEM_IDENTIFIER: '1; x' },
    }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    )
    expect(bad?.code).toBe(2)
    expect(bad?.stderr).toMatch(/PG_SYSTEM_IDENTIFIER must be PostgreSQL's system identifier, digits only/)
  })

  it('keeps the tables an earlier registration had in table.include.list (npm run cdc:add-table)', async () => {
    const config = await register('keep-tables', {})
    expect(config).toEqual({
      ...DEFAULTS,
      'table.include.list': 'public.users,public.orders,public.products,public.items',
    })
    // A connector that is not registered yet gets the base list.
    expect((await register('fresh', {}))['table.include.list']).toBe('public.users,public.orders,public.products')
  })

  it('encodes the same with jq when node is not there', { timeout: 30_000 }, async () => {
    // A PATH with the tools the script uses but no node.
    const dir = mkdtempSync(path.join(tmpdir(), 'cdc-nonode-'))
    try {
      for (const tool of ['bash', 'curl', 'jq', 'cat', 'grep', 'cut', 'tr', 'wc', 'sleep', 'mktemp', 'rm', 'sed']) {
        const { stdout } = await run('bash', ['-c', `command -v ${tool}`])
        symlinkSync(stdout.trim(), path.join(dir, tool))
      }
      const viaJq = await register('jq', { DEBEZIUM_PG_PASSWORD: hostile, DEBEZIUM_SLOT_NAME: 's"1' }, dir)
      expect(viaJq).toEqual({ ...DEFAULTS, 'database.password': hostile, 'slot.name': 's"1' })
      const keptViaJq = await register('keep-tables-jq', {}, dir)
      expect(keptViaJq['table.include.list']).toBe('public.users,public.orders,public.products,public.items')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it(
    'takes a second connector’s slot, topic prefix and snapshot mode from the environment',
    {
      timeout: 30_000,
    },
    async () => {
      const config = await register('second', {
        DEBEZIUM_SLOT_NAME: 'test_slot',
        DEBEZIUM_TOPIC_PREFIX: 'test-prefix',
        DEBEZIUM_SNAPSHOT_MODE: 'no_data',
      })
      expect(config).toEqual({
        ...DEFAULTS,
        'slot.name': 'test_slot',
        'topic.prefix': 'test-prefix',
        'snapshot.mode': 'no_data',
      })
    },
  )

  it('refuses a connector name that is not a plain word (it goes into the URL)', async () => {
    await expect(register('../connectors', {})).rejects.toThrow(/CONNECTOR_NAME must be/)
  })
})

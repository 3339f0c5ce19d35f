// One-off: the TRUNCATE orders of test run 1 was not emitted (the connector had been re-registered without
// skipped.operations); apply it to Cassandra at a timestamp just below the first write after it.
import cassandra from 'cassandra-driver'
import pg from 'pg'
import { applyTruncate, targetOfSpec } from './dist/internal/sinks/cassandra/truncate.js'
import { TABLES } from './dist/internal/sinks/cassandra/tables.js'
const client = new cassandra.Client({ contactPoints: ['127.0.0.1:9042'], localDataCenter: 'datacenter1', keyspace: 'cdc_keyspace', encoding: { useBigIntAsLong: true }, socketOptions: { readTimeout: 60000 } })
const pgc = new pg.Client('postgres://postgres:postgres@127.0.0.1:5432/cdc_db'); await pgc.connect()
const ids = (await pgc.query('SELECT id FROM orders')).rows.map((r) => r.id)
let wmin = null
for (const id of ids) {
  const rs = await client.execute('SELECT WRITETIME(status) AS wt FROM orders WHERE id = ?', [id], { prepare: true })
  const wt = rs.first()?.wt
  if (typeof wt === 'bigint' && (wmin === null || wt < wmin)) wmin = wt
}
console.log('orders in PG', ids.length, 'min writetime', String(wmin), 'lsn', String(wmin - (1n << 62n)))
if (process.argv[2] !== 'go') process.exit(0)
const started = Date.now()
const deleted = await applyTruncate(client, 'cdc_keyspace', [targetOfSpec(TABLES.orders), targetOfSpec(TABLES.orders_by_user)], wmin - 1n, 32)
console.log('deleted', deleted, 'in', (Date.now() - started) / 1000, 's')
await client.shutdown(); await pgc.end()

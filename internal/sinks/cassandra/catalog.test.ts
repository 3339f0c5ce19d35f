import type pg from 'pg'
import { describe, expect, it } from 'vitest'
import { publicationTables, type Queryable } from './catalog.js'

describe('publicationTables', () => {
  it("leaves Debezium's signal table out: it is in cdc_pub for its WAL, not to be replicated", async () => {
    const rows = [
      { schemaname: 'public', tablename: 'debezium_signal' },
      { schemaname: 'public', tablename: 'items' },
      { schemaname: 'shop', tablename: 'debezium_signal' },
    ]
    const seen: unknown[][] = []
    const db: Queryable = {
      query: <R extends pg.QueryResultRow>(_text: string, values?: unknown[]) => {
        seen.push(values ?? [])
        return Promise.resolve({ rows } as unknown as pg.QueryResult<R>)
      },
    }
    expect(await publicationTables(db, 'cdc_pub')).toEqual([
      { schema: 'public', table: 'items' },
      { schema: 'shop', table: 'debezium_signal' },
    ])
    expect(seen).toEqual([['cdc_pub']])
  })
})

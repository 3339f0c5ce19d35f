import { postgresUrl, stackAddresses } from '../../config/index.js'
import type { OptionDef, OptionsSchema } from '../../pipeline/index.js'
import type { PostgresBatchSinkOptions } from './batch-sink.js'

/** --pg-url: the PostgreSQL consume writes the events to (replicate and cache-sync ask it for its WAL position). */
export const PG_URL_OPTION: OptionDef<string> = {
  flag: 'pg-url',
  env: 'PG_URL',
  kind: 'string',
  fallback: (_, env) => stackAddresses(env).pgUrl,
  derivedFrom: ['PG_PORT', 'PG_APP_PASSWORD'],
  defaultText: "the local stack's cdc_db: postgres://cdc_app:PG_APP_PASSWORD@127.0.0.1:PG_PORT/cdc_db (5432)",
  parse: postgresUrl,
  doc: "PostgreSQL connection URL: consume writes the events there; replicate asks it for the WAL position that bounds every change's LSN, its cluster identity and the type of a column added; cache-sync for the WAL position",
}

/** The options of the PostgreSQL sink that come from flags (the topic names come from the command). */
export const POSTGRES_OPTIONS = { pgUrl: PG_URL_OPTION } as const satisfies OptionsSchema<PostgresBatchSinkOptions>

export { comparePostgresWithCassandra } from './compare.js'
export type { Comparison, TableComparison } from './compare.js'

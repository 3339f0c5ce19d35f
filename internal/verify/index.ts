export {
  ORDER_COLUMNS,
  USER_COLUMNS,
  cassandraRows,
  compareStores,
  expectedOrdersByUser,
  expectedQueryTable,
  pgRows,
} from './compare.js'
export type { Row, TableComparison, Where } from './compare.js'
export { compareBucketed } from './bucketed.js'
export type { BucketedComparison, BucketedOptions, BucketedTable, Scan } from './bucketed.js'

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

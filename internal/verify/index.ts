export { ORDER_COLUMNS, USER_COLUMNS, cassandraRows, compareStores, expectedOrdersByUser, pgRows } from './compare.js'
export type { Row, TableComparison } from './compare.js'

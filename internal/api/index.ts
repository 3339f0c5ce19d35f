// node cmd/api's HTTP server (the cache-aside read side: internal/cache).
export { startApi, type ApiOptions, type ApiServer } from './server.js'
export { apiMetrics, type ApiMetrics, type ApiMetricsSource } from './metrics.js'

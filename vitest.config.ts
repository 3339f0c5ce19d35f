import { defineConfig } from 'vitest/config'

// Unit tests live beside the code and touch no network; integration tests live under test/ and talk to the real
// local stack (npm test brings it up first). Integration files run one at a time: they share one 2-core machine
// with three brokers, Connect, Cassandra and PostgreSQL.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['internal/**/*.test.ts', 'cmd/**/*.test.ts', 'bench/**/*.test.ts', 'stack/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: ['test/lifecycle/**', 'test/faults/**'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
      {
        // The fault-injection suite (npm run test:faults): stops, kills and restarts the stack's servers under load.
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
      {
        // Takes the whole stack down and up again: run on its own, after everything else (npm test does).
        test: {
          name: 'lifecycle',
          include: ['test/lifecycle/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
})

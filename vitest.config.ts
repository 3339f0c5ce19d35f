import { defineConfig } from 'vitest/config'

// Unit tests live beside the code and touch no network; integration tests live under test/ and talk to the real
// local stack (npm test brings it up first). Integration files run one at a time: they share one 2-core machine
// with three brokers, Connect, Cassandra and PostgreSQL.
export default defineConfig({
  test: {
    // npm run test:coverage: the unit project's coverage of the production code, with a floor (raise it as tests
    // are added; never lower it to make a change pass). Measured 2026-12-01 after main took cmd/cdc-add-table and the
    // derived tables: statements 72.2 %, branches 73.1 %, functions 67.0 %, lines 74.3 % (on the tree before them,
    // with the sink contract: 76.1, 76.0, 70.8, 78.1; before the sink contract: 75.5, 75.6, 70.6, 77.5).
    coverage: {
      provider: 'v8',
      include: ['internal/**/*.ts', 'cmd/**/*.ts'],
      exclude: ['**/*.test.ts', '**/testdata/**'],
      reporter: ['text-summary', 'text'],
      thresholds: { statements: 71, branches: 72, functions: 66, lines: 73 },
    },
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
          // The baseline replicate group is brought up to date once first (a used stack can hold a long backlog).
          globalSetup: ['test/global-setup.ts'],
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

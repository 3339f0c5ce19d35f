#!/usr/bin/env bash
# The local stack without Docker: three KRaft Kafka brokers, Kafka Connect with Debezium, PostgreSQL, Cassandra,
# Redis (the cache) and Prometheus (JMX exporters in the JVMs), from registry packages (Maven Central, Debian, PyPI)
# under $CDC_STACK_HOME.
#
#   stack.sh up [--wipe]      start everything that is not running (idempotent); --wipe deletes all data first
#   stack.sh status           one line per component; exit 1 if any is unhealthy
#   stack.sh down [--wipe]    stop what we started (by recorded pid); --wipe deletes the data too
#   stack.sh logs [NAME] [-f] list the log files, or print (follow) one: kafka-1 kafka-2 kafka-3 connect postgres
#                             cassandra prometheus redis
#   stack.sh kafka TOOL ARGS  Kafka CLI tools: topics, groups, console-consumer, console-producer, quorum, configs,
#                             producer-perf, consumer-perf, get-offsets (--bootstrap-server is added for you)
#   stack.sh cqlsh ARGS       cqlsh against the local Cassandra
#   stack.sh env              the addresses the stack uses, from .env and the environment (the commands' defaults)
#   stack.sh stop-component NAME / start-component NAME / kill-component NAME
#                             stop (clean), start (and wait for) or SIGKILL one server: kafka-1, kafka-2, kafka-3,
#                             connect, cassandra, postgres, prometheus or redis (fault tests; postgres is not
#                             SIGKILLed)
set -euo pipefail

STACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$STACK_DIR")
# .env overrides the defaults (the same file, read by the same reader, as the commands: $CDC_ENV_FILE, else the
# repository's .env); the environment wins over both.
# shellcheck source=lib/env.sh
source "$STACK_DIR/lib/env.sh"
stack_load_env "${CDC_ENV_FILE:-$REPO_DIR/.env}"

# shellcheck source=lib/common.sh
source "$STACK_DIR/lib/common.sh"
# shellcheck source=lib/prometheus.sh
source "$STACK_DIR/lib/prometheus.sh"
# shellcheck source=lib/kafka.sh
source "$STACK_DIR/lib/kafka.sh"
# shellcheck source=lib/connect.sh
source "$STACK_DIR/lib/connect.sh"
# shellcheck source=lib/postgres.sh
source "$STACK_DIR/lib/postgres.sh"
# shellcheck source=lib/cassandra.sh
source "$STACK_DIR/lib/cassandra.sh"
# shellcheck source=lib/redis.sh
source "$STACK_DIR/lib/redis.sh"

COMPONENTS=(kafka-1 kafka-2 kafka-3 connect postgres cassandra prometheus redis)

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

wipe_data() {
  log "wiping stack data in $DATA_DIR and $PG_DATA_DIR"
  rm -rf "${DATA_DIR:?}"/* "$CONF_DIR"/*
  pg_wipe
}

cmd_up() {
  local wipe=0 t0=$SECONDS
  [ "${1:-}" = --wipe ] && wipe=1
  require_java
  require_cmd curl "install curl (Debian: apt-get install curl)"
  require_cmd ss "install iproute2 (Debian: apt-get install iproute2)"
  if [ $wipe = 1 ]; then
    cmd_down
    wipe_data
  fi
  kafka_fetch
  connect_fetch
  cassandra_fetch
  jmx_exporter_fetch
  prometheus_install
  redis_install

  pg_start
  redis_start
  kafka_start
  # Cassandra's start is the slowest; it boots while the brokers elect a leader.
  cassandra_start
  kafka_wait
  log "kafka quorum formed: 3 brokers at $(kafka_bootstrap)"
  kafka_ensure_change_topics
  connect_start
  connect_wait
  connect_register
  cassandra_wait
  cassandra_apply_schema
  redis_wait
  prometheus_start
  prometheus_wait
  log "stack up in $((SECONDS - t0)) s; logs in $LOG_DIR (npm run stack:logs -- NAME)"
  STATUS_AFTER_UP=1 cmd_status
}

cmd_status() {
  local rc=0 name
  kafka_status || rc=1
  if [ $rc = 0 ]; then kafka_topics_status || rc=1; fi
  connect_status || rc=1
  pg_status || rc=1
  cassandra_status || rc=1
  redis_status || rc=1
  for name in kafka-1 kafka-2 kafka-3 connect cassandra; do jmx_exporter_status "$name" || rc=1; done
  prometheus_status || rc=1
  return $rc
}

cmd_down() {
  local wipe=0
  [ "${1:-}" = --wipe ] && wipe=1
  # Consumers of a service stop before the service: Prometheus first, Connect before the brokers.
  prometheus_stop
  connect_stop
  kafka_stop
  cassandra_stop
  redis_stop
  pg_stop
  log "stack stopped"
  if [ $wipe = 1 ]; then wipe_data; fi
}

cmd_logs() {
  local name=${1:-} follow=${2:-}
  if [ -z "$name" ]; then
    for name in "${COMPONENTS[@]}"; do printf '%-10s %s\n' "$name" "$LOG_DIR/$name.log"; done
    return 0
  fi
  [ -f "$LOG_DIR/$name.log" ] || die "no log for '$name'; one of: ${COMPONENTS[*]}"
  if [ "$follow" = -f ]; then tail -n 100 -f "$LOG_DIR/$name.log"; else tail -n 200 "$LOG_DIR/$name.log"; fi
}

# The same names the commands read, so that the output can be pasted into a shell or a .env elsewhere.
cmd_env() {
  printf 'KAFKA_BROKERS=%s\n' "$(kafka_bootstrap)"
  printf 'PG_URL=postgres://cdc_app:%s@127.0.0.1:%s/cdc_db\n' "$PG_APP_PASSWORD" "$PG_PORT"
  printf 'PG_READER_URL=postgres://cdc_reader:%s@127.0.0.1:%s/cdc_db\n' "$PG_READER_PASSWORD" "$PG_PORT"
  printf 'CASSANDRA_CONTACT_POINTS=%s:%s\n' "$CASSANDRA_HOST" "$CASSANDRA_PORT"
  printf 'CONNECT_URL=%s\n' "$CONNECT_URL"
  printf 'REDIS_URL=redis://:%s@127.0.0.1:%s\n' "$REDIS_PASSWORD" "$REDIS_PORT"
}

cmd_kafka() {
  local tool=${1:-} cls
  shift || true
  case "$tool" in
    topics) cls=org.apache.kafka.tools.TopicCommand ;;
    groups) cls=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    console-consumer) cls=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    console-producer) cls=org.apache.kafka.tools.ConsoleProducer ;;
    quorum) cls=org.apache.kafka.tools.MetadataQuorumCommand ;;
    configs) cls=kafka.admin.ConfigCommand ;;
    get-offsets) cls=org.apache.kafka.tools.GetOffsetShell ;;
    producer-perf) cls=org.apache.kafka.tools.ProducerPerformance ;;
    consumer-perf) cls=org.apache.kafka.tools.ConsumerPerformance ;;
    *) die "unknown kafka tool '$tool'; one of: topics groups console-consumer console-producer quorum configs get-offsets producer-perf consumer-perf" ;;
  esac
  [ -f "$KAFKA_LIB/.complete" ] || die "Kafka is not downloaded yet: run npm run stack:up first"
  local args=("$@")
  case " $* " in
    *" --bootstrap-server "* | *" --bootstrap-servers "* | *" --producer-props "* | *" --help "*) ;;
    *)
      if [ "$tool" = producer-perf ]; then args+=(--producer-props "bootstrap.servers=$(kafka_bootstrap)"); else args+=(--bootstrap-server "$(kafka_bootstrap)"); fi
      ;;
  esac
  kafka_java "$cls" "${args[@]}"
}

# One server on its own, for tests that take it away and bring it back while the pipeline runs. A single broker can
# go and come back while the other two keep the KRaft quorum (two of three voters); a clean stop is a controlled
# shutdown that hands its partition leaderships over first.
cmd_component() {
  local action=$1 name=${2:-}
  case "$action:$name" in
    stop:kafka-[123]) stop_pid "$name" 60 ;;
    stop:cassandra) cassandra_stop ;;
    stop:connect) connect_stop ;;
    stop:postgres) pg_stop ;;
    stop:prometheus) prometheus_stop ;;
    stop:redis) redis_stop ;;
    start:kafka-[123]) kafka_start_node "${name#kafka-}" && kafka_wait ;;
    start:cassandra) cassandra_start && cassandra_wait ;;
    start:connect) connect_start && connect_wait ;;
    start:postgres) pg_start ;;
    start:prometheus) prometheus_start && prometheus_wait ;;
    start:redis) redis_start && redis_wait ;;
    kill:kafka-[123] | kill:connect | kill:cassandra | kill:prometheus | kill:redis) kill_pid "$name" ;;
    *) die "$action-component: NAME must be one of kafka-1, kafka-2, kafka-3, cassandra, connect, postgres, prometheus, redis (kill: not postgres) (got '$name')" ;;
  esac
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    status) cmd_status ;;
    down) cmd_down "$@" ;;
    logs) cmd_logs "$@" ;;
    kafka) cmd_kafka "$@" ;;
    cqlsh) cqlsh_run "$@" ;;
    env) cmd_env ;;
    stop-component) cmd_component stop "$@" ;;
    start-component) cmd_component start "$@" ;;
    kill-component) cmd_component kill "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"

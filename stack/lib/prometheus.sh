# Metrics of the local stack: the Prometheus JMX exporter java agent (Maven Central) in the three brokers, Kafka
# Connect and Cassandra, and a Prometheus (Debian's package) that scrapes them and the pipeline's commands. Sourced by
# stack/stack.sh after common.sh and before kafka.sh, connect.sh and cassandra.sh, which add jmx_agent_flags to their
# JVMs.
#
# Prometheus runs with the committed stack/conf/prometheus.yml and stack/conf/prometheus-alerts.yml, copied unchanged
# into $CONF_DIR/prometheus/. The config names every target through file-based service discovery, relative to that
# folder: the stack writes targets/{prometheus,kafka,connect,cassandra}.json from the port variables below, and the
# pipeline's commands register themselves in targets/pipeline/ (README: Local stack, Metrics). So the committed files
# hold no port, and promtool checks them as they are (stack/prometheus.test.ts).

# The exporters' HTTP ports on 127.0.0.1 (each serves /metrics); 0 turns one off. The brokers use the base, +1, +2.
: "${KAFKA_JMX_EXPORTER_PORT_BASE:=9404}"
: "${CONNECT_JMX_EXPORTER_PORT:=9407}"
: "${CASSANDRA_JMX_EXPORTER_PORT:=9408}"
: "${PROMETHEUS_PORT:=9090}"
# How long Prometheus keeps samples in $DATA_DIR/prometheus.
: "${PROMETHEUS_RETENTION:=7d}"

# Checked here as digits: they end up in $((...)) and in the agents' arguments.
for _v in KAFKA_JMX_EXPORTER_PORT_BASE CONNECT_JMX_EXPORTER_PORT CASSANDRA_JMX_EXPORTER_PORT PROMETHEUS_PORT; do
  if ! [[ "${!_v}" =~ ^[0-9]{1,5}$ ]] || [ "${!_v}" -gt 65533 ]; then
    printf '[stack] error: %s must be a port: digits, 1 to 65533 (0 for off, except PROMETHEUS_PORT) (got %q); nothing was started\n' "$_v" "${!_v}" >&2
    exit 1
  fi
done
unset _v
[ "$PROMETHEUS_PORT" != 0 ] || {
  printf '[stack] error: PROMETHEUS_PORT must be a port: digits, 1 to 65533 (got 0); nothing was started\n' >&2
  exit 1
}
[[ "$PROMETHEUS_RETENTION" =~ ^[0-9]+[smhdwy]$ ]] || {
  printf '[stack] error: PROMETHEUS_RETENTION must be a duration such as 7d or 12h (got %q); nothing was started\n' "$PROMETHEUS_RETENTION" >&2
  exit 1
}

JMX_EXPORTER_LIB="$LIB_DIR/jmx-exporter"
PROMETHEUS_CONF="$CONF_DIR/prometheus"
PROMETHEUS_DATA="$DATA_DIR/prometheus"
PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
# Where the pipeline's commands register their /metrics address (one JSON file each; README: Local stack, Metrics).
PROMETHEUS_PIPELINE_SD_DIR="$PROMETHEUS_CONF/targets/pipeline"

jmx_exporter_fetch() { maven_fetch "$STACK_DIR/maven/jmx-exporter.xml" "$JMX_EXPORTER_LIB"; }

jmx_exporter_jar() {
  local jar
  jar=$(ls "$JMX_EXPORTER_LIB"/jmx_prometheus_javaagent-*.jar 2>/dev/null | head -1)
  [ -n "$jar" ] || die "the JMX exporter jar is missing from $JMX_EXPORTER_LIB: delete that folder and run npm run stack:up again"
  echo "$jar"
}

# jmx_exporter_port NAME: the exporter port of kafka-N, connect or cassandra (0 = off).
jmx_exporter_port() {
  case "$1" in
    kafka-[123]) if [ "$KAFKA_JMX_EXPORTER_PORT_BASE" = 0 ]; then echo 0; else echo $((KAFKA_JMX_EXPORTER_PORT_BASE + ${1#kafka-} - 1)); fi ;;
    connect) echo "$CONNECT_JMX_EXPORTER_PORT" ;;
    cassandra) echo "$CASSANDRA_JMX_EXPORTER_PORT" ;;
    *) die "no JMX exporter for '$1'" ;;
  esac
}

# jmx_exporter_rules NAME: the committed rules file of a server (a whitelist of the few MBeans we chart and alert on).
jmx_exporter_rules() {
  case "$1" in
    kafka-*) echo "$STACK_DIR/conf/jmx-exporter-kafka.yml" ;;
    connect) echo "$STACK_DIR/conf/jmx-exporter-connect.yml" ;;
    cassandra) echo "$STACK_DIR/conf/jmx-exporter-cassandra.yml" ;;
  esac
}

# jmx_agent_flags NAME: sets JMX_AGENT_FLAGS to the -javaagent flag for that server (empty when its port is 0), after
# checking the port is free. The agent binds 127.0.0.1 only.
jmx_agent_flags() {
  local port
  port=$(jmx_exporter_port "$1")
  JMX_AGENT_FLAGS=()
  [ "$port" = 0 ] && return 0
  require_free_port "$port" "the JMX exporter of $1"
  # start-component can come before any stack:up fetched the agent; and the jar is looked up in its own statement,
  # so that its die stops here (inside "-javaagent:$(...)" it would end only the subshell, and the JVM would refuse
  # an empty agent path).
  ls "$JMX_EXPORTER_LIB"/jmx_prometheus_javaagent-*.jar >/dev/null 2>&1 || jmx_exporter_fetch
  local jar
  jar=$(jmx_exporter_jar) || exit 1
  JMX_AGENT_FLAGS=("-javaagent:$jar=127.0.0.1:$port:$(jmx_exporter_rules "$1")")
}

# jmx_exporter_status NAME: one status line. A server started without the agent (before the exporter was configured,
# or with its port at 0) is reported but does not fail the status: restarting it adds the exporter.
jmx_exporter_status() {
  local name=$1 port pid
  port=$(jmx_exporter_port "$name")
  if [ "$port" = 0 ]; then
    status_line "metrics $name" OK "off (its exporter port is 0)"
    return 0
  fi
  pid=$(pid_of "$name") || {
    status_line "metrics $name" FAIL "$name is not running"
    return 1
  }
  if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'jmx_prometheus_javaagent'; then
    status_line "metrics $name" OK "off: $name was started without the exporter (stop-component/start-component $name adds it)"
    return 0
  fi
  if curl -fsS -m 10 -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null; then
    status_line "metrics $name" OK "JMX exporter http://127.0.0.1:$port/metrics"
  else
    status_line "metrics $name" FAIL "JMX exporter not answering on http://127.0.0.1:$port/metrics (log $LOG_DIR/$name.log)"
    return 1
  fi
}

prometheus_install() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    die "Prometheus is not installed. Install it with: sudo apt-get install -y --no-install-recommends prometheus (then run this again)"
  fi
  log "installing Prometheus from Debian (apt-get install prometheus)"
  # No recommends: they would add (and start) prometheus-node-exporter, which the stack does not use.
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; } \
    >"$LOG_DIR/apt-prometheus.log" 2>&1 || die "installing Prometheus with apt-get failed; see $LOG_DIR/apt-prometheus.log"
  # Debian may start its own service on 9090; the stack runs its own Prometheus and never uses that one.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus 2>/dev/null || true
  fi
}

# prometheus_write_targets: the file-SD target lists of the stack's own servers, from the port variables. Written
# through a temporary file and renamed, so a running Prometheus never reads half a file.
prometheus_write_targets() {
  local dir="$PROMETHEUS_CONF/targets" name port list
  mkdir -p "$dir" "$PROMETHEUS_PIPELINE_SD_DIR"
  write_sd() { # FILE TARGET... (no target: an empty list)
    local f=$1 out='' t
    shift
    for t in "$@"; do out+="${out:+, }\"$t\""; done
    if [ -n "$out" ]; then printf '[{"targets": [%s]}]\n' "$out" >"$f.tmp"; else printf '[]\n' >"$f.tmp"; fi
    mv -f "$f.tmp" "$f"
  }
  write_sd "$dir/prometheus.json" "127.0.0.1:$PROMETHEUS_PORT"
  list=()
  for name in kafka-1 kafka-2 kafka-3; do
    port=$(jmx_exporter_port "$name")
    [ "$port" = 0 ] || list+=("127.0.0.1:$port")
  done
  write_sd "$dir/kafka.json" "${list[@]}"
  for name in connect cassandra; do
    port=$(jmx_exporter_port "$name")
    if [ "$port" = 0 ]; then write_sd "$dir/$name.json"; else write_sd "$dir/$name.json" "127.0.0.1:$port"; fi
  done
}

prometheus_start() {
  if is_running prometheus; then
    # The committed config may have changed since: copy it again and have Prometheus reload it (SIGHUP).
    prometheus_write_config
    kill -HUP "$(pid_of prometheus)" 2>/dev/null || true
    log "prometheus already running (pid $(pid_of prometheus), $PROMETHEUS_URL)"
    return 0
  fi
  prometheus_install
  require_free_port "$PROMETHEUS_PORT" "Prometheus (PROMETHEUS_PORT)"
  prometheus_write_config
  mkdir -p "$PROMETHEUS_DATA"
  start_bg prometheus "$LOG_DIR/prometheus.log" prometheus --config.file="$PROMETHEUS_CONF/prometheus.yml" \
    --storage.tsdb.path="$PROMETHEUS_DATA" --storage.tsdb.retention.time="$PROMETHEUS_RETENTION" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  log "prometheus starting (pid $(pid_of prometheus), $PROMETHEUS_URL, log $LOG_DIR/prometheus.log)"
}

prometheus_write_config() {
  mkdir -p "$PROMETHEUS_CONF"
  cp -f "$STACK_DIR/conf/prometheus.yml" "$STACK_DIR/conf/prometheus-alerts.yml" "$PROMETHEUS_CONF/"
  prometheus_write_targets
}

prometheus_ready() { curl -fsS -m 5 "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1; }

prometheus_wait() {
  wait_until 60 "Prometheus to be ready on $PROMETHEUS_URL" prometheus_ready || {
    is_running prometheus || { tail -30 "$LOG_DIR/prometheus.log" >&2; die "Prometheus exited during start; log: $LOG_DIR/prometheus.log"; }
    die "Prometheus was not ready on $PROMETHEUS_URL within 60 s; log: $LOG_DIR/prometheus.log"
  }
}

prometheus_status() {
  local out up total unknown
  if ! is_running prometheus || ! prometheus_ready; then
    status_line prometheus FAIL "not running or not ready on $PROMETHEUS_URL (log $LOG_DIR/prometheus.log)"
    return 1
  fi
  out=$(curl -fsS -m 10 "$PROMETHEUS_URL/api/v1/targets?state=active" 2>/dev/null || true)
  total=$(grep -o '"health":"[a-z]*"' <<<"$out" | wc -l)
  up=$(grep -o '"health":"up"' <<<"$out" | wc -l)
  unknown=$(grep -o '"health":"unknown"' <<<"$out" | wc -l)
  status_line prometheus OK "pid $(pid_of prometheus), $PROMETHEUS_URL, $up of $total targets up$([ "$unknown" = 0 ] || echo ", $unknown not scraped yet")"
}

prometheus_stop() { stop_pid prometheus 30; }

# Cassandra part of the local stack: one node on 127.0.0.1, run straight from Maven Central jars (no tarball, no
# Docker), and cqlsh from PyPI in a virtual environment. Sourced by stack/stack.sh after stack/lib/common.sh; needs
# REPO_DIR (the repository root) for the schema file.

: "${CASSANDRA_PORT:=9042}"
: "${CASSANDRA_STORAGE_PORT:=7000}"
# JMX only on 127.0.0.1 (Cassandra's "local JMX"), for nodetool; 0 turns it off.
: "${CASSANDRA_JMX_PORT:=7199}"
: "${CASSANDRA_HEAP:=768m}"
: "${CASSANDRA_RF:=1}"
# When Cassandra syncs its commit log (README: Local stack, Cassandra durability). periodic (Cassandra's default):
# a write is acknowledged before it is on disk and synced every 10 s, so a host crash (not a process crash: the OS
# still has the pages) can lose up to 10 s of acknowledged writes whose offsets replicate already committed; with
# RF 1 nothing else holds them. group: acknowledged only after the sync of its 15 ms window (no loss on a host
# crash; each write waits up to 15 ms). batch: one sync per write batch (the same guarantee, a sync per request).
: "${CASSANDRA_COMMITLOG_SYNC:=periodic}"
# Measured 8-13 s to CQL-ready on 2 cores next to Kafka; 180 s leaves room for a badly loaded machine.
: "${CASSANDRA_WAIT_S:=180}"
# SIGTERM runs Cassandra's drain hook (flushes memtables); killing it mid-way only costs a commitlog replay.
: "${CASSANDRA_STOP_S:=120}"
# Pinned so every machine gets the cqlsh that was tested here (6.2.2 works with Python 3.11); override to try another.
: "${CQLSH_VERSION:=6.2.2}"

CASSANDRA_HOST=127.0.0.1
CASSANDRA_POM="$(cd "$(dirname "${BASH_SOURCE[0]}")/../maven" && pwd)/cassandra.xml"
CASSANDRA_KEYSPACE_NAME=cdc_keyspace # the keyspace cassandra-schema.cql creates
CASSANDRA_LIB="$LIB_DIR/cassandra"
CQLSH_VENV="$LIB_DIR/cqlsh-venv"
CASSANDRA_CONF="$CONF_DIR/cassandra"
CASSANDRA_DATA="$DATA_DIR/cassandra"
CASSANDRA_LOG="$LOG_DIR/cassandra.log"
# Byte offset of the log at the last start, so waits and errors look only at this run's lines.
CASSANDRA_LOGPOS="$RUN_DIR/cassandra.logpos"

# cassandra_fetch: jars from Maven Central and cqlsh from PyPI; each part is marked complete, so a re-run is instant.
cassandra_fetch() {
  maven_fetch "$CASSANDRA_POM" "$CASSANDRA_LIB"
  if [ -f "$CQLSH_VENV/.complete" ] && [ "$(cat "$CQLSH_VENV/.complete")" = "$CQLSH_VERSION" ]; then return 0; fi
  require_cmd python3 "install Python 3 (Debian: apt-get install python3 python3-venv); cqlsh runs on it"
  log "installing cqlsh $CQLSH_VERSION from PyPI into $CQLSH_VENV (first start only)"
  rm -rf "$CQLSH_VENV"
  python3 -m venv "$CQLSH_VENV" >"$LOG_DIR/cqlsh-install.log" 2>&1 ||
    die "python3 -m venv failed (log: $LOG_DIR/cqlsh-install.log). Debian: apt-get install python3-venv"
  "$CQLSH_VENV/bin/pip" install --disable-pip-version-check -q "cqlsh==$CQLSH_VERSION" >>"$LOG_DIR/cqlsh-install.log" 2>&1 || {
    tail -20 "$LOG_DIR/cqlsh-install.log" >&2
    die "pip install cqlsh==$CQLSH_VERSION failed (log: $LOG_DIR/cqlsh-install.log). Check the network to PyPI."
  }
  # Prove it imports on this Python (the driver's event loop differs between Python versions).
  "$CQLSH_VENV/bin/cqlsh" --version >>"$LOG_DIR/cqlsh-install.log" 2>&1 || {
    tail -20 "$LOG_DIR/cqlsh-install.log" >&2
    die "cqlsh $CQLSH_VERSION does not run on $(python3 --version 2>&1); set CQLSH_VERSION to another release"
  }
  echo "$CQLSH_VERSION" >"$CQLSH_VENV/.complete"
}

# cqlsh_run ARGS...: the venv's cqlsh against the local node; exits with cqlsh's status.
cqlsh_run() {
  [ -x "$CQLSH_VENV/bin/cqlsh" ] || die "cqlsh is not installed yet: start the stack once (it fetches cqlsh)"
  if [ -t 1 ]; then
    "$CQLSH_VENV/bin/cqlsh" "$CASSANDRA_HOST" "$CASSANDRA_PORT" "$@"
  else
    # PyPI's cqlsh says "built against 5.0.0" on stdout for any other server version; drop that line when output
    # is read by a script (tests parse it), keep it for people at a terminal.
    "$CQLSH_VENV/bin/cqlsh" "$CASSANDRA_HOST" "$CASSANDRA_PORT" "$@" | sed '/^WARNING: cqlsh was built against/d'
    return "${PIPESTATUS[0]}"
  fi
}

# The commit log lines of cassandra.yaml for CASSANDRA_COMMITLOG_SYNC; any other value stops with one line.
cassandra_commitlog_sync_yaml() {
  case "$CASSANDRA_COMMITLOG_SYNC" in
    periodic) printf 'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms\n' ;;
    group) printf 'commitlog_sync: group\ncommitlog_sync_group_window: 15ms\n' ;;
    batch) printf 'commitlog_sync: batch\n' ;;
    *) die "CASSANDRA_COMMITLOG_SYNC must be periodic, group or batch (got '$CASSANDRA_COMMITLOG_SYNC')" ;;
  esac
}

# Writes cassandra.yaml and logback.xml; regenerated on every start so a changed port or path takes effect.
cassandra_write_config() {
  local d=$CASSANDRA_DATA
  # Checked before the heredoc: a die inside $(...) would end only the subshell.
  cassandra_commitlog_sync_yaml >/dev/null
  mkdir -p "$CASSANDRA_CONF/triggers" "$d/data" "$d/commitlog" "$d/saved_caches" "$d/hints" "$d/cdc_raw"
  cat >"$CASSANDRA_CONF/cassandra.yaml" <<EOF
# Generated by stack/lib/cassandra.sh on every start: edit that file, not this one.
# One node for local development on a small (2-core) machine.
cluster_name: cdc-local
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$CASSANDRA_HOST:$CASSANDRA_STORAGE_PORT"
listen_address: $CASSANDRA_HOST
rpc_address: $CASSANDRA_HOST
storage_port: $CASSANDRA_STORAGE_PORT
native_transport_port: $CASSANDRA_PORT
start_native_transport: true

data_file_directories:
  - $d/data
commitlog_directory: $d/commitlog
saved_caches_directory: $d/saved_caches
hints_directory: $d/hints
cdc_raw_directory: $d/cdc_raw
cdc_enabled: false
$(cassandra_commitlog_sync_yaml)
# Bound the disk a dev node can take (default is a quarter of the disk).
commitlog_total_space: 1024MiB

authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer

# Small pools: 2 cores shared with Kafka, Connect and PostgreSQL (defaults assume a dedicated 8+ core server).
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_materialized_view_writes: 4
concurrent_compactors: 1
memtable_flush_writers: 1
native_transport_max_threads: 32

# Tests create and drop throwaway keyspaces: do not keep a snapshot of each one on disk.
auto_snapshot: false
# Full-table reads (the row-for-row PostgreSQL comparison of tests and the demo) cross the tombstones that deletes
# leave for gc_grace_seconds; the default failure threshold (100,000 per read) would fail them on a busy dev node.
tombstone_warn_threshold: 100000
tombstone_failure_threshold: 5000000
EOF
  # INFO to stdout, which start_bg appends to the log file (Cassandra's own default logs DEBUG to several files).
  cat >"$CASSANDRA_CONF/logback.xml" <<'EOF'
<configuration scan="false">
  <shutdownHook class="ch.qos.logback.core.hook.DefaultShutdownHook"/>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# The JVM flags bin/cassandra would build from conf/jvm-server.options, conf/jvm17-server.options and
# cassandra-env.sh, minus what only suits big dedicated servers.
cassandra_jvm_flags() {
  local jamm
  jamm=$(ls "$CASSANDRA_LIB"/jamm-*.jar 2>/dev/null | head -1)
  [ -n "$jamm" ] || die "jamm jar not found in $CASSANDRA_LIB: delete that folder and start again to re-fetch"
  CASSANDRA_JVM_FLAGS=(
    "-Xms$CASSANDRA_HEAP" "-Xmx$CASSANDRA_HEAP" -Xss256k
    # Cassandra ships with assertions on (they guard data correctness), except in chronicle (audit logs).
    -ea -da:net.openhft...
    -XX:+UseThreadPriorities -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$CASSANDRA_DATA"
    -XX:+UseTLAB -XX:+ResizeTLAB -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true
    # G1 as jvm17-server.options sets it, but without G1HeapRegionSize=16m (meant for 8 GB+ heaps; on a
    # sub-GB heap it leaves too few regions) and without AlwaysPreTouch (slower start, no gain here).
    -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1RSetUpdatingPauseTimePercent=5
    -XX:MaxGCPauseMillis=300 -XX:InitiatingHeapOccupancyPercent=70
    # JDK 17 module access, verbatim from Cassandra 5.0's conf/jvm17-server.options.
    -Djdk.attach.allowAttachSelf=true
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports java.sql/java.sql=ALL-UNNAMED
    --add-exports java.base/java.lang.ref=ALL-UNNAMED
    --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
    --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
    --add-opens java.base/java.lang.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    -Dio.netty.tryReflectionSetAccessible=true
    -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11
    # jamm measures object sizes for memtable accounting; cassandra-env.sh always loads it as an agent.
    "-javaagent:$jamm"
    # Where bin/cassandra would point: our generated config, our data folder, stay attached to start_bg.
    -Dcassandra-foreground=yes
    "-Dcassandra.config=file://$CASSANDRA_CONF/cassandra.yaml"
    "-Dcassandra.storagedir=$CASSANDRA_DATA"
    "-Dcassandra.logdir=$LOG_DIR"
    "-Dlogback.configurationFile=$CASSANDRA_CONF/logback.xml"
    # An empty triggers folder: without one Cassandra warns on every schema change.
    "-Dcassandra.triggers_dir=$CASSANDRA_CONF/triggers"
    # A lone node has no peers to hear from: skip the gossip settle wait and the 30 s ring delay, and do not
    # linger announcing shutdown to nobody.
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 -Dcassandra.shutdown_announce_in_ms=0
    -XX:OnOutOfMemoryError="kill -9 %p"
  )
  if [ "$CASSANDRA_JMX_PORT" != 0 ]; then
    # cassandra.jmx.local.port binds JMX to loopback only, without authentication (cassandra-env.sh's LOCAL_JMX).
    CASSANDRA_JVM_FLAGS+=("-Dcassandra.jmx.local.port=$CASSANDRA_JMX_PORT" -Djava.rmi.server.hostname=127.0.0.1)
  fi
}

cassandra_start() {
  if is_running cassandra; then
    log "cassandra already running (pid $(pid_of cassandra)) on $CASSANDRA_HOST:$CASSANDRA_PORT"
    return 0
  fi
  require_java
  cassandra_fetch
  require_free_port "$CASSANDRA_PORT" "Cassandra CQL (CASSANDRA_PORT)"
  require_free_port "$CASSANDRA_STORAGE_PORT" "Cassandra internode (CASSANDRA_STORAGE_PORT)"
  [ "$CASSANDRA_JMX_PORT" = 0 ] || require_free_port "$CASSANDRA_JMX_PORT" "Cassandra JMX (CASSANDRA_JMX_PORT; 0 disables it)"
  cassandra_write_config
  cassandra_jvm_flags
  jmx_agent_flags cassandra
  CASSANDRA_JVM_FLAGS+=("${JMX_AGENT_FLAGS[@]}")
  : >>"$CASSANDRA_LOG"
  wc -c <"$CASSANDRA_LOG" | tr -d ' ' >"$CASSANDRA_LOGPOS"
  log "starting cassandra on $CASSANDRA_HOST:$CASSANDRA_PORT (heap $CASSANDRA_HEAP, log $CASSANDRA_LOG)"
  # Plain classpath from the fetched jars; CassandraDaemon is the main class bin/cassandra runs.
  start_bg cassandra "$CASSANDRA_LOG" java "${CASSANDRA_JVM_FLAGS[@]}" -cp "$CASSANDRA_LIB/*" \
    org.apache.cassandra.service.CassandraDaemon
}

# This run's part of the log (since the last cassandra_start).
cassandra_log_since_start() {
  local pos=0
  [ -f "$CASSANDRA_LOGPOS" ] && pos=$(cat "$CASSANDRA_LOGPOS")
  tail -c +"$((pos + 1))" "$CASSANDRA_LOG" 2>/dev/null
}

cassandra_cql_answers() {
  cqlsh_run --connect-timeout=5 --request-timeout=10 -e 'SELECT release_version FROM system.local' >/dev/null 2>&1
}

# cassandra_wait: until CQL answers; dies with the log's tail if the process exits or the time runs out.
cassandra_wait() {
  local i
  for ((i = 0; i < CASSANDRA_WAIT_S; i++)); do
    if ! is_running cassandra; then
      cassandra_log_since_start | tail -30 >&2
      die "cassandra exited during start-up (last lines above; full log: $CASSANDRA_LOG)"
    fi
    # Cheap port check first: cqlsh costs a Python start-up, too much to run every second on 2 cores.
    if port_listening "$CASSANDRA_PORT" && cassandra_cql_answers; then
      log "cassandra ready on $CASSANDRA_HOST:$CASSANDRA_PORT after ${i}s"
      return 0
    fi
    sleep 1
  done
  cassandra_log_since_start | tail -30 >&2
  die "cassandra did not answer CQL on $CASSANDRA_HOST:$CASSANDRA_PORT within ${CASSANDRA_WAIT_S}s (last lines above; full log: $CASSANDRA_LOG). Raise CASSANDRA_WAIT_S on a slow machine."
}

# cassandra_apply_schema: cassandra-schema.cql with __RF__ replaced by CASSANDRA_RF. Idempotent (IF NOT EXISTS).
cassandra_apply_schema() {
  local src="${REPO_DIR:?REPO_DIR is not set}/cassandra-schema.cql" out="$CASSANDRA_CONF/schema.cql"
  [ -f "$src" ] || die "schema file $src not found"
  [[ "$CASSANDRA_RF" =~ ^[1-9][0-9]*$ ]] || die "CASSANDRA_RF must be a positive integer (got '$CASSANDRA_RF')"
  mkdir -p "$CASSANDRA_CONF"
  sed "s/__RF__/$CASSANDRA_RF/g" "$src" >"$out"
  # A generous request timeout: schema changes wait for the flush of system tables, slow on busy cores.
  cqlsh_run --request-timeout=60 -f "$out" >"$LOG_DIR/cassandra-schema.log" 2>&1 || {
    cat "$LOG_DIR/cassandra-schema.log" >&2
    die "applying $src to Cassandra failed (output above)"
  }
  log "cassandra schema applied ($CASSANDRA_KEYSPACE_NAME, replication factor $CASSANDRA_RF)"
}

# cassandra_status: one status line; non-zero when Cassandra is down, not answering or missing the keyspace.
cassandra_status() {
  local where="$CASSANDRA_HOST:$CASSANDRA_PORT" pid ks
  if ! pid=$(pid_of cassandra); then
    if port_listening "$CASSANDRA_PORT"; then
      status_line cassandra FAIL "not started by the stack; port $CASSANDRA_PORT is held by $(port_owner "$CASSANDRA_PORT")"
    else
      status_line cassandra FAIL "not running (log: $CASSANDRA_LOG)"
    fi
    return 1
  fi
  if ! ks=$(cqlsh_run --connect-timeout=5 --request-timeout=10 -e \
    "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = '$CASSANDRA_KEYSPACE_NAME'" 2>&1); then
    status_line cassandra FAIL "pid $pid runs but CQL does not answer on $where (starting? log: $CASSANDRA_LOG)"
    return 1
  fi
  if ! grep -qw "$CASSANDRA_KEYSPACE_NAME" <<<"$ks"; then
    status_line cassandra FAIL "up on $where, but keyspace $CASSANDRA_KEYSPACE_NAME is missing (schema not applied)"
    return 1
  fi
  status_line cassandra OK "up on $where, keyspace $CASSANDRA_KEYSPACE_NAME"
}

cassandra_stop() {
  if is_running cassandra; then log "stopping cassandra (pid $(pid_of cassandra); it flushes memtables first)"; fi
  stop_pid cassandra "$CASSANDRA_STOP_S"
}

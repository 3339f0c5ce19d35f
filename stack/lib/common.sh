# Shared helpers for stack/stack.sh and the component files in stack/lib/. Sourced, never run.
# Conventions: every component keeps its pid in $RUN_DIR/<name>.pid, its log in $LOG_DIR/<name>.log and its data under
# $DATA_DIR/<name>; every stop acts only on the pid we recorded, never on a process we did not start.

: "${CDC_STACK_HOME:=$HOME/.cache/cdc-pipeline}"
LIB_DIR="$CDC_STACK_HOME/lib"
DATA_DIR="$CDC_STACK_HOME/data"
LOG_DIR="$CDC_STACK_HOME/logs"
RUN_DIR="$CDC_STACK_HOME/run"
CONF_DIR="$CDC_STACK_HOME/conf"
mkdir -p "$LIB_DIR" "$DATA_DIR" "$LOG_DIR" "$RUN_DIR" "$CONF_DIR"
# Data, logs, pid files and generated configs are the stack user's only (an existing tree made under umask 022 too).
chmod 700 "$DATA_DIR" "$LOG_DIR" "$RUN_DIR" "$CONF_DIR"

if [ -t 1 ]; then C_OK=$'\e[32m'; C_BAD=$'\e[31m'; C_DIM=$'\e[2m'; C_OFF=$'\e[0m'; else C_OK=; C_BAD=; C_DIM=; C_OFF=; fi

log() { printf '%s[stack]%s %s\n' "$C_DIM" "$C_OFF" "$*"; }
warn() { printf '%s[stack] warning:%s %s\n' "$C_BAD" "$C_OFF" "$*" >&2; }
die() {
  printf '%s[stack] error:%s %s\n' "$C_BAD" "$C_OFF" "$*" >&2
  exit 1
}
# status_line NAME OK|FAIL DETAIL: one line of `stack status`.
status_line() {
  local mark
  if [ "$2" = OK ]; then mark="${C_OK}ok  ${C_OFF}"; else mark="${C_BAD}FAIL${C_OFF}"; fi
  printf '%s %-28s %s\n' "$mark" "$1" "$3"
}

pid_file() { echo "$RUN_DIR/$1.pid"; }
# alive PID: the process exists and has not finished exiting. An exited process nobody has reaped yet (a zombie)
# still answers kill -0, so state Z counts as gone, but only once its last thread is gone too: a JVM's main thread
# turns Z before its other threads have finished exiting, and those still hold its files and listening ports.
alive() {
  local stat state threads
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${stat##*) }
  [ "${state%% *}" != Z ] && return 0
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$1/status" 2>/dev/null)
  [ "${threads:-1}" -gt 1 ]
}
# pid_of NAME: prints the recorded pid when that process is still alive.
pid_of() {
  local f pid
  f=$(pid_file "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && alive "$pid" || return 1
  # A recorded pid may have been reused by an unrelated process after a reboot: ours name our folders.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -e "$CDC_STACK_HOME" -e "${PG_DATA_DIR:-$CDC_STACK_HOME}" || return 1
  echo "$pid"
}
is_running() { pid_of "$1" >/dev/null; }

# port_owner PORT: prints "pid/command" of whatever listens on 127.0.0.1:PORT (empty if free).
port_owner() {
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(("[^"]*",pid=[0-9]*' | head -1 | sed -E 's/users:\(\("([^"]*)",pid=([0-9]*)/pid \2 (\1)/'
}
port_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }
# require_free_port PORT WHAT: fail with the owner when a port we need is taken by someone else.
require_free_port() {
  if port_listening "$1"; then
    die "port $1 (needed by $2) is already taken by $(port_owner "$1" || echo 'another process'). Stop it, or set the matching port variable in .env."
  fi
}

# start_bg NAME LOGFILE CMD...: start a detached process that survives this shell, record its pid.
start_bg() {
  local name=$1 logfile=$2
  shift 2
  : >>"$logfile"
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
}

# stop_pids TIMEOUT_S NAME...: SIGTERM our recorded processes together, wait for all, then SIGKILL what is left.
# Idempotent. Stopping together matters for KRaft: a last broker alone cannot finish a controlled shutdown.
stop_pids() {
  local timeout=$1 name pid i left
  shift
  local -A pids=()
  for name in "$@"; do
    if pid=$(pid_of "$name"); then
      pids[$name]=$pid
      kill -TERM "$pid" 2>/dev/null || true
    else
      rm -f "$(pid_file "$name")"
    fi
  done
  for ((i = 0; i < timeout * 10; i++)); do
    left=0
    for name in "${!pids[@]}"; do alive "${pids[$name]}" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for name in "${!pids[@]}"; do
    if alive "${pids[$name]}"; then
      warn "$name (pid ${pids[$name]}) did not stop within ${timeout}s; killing it"
      kill -KILL "${pids[$name]}" 2>/dev/null || true
      wait_gone "${pids[$name]}"
    fi
    rm -f "$(pid_file "$name")"
  done
}
# wait_gone PID: after a SIGKILL, wait (up to 10 s) until the process and all its threads are gone.
wait_gone() {
  local i
  for ((i = 0; i < 100; i++)); do alive "$1" || return 0; sleep 0.1; done
}
# stop_pid NAME [TIMEOUT_S]: stop one recorded process (see stop_pids).
stop_pid() { stop_pids "${2:-30}" "$1"; }

# kill_pid NAME: SIGKILL one recorded process (a crash, for fault tests) and wait until it is gone.
kill_pid() {
  local pid
  pid=$(pid_of "$1") || die "$1 is not running"
  kill -KILL "$pid"
  wait_gone "$pid"
  rm -f "$(pid_file "$1")"
  log "$1 (pid $pid) killed with SIGKILL"
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD every second until it succeeds; non-zero on timeout.
wait_until() {
  local timeout=$1 what=$2 i
  shift 2
  for ((i = 0; i < timeout; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  warn "timed out after ${timeout}s waiting for $what"
  return 1
}

require_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"; }
require_java() {
  require_cmd java "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -version 2>&1 | head -1 | sed -E 's/.*version "([0-9]+).*/\1/')
  [ "${v:-0}" -ge 17 ] || die "Java 17 or newer is needed (found: $(java -version 2>&1 | head -1))"
}

# maven_fetch POM DEST_DIR [EXTRA MVN ARGS...]: copy a pom's runtime dependencies into DEST_DIR from Maven Central.
# The copy is marked complete only after Maven succeeds, so an interrupted download is retried next time.
maven_fetch() {
  local pom=$1 dest=$2
  shift 2
  if [ -f "$dest/.complete" ] && [ "$(cat "$dest/.complete")" = "$(sha1sum "$pom" | cut -c1-40)" ]; then return 0; fi
  require_cmd mvn "install Maven (Debian: apt-get install maven); it fetches the servers from Maven Central"
  log "fetching $(basename "$pom" .xml) jars from Maven Central into $dest (first start only)"
  rm -rf "$dest" && mkdir -p "$dest"
  if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dest" -DincludeScope=runtime "$@" \
    >"$LOG_DIR/maven-$(basename "$pom" .xml).log" 2>&1; then
    tail -20 "$LOG_DIR/maven-$(basename "$pom" .xml).log" >&2
    die "downloading $(basename "$pom" .xml) from Maven Central failed (log: $LOG_DIR/maven-$(basename "$pom" .xml).log). Check the network to Maven Central and run again."
  fi
  sha1sum "$pom" | cut -c1-40 >"$dest/.complete"
}

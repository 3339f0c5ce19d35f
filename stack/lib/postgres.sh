# PostgreSQL: a private cluster of Debian's PostgreSQL for the stack (wal_level=logical), with cdc_db, its owner role,
# the runtime (app) role, Debezium's replication role, the schema and the publication. Sourced by stack/stack.sh after
# common.sh. Roles and rights: stack/postgres/roles.sql.

: "${PG_PORT:=5432}"
: "${PG_OWNER_PASSWORD:=cdc_owner}"
: "${PG_APP_PASSWORD:=cdc_app}"
: "${PG_DEBEZIUM_PASSWORD:=cdc_debezium}"
: "${PG_READER_PASSWORD:=cdc_reader}"
: "${PG_SUPERUSER_PASSWORD:=postgres}"
# The most WAL a replication slot may hold back (PostgreSQL's max_slot_wal_keep_size; -1 = unlimited). 4GB: with
# Connect down, the slot keeps every WAL segment since Debezium's last confirmed position, and without a limit the
# WAL grows until the disk is full and PostgreSQL, the source of truth, stops accepting writes. 4 GB is a few million
# row changes on the local stack (about 1 KB of WAL each) or hours of ordinary traffic: a Connect outage longer than
# that costs the slot (wal_status lost, a re-snapshot: docs/faults.md) instead of the database.
: "${PG_MAX_SLOT_WAL_KEEP_SIZE:=4GB}"
# stack.sh status reports the slot unhealthy beyond this much retained WAL, in MiB (default 2048: half of the limit
# above, so that someone is told well before PostgreSQL drops the slot).
: "${SLOT_RETAINED_WAL_MAX_MB:=2048}"
# The slot stack.sh status checks (Debezium's slot.name).
: "${DEBEZIUM_SLOT_NAME:=cdc_slot}"
# PostgreSQL refuses to run as root: as root the cluster belongs to the postgres user and lives where it can reach.
if [ "$(id -u)" = 0 ]; then
  : "${PG_DATA_DIR:=/var/lib/postgresql/cdc-pipeline/data}"
  PG_OS_USER=postgres
else
  : "${PG_DATA_DIR:=$DATA_DIR/postgres}"
  PG_OS_USER=$(id -un)
fi
# The server writes its log where its owner can; $LOG_DIR/postgres.log links to it.
PG_LOG="$(dirname "$PG_DATA_DIR")/postgres.log"

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$d" ] && echo "$d"
}

# Runs a PostgreSQL server binary as the cluster's owner.
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

# pg_super [DB] [PSQL ARGS...]: psql as the cluster's superuser over TCP.
pg_super() {
  local db=${1:-postgres}
  shift || true
  PGOPTIONS="-c client_min_messages=warning" PGPASSWORD="$PG_SUPERUSER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "$@"
}

pg_install() {
  [ -n "$(pg_bindir)" ] && command -v psql >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    die "PostgreSQL is not installed. Install it with: sudo apt-get install -y postgresql (then run this again)"
  fi
  log "installing PostgreSQL from Debian (apt-get install postgresql)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >"$LOG_DIR/apt-postgres.log" 2>&1 ||
    die "installing PostgreSQL with apt-get failed; see $LOG_DIR/apt-postgres.log"
  # Debian starts its own 'main' cluster on 5432 after install; ours needs the port, and the stack never uses theirs.
  command -v pg_ctlcluster >/dev/null && pg_ctlcluster "$(basename "$(dirname "$(pg_bindir)")")" main stop 2>/dev/null || true
}

pg_init_cluster() {
  [ -f "$PG_DATA_DIR/PG_VERSION" ] && return 0
  log "creating a PostgreSQL cluster in $PG_DATA_DIR"
  # The data directory (and any folder above it made here, where the server's log goes) is its owner's only.
  (umask 077 && mkdir -p "$PG_DATA_DIR")
  chmod 700 "$PG_DATA_DIR"
  [ "$(id -u)" = 0 ] && chown -R "$PG_OS_USER": "$(dirname "$PG_DATA_DIR")"
  # The superuser's password for initdb: mktemp makes it 0600; as root, initdb runs as the cluster's owner, who gets
  # the file rather than everyone getting to read it.
  local pwfile
  pwfile=$(mktemp)
  printf '%s\n' "$PG_SUPERUSER_PASSWORD" >"$pwfile"
  chmod 600 "$pwfile"
  [ "$(id -u)" = 0 ] && chown "$PG_OS_USER" "$pwfile"
  pg_as_owner "$(pg_bindir)/initdb" -D "$PG_DATA_DIR" -U postgres --pwfile="$pwfile" --auth-local=scram-sha-256 \
    --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/postgres-initdb.log" 2>&1 || {
    rm -f "$pwfile"
    die "initdb failed; see $LOG_DIR/postgres-initdb.log"
  }
  rm -f "$pwfile"
  cat >>"$PG_DATA_DIR/postgresql.conf" <<CONF

# --- cdc-pipeline local stack ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DATA_DIR'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
max_connections = 100
shared_buffers = 256MB
synchronous_commit = on
max_slot_wal_keep_size = '$PG_MAX_SLOT_WAL_KEEP_SIZE'
CONF
  pg_drop_replication_hba || true
}

# Removes pg_hba.conf's physical replication lines (database field "replication"; initdb writes three): they let any
# REPLICATION role (cdc_debezium) pg_basebackup the whole cluster. Logical replication, all Debezium uses, matches the
# database lines. Returns 0 when it changed the file (the server must reload it), 1 when there was nothing to remove.
pg_drop_replication_hba() {
  local hba=$PG_DATA_DIR/pg_hba.conf
  grep -Eq '^[[:space:]]*(local|host[a-z]*)[[:space:]]+replication[[:space:]]' "$hba" || return 1
  pg_as_owner sed -i -E '/^[[:space:]]*(local|host[a-z]*)[[:space:]]+replication[[:space:]]/d' "$hba"
}

pg_postmaster_pid() { [ -f "$PG_DATA_DIR/postmaster.pid" ] && head -1 "$PG_DATA_DIR/postmaster.pid"; }

pg_start() {
  pg_install
  pg_init_cluster
  local pid
  if pid=$(pg_postmaster_pid) && alive "$pid"; then
    echo "$pid" >"$(pid_file postgres)"
    log "postgres already running (pid $pid)"
  else
    require_free_port "$PG_PORT" postgres
    ln -sfn "$PG_LOG" "$LOG_DIR/postgres.log"
    # The server appends to its log as the cluster's owner.
    (umask 077 && touch "$PG_LOG")
    [ "$(id -u)" = 0 ] && chown "$PG_OS_USER" "$PG_LOG"
    pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA_DIR" -l "$PG_LOG" -o "-p $PG_PORT" -w -t 60 start >/dev/null ||
      { tail -20 "$PG_LOG" >&2; die "PostgreSQL did not start; log: $PG_LOG"; }
    pg_postmaster_pid >"$(pid_file postgres)"
    log "postgres started (pid $(pid_of postgres), port $PG_PORT, data $PG_DATA_DIR, log $PG_LOG)"
  fi
  # A cluster made before the physical replication lines were dropped: drop them now, reload without a restart.
  if pg_drop_replication_hba; then
    log "removed pg_hba.conf's physical replication lines; reloading PostgreSQL's configuration"
    pg_super postgres -tAc 'SELECT pg_reload_conf()' >/dev/null
  fi
  chmod 700 "$PG_DATA_DIR"
  [ ! -f "$PG_LOG" ] || chmod 600 "$PG_LOG"
  pg_ensure_logical
  pg_ensure_slot_limit
  pg_apply_schema
}

pg_restart() {
  pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA_DIR" -l "$PG_LOG" -o "-p $PG_PORT" -w -t 60 -m fast restart >/dev/null ||
    die "PostgreSQL did not restart; log: $PG_LOG"
  pg_postmaster_pid >"$(pid_file postgres)"
}

pg_ensure_logical() {
  local level
  level=$(pg_super postgres -tAc 'SHOW wal_level') || die "cannot connect to PostgreSQL on 127.0.0.1:$PG_PORT as postgres"
  if [ "$level" != logical ]; then
    log "PostgreSQL has wal_level=$level; setting wal_level=logical and restarting PostgreSQL (Debezium needs it)"
    pg_super postgres -c 'ALTER SYSTEM SET wal_level = logical'
    pg_restart
  fi
}

# max_slot_wal_keep_size as PG_MAX_SLOT_WAL_KEEP_SIZE says, on a running cluster too (a reload, no restart: the
# setting is read on SIGHUP). A size as PostgreSQL writes it: digits with kB, MB, GB or TB, or -1 for no limit.
pg_ensure_slot_limit() {
  local want=$PG_MAX_SLOT_WAL_KEEP_SIZE same
  [[ "$want" =~ ^(-1|[0-9]+(kB|MB|GB|TB))$ ]] ||
    die "PG_MAX_SLOT_WAL_KEEP_SIZE must be -1 or a size like 4GB, 512MB (got '$want')"
  same=$(pg_super postgres -tAc "SELECT pg_size_bytes(current_setting('max_slot_wal_keep_size')) = pg_size_bytes('$want')")
  if [ "$same" != t ]; then
    log "setting max_slot_wal_keep_size = $want (was $(pg_super postgres -tAc 'SHOW max_slot_wal_keep_size'))"
    pg_super postgres -c "ALTER SYSTEM SET max_slot_wal_keep_size = '$want'" -tAc 'SELECT pg_reload_conf()' >/dev/null
  fi
}

# slot_verdict NAME ACTIVE WAL_STATUS RETAINED_BYTES LAG_BYTES MAX_MB: the slot's status line (stdout) and 0 when
# healthy, 1 when not: lost (PostgreSQL removed WAL it needed, so changes are missing), or holding more than MAX_MB.
slot_verdict() {
  local name=$1 active=$2 wal_status=$3 retained=$4 lag=$5 max_mb=$6 figures
  case "$active" in t) active=true ;; f) active=false ;; esac
  figures="active=$active, wal_status=$wal_status, retained WAL $(human_bytes "$retained"), lag $(human_bytes "$lag")"
  if [ "$wal_status" = lost ]; then
    echo "$name $figures: PostgreSQL removed WAL the slot still needed (beyond max_slot_wal_keep_size), so changes" \
      "were lost. Recovery, a new slot and a re-snapshot: curl -X PUT $CONNECT_URL/connectors/cdc-postgres/stop;" \
      "once curl $CONNECT_URL/connectors/cdc-postgres/status lists no task," \
      "curl -X DELETE $CONNECT_URL/connectors/cdc-postgres/offsets;" \
      "psql -h 127.0.0.1 -p $PG_PORT -U postgres -c \"SELECT pg_drop_replication_slot('$name')\";" \
      "curl -X PUT $CONNECT_URL/connectors/cdc-postgres/resume; then, with replicate running," \
      "npm run resnapshot -- --table users,orders,products (docs/faults.md)"
    return 1
  fi
  if [ "$retained" -gt $((max_mb * 1048576)) ]; then
    echo "$name $figures: more than SLOT_RETAINED_WAL_MAX_MB=$max_mb MB retained; is Connect consuming? (beyond" \
      "max_slot_wal_keep_size PostgreSQL removes the WAL and the slot is lost)"
    return 1
  fi
  echo "$name $figures"
}

human_bytes() {
  local b=$1
  if [ -z "$b" ]; then echo "unknown"
  elif [ "$b" -ge 1073741824 ]; then echo "$((b / 1073741824)) GB ($b bytes)"
  elif [ "$b" -ge 1048576 ]; then echo "$((b / 1048576)) MB ($b bytes)"
  else echo "$b bytes"
  fi
}

# Roles and cdc_db (roles.sql), ownership of what an older stack let cdc_app own (owner.sql), the schema as its owner
# cdc_owner (table-creation.sql), then cdc_app's and Debezium's rights and the publication (publication.sql).
# Idempotent: on a fresh cluster and on a running one.
pg_apply_schema() {
  pg_super postgres -v owner_password="$PG_OWNER_PASSWORD" -v app_password="$PG_APP_PASSWORD" \
    -v debezium_password="$PG_DEBEZIUM_PASSWORD" -v reader_password="$PG_READER_PASSWORD" \
    -f "$STACK_DIR/postgres/roles.sql" >/dev/null ||
    die "creating the PostgreSQL roles and cdc_db failed"
  pg_super cdc_db -f "$STACK_DIR/postgres/owner.sql" >/dev/null || die "handing cdc_db's tables to cdc_owner failed"
  PGOPTIONS="-c client_min_messages=warning" PGPASSWORD="$PG_OWNER_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U cdc_owner -d cdc_db \
    -f "$REPO_DIR/table-creation.sql" >/dev/null || die "applying table-creation.sql to cdc_db as cdc_owner failed"
  pg_super cdc_db -f "$STACK_DIR/postgres/publication.sql" >/dev/null ||
    die "granting cdc_app's and cdc_debezium's rights, or creating publication cdc_pub, failed"
}

pg_status() {
  local level slot rc=0
  if ! is_running postgres || ! level=$(pg_super postgres -tAc 'SHOW wal_level' 2>/dev/null); then
    status_line postgres FAIL "not running or not answering on 127.0.0.1:$PG_PORT (log $PG_LOG)"
    status_line "replication slot" FAIL "unknown (PostgreSQL down)"
    return 1
  fi
  if [ "$level" = logical ]; then
    status_line postgres OK "pid $(pid_of postgres), 127.0.0.1:$PG_PORT, wal_level=logical"
  else
    status_line postgres FAIL "wal_level=$level (Debezium needs logical: npm run stack:up fixes it)"
    rc=1
  fi
  # Retained: WAL PostgreSQL keeps for the slot (from restart_lsn); lag: what Debezium has not confirmed yet.
  slot=$(pg_super postgres -tAc "SELECT active, coalesce(wal_status, 'unknown'), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, 0), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, 0) FROM pg_replication_slots WHERE slot_name = '$DEBEZIUM_SLOT_NAME'" -F ' ')
  if [ -z "$slot" ]; then
    status_line "replication slot" FAIL "$DEBEZIUM_SLOT_NAME does not exist (the connector creates it)"
    return 1
  fi
  local line
  # shellcheck disable=SC2086 # four words: active, wal_status, retained, lag
  if line=$(slot_verdict "$DEBEZIUM_SLOT_NAME" $slot "$SLOT_RETAINED_WAL_MAX_MB"); then
    status_line "replication slot" OK "$line"
  elif [ "${STATUS_AFTER_UP:-0}" = 1 ] && [[ "$line" != *"were lost"* ]]; then
    # At the end of stack:up a slot holding much WAL is a warning, not a failed start: the stack is up, and the slot
    # moves on with Debezium's next change in cdc_db (WAL written by other databases of the cluster, a bench's, is
    # retained until then). A lost slot still fails.
    status_line "replication slot" OK "$line"
    warn "replication slot: $line"
  else
    status_line "replication slot" FAIL "$line"
    rc=1
  fi
  return $rc
}

pg_stop() {
  if is_running postgres; then
    pg_as_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA_DIR" -m fast -w -t 60 stop >/dev/null || stop_pid postgres 30
  fi
  rm -f "$(pid_file postgres)"
}

pg_wipe() { rm -rf "$PG_DATA_DIR"; }

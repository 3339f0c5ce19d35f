#!/usr/bin/env bash
# Registers the Debezium PostgreSQL connector with Kafka Connect, idempotently (PUT of the whole config: running it
# again with the same settings changes nothing), then waits until the connector and its task are RUNNING.
# A connector registered before keeps the tables its table.include.list has beyond users and orders (added by
# npm run cdc:add-table: they are in the publication, and dropping them would make Debezium skip their changes).
# Used by `npm run stack:up` and by docker-compose's registration step. Needs bash, curl, and node or jq (the JSON
# encoder: a value may hold any character, " and \ included, and can never add a key of its own).
#
# Environment (defaults fit the local stack):
#   CONNECT_URL            http://127.0.0.1:8083
#   CONNECTOR_NAME         cdc-postgres          (letters, digits, . _ -)
#   PG_HOST / PG_PORT      127.0.0.1 / 5432      (as seen from Connect)
#   PG_DB                  cdc_db
#   DEBEZIUM_PG_USER       cdc_debezium          (REPLICATION LOGIN, not a superuser)
#   DEBEZIUM_PG_PASSWORD   cdc_debezium
#   DEBEZIUM_TOPIC_RF      3                     (replication factor of the change topics)
#   DEBEZIUM_TOPIC_PARTITIONS 3
#   DEBEZIUM_WAIT_S        120                   (how long to wait for RUNNING)
#   DEBEZIUM_SLOT_NAME / DEBEZIUM_TOPIC_PREFIX / DEBEZIUM_SNAPSHOT_MODE
#                          cdc_slot / cdc / initial (for a second connector beside cdc-postgres, e.g. a test's)
#   PG_SYSTEM_IDENTIFIER   unset                 (digits: SELECT system_identifier FROM pg_control_system(); when
#                          set, every change event carries it in the header cdc.pg.system_identifier, Kafka
#                          Connect's InsertHeader, and node cmd/replicate stops on one from another cluster.
#                          stack:up sets it; a literal, so register again after moving to another cluster)
set -euo pipefail

CONNECT_URL=${CONNECT_URL:-http://127.0.0.1:8083}
NAME=${CONNECTOR_NAME:-cdc-postgres}
WAIT_S=${DEBEZIUM_WAIT_S:-120}

say() { printf '[configure-debezium] %s\n' "$*"; }

# The name goes into Connect's URL path.
if ! [[ "$NAME" =~ ^[A-Za-z0-9._-]+$ ]]; then
  say "CONNECTOR_NAME must be letters, digits, '.', '_' or '-' (got '$NAME')" >&2
  exit 2
fi

if [ -n "${PG_SYSTEM_IDENTIFIER:-}" ] && ! [[ "$PG_SYSTEM_IDENTIFIER" =~ ^[0-9]{1,20}$ ]]; then
  say "PG_SYSTEM_IDENTIFIER must be PostgreSQL's system identifier, digits only (got '$PG_SYSTEM_IDENTIFIER')" >&2
  exit 2
fi

# The settings that never vary. A quoted heredoc: nothing in it is expanded.
base=$(
  cat <<'JSON'
{
  "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
  "tasks.max": "1",
  "plugin.name": "pgoutput",
  "topic.prefix": "cdc",
  "slot.name": "cdc_slot",
  "publication.name": "cdc_pub",
  "publication.autocreate.mode": "disabled",
  "table.include.list": "public.users,public.orders,public.products",
  "snapshot.mode": "initial",
  "tombstones.on.delete": "true",
  "skipped.operations": "none",
  "signal.data.collection": "public.debezium_signal",
  "incremental.snapshot.chunk.size": "2048",
  "notification.enabled.channels": "sink",
  "notification.sink.topic.name": "cdc.notifications",
  "message.prefix.exclude.list": ".*",
  "key.converter": "org.apache.kafka.connect.json.JsonConverter",
  "value.converter": "org.apache.kafka.connect.json.JsonConverter",
  "key.converter.schemas.enable": "false",
  "value.converter.schemas.enable": "false",
  "decimal.handling.mode": "string",
  "poll.interval.ms": "100",
  "time.precision.mode": "adaptive",
  "heartbeat.interval.ms": "10000",
  "topic.creation.default.min.insync.replicas": "2",
  "topic.creation.default.cleanup.policy": "delete"
}
JSON
)

# The settings from the environment, as NUL-separated key and value pairs on stdout (printf is a builtin: no value,
# the password included, ever appears in a process's arguments). An optional one left unset keeps base's value.
settings() {
  pair() { printf '%s\0%s\0' "$1" "$2"; }
  pair database.hostname "${PG_HOST:-127.0.0.1}"
  pair database.port "${PG_PORT:-5432}"
  pair database.user "${DEBEZIUM_PG_USER:-cdc_debezium}"
  pair database.password "${DEBEZIUM_PG_PASSWORD:-cdc_debezium}"
  pair database.dbname "${PG_DB:-cdc_db}"
  pair max.batch.size "${DEBEZIUM_MAX_BATCH_SIZE:-2048}"
  pair producer.override.linger.ms "${DEBEZIUM_PRODUCER_LINGER_MS:-20}"
  pair producer.override.batch.size "${DEBEZIUM_PRODUCER_BATCH_SIZE:-524288}"
  pair producer.override.compression.type "${DEBEZIUM_PRODUCER_COMPRESSION:-none}"
  pair topic.creation.default.replication.factor "${DEBEZIUM_TOPIC_RF:-3}"
  pair topic.creation.default.partitions "${DEBEZIUM_TOPIC_PARTITIONS:-3}"
  if [ -n "${DEBEZIUM_SLOT_NAME:-}" ]; then pair slot.name "$DEBEZIUM_SLOT_NAME"; fi
  if [ -n "${DEBEZIUM_TOPIC_PREFIX:-}" ]; then pair topic.prefix "$DEBEZIUM_TOPIC_PREFIX"; fi
  if [ -n "${DEBEZIUM_SNAPSHOT_MODE:-}" ]; then pair snapshot.mode "$DEBEZIUM_SNAPSHOT_MODE"; fi
  if [ -n "${PG_SYSTEM_IDENTIFIER:-}" ]; then
    pair transforms pgIdentity
    pair transforms.pgIdentity.type org.apache.kafka.connect.transforms.InsertHeader
    pair transforms.pgIdentity.header cdc.pg.system_identifier
    pair transforms.pgIdentity.value.literal "$PG_SYSTEM_IDENTIFIER"
  fi
}

# connector_json: base with settings on top, encoded by a JSON encoder (node, else jq), never by string pasting.
connector_json() {
  if command -v node >/dev/null 2>&1; then
    settings | CDC_CONNECTOR_BASE=$base CDC_CONNECTOR_EXISTING=$existing node -e '
      const f = require("fs").readFileSync(0, "utf8").split("\0")
      const config = JSON.parse(process.env.CDC_CONNECTOR_BASE)
      for (let i = 0; i + 1 < f.length; i += 2) config[f[i]] = f[i + 1]
      // Tables added since (npm run cdc:add-table) stay in the include list: they are in the publication, and
      // re-registering without them would make Debezium skip their changes.
      let existing = {}
      try { existing = JSON.parse(process.env.CDC_CONNECTOR_EXISTING || "{}") } catch {}
      const list = config["table.include.list"].split(",")
      for (const t of String(existing["table.include.list"] || "").split(",").map((e) => e.trim())) {
        if (t !== "" && !list.includes(t)) list.push(t)
      }
      config["table.include.list"] = list.join(",")
      process.stdout.write(JSON.stringify(config, null, 2) + "\n")'
  elif command -v jq >/dev/null 2>&1; then
    settings | jq -Rs --argjson base "$base" --argjson existing "$existing" \
      'split("\u0000") | . as $f | reduce range(0; length - 1; 2) as $i ($base; .[$f[$i]] = $f[$i + 1])
       | .["table.include.list"] = (reduce (($existing["table.include.list"] // "") | split(",")[] | gsub("^ +| +$"; "") | select(. != ""))
           as $t (.["table.include.list"] | split(","); if index([$t]) then . else . + [$t] end) | join(","))'
  else
    say "neither node nor jq is installed: one of them encodes the connector's JSON" >&2
    exit 1
  fi
}


# message.prefix.exclude.list .*: logical decoding messages (pg_logical_emit_message, from any application on the
# database) are not captured: the pipeline reads none, and one over Connect's 1 MB max.request.size failed the task
# (RecordTooLargeException on cdc.message; the task stays FAILED, and a restart meets the same message again).
# signal.data.collection: npm run resnapshot inserts Debezium's execute-snapshot signal into public.debezium_signal
# (table-creation.sql), which is in cdc_pub (Debezium reads signals from its WAL) and not in table.include.list
# (Debezium captures it anyway and writes its rows to cdc.public.debezium_signal; replicate and cache-sync read a
# fixed topic list without it, and --tables publication leaves it out). Incremental snapshots read the table in chunks of incremental.snapshot.chunk.size rows between
# two watermarks written into the same table (Debezium's default chunk is 1,024; 2,048 matches max.batch.size).
# Debezium reports the snapshot's progress (STARTED ... COMPLETED) to the topic cdc.notifications, which
# npm run resnapshot --wait reads.
# skipped.operations none: Debezium emits TRUNCATE events (op t), which it skips by default; node cmd/replicate applies
# them (--on-truncate). The publication publishes truncates (PostgreSQL's default publish list).
# Change events without an embedded schema: the schema made every event several times larger and halved what
# Connect could emit on the 2-core machine (50,000 row changes reached Kafka at 2,400/s with it, 5,200/s without).
# Decimals as strings then keep their scale in the text ('12.50'); dates are days since the epoch, timestamps
# ISO-8601 strings. The decoder accepts both forms. poll.interval.ms 100 (default 500): a change waits at most
# that long in Debezium's queue when fewer than max.batch.size are pending.
# Connect's producer for the change topics lingers 20 ms and sends batches of up to 512 KiB (Kafka's defaults: 5 ms,
# 16 KiB): measured on the 2-core machine, 100,000 events consumed into cdc_db cost the three brokers 92-100 ms of
# CPU per 1,000 events with the defaults and 28-30 ms with these (Connect 35-38 -> 25-30 ms), and the consumer beside
# them went from 10,500-13,900 to 16,400-20,300 events/s. lz4 compression took the brokers to 22 ms more, but our
# consumer (kafkajs) would need a native codec to read it: off by default.

for ((i = 0; i < 60; i++)); do
  curl -fsS "$CONNECT_URL/connector-plugins" >/dev/null 2>&1 && break
  sleep 2
done
curl -fsS "$CONNECT_URL/connector-plugins" | grep -q 'io.debezium.connector.postgresql.PostgresConnector' || {
  say "Kafka Connect at $CONNECT_URL does not offer io.debezium.connector.postgresql.PostgresConnector" >&2
  exit 1
}

# The connector's current config, if it is registered: the tables cdc:add-table added stay (connector_json).
existing=$(curl -fsS "$CONNECT_URL/connectors/$NAME/config" 2>/dev/null || true)
[ -n "$existing" ] || existing='{}'
config=$(connector_json)

# The body goes in on stdin (not in curl's arguments); Connect's answer, which may echo the config, to a private file.
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
code=$(printf '%s' "$config" | curl -sS -o "$answer" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
  --data-binary @- "$CONNECT_URL/connectors/$NAME/config")
body=$(cat "$answer")
case "$code" in
  200) say "connector $NAME updated (config unchanged if it was already registered)" ;;
  201) say "connector $NAME created" ;;
  *)
    say "registering $NAME failed: HTTP $code: $body" >&2
    exit 1
    ;;
esac

# Connector and task state; a FAILED one prints its trace.
running_for=0
for ((i = 0; i < WAIT_S; i++)); do
  status=$(curl -fsS "$CONNECT_URL/connectors/$NAME/status" 2>/dev/null || true)
  states=$(printf '%s' "$status" | { grep -o '"state":"[A-Z]*"' || true; } | cut -d'"' -f4 | tr '\n' ' ')
  if printf '%s' "$states" | grep -q FAILED; then
    say "connector $NAME FAILED: $states" >&2
    printf '%s\n' "$status" | sed 's/\\n/\n/g; s/\\t/\t/g' >&2
    exit 1
  fi
  # A task can report RUNNING and fail a few seconds later (e.g. a slot that cannot be created): require 5 s of it.
  if [ "$(printf '%s' "$states" | wc -w)" -ge 2 ] && ! printf '%s' "$states" | grep -qv '^\(RUNNING \)*$'; then
    running_for=$((running_for + 1))
    if [ "$running_for" -ge 5 ]; then
      say "connector $NAME and its task are RUNNING"
      exit 0
    fi
  else
    running_for=0
  fi
  sleep 1
done
say "connector $NAME not RUNNING after ${WAIT_S}s (states: ${states:-none})" >&2
exit 1

#!/usr/bin/env bash
# First-start initialisation of the postgres container in docker-compose.yml, mounted into
# /docker-entrypoint-initdb.d (the image runs it once, when the data volume is empty, against a temporary server on
# the Unix socket, where local connections are trusted). Applies, in order:
#   roles.sql           as the superuser  (roles cdc_owner, cdc_app, cdc_debezium, cdc_reader; database cdc_db owned by cdc_owner)
#   table-creation.sql  in cdc_db as cdc_owner, so the owner role owns the tables and the runtime role cdc_app does not
#   publication.sql     in cdc_db as the superuser (cdc_app: SELECT, INSERT, UPDATE; Debezium, cdc_reader: SELECT; cdc_pub)
# and removes pg_hba.conf's physical replication lines (Debezium's logical replication matches the database lines),
# as stack/lib/postgres.sh does for the local stack. The same roles and rights as the local stack.
# The image may source this file instead of running it (when it is not executable), so it defines no global names
# besides its function and never calls exit.

cdc_docker_init() {
  local sql_dir=${CDC_SQL_DIR:-/cdc-sql}
  local superuser=${POSTGRES_USER:-postgres}
  local psql_base=(psql -X -v ON_ERROR_STOP=1 --no-password)

  echo "cdc init: roles and database (roles.sql)"
  "${psql_base[@]}" --username "$superuser" --dbname postgres \
    -v owner_password="${PG_OWNER_PASSWORD:-cdc_owner}" \
    -v app_password="${PG_APP_PASSWORD:-cdc_app}" \
    -v debezium_password="${PG_DEBEZIUM_PASSWORD:-cdc_debezium}" \
    -v reader_password="${PG_READER_PASSWORD:-cdc_reader}" \
    -f "$sql_dir/roles.sql" || return 1

  echo "cdc init: tables in cdc_db as cdc_owner (table-creation.sql)"
  "${psql_base[@]}" --username cdc_owner --dbname cdc_db -f "$sql_dir/table-creation.sql" || return 1

  echo "cdc init: rights of cdc_app and cdc_debezium, publication (publication.sql)"
  "${psql_base[@]}" --username "$superuser" --dbname cdc_db -f "$sql_dir/publication.sql" || return 1

  # The image starts the real server after the init scripts, so it reads the file without these lines.
  echo "cdc init: no physical replication in pg_hba.conf"
  sed -i -E '/^[[:space:]]*(local|host[a-z]*)[[:space:]]+replication[[:space:]]/d' "${PGDATA:?}/pg_hba.conf" || return 1
}

cdc_docker_init

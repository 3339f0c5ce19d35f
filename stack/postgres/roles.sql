-- Roles for the pipeline; run as a superuser in database postgres with psql variables owner_password, app_password,
-- debezium_password and reader_password. Idempotent, on a fresh cluster and on one made before the owner role existed.
--   cdc_owner     owns cdc_db, its schema and the tables, and applies table-creation.sql (migrations, DBAs, tests
--                 that reset rows). Nothing runs as it in production.
--   cdc_app       the running consumer: SELECT, INSERT, UPDATE on the tables (publication.sql grants them), nothing
--                 else. It cannot DROP, TRUNCATE or ALTER them, nor disable the soft-delete trigger.
--   cdc_debezium  Debezium: REPLICATION LOGIN (logical decoding only: pg_hba has no physical replication line), SELECT.
--   cdc_reader    node cmd/api's cache fills: SELECT on the tables and nothing else (a read API that cannot write).
SELECT format('CREATE ROLE cdc_owner LOGIN PASSWORD %L', :'owner_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_owner') \gexec
SELECT format('CREATE ROLE cdc_app LOGIN PASSWORD %L', :'app_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_app') \gexec
SELECT format('CREATE ROLE cdc_debezium REPLICATION LOGIN PASSWORD %L', :'debezium_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_debezium') \gexec
SELECT format('CREATE ROLE cdc_reader LOGIN PASSWORD %L', :'reader_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_reader') \gexec
ALTER ROLE cdc_owner NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;
ALTER ROLE cdc_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;
ALTER ROLE cdc_debezium NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS REPLICATION LOGIN;
ALTER ROLE cdc_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS LOGIN;
-- Neither the runtime roles nor Debezium may hold the owner's rights through a membership.
SELECT format('REVOKE %I FROM %I', r.rolname, m.rolname)
  FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
 WHERE r.rolname = 'cdc_owner' AND m.rolname IN ('cdc_app', 'cdc_debezium', 'cdc_reader') \gexec
SELECT 'CREATE DATABASE cdc_db OWNER cdc_owner'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cdc_db') \gexec
-- A cdc_db made when cdc_app owned it. The public schema belongs to pg_database_owner, so it follows.
SELECT 'ALTER DATABASE cdc_db OWNER TO cdc_owner'
 WHERE (SELECT datdba::regrole::text FROM pg_database WHERE datname = 'cdc_db') <> 'cdc_owner' \gexec

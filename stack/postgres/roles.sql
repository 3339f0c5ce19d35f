-- Roles for the pipeline; run as a superuser with psql variables app_password and debezium_password.
-- Idempotent. The application role owns the tables; Debezium gets its own REPLICATION LOGIN role (not a superuser)
-- with read access only.
SELECT format('CREATE ROLE cdc_app LOGIN PASSWORD %L', :'app_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_app') \gexec
SELECT format('CREATE ROLE cdc_debezium REPLICATION LOGIN PASSWORD %L', :'debezium_password')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdc_debezium') \gexec
ALTER ROLE cdc_debezium NOSUPERUSER REPLICATION LOGIN;
SELECT 'CREATE DATABASE cdc_db OWNER cdc_app'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'cdc_db') \gexec

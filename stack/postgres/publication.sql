-- Run as a superuser in cdc_db after table-creation.sql. Idempotent.
-- Debezium reads through the publication we create here (publication.autocreate.mode=disabled), so its role needs
-- no table ownership: only CONNECT, USAGE and SELECT (SELECT for the initial snapshot).
GRANT CONNECT ON DATABASE cdc_db TO cdc_debezium;
GRANT USAGE ON SCHEMA public TO cdc_debezium;
GRANT SELECT ON public.users, public.orders TO cdc_debezium;
SELECT 'CREATE PUBLICATION cdc_pub FOR TABLE public.users, public.orders'
 WHERE NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cdc_pub') \gexec

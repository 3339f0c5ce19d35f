-- Run as a superuser in cdc_db after table-creation.sql (which cdc_owner applies, so cdc_owner owns the tables).
-- Idempotent. The grants of the two roles that are not the owner, and the publication.
--
-- cdc_app, the running consumer: SELECT, INSERT, UPDATE and nothing else. Its upserts are INSERT ... ON CONFLICT DO
-- UPDATE, its lock is SELECT ... FOR SHARE (needs UPDATE), soft deletes are UPDATEs; the soft-delete trigger runs
-- with its rights and only UPDATEs orders. No DELETE: no sink deletes a row. REVOKE ALL first, in the same
-- transaction, so that a right granted by hand (or left by the days when cdc_app owned the tables) does not survive.
--
-- cdc_reader, node cmd/api's reads: SELECT only (default_transaction_read_only on too, so that even a right granted by
-- hand later cannot make the API write).
--
-- Debezium reads through the publication we create here (publication.autocreate.mode=disabled), so its role needs
-- no table ownership: only CONNECT, USAGE and SELECT (SELECT for the initial snapshot). The publication belongs to
-- the superuser that creates it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE cdc_db TO cdc_app, cdc_debezium, cdc_reader;
GRANT USAGE ON SCHEMA public TO cdc_app, cdc_debezium, cdc_reader;
ALTER ROLE cdc_reader IN DATABASE cdc_db SET default_transaction_read_only = on;
BEGIN;
REVOKE ALL ON public.users, public.orders, public.products FROM cdc_app, cdc_debezium, cdc_reader;
GRANT SELECT, INSERT, UPDATE ON public.users, public.orders, public.products TO cdc_app;
GRANT SELECT ON public.users, public.orders, public.products TO cdc_debezium, cdc_reader;
-- The signal table (npm run resnapshot): Debezium writes its watermarks into it (SELECT, INSERT); cdc_app only inserts
-- the execute-snapshot signal; cdc_reader nothing.
REVOKE ALL ON public.debezium_signal FROM PUBLIC, cdc_app, cdc_debezium, cdc_reader;
GRANT SELECT, INSERT ON public.debezium_signal TO cdc_debezium;
GRANT INSERT ON public.debezium_signal TO cdc_app;
COMMIT;
SELECT 'CREATE PUBLICATION cdc_pub FOR TABLE public.users, public.orders, public.products, public.debezium_signal'
 WHERE NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'cdc_pub') \gexec
-- A publication created before a table was added to the schema gets it now (each table once).
SELECT format('ALTER PUBLICATION cdc_pub ADD TABLE public.%I', t)
  FROM unnest(ARRAY['users', 'orders', 'products', 'debezium_signal']) AS t
 WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables
                    WHERE pubname = 'cdc_pub' AND schemaname = 'public' AND tablename = t) \gexec
-- cdc_owner owns the publication, as it owns the tables: npm run cdc:add-table (as cdc_owner) adds a table to it.
-- Adding a table to a publication needs both ownerships; cdc_app and cdc_debezium own neither.
ALTER PUBLICATION cdc_pub OWNER TO cdc_owner;

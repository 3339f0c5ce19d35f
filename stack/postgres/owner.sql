-- Run as a superuser in cdc_db before table-creation.sql. Idempotent. Hands what an older stack made cdc_app own (the
-- tables, the trigger function) to cdc_owner, so that table-creation.sql can run as cdc_owner and the runtime role
-- keeps only the rights publication.sql grants it. A fresh cluster has nothing to hand over: this does nothing there.
SET lock_timeout = '30s';
SELECT format('ALTER %s %s OWNER TO cdc_owner',
              CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             ELSE 'TABLE' END,
              c.oid::regclass)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v', 'm')
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = 'cdc_app') \gexec
SELECT format('ALTER FUNCTION %s OWNER TO cdc_owner', p.oid::regprocedure)
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace
   AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = 'cdc_app') \gexec

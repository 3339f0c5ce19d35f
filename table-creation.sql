-- PostgreSQL schema for the CDC pipeline (database cdc_db). Idempotent: safe to apply on every stack start.
-- Applied as the owner role cdc_owner (stack/postgres/roles.sql), never as the runtime role cdc_app: only the owner may
-- alter the tables and the trigger.
--
-- Fixes over the reference schema:
--   * version: a per-entity ordering field carried by every event. Upserts only move a row forward
--     (WHERE stored.version < incoming.version), so replays and late events can never regress a row.
--   * last_event_id: the id of the event that produced the row's current state (traceability, dedupe checks).
--   * REPLICA IDENTITY FULL so Debezium update/delete events carry complete before-images.
--   * the soft-delete trigger fires only on the false -> true transition and stamps the orders with the
--     user's modified_at (deterministic, so a replay computes the same rows). Already-cancelled orders are stamped
--     too when the user's deletion is later, so the result does not depend on which topic was consumed first.

CREATE TABLE IF NOT EXISTS users (
    id            uuid PRIMARY KEY,
    name          varchar(50) NOT NULL,
    dob           date NOT NULL,
    created_at    timestamptz,
    modified_at   timestamptz,
    is_deleted    boolean NOT NULL DEFAULT false,
    version       bigint NOT NULL DEFAULT 0,
    last_event_id uuid
);

CREATE TABLE IF NOT EXISTS orders (
    id            uuid PRIMARY KEY,
    status        varchar(10) NOT NULL CHECK (status IN ('PLACED', 'CANCELLED', 'SHIPPED', 'DELIVERED')),
    user_id       uuid NOT NULL REFERENCES users (id),
    quantity      int NOT NULL CHECK (quantity > 0),
    total_amount  numeric(10, 2) NOT NULL CHECK (total_amount >= 0),
    placed_at     timestamptz,
    modified_at   timestamptz,
    is_deleted    boolean NOT NULL DEFAULT false,
    version       bigint NOT NULL DEFAULT 0,
    last_event_id uuid
);

CREATE INDEX IF NOT EXISTS orders_user_id_idx ON orders (user_id);

-- The catalogue (internal/model/entities/product.ts). Stands alone: no reference, no trigger.
CREATE TABLE IF NOT EXISTS products (
    id            uuid PRIMARY KEY,
    name          varchar(100) NOT NULL,
    category      varchar(50) NOT NULL,
    price         numeric(10, 2) NOT NULL CHECK (price >= 0),
    stock         int NOT NULL CHECK (stock >= 0),
    created_at    timestamptz,
    modified_at   timestamptz,
    is_deleted    boolean NOT NULL DEFAULT false,
    version       bigint NOT NULL DEFAULT 0,
    last_event_id uuid
);

-- Debezium's signal table (signal.data.collection, configure-debezium.sh): npm run resnapshot inserts an
-- execute-snapshot signal here, and Debezium writes its incremental-snapshot watermarks here too. It is in the
-- publication cdc_pub (Debezium reads the signals from its WAL) but not in table.include.list. Debezium still emits
-- its rows (signals, watermarks) to cdc.public.debezium_signal, which nothing reads; nothing replicates the table
-- (its rights: stack/postgres/publication.sql).
CREATE TABLE IF NOT EXISTS debezium_signal (
    id   varchar(42) PRIMARY KEY,
    type varchar(32) NOT NULL,
    data varchar(2048)
);

ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;

-- Runs with the rights of whoever updates users (cdc_app, which may UPDATE orders: no SECURITY DEFINER needed), with
-- a fixed search_path so that a temporary table named orders cannot stand in for the real one.
CREATE OR REPLACE FUNCTION mark_user_orders_deleted() RETURNS trigger
SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE orders
       SET is_deleted = true,
           modified_at = GREATEST(orders.modified_at, NEW.modified_at)
     WHERE user_id = NEW.id AND (NOT is_deleted OR modified_at < NEW.modified_at);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE TRIGGER users_soft_delete_cascade
    AFTER UPDATE OF is_deleted ON users
    FOR EACH ROW
    WHEN (OLD.is_deleted = false AND NEW.is_deleted = true)
    EXECUTE FUNCTION mark_user_orders_deleted();

-- User triggers that rewrite rows on insert and log to another table.
CREATE TABLE orders (
    id         int PRIMARY KEY,
    tenant_id  text NOT NULL,
    total      numeric NOT NULL,
    updated_at timestamptz,
    touched_by text
);
CREATE TABLE order_log (                 -- global: no tenant column, no FK
    n        bigserial PRIMARY KEY,
    order_id int,
    op       text
);
CREATE FUNCTION orders_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    NEW.touched_by := 'trigger';
    RETURN NEW;
END $$;
CREATE FUNCTION orders_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO order_log (order_id, op) VALUES (coalesce(NEW.id, OLD.id), TG_OP);
    RETURN NULL;
END $$;
CREATE TRIGGER orders_touch BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_touch();
CREATE TRIGGER orders_log AFTER INSERT OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION orders_log();

INSERT INTO orders SELECT i, (ARRAY['acme', 'globex'])[1 + i % 2], i * 2.5, NULL, NULL FROM generate_series(1, 100) i;
-- Historic values that the trigger would never produce.
ALTER TABLE orders DISABLE TRIGGER orders_touch;
UPDATE orders SET updated_at = timestamptz '2020-01-01 00:00:00+00' + (id || ' hours')::interval, touched_by = 'legacy import';
ALTER TABLE orders ENABLE TRIGGER orders_touch;

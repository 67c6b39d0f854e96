-- A schema shaped like a real application (after the public DVD-rental sample), not designed for
-- tenant-vault: pooled tenants through `tenant_id` on store, customer and event_log only.
--   * app.payment is partitioned by month; its foreign keys are declared on the partitions only.
--   * app.activity is partitioned too, with its foreign key declared on the parent (and a default
--     partition).
--   * app.rental has two owner paths: customer (one hop) and inventory -> store (two hops); some
--     rentals of one tenant's customers use another tenant's inventory (ON DELETE RESTRICT).
--   * No foreign-key column has an index of its own.
--   * app.event_log and app.customer_tag have no primary key.
--   * User triggers: AFTER triggers log every change into the global app.trigger_log, and a
--     BEFORE trigger rewrites customer rows.
--   * app.film is global (no path to a tenant).
CREATE SCHEMA app;

CREATE TABLE app.store (
    store_id   serial PRIMARY KEY,
    tenant_id  text NOT NULL,
    name       text NOT NULL
);
CREATE INDEX ON app.store (tenant_id);

CREATE TABLE app.customer (
    customer_id serial PRIMARY KEY,
    tenant_id   text NOT NULL,
    store_id    int NOT NULL REFERENCES app.store,
    email       text,
    active      boolean NOT NULL,
    note        text,
    created     timestamptz NOT NULL
);
CREATE INDEX ON app.customer (tenant_id);

CREATE TABLE app.film (
    film_id serial PRIMARY KEY,
    title   text NOT NULL,
    rating  text
);

CREATE TABLE app.inventory (
    inventory_id serial PRIMARY KEY,
    film_id      int NOT NULL REFERENCES app.film ON DELETE RESTRICT,
    store_id     int NOT NULL REFERENCES app.store ON DELETE RESTRICT,
    last_update  timestamptz NOT NULL
);

CREATE TABLE app.rental (
    rental_id    serial PRIMARY KEY,
    rental_date  timestamptz NOT NULL,
    inventory_id int NOT NULL REFERENCES app.inventory ON DELETE RESTRICT,
    customer_id  int NOT NULL REFERENCES app.customer ON DELETE RESTRICT,
    return_date  timestamptz
);

CREATE TABLE app.payment (
    payment_id   serial,
    customer_id  int NOT NULL,
    rental_id    int,
    amount       numeric(5,2) NOT NULL,
    payment_date timestamptz NOT NULL,
    PRIMARY KEY (payment_date, payment_id)
) PARTITION BY RANGE (payment_date);
CREATE TABLE app.payment_p2022_01 PARTITION OF app.payment FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
CREATE TABLE app.payment_p2022_02 PARTITION OF app.payment FOR VALUES FROM ('2022-02-01') TO ('2022-03-01');
CREATE TABLE app.payment_p2022_03 PARTITION OF app.payment FOR VALUES FROM ('2022-03-01') TO ('2022-04-01');
ALTER TABLE app.payment_p2022_01 ADD FOREIGN KEY (customer_id) REFERENCES app.customer,
    ADD FOREIGN KEY (rental_id) REFERENCES app.rental;
ALTER TABLE app.payment_p2022_02 ADD FOREIGN KEY (customer_id) REFERENCES app.customer,
    ADD FOREIGN KEY (rental_id) REFERENCES app.rental;
ALTER TABLE app.payment_p2022_03 ADD FOREIGN KEY (customer_id) REFERENCES app.customer,
    ADD FOREIGN KEY (rental_id) REFERENCES app.rental;

CREATE TABLE app.activity (
    activity_id bigserial,
    customer_id int NOT NULL REFERENCES app.customer ON DELETE RESTRICT,
    at          date NOT NULL,
    what        text,
    PRIMARY KEY (activity_id, at)
) PARTITION BY RANGE (at);
CREATE TABLE app.activity_2022h1 PARTITION OF app.activity FOR VALUES FROM ('2022-01-01') TO ('2022-07-01');
CREATE TABLE app.activity_2022h2 PARTITION OF app.activity FOR VALUES FROM ('2022-07-01') TO ('2023-01-01');
CREATE TABLE app.activity_other PARTITION OF app.activity DEFAULT;

CREATE TABLE app.event_log (
    tenant_id text NOT NULL,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    detail    jsonb
);

CREATE TABLE app.customer_tag (
    customer_id int NOT NULL REFERENCES app.customer,
    tag         text NOT NULL
);

CREATE TABLE app.trigger_log (
    id    bigserial PRIMARY KEY,
    tbl   text NOT NULL,
    op    text NOT NULL
);

CREATE FUNCTION app.log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO app.trigger_log (tbl, op) VALUES (TG_TABLE_NAME, TG_OP);
    RETURN NULL;
END $$;

CREATE FUNCTION app.touch_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.note := 'touched by trigger';
    RETURN NEW;
END $$;

CREATE TRIGGER customer_touch BEFORE INSERT OR UPDATE ON app.customer
    FOR EACH ROW EXECUTE FUNCTION app.touch_customer();
CREATE TRIGGER customer_log AFTER INSERT OR UPDATE OR DELETE ON app.customer
    FOR EACH ROW EXECUTE FUNCTION app.log_change();
CREATE TRIGGER rental_log AFTER INSERT OR UPDATE OR DELETE ON app.rental
    FOR EACH ROW EXECUTE FUNCTION app.log_change();
CREATE TRIGGER payment_log AFTER INSERT OR UPDATE OR DELETE ON app.payment
    FOR EACH ROW EXECUTE FUNCTION app.log_change();
CREATE TRIGGER event_log_log AFTER INSERT OR DELETE ON app.event_log
    FOR EACH ROW EXECUTE FUNCTION app.log_change();

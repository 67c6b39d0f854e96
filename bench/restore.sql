-- Restore benchmark dataset (bench/restore.sh): a pooled schema `app` whose child tables are reached only
-- through foreign keys that have NO index on the referencing column, one big tenant and many small ones
-- sharing every table. bench/restore.sh runs this in database tvault_bench_restore; by hand:
--
--   psql -v ON_ERROR_STOP=1 [-v scale=1] [-v tenants=200] -d tvault_bench_restore -f bench/restore.sql
--
--   app.accounts     tenant_id, id PK; index on tenant_id
--   app.orders       no tenant column: account_id -> app.accounts(id), account_id NOT indexed
--   app.order_items  no tenant column: order_id -> app.orders(id), order_id NOT indexed
--   app.events       tenant_id, no primary key (index on tenant_id)
--
-- Tenant `big`: 30,000 accounts, 120,000 orders, 300,000 items and 20,000 events (470,000 rows) times
-- :scale; tenants t0001..t<:tenants> (default 200): 20 accounts, 60 orders, 150 items and 30 events
-- (260 rows) each, times :scale. Ids are dense per table, tenant after tenant; each table is written in a
-- pseudo-random order (md5 of the id), so every tenant's rows are spread over all of the table's pages as
-- in a real pooled database. Everything is arithmetic on generate_series: the same parameters always give
-- the same rows. Constraints and indexes are built after the load.
\set ON_ERROR_STOP 1
\if :{?scale}
\else
\set scale 1
\endif
\if :{?tenants}
\else
\set tenants 200
\endif

SET client_min_messages = warning;
SET TimeZone = 'UTC';
DROP SCHEMA IF EXISTS app CASCADE;
CREATE SCHEMA app;

CREATE TABLE app.accounts (
    tenant_id text NOT NULL,
    id bigint NOT NULL,
    name text,
    created timestamptz
);
CREATE TABLE app.orders (
    id bigint NOT NULL,
    account_id bigint NOT NULL,
    placed timestamptz,
    total numeric(12, 2),
    note text
);
CREATE TABLE app.order_items (
    id bigint NOT NULL,
    order_id bigint NOT NULL,
    sku text,
    qty int,
    price numeric(10, 2)
);
CREATE TABLE app.events (
    tenant_id text NOT NULL,
    at timestamptz,
    kind text,
    payload jsonb
);

-- One row per tenant: how many rows of each table it gets and where its id ranges start (a0 + 1 ...).
CREATE TEMP TABLE spec AS
WITH t(pos, tenant_id, accounts, orders, items, events) AS (
    SELECT 0, 'big', 30000, 120000, 300000, 20000
    UNION ALL
    SELECT g, 't' || lpad(g::text, 4, '0'), 20, 60, 150, 30 FROM generate_series(1, :tenants) g
), n AS (
    SELECT pos, tenant_id,
           greatest(1, round(accounts * :scale::numeric))::bigint AS accounts,
           greatest(1, round(orders * :scale::numeric))::bigint AS orders,
           greatest(1, round(items * :scale::numeric))::bigint AS items,
           greatest(1, round(events * :scale::numeric))::bigint AS events
    FROM t
)
SELECT n.*,
       coalesce(sum(accounts) OVER w, 0) AS a0,
       coalesce(sum(orders) OVER w, 0) AS o0,
       coalesce(sum(items) OVER w, 0) AS i0,
       coalesce(sum(events) OVER w, 0) AS e0
FROM n
WINDOW w AS (ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING);

INSERT INTO app.accounts
SELECT s.tenant_id, s.a0 + g,
       'account ' || (s.a0 + g) || ' of ' || s.tenant_id,
       timestamptz '2020-01-01 00:00:00+00' + ((s.a0 + g) * 7919 % 126230400) * interval '1 second'
FROM spec s, generate_series(1::bigint, s.accounts) g
ORDER BY md5((s.a0 + g)::text);

-- Order g of a tenant belongs to its account 1 + (g-1) * accounts / orders: every account gets its share.
INSERT INTO app.orders
SELECT id, account_id,
       timestamptz '2022-01-01 00:00:00+00' + (id * 104729 % 94608000) * interval '1 second',
       (id * 7919 % 1000000) / 100.0,
       CASE WHEN id % 5 = 0 THEN NULL
            ELSE 'order ' || id || ': ' || left(md5(id::text), 8 + (id % 24)::int) END
FROM (SELECT s.o0 + g AS id, s.a0 + 1 + (g - 1) * s.accounts / s.orders AS account_id
      FROM spec s, generate_series(1::bigint, s.orders) g) o
ORDER BY md5(id::text);

INSERT INTO app.order_items
SELECT id, order_id,
       'SKU-' || lpad((id * 31 % 50000)::text, 5, '0'),
       1 + (id % 9)::int,
       (id * 131 % 100000) / 100.0
FROM (SELECT s.i0 + g AS id, s.o0 + 1 + (g - 1) * s.orders / s.items AS order_id
      FROM spec s, generate_series(1::bigint, s.items) g) i
ORDER BY md5(id::text);

-- payload.n numbers the events 1..N: a stable handle on rows of a table without a primary key.
INSERT INTO app.events
SELECT tenant_id,
       timestamptz '2024-01-01 00:00:00+00' + n * interval '1 second',
       (ARRAY['login', 'logout', 'view', 'purchase', 'refund', 'error'])[1 + (n % 6)::int],
       jsonb_build_object('n', n, 'ok', n % 7 <> 0, 'ms', n * 37 % 5000,
                          'path', '/p/' || (n % 97), 'tags', jsonb_build_array('a' || (n % 3), 'b' || (n % 5)))
FROM (SELECT s.tenant_id, s.e0 + g AS n FROM spec s, generate_series(1::bigint, s.events) g) e
ORDER BY md5(n::text);

ALTER TABLE app.accounts ADD PRIMARY KEY (id);
CREATE INDEX accounts_tenant_id_idx ON app.accounts (tenant_id);
ALTER TABLE app.orders ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (account_id) REFERENCES app.accounts (id);
ALTER TABLE app.order_items ADD PRIMARY KEY (id),
    ADD FOREIGN KEY (order_id) REFERENCES app.orders (id);
CREATE INDEX events_tenant_id_idx ON app.events (tenant_id);

VACUUM ANALYZE app.accounts, app.orders, app.order_items, app.events;

-- Data for real_schema.sql: tenants t1, t2, t3 (two stores, 200 customers each), 50 global films.
-- Rentals of t1's and t2's customers sometimes use the other tenant's inventory (every 97th);
-- t3 has no cross-tenant rows. Loaded with triggers off, as a migration would be.
SET session_replication_role = replica;

INSERT INTO app.film (title, rating)
SELECT 'film ' || i, (ARRAY['G', 'PG', 'R', NULL])[1 + i % 4] FROM generate_series(1, 50) i;

INSERT INTO app.store (tenant_id, name)
SELECT 't' || (1 + (i - 1) / 2), 'store ' || i FROM generate_series(1, 6) i;

INSERT INTO app.customer (tenant_id, store_id, email, active, note, created)
SELECT 't' || (1 + (i - 1) / 200),
       1 + 2 * ((i - 1) / 200) + i % 2,
       CASE WHEN i % 13 = 0 THEN NULL WHEN i % 17 = 0 THEN '' ELSE 'c' || i || '@example.com' END,
       i % 5 <> 0,
       CASE WHEN i % 3 = 0 THEN E'tab\there' WHEN i % 3 = 1 THEN NULL ELSE 'quote '' and \ back' END,
       timestamptz '2021-06-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 600) i;

-- 100 copies per store: store s holds inventory (s-1)*100+1 .. s*100.
INSERT INTO app.inventory (film_id, store_id, last_update)
SELECT 1 + i % 50, 1 + (i - 1) / 100, timestamptz '2021-01-01 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, 600) i;

-- Rental i: customer c = 1 + (i*7) % 600 of tenant k = (c-1)/200, inventory of k's stores, or of
-- the other of t1/t2 for every 97th rental.
INSERT INTO app.rental (rental_date, inventory_id, customer_id, return_date)
SELECT timestamptz '2022-01-01 00:00:00+00' + i * interval '53 minutes',
       CASE WHEN i % 97 = 0 AND k < 2 THEN (1 - k) * 200 + 1 + i % 200 ELSE k * 200 + 1 + i % 200 END,
       c,
       CASE WHEN i % 11 = 0 THEN NULL ELSE timestamptz '2022-01-03 00:00:00+00' + i * interval '53 minutes' END
FROM (SELECT i, 1 + (i * 7) % 600 AS c, ((i * 7) % 600) / 200 AS k FROM generate_series(1, 2000) i) s;

INSERT INTO app.payment (customer_id, rental_id, amount, payment_date)
SELECT r.customer_id, CASE WHEN r.rental_id % 29 = 0 THEN NULL ELSE r.rental_id END,
       (r.rental_id % 900) / 100.0 + 0.99,
       timestamptz '2022-01-01 00:00:00+00' + (r.rental_id % 89) * interval '1 day' + r.rental_id * interval '1 second'
FROM app.rental r WHERE r.rental_id % 3 <> 1;

INSERT INTO app.activity (customer_id, at, what)
SELECT 1 + (i * 11) % 600, date '2022-01-01' + (i % 500), 'did ' || (i % 7)
FROM generate_series(1, 1500) i;

INSERT INTO app.event_log (tenant_id, at, kind, detail)
SELECT 't' || (1 + i % 3), timestamptz '2022-02-01 00:00:00+00' + (i / 2) * interval '1 minute',
       'kind' || (i % 4), CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('n', i % 50) END
FROM generate_series(1, 900) i;

INSERT INTO app.customer_tag (customer_id, tag)
SELECT 1 + (i * 13) % 600, 'tag' || (i % 6) FROM generate_series(1, 800) i;

SET session_replication_role = origin;
ANALYZE;

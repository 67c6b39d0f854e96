-- Bridge benchmark dataset: :schemas tenant schemas (t_00001 …) of :tables tables each (3 or more):
-- customers, orders (a foreign key to customers), order_lines (no primary key), then plain
-- extra_N tables. Tenant sizes vary tenfold (about 1,500 rows, 130 KB, on average), like the
-- 2,000-schema database of the issue (6,000 tables, 255 MB).
CREATE OR REPLACE FUNCTION bench_schema(s text, n int, extra int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE SCHEMA %I', s);
  EXECUTE format('CREATE TABLE %I.customers (id int PRIMARY KEY, name text NOT NULL, email text,
      created timestamptz NOT NULL)', s);
  EXECUTE format('CREATE TABLE %I.orders (id int PRIMARY KEY, customer_id int NOT NULL
      REFERENCES %I.customers (id), total numeric(12,2), status text, created timestamptz)', s, s);
  EXECUTE format('CREATE TABLE %I.order_lines (order_id int NOT NULL, sku text, qty int,
      price numeric(10,2))', s);
  FOR k IN 1..extra LOOP
    EXECUTE format('CREATE TABLE %I.extra_%s (id int PRIMARY KEY, v text)', s, k);
    EXECUTE format('INSERT INTO %I.extra_%s SELECT i, md5(i::text) FROM generate_series(1, 20) i', s, k);
  END LOOP;
  EXECUTE format('INSERT INTO %I.customers SELECT i, ''customer '' || i, ''c'' || i || ''@example.com'',
      timestamptz ''2024-01-01'' + i * interval ''1 hour'' FROM generate_series(1, $1) i', s) USING n;
  EXECUTE format('INSERT INTO %I.orders SELECT i, 1 + i %% $1, (i %% 997) * 1.25,
      (ARRAY[''open'', ''paid'', ''shipped''])[1 + i %% 3], timestamptz ''2024-02-01'' + i * interval ''1 minute''
      FROM generate_series(1, 4 * $1) i', s) USING n;
  EXECUTE format('INSERT INTO %I.order_lines SELECT 1 + i %% (4 * $1), ''sku-'' || (i %% 50), 1 + i %% 5,
      (i %% 89) * 0.5 FROM generate_series(1, 10 * $1) i', s) USING n;
END $$;

-- One transaction per schema (\gexec): one for all would need a lock per table.
SELECT format('SELECT bench_schema(%L, %s, %s)', format('t_%s', lpad(i::text, 5, '0')),
              20 + (i * 7919) % 180, :tables - 3)
FROM generate_series(1, :schemas) i \gexec

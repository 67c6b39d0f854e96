-- Demo data generator: (re)creates schema `app` (demo/schema.sql) and fills it with deterministic,
-- Zipf-skewed multi-tenant data using generate_series only (no external tools).
--
--   psql -v ON_ERROR_STOP=1 [-v tenants=300] [-v scale=1] [-v skew=1.4] -d tvault_demo -f demo/load.sql
--
-- psql variables (all optional):
--   tenants         number of numbered tenants `tenant-0001` .. (default 300); three odd tenants are always
--                   added: `acme`, `o'brien & co`, `ünïcødé-租户`
--   scale           multiplies every tenant's size (default 1)
--   top_customers   customers of the largest tenant at scale 1 (default 6000)
--   skew            Zipf exponent: the tenant of size rank r has top_customers*scale / r^skew customers
--                   (default 1.4: a few tenants with tens of thousands of rows, most with tens to hundreds)
--   min_customers   floor per tenant (default 2)
--   unowned_events  app.events rows with tenant_id NULL, owned by no tenant (default 3)
--
-- Per customer: 0-5 invoices (avg 2.5), 1-5 lines per invoice (avg 3), a note on ~30% of lines (a second
-- on ~5%), 0-4 events (avg 2), plus exact duplicate `login` events for every 50th customer (app.events has no
-- primary key). Values include NULL vs '' , tabs, newlines, backslashes, quotes and non-ASCII text.
-- Every value derives from md5() of the row's identity, so two loads with the same variables are identical.
-- Defaults: 303 tenants, ~266k rows, ~47 MB, ~7 s on 2 cores.
\set ON_ERROR_STOP 1
\if :{?tenants}
\else
\set tenants 300
\endif
\if :{?scale}
\else
\set scale 1
\endif
\if :{?top_customers}
\else
\set top_customers 6000
\endif
\if :{?skew}
\else
\set skew 1.4
\endif
\if :{?min_customers}
\else
\set min_customers 2
\endif
\if :{?unowned_events}
\else
\set unowned_events 3
\endif

SET client_min_messages = warning;
SET maintenance_work_mem = '512MB';
\set skip_constraints 1
\ir schema.sql
\unset skip_constraints

-- u(m, k): the k-th (0..3) 32-bit slice of the md5 hex digest m as a float in [0, 1).
CREATE FUNCTION pg_temp.u(m text, k int) RETURNS float8
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ('x' || substr(m, k * 8 + 1, 8))::bit(32)::bigint / 4294967296.0::float8 $$;

-- pick(arr, x): element of arr chosen by x in [0, 1).
CREATE FUNCTION pg_temp.pick(arr text[], x float8) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT arr[1 + floor(x * cardinality(arr))::int] $$;

-- Tenants and their sizes. The odd tenants get fixed size ranks (acme is the 3rd largest, big enough to make
-- the demo's restore meaningful); numbered tenants take the remaining ranks in md5 order, so size does not
-- follow the numbering.
CREATE TEMP TABLE demo_tenants AS
WITH fixed(tenant_id, rank) AS (
    VALUES ('acme', 3), ('o''brien & co', 7), ('ünïcødé-租户', 12)
), numbered AS (
    SELECT 'tenant-' || lpad(g::text, greatest(4, length(:tenants::text)), '0') AS tenant_id
    FROM generate_series(1, :tenants) g
), free_ranks AS (
    SELECT r AS rank, row_number() OVER (ORDER BY r) AS k
    FROM generate_series(1, :tenants + 3) r
    WHERE r NOT IN (SELECT rank FROM fixed)
), shuffled AS (
    SELECT tenant_id, row_number() OVER (ORDER BY md5(tenant_id)) AS k FROM numbered
), ranked AS (
    SELECT s.tenant_id, f.rank FROM shuffled s JOIN free_ranks f USING (k)
    UNION ALL
    SELECT tenant_id, rank FROM fixed
)
SELECT tenant_id, rank,
       greatest(:min_customers, round(:scale * :top_customers / power(rank::float8, :skew)))::int AS n_customers
FROM ranked;

INSERT INTO app.plans (code, price) VALUES
    ('free', 0), ('starter', 9.99), ('business', 49.5), ('enterprise', 1999.999999);

\echo 'load: customers'
INSERT INTO app.customers (tenant_id, id, name, email, created_at)
SELECT t.tenant_id, g,
       CASE
           WHEN g % 89 = 0 THEN ''                                          -- empty, not NULL
           WHEN g % 83 = 0 THEN E'Multi\nline\tname with a back\\slash'
           ELSE pg_temp.pick('{Ada,Grace,Linus,Zoë,José,Ayşe,李雷,Ngozi,Søren,Priya,Mateus,Olga}', pg_temp.u(m, 0))
                || ' ' ||
                pg_temp.pick('{Lovelace,Hopper,O''Neil,Müller,"Da Silva",Nakamura,Kowalski,Okafor,Ivanova}',
                             pg_temp.u(m, 1))
       END,
       CASE WHEN g % 97 = 0 THEN NULL
            ELSE format('customer%s@%s.example', g, substr(md5(t.tenant_id), 1, 8)) END,
       timestamptz '2022-01-01 00:00:00+00' + make_interval(secs => pg_temp.u(m, 2) * 63072000)
FROM demo_tenants t
CROSS JOIN LATERAL generate_series(1, t.n_customers) g
CROSS JOIN LATERAL (SELECT md5(t.tenant_id || ':c:' || g) AS m) h
-- Physical order by creation time, not by tenant: in a real pooled database tenants' rows are interleaved,
-- and the tables loaded below follow this order.
ORDER BY 5, t.tenant_id COLLATE "C", g;

\echo 'load: invoices'
INSERT INTO app.invoices (tenant_id, id, customer_id, total, status, issued)
SELECT c.tenant_id, c.id * 10 + j, c.id,
       round((pg_temp.u(m, 0) * 5000)::numeric, 2),
       pg_temp.pick('{draft,open,paid,paid,paid,void}', pg_temp.u(m, 1)),
       date '2022-01-01' + floor(pg_temp.u(m, 2) * 900)::int
FROM app.customers c
CROSS JOIN LATERAL generate_series(1, floor(pg_temp.u(md5(c.tenant_id || ':n:' || c.id), 0) * 6)::int) j
CROSS JOIN LATERAL (SELECT md5(c.tenant_id || ':i:' || c.id || ':' || j) AS m) h;

\echo 'load: invoice_lines'
INSERT INTO app.invoice_lines (invoice_tenant, invoice_id, product, qty, price)
SELECT i.tenant_id, i.id,
       pg_temp.pick('{Widget,Gadget,Gizmo,Sprocket,"Flux capacitor","Café crème","Übergröße XL",Support}',
                    pg_temp.u(m, 0)),
       1 + floor(pg_temp.u(m, 1) * 10)::int,
       CASE WHEN k = 5 THEN (pg_temp.u(m, 2) * 200)::numeric(30, 12)     -- some long fractions
            ELSE round((pg_temp.u(m, 2) * 200)::numeric, 2) END
FROM app.invoices i
CROSS JOIN LATERAL generate_series(1, 1 + floor(pg_temp.u(md5(i.tenant_id || ':l:' || i.id), 0) * 5)::int) k
CROSS JOIN LATERAL (SELECT md5(i.tenant_id || ':l:' || i.id || ':' || k) AS m) h;

\echo 'load: line_notes'
INSERT INTO app.line_notes (line_id, note)
SELECT l.id, n.note
FROM app.invoice_lines l
CROSS JOIN LATERAL (SELECT md5('note:' || l.id) AS m) h
CROSS JOIN LATERAL (
    SELECT pg_temp.pick(ARRAY['deliver before noon', 'gift wrap', E'call first\nthen ring twice',
                              'paid in cash', 'tab	inside', 'back\slash', '"quoted"', '日本語のメモ', '🧾 receipt',
                              NULL], pg_temp.u(h.m, 1)) AS note
    WHERE pg_temp.u(h.m, 0) < 0.30
    UNION ALL
    SELECT 'second note' WHERE pg_temp.u(h.m, 2) < 0.05
) n;

\echo 'load: events'
INSERT INTO app.events (tenant_id, at, kind, payload)
SELECT c.tenant_id,
       c.created_at + make_interval(secs => pg_temp.u(m, 0) * 31536000),
       pg_temp.pick('{login,logout,invoice.sent,invoice.paid,settings.changed}', pg_temp.u(m, 1)),
       CASE WHEN e = 4 THEN NULL
            ELSE jsonb_build_object('customer_id', c.id, 'seq', e,
                                    'amount', round((pg_temp.u(m, 2) * 1000)::numeric, 3),
                                    'ok', pg_temp.u(m, 3) < 0.9,
                                    'tags', jsonb_build_array('demo', c.tenant_id),
                                    'ünïcødé', 'ja ✓')
       END
FROM app.customers c
CROSS JOIN LATERAL generate_series(1, floor(pg_temp.u(md5(c.tenant_id || ':e:' || c.id), 0) * 5)::int) e
CROSS JOIN LATERAL (SELECT md5(c.tenant_id || ':e:' || c.id || ':' || e) AS m) h;

-- Exact duplicates: legal in a table without a primary key, and a restore must bring back both copies.
INSERT INTO app.events (tenant_id, at, kind, payload)
SELECT tenant_id, at, kind, payload FROM app.events
WHERE kind = 'login' AND (payload ->> 'customer_id')::bigint % 50 = 0;

-- Rows owned by no tenant (system events).
INSERT INTO app.events (tenant_id, at, kind, payload)
SELECT NULL, timestamptz '2023-06-01 00:00:00+00' + make_interval(hours => g), 'system.maintenance',
       jsonb_build_object('window', g)
FROM generate_series(1, :unowned_events) g;

\echo 'load: constraints and indexes'
\ir constraints.sql

-- Sets hint bits and the visibility map now, so the first backup does not pay for it; fresh statistics.
VACUUM (ANALYZE) app.plans, app.customers, app.invoices, app.invoice_lines, app.line_notes, app.events;

\echo 'load: done'
SELECT 'tenants' AS what, count(*)::bigint AS n FROM demo_tenants
UNION ALL SELECT 'app.customers', count(*) FROM app.customers
UNION ALL SELECT 'app.invoices', count(*) FROM app.invoices
UNION ALL SELECT 'app.invoice_lines', count(*) FROM app.invoice_lines
UNION ALL SELECT 'app.line_notes', count(*) FROM app.line_notes
UNION ALL SELECT 'app.events', count(*) FROM app.events
UNION ALL SELECT 'app.plans', count(*) FROM app.plans
UNION ALL SELECT 'database bytes', pg_database_size(current_database());

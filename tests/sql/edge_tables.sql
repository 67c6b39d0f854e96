-- Identifiers that need quoting, a partitioned tenant table, a dropped column,
-- a varchar tenant column, and a tenant with no rows at all.
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Order Lines;--" (
    "tenant_id" text NOT NULL,
    "Amount $" numeric,
    "select"   int,
    "MixedCase" text,
    "to_drop"  int,
    "quote""d" text
);
ALTER TABLE "Sales Dept"."Order Lines;--" DROP COLUMN "to_drop";
INSERT INTO "Sales Dept"."Order Lines;--"
SELECT t, i * 1.5, i, 'Mixed ' || i, 'q"' || i FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 50) i;

CREATE TABLE metrics (
    tenant_id varchar(64) NOT NULL,
    ts        timestamptz NOT NULL,
    v         double precision
) PARTITION BY RANGE (ts);
CREATE TABLE metrics_2023 PARTITION OF metrics FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE metrics_2024 PARTITION OF metrics FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE metrics_other PARTITION OF metrics DEFAULT;
INSERT INTO metrics
SELECT t, timestamptz '2023-06-01 00:00:00+00' + (i || ' days')::interval, i / 3.0
FROM unnest(ARRAY['acme', 'globex']) t, generate_series(0, 999) i;

CREATE TABLE "UPPER" ("TENANT_ID" text, tenant_id text, x int);  -- only lowercase tenant_id is the tenant column
INSERT INTO "UPPER" VALUES ('globex', 'acme', 1), ('acme', 'globex', 2);

-- Demo schema: a "pool" model multi-tenant SaaS database (all tenants share the tables).
--
--   app.customers      tenant table (tenant_id)                     PK (tenant_id, id)
--   app.invoices       tenant table (tenant_id)                     PK (tenant_id, id), FK -> customers
--   app.invoice_lines  child table, NO tenant column: belongs to a tenant through
--                      FK (invoice_tenant, invoice_id) -> invoices
--   app.line_notes     grandchild, NO tenant column: FK line_id -> invoice_lines(id)
--   app.events         tenant table (tenant_id) with NO primary key (duplicate rows are legal)
--   app.plans          global table: no tenant column, no FK path to a tenant
--
-- Usage: psql -v ON_ERROR_STOP=1 -f demo/schema.sql          (tables and constraints, empty)
-- demo/load.sql sets skip_constraints, creates the bare tables with this file, bulk-loads them and then adds
-- the constraints (demo/constraints.sql): building indexes once after the load is much faster than
-- maintaining them row by row.
\set ON_ERROR_STOP 1

DROP SCHEMA IF EXISTS app CASCADE;
CREATE SCHEMA app;

CREATE TABLE app.plans (
    code  text NOT NULL,
    price numeric NOT NULL
);

CREATE TABLE app.customers (
    tenant_id  text NOT NULL,
    id         bigint NOT NULL,
    name       text,
    email      text,
    created_at timestamptz NOT NULL
);

CREATE TABLE app.invoices (
    tenant_id   text NOT NULL,
    id          bigint NOT NULL,
    customer_id bigint NOT NULL,
    total       numeric(12,2) NOT NULL,
    status      text NOT NULL,
    issued      date NOT NULL
);

CREATE TABLE app.invoice_lines (
    id             bigserial NOT NULL,
    invoice_tenant text NOT NULL,
    invoice_id     bigint NOT NULL,
    product        text NOT NULL,
    qty            int NOT NULL,
    price          numeric NOT NULL
);

CREATE TABLE app.line_notes (
    id      bigserial NOT NULL,
    line_id bigint NOT NULL,
    note    text
);

CREATE TABLE app.events (
    tenant_id text,            -- NULL: a system event owned by no tenant
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    payload   jsonb
);

\if :{?skip_constraints}
\else
\ir constraints.sql
\endif

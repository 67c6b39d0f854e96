-- Tenant table -> child (no tenant column) -> grandchild; plus a global table.
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (
    id        bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    number    text NOT NULL
);
CREATE TABLE billing.invoice_lines (
    id         bigint PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES billing.invoices (id),
    item       text NOT NULL,
    amount     numeric(12, 2) NOT NULL
);
CREATE TABLE billing.line_notes (
    id      bigint PRIMARY KEY,
    line_id bigint NOT NULL REFERENCES billing.invoice_lines (id),
    note    text
);
-- No tenant column and no FK path to a tenant table.
CREATE TABLE public.currencies (
    code text PRIMARY KEY,
    name text NOT NULL
);

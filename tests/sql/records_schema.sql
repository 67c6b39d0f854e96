-- Record-level restore: a customer tree (cascading deletes down to a table two hops away
-- from the tenant column), primary keys of several types, and a table without one.
-- Tenants acme and globex share key values (ids 1..) wherever the key allows it.
CREATE SCHEMA crm;
CREATE TABLE crm.customers (
    tenant_id text    NOT NULL,
    id        int     NOT NULL,
    name      text    NOT NULL,
    email     text,
    note      text,
    score     numeric(6, 2),
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE crm.invoices (
    id          bigint PRIMARY KEY,
    tenant_id   text   NOT NULL,
    customer_id int    NOT NULL,
    number      text   NOT NULL,
    FOREIGN KEY (tenant_id, customer_id) REFERENCES crm.customers (tenant_id, id) ON DELETE CASCADE
);
-- No tenant column: owned through invoices.
CREATE TABLE crm.invoice_lines (
    id         bigint PRIMARY KEY,
    invoice_id bigint NOT NULL REFERENCES crm.invoices (id) ON DELETE CASCADE,
    item       text   NOT NULL,
    amount     numeric(12, 2)
);
CREATE TABLE crm.line_notes (
    id      bigint PRIMARY KEY,
    line_id bigint NOT NULL REFERENCES crm.invoice_lines (id) ON DELETE CASCADE,
    note    text
);
-- Primary keys of other types.
CREATE TABLE crm.tags (
    code      text PRIMARY KEY,
    tenant_id text NOT NULL,
    label     text
);
CREATE TABLE crm.documents (
    id        uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    title     text
);
CREATE TABLE crm.events (
    tenant_id text        NOT NULL,
    at        timestamptz NOT NULL,
    what      text,
    PRIMARY KEY (tenant_id, at)
);
-- No primary key at all.
CREATE TABLE crm.activity (
    tenant_id text NOT NULL,
    what      text
);

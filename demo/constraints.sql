-- Primary keys, foreign keys and indexes of the demo schema (see schema.sql). Run after the bulk load.
-- The indexes on the FK columns make ON DELETE CASCADE (and the vault's per-tenant child queries) cheap.
\set ON_ERROR_STOP 1

ALTER TABLE app.plans         ADD CONSTRAINT plans_pkey         PRIMARY KEY (code);
ALTER TABLE app.customers     ADD CONSTRAINT customers_pkey     PRIMARY KEY (tenant_id, id);
ALTER TABLE app.invoices      ADD CONSTRAINT invoices_pkey      PRIMARY KEY (tenant_id, id);
ALTER TABLE app.invoice_lines ADD CONSTRAINT invoice_lines_pkey PRIMARY KEY (id);
ALTER TABLE app.line_notes    ADD CONSTRAINT line_notes_pkey    PRIMARY KEY (id);

CREATE INDEX invoices_customer_idx      ON app.invoices (tenant_id, customer_id);
CREATE INDEX invoice_lines_invoice_idx  ON app.invoice_lines (invoice_tenant, invoice_id);
CREATE INDEX line_notes_line_idx        ON app.line_notes (line_id);
CREATE INDEX events_tenant_at_idx       ON app.events (tenant_id, at);

ALTER TABLE app.invoices ADD CONSTRAINT invoices_customer_fkey
    FOREIGN KEY (tenant_id, customer_id) REFERENCES app.customers (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE app.invoice_lines ADD CONSTRAINT invoice_lines_invoice_fkey
    FOREIGN KEY (invoice_tenant, invoice_id) REFERENCES app.invoices (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE app.line_notes ADD CONSTRAINT line_notes_line_fkey
    FOREIGN KEY (line_id) REFERENCES app.invoice_lines (id) ON DELETE CASCADE;

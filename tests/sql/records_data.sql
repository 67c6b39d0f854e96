-- Data for records_schema.sql: tenants acme and globex share key values where the key allows.
INSERT INTO crm.customers (tenant_id, id, name, email, note, score)
SELECT t, i, initcap(t) || ' customer ' || i,
       CASE WHEN i % 2 = 0 THEN 'c' || i || '@' || t || '.example' END,
       CASE WHEN i % 3 = 0 THEN '' ELSE 'note ' || i END,
       i * 1.25
FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 12) i;
-- Customer 1 of each tenant: NULL email and an empty (not NULL) note.
UPDATE crm.customers SET email = NULL, note = '' WHERE id = 1;
-- 3 invoices per customer, 2 lines per invoice, 2 notes per line (one NULL).
INSERT INTO crm.invoices (id, tenant_id, customer_id, number)
SELECT (CASE c.tenant_id WHEN 'acme' THEN 1000 ELSE 2000 END) + c.id * 10 + k,
       c.tenant_id, c.id, upper(c.tenant_id) || '-' || c.id || '-' || k
FROM crm.customers c, generate_series(1, 3) k;
INSERT INTO crm.invoice_lines (id, invoice_id, item, amount)
SELECT inv.id * 10 + l, inv.id, 'item ' || l || E'\tof ' || inv.number, inv.id * l / 7.0
FROM crm.invoices inv, generate_series(1, 2) l;
INSERT INTO crm.line_notes (id, line_id, note)
SELECT line.id * 10 + n, line.id, CASE WHEN n = 1 THEN 'note on ' || line.item END
FROM crm.invoice_lines line, generate_series(1, 2) n;

INSERT INTO crm.tags (code, tenant_id, label) VALUES
    ('acme-vip', 'acme', 'VIP'), ('acme:with spaces, and comma', 'acme', NULL),
    ('globex-vip', 'globex', 'VIP');
INSERT INTO crm.documents (id, tenant_id, title) VALUES
    ('0b7e4f4c-5a7d-4c59-9a38-3f1f2f6a0001', 'acme', 'contract'),
    ('0b7e4f4c-5a7d-4c59-9a38-3f1f2f6a0002', 'acme', ''),
    ('0b7e4f4c-5a7d-4c59-9a38-3f1f2f6a0003', 'globex', 'contract');
INSERT INTO crm.events (tenant_id, at, what) VALUES
    ('acme', '2024-01-02 03:04:05+00', 'signed up'),
    ('acme', '2024-01-02 05:04:05.123456+02', 'fractional, other zone on input'),
    ('globex', '2024-01-02 03:04:05+00', 'signed up');
INSERT INTO crm.activity (tenant_id, what) VALUES
    ('acme', 'login'), ('acme', 'login'), ('acme', NULL), ('globex', 'login');

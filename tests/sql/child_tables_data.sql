INSERT INTO public.currencies VALUES ('EUR', 'Euro'), ('USD', 'US dollar');
-- 3 tenants x 20 invoices x 5 lines x 2 notes; ids interleave across tenants.
INSERT INTO billing.invoices (id, tenant_id, number)
SELECT i, (ARRAY['alpha', 'beta', 'gamma'])[1 + i % 3], 'INV-' || i FROM generate_series(1, 60) i;
INSERT INTO billing.invoice_lines (id, invoice_id, item, amount)
SELECT inv * 100 + l, inv, 'item ' || l || E' of\t' || inv, inv * l / 7.0
FROM generate_series(1, 60) inv, generate_series(1, 5) l;
INSERT INTO billing.line_notes (id, line_id, note)
SELECT line.id * 10 + n, line.id, CASE WHEN n = 1 THEN 'note for ' || line.item ELSE NULL END
FROM billing.invoice_lines line, generate_series(1, 2) n;

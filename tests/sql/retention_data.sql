INSERT INTO customers (tenant_id, id, name)
SELECT t, i, 'customer ' || i || ' of ' || t
FROM unnest(ARRAY['acme-7f3a9c', 'globex-2b81d4']) t, generate_series(1, 300) i;
INSERT INTO notes (tenant_id, id, body)
SELECT t, i, repeat(md5(t || i::text), 8)
FROM unnest(ARRAY['acme-7f3a9c', 'globex-2b81d4']) t, generate_series(1, 300) i;

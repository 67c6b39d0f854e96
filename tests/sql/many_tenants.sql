-- 40 tenants t00..t39 with 0, 7, 14, ... rows each.
CREATE TABLE items (tenant_id text NOT NULL, n int NOT NULL, v text, PRIMARY KEY (tenant_id, n));
INSERT INTO items
SELECT 't' || lpad(t::text, 2, '0'), n, md5(t || '/' || n)
FROM generate_series(0, 39) t, generate_series(1, 1000) n
WHERE n <= t * 7;

-- Money moves between two tables in single transactions; per tenant, the sum over both
-- tables is always 0. Padding makes the backup take a while.
CREATE TABLE wallet_a (tenant_id text NOT NULL, id int NOT NULL, amount bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id));
CREATE TABLE wallet_b (tenant_id text NOT NULL, id int NOT NULL, amount bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id));
CREATE TABLE padding (tenant_id text NOT NULL, n int NOT NULL, payload text NOT NULL);
INSERT INTO wallet_a SELECT t, i, 0, repeat(md5(t || i), 4) FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 20000) i;
INSERT INTO wallet_b SELECT t, i, 0, repeat(md5(i || t), 4) FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 20000) i;
INSERT INTO padding SELECT t, i, md5(i::text) || md5(t || i) || md5(i || t) || md5((i * 3)::text)
FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 40000) i;

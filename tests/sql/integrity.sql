-- Two tenants with enough varied data for a few blocks.
CREATE TABLE docs (
    id        bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    title     text NOT NULL,
    body      text,
    blob      bytea
);
INSERT INTO docs
SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'doc ' || i,
       repeat(md5(i::text), 20), decode(md5((i * 31)::text), 'hex')
FROM generate_series(1, 4000) i;

-- A dataset big enough that `backup --all` takes a while (~25 MB, hard to compress).
CREATE TABLE events (
    id        bigint PRIMARY KEY,
    tenant_id text NOT NULL,
    kind      text NOT NULL,
    payload   text NOT NULL
);
INSERT INTO events
SELECT i, (ARRAY['acme', 'globex', 'initech'])[1 + i % 3], 'kind-' || (i % 17),
       md5(i::text) || md5((i + 1)::text) || md5((i * 7)::text) || md5((i * 13)::text)
       || md5((i * 17)::text) || md5((i * 19)::text)
FROM generate_series(1, 120000) i;

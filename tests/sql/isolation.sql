-- Several tenant tables, a child table, a global table; tenants whose ids are
-- confusable with 'acme' (prefix, case, trailing space), an unregistered tenant and
-- rows with a NULL tenant.
CREATE TABLE plans (code text PRIMARY KEY, price numeric NOT NULL);
CREATE TABLE users (
    id        serial PRIMARY KEY,
    tenant_id text,
    email     text NOT NULL,
    plan      text REFERENCES plans (code)
);
CREATE TABLE orders (
    id        bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    user_id   int REFERENCES users (id),
    total     numeric(12, 2),
    placed_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders (id),
    sku      text NOT NULL,
    qty      int NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE audit (
    tenant_id text NOT NULL,
    at        bigint NOT NULL,
    what      text
);

INSERT INTO plans VALUES ('free', 0), ('pro', 49.99);
INSERT INTO users (tenant_id, email, plan)
SELECT t, 'user' || i || '@' || replace(t, ' ', '_') || '.example', CASE WHEN i % 2 = 0 THEN 'pro' ELSE 'free' END
FROM unnest(ARRAY['acme', 'acme2', 'ACME', 'acme ', 'globex', 'unregistered']) t, generate_series(1, 30) i;
INSERT INTO users (tenant_id, email) VALUES (NULL, 'orphan@nowhere');
INSERT INTO orders (tenant_id, user_id, total)
SELECT u.tenant_id, u.id, u.id * 3.5 FROM users u, generate_series(1, 3) WHERE u.tenant_id IS NOT NULL;
INSERT INTO order_items (order_id, sku, qty)
SELECT o.id, 'sku-' || k, k FROM orders o, generate_series(1, 4) k;
INSERT INTO audit (tenant_id, at, what)
SELECT u.tenant_id, u.id, 'created ' || u.email FROM users u WHERE u.tenant_id IS NOT NULL;

-- Foreign-key shapes that trip planners: a self-referencing tenant table, a
-- self-referencing child table, and a cycle between two tenant tables.
CREATE TABLE employees (
    id         int PRIMARY KEY,
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    manager_id int REFERENCES employees (id)
);
CREATE TABLE posts (
    id        int PRIMARY KEY,
    tenant_id text NOT NULL,
    author_id int NOT NULL REFERENCES employees (id)
);
CREATE TABLE comments (                 -- child of posts, and of itself
    id        int PRIMARY KEY,
    post_id   int NOT NULL REFERENCES posts (id),
    reply_to  int REFERENCES comments (id),
    body      text
);
CREATE TABLE teams (
    id        int PRIMARY KEY,
    tenant_id text NOT NULL,
    lead_id   int
);
CREATE TABLE members (
    id        int PRIMARY KEY,
    tenant_id text NOT NULL,
    team_id   int NOT NULL REFERENCES teams (id) DEFERRABLE INITIALLY DEFERRED
);
ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES members (id) DEFERRABLE INITIALLY DEFERRED;

-- Employees: managers created after their reports (ids descending), then re-parented so
-- that physical order differs from dependency order.
INSERT INTO employees SELECT i, (ARRAY['acme', 'globex'])[1 + i % 2], 'emp ' || i, NULL FROM generate_series(1, 200) i;
UPDATE employees SET manager_id = CASE WHEN id > 2 THEN id - 2 END;
UPDATE employees SET name = name || ' (moved)' WHERE id % 5 = 0;   -- new tuple versions at the end
INSERT INTO posts SELECT i, e.tenant_id, e.id FROM employees e, generate_series(1, 1) g, LATERAL (SELECT e.id * 10 AS i) x;
INSERT INTO comments SELECT p.id * 10 + k, p.id, NULL, 'c' || k FROM posts p, generate_series(1, 3) k;
UPDATE comments SET reply_to = id - 1 WHERE id % 10 > 1;
UPDATE comments SET body = body || '!' WHERE id % 10 = 1;       -- thread roots now stored last

BEGIN;
INSERT INTO teams SELECT i, (ARRAY['acme', 'globex'])[1 + i % 2], i * 100 FROM generate_series(1, 10) i;
INSERT INTO members SELECT t.id * 100 + k, t.tenant_id, t.id FROM teams t, generate_series(0, 4) k;
COMMIT;

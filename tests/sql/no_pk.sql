-- No primary key, no unique constraint: exact duplicate rows are legitimate data.
CREATE TABLE ledger (
    tenant_id text NOT NULL,
    account   text,
    amount    numeric,
    memo      text
);
INSERT INTO ledger VALUES
    ('acme', 'cash', 10.00, 'coffee'),
    ('acme', 'cash', 10.00, 'coffee'),      -- exact duplicate
    ('acme', NULL, NULL, NULL),
    ('acme', NULL, NULL, NULL),             -- duplicate all-NULL row
    ('acme', NULL, NULL, NULL),             -- ... three times
    ('acme', 'bank', 10.0, 'coffee'),       -- equal numerically, different text (10.0 vs 10.00)
    ('globex', 'cash', 10.00, 'coffee'),
    ('globex', 'cash', 10.00, 'coffee');

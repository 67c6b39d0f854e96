-- A small pooled database for retention, legal hold and forgetting: two tenant tables.
-- The tenant ids are long and distinctive so that their bytes can be searched for in the
-- vault directory after a tenant was forgotten without matching by chance.
CREATE TABLE customers (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE notes (
    tenant_id text NOT NULL,
    id        int  NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- A tenant table plus the table `x` that a SQL-injection tenant id would drop.
CREATE TABLE x (keep int);
INSERT INTO x VALUES (1);
CREATE TABLE notes (
    tenant_id text NOT NULL,
    n         int NOT NULL,
    body      text
);

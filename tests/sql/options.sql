-- A non-default tenant column (uuid `org_id`), plus tables to leave out by config.
CREATE SCHEMA scratch;
CREATE TABLE accounts (
    id     int PRIMARY KEY,
    org_id uuid NOT NULL,
    name   text NOT NULL
);
CREATE TABLE events (
    org_id uuid NOT NULL,
    seq    int NOT NULL,
    what   text,
    PRIMARY KEY (org_id, seq)
);
CREATE TABLE audit_log (org_id uuid, line text);              -- excluded by --exclude-table
CREATE TABLE scratch.tmp (org_id uuid, junk text);            -- excluded by --exclude-schema
CREATE TABLE tenant_id_decoy (tenant_id text, v int);         -- default column name: global here

INSERT INTO accounts VALUES
    (1, '11111111-1111-1111-1111-111111111111', 'one'),
    (2, '22222222-2222-2222-2222-222222222222', 'two'),
    (3, '11111111-1111-1111-1111-111111111111', 'one bis');
INSERT INTO events
SELECT o::uuid, s, 'event ' || s
FROM unnest(ARRAY['11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222']) o,
     generate_series(1, 500) s;
INSERT INTO audit_log VALUES ('11111111-1111-1111-1111-111111111111', 'x');
INSERT INTO scratch.tmp VALUES ('11111111-1111-1111-1111-111111111111', 'y');
INSERT INTO tenant_id_decoy VALUES ('11111111-1111-1111-1111-111111111111', 1);

-- A tenant table protected by forced row-level security, next to an ordinary one.
CREATE TABLE secrets (
    id        int PRIMARY KEY,
    tenant_id text NOT NULL DEFAULT current_setting('app.current_tenant', true),
    secret    text NOT NULL
);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON secrets
    USING (tenant_id = current_setting('app.current_tenant', true))
    WITH CHECK (tenant_id = current_setting('app.current_tenant', true));

CREATE TABLE profiles (
    tenant_id text PRIMARY KEY,
    display   text NOT NULL
);

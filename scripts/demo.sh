#!/usr/bin/env bash
# The end-to-end demo (README command #1): back up every tenant of a pooled SaaS database into its own
# encrypted archive, damage one tenant's live rows, restore that tenant alone and check that it is whole again
# and that no other tenant was touched.
#
#   scripts/demo.sh
#
# Environment:
#   TVAULT_BIN     tvault binary to use (default: build target/release/tvault with cargo)
#   TVAULT_SOURCE  URL of an existing database to use as the demo source instead of the local throwaway
#                  cluster (scripts/pg-local.sh). WARNING: the demo replaces schema `app` in that database.
#   TVAULT_PGPORT, TVAULT_PGDATA   passed on to scripts/pg-local.sh
#   DEMO_TENANTS, DEMO_SCALE       size of the generated data (defaults 300 and 1; see demo/load.sql)
#
# Everything it creates lives in target/: demo-vault/ (the vault), demo-keys/ (age identities).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

VAULT=$REPO/target/demo-vault
KEYS=$REPO/target/demo-keys
DEMO_DB=tvault_demo
DEMO_TENANT=acme
STARTED=$SECONDS

step_no=0
step() {
    step_no=$((step_no + 1))
    if [[ -t 2 ]]; then
        printf '\n\033[1m==> [%d] %s\033[0m\n' "$step_no" "$*" >&2
    else
        printf '\n==> [%d] %s\n' "$step_no" "$*" >&2
    fi
}
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [[ $rc -eq 0 ]] || printf "\ndemo: FAILED in step %d (exit %d)\n" "$step_no" "$rc" >&2' EXIT

# Shows a command (shell-quoted, so it can be pasted) and runs it.
run() {
    local shown
    shown=$(printf '%q ' "$@")
    printf '    $ %s\n' "${shown% }" >&2
    "$@"
}

# psql on the demo database: no ~/.psqlrc, stop at the first error.
dbsql() { psql -X -q -v ON_ERROR_STOP=1 -d "$SOURCE" "$@"; }

# ---------------------------------------------------------------------------------------------------------
step "Build tvault (release)"
if [[ -n ${TVAULT_BIN:-} ]]; then
    TVAULT=$TVAULT_BIN
    note "using TVAULT_BIN=$TVAULT"
else
    run cargo build --release -p vault-cli
    TVAULT=$REPO/target/release/tvault
fi
[[ -x $TVAULT ]] || die "tvault binary not found at $TVAULT"

# ---------------------------------------------------------------------------------------------------------
if [[ -n ${TVAULT_SOURCE:-} ]]; then
    step "Use the source database from TVAULT_SOURCE"
    SOURCE=$TVAULT_SOURCE
    command -v psql >/dev/null || die "psql not found: install the Debian package postgresql-client"
    note "schema app in that database will be replaced by the demo data"
else
    step "Start the local PostgreSQL cluster (scripts/pg-local.sh)"
    ADMIN_URL=$(bash scripts/pg-local.sh start)
    PATH=$(bash scripts/pg-local.sh bindir):$PATH
    SOURCE=${ADMIN_URL%/*}/$DEMO_DB
    note "server: $ADMIN_URL"
    run psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DEMO_DB WITH (FORCE)" \
        -c "CREATE DATABASE $DEMO_DB"
fi

# ---------------------------------------------------------------------------------------------------------
step "Load the demo data (demo/load.sql: pooled tenants, child tables without a tenant column)"
load_start=$SECONDS
run dbsql -v tenants="${DEMO_TENANTS:-300}" -v scale="${DEMO_SCALE:-1}" -f demo/load.sql
note "loaded in $((SECONDS - load_start)) s"

# ---------------------------------------------------------------------------------------------------------
step "Create a fresh vault and demo keys"
rm -rf "$VAULT" "$KEYS"
mkdir -p "$KEYS"
chmod 700 "$KEYS"

# Writes a new age identity to $1 and prints its public key (recipient).
keygen() {
    local file=$1 out recipient
    out=$(run "$TVAULT" keygen -o "$file" --json)
    recipient=$(grep -o 'age1[0-9a-z]*' <<<"$out" | head -n 1 || true)
    if [[ -z $recipient ]]; then
        # age identity files carry the public key as a comment.
        recipient=$(grep -o 'age1[0-9a-z]*' "$file" | head -n 1 || true)
    fi
    [[ -n $recipient ]] || die "could not read the public key of $file from: $out"
    printf '%s\n' "$recipient"
}
SHARED_RECIPIENT=$(keygen "$KEYS/shared.txt")
ACME_RECIPIENT=$(keygen "$KEYS/$DEMO_TENANT.txt")
note "shared demo key (all tenants but $DEMO_TENANT): $SHARED_RECIPIENT"
note "$DEMO_TENANT's own key:                        $ACME_RECIPIENT"

run "$TVAULT" --vault "$VAULT" init --source "$SOURCE"

# ---------------------------------------------------------------------------------------------------------
step "Show the table plan (tenant tables, child tables found through foreign keys, global tables)"
run "$TVAULT" --vault "$VAULT" tables

# ---------------------------------------------------------------------------------------------------------
step "Register every tenant with its public key"
# NUL-separated, and each id goes to tvault as one argv element: ids like "o'brien & co" never meet a shell.
mapfile -d '' -t TENANTS < <(dbsql -At -0 -c 'SELECT DISTINCT tenant_id FROM app.customers ORDER BY 1')
[[ ${#TENANTS[@]} -gt 0 ]] || die "no tenants found in app.customers"
for tenant in "${TENANTS[@]}"; do
    if [[ $tenant == "$DEMO_TENANT" ]]; then
        recipient=$ACME_RECIPIENT
    else
        recipient=$SHARED_RECIPIENT
    fi
    "$TVAULT" --vault "$VAULT" -q tenant add "$tenant" --recipient "$recipient" >/dev/null
done
note "registered ${#TENANTS[@]} tenants, e.g. $(printf '%q ' "${TENANTS[@]:0:3}")... (odd ids included)"
run "$TVAULT" --vault "$VAULT" tenant list --json >"$REPO/target/demo-tenants.json"
note "tenant list written to target/demo-tenants.json"

# ---------------------------------------------------------------------------------------------------------
step "Back up all tenants (one consistent snapshot, one encrypted archive per tenant)"
backup_start=$SECONDS
run "$TVAULT" --vault "$VAULT" backup --all
note "backup took $((SECONDS - backup_start)) s"

step "List $DEMO_TENANT's snapshots"
run "$TVAULT" --vault "$VAULT" snapshots --tenant "$DEMO_TENANT"

# ---------------------------------------------------------------------------------------------------------
# Per table: row count and an md5 over the rows in a fixed order; :'t' is the tenant, :'want' is true for that
# tenant's rows or false for every other row (other tenants' and unowned ones). app.events has no primary key, so its rows are ordered
# by their whole text; duplicates count twice.
FINGERPRINT_SQL=$(cat <<'SQL'
SELECT 'app.customers' AS "table", count(*) AS rows, md5(string_agg(r::text, E'\n' ORDER BY r::text)) AS md5
  FROM app.customers r WHERE (r.tenant_id = :'t') = :'want'::boolean
UNION ALL
SELECT 'app.invoices', count(*), md5(string_agg(r::text, E'\n' ORDER BY r::text))
  FROM app.invoices r WHERE (r.tenant_id = :'t') = :'want'::boolean
UNION ALL
SELECT 'app.invoice_lines', count(*), md5(string_agg(r::text, E'\n' ORDER BY r::text))
  FROM app.invoice_lines r WHERE (r.invoice_tenant = :'t') = :'want'::boolean
UNION ALL
SELECT 'app.line_notes', count(*), md5(string_agg(r::text, E'\n' ORDER BY r::text))
  FROM app.line_notes r JOIN app.invoice_lines l ON l.id = r.line_id
  WHERE (l.invoice_tenant = :'t') = :'want'::boolean
UNION ALL
SELECT 'app.events', count(*), md5(string_agg(r::text, E'\n' ORDER BY r::text))
  FROM app.events r WHERE (coalesce(r.tenant_id = :'t', false)) = :'want'::boolean
ORDER BY 1;
SQL
)
# fingerprint TENANT true|false  -> aligned table of the tenant's (true) or everyone else's (false) rows
fingerprint() { dbsql -v t="$1" -v want="$2" <<<"$FINGERPRINT_SQL"; }

step "Damage $DEMO_TENANT's live rows: delete half of its customers (cascades to invoices, lines, notes)"
before_acme=$(fingerprint "$DEMO_TENANT" true)
before_others=$(fingerprint "$DEMO_TENANT" false)
printf '%s\n' "$before_acme" >&2
note "\$ DELETE FROM app.customers WHERE tenant_id = '$DEMO_TENANT' AND id % 2 = 0"
note "\$ DELETE FROM app.events WHERE tenant_id = '$DEMO_TENANT' AND kind = 'login'"
dbsql -v t="$DEMO_TENANT" <<'SQL'
DELETE FROM app.customers WHERE tenant_id = :'t' AND id % 2 = 0;
DELETE FROM app.events WHERE tenant_id = :'t' AND kind = 'login';
SQL
note "after the damage:"
fingerprint "$DEMO_TENANT" true >&2

# ---------------------------------------------------------------------------------------------------------
step "Restore $DEMO_TENANT alone from its latest snapshot, with $DEMO_TENANT's own key"
restore_start=$SECONDS
run "$TVAULT" --vault "$VAULT" restore "$DEMO_TENANT" --snapshot latest --identity "$KEYS/$DEMO_TENANT.txt"
note "restore took $((SECONDS - restore_start)) s"

step "Verify $DEMO_TENANT's archives (decrypt every block, check checksums)"
run "$TVAULT" --vault "$VAULT" verify --tenant "$DEMO_TENANT" --identity "$KEYS/$DEMO_TENANT.txt"

# ---------------------------------------------------------------------------------------------------------
step "Check with psql: $DEMO_TENANT's rows are back, byte for byte, and no other tenant changed"
after_acme=$(fingerprint "$DEMO_TENANT" true)
after_others=$(fingerprint "$DEMO_TENANT" false)
printf '%s\n' "$after_acme" >&2
[[ $after_acme == "$before_acme" ]] || {
    printf 'before the damage:\n%s\n' "$before_acme" >&2
    die "$DEMO_TENANT's rows after the restore differ from the rows before the damage"
}
[[ $after_others == "$before_others" ]] || {
    printf 'before:\n%s\nafter:\n%s\n' "$before_others" "$after_others" >&2
    die "rows of other tenants changed during $DEMO_TENANT's restore"
}

# ---------------------------------------------------------------------------------------------------------
acme_rows=$(awk -F'|' 'NR > 2 && $2 ~ /[0-9]/ { s += $2 } END { print s + 0 }' <<<"$after_acme")
cat >&2 <<EOF

==> Demo complete in $((SECONDS - STARTED)) s
    source database   $SOURCE
    tenants           ${#TENANTS[@]} backed up, each in its own encrypted archive
    vault             ${VAULT#"$REPO"/}
    keys              ${KEYS#"$REPO"/}/shared.txt (all tenants but $DEMO_TENANT), ${KEYS#"$REPO"/}/$DEMO_TENANT.txt
    restored          $DEMO_TENANT: $acme_rows rows in 5 tables, identical to before the damage
    other tenants     untouched (row fingerprints unchanged)
EOF

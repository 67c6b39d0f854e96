#!/usr/bin/env bash
# Record-level restore benchmark: one tenant with 5,000,000 rows (plus 20 small tenants) in a pooled
# table; times `tvault find` and `tvault restore-records` of one deleted record and reports how many
# blocks and bytes were read from the store (from restore-records --json).
#
#   bench/records.sh [--rows N] [--runs N]
#
# Uses the local cluster (scripts/pg-local.sh) and database tvault_records (rebuilt every run).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ROWS=5000000
RUNS=5
while [[ $# -gt 0 ]]; do
    case $1 in
        --rows) ROWS=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        *) echo "usage: bench/records.sh [--rows N] [--runs N]" >&2; exit 2 ;;
    esac
done
[[ $ROWS =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "--rows/--runs must be positive integers" >&2; exit 2; }
BASE=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
DB=${BASE%/*}/tvault_records
T=${TVAULT_BIN:-$REPO/target/release/tvault}
[[ -x $T ]] || cargo build --release -p vault-cli
WORK=$REPO/target/bench-records
rm -rf "$WORK" && mkdir -p "$WORK"

psql "$BASE" -qc "DROP DATABASE IF EXISTS tvault_records" -c "CREATE DATABASE tvault_records"
psql "$DB" -q <<SQL
CREATE TABLE employees(tenant_id text, id bigint, name text, email text, dept text, salary numeric, hired date,
                       PRIMARY KEY (tenant_id, id));
INSERT INTO employees SELECT 'big', i, 'employee '||i, 'e'||i||'@big.example', 'dept '||(i%50),
       30000 + (i % 70000), date '2000-01-01' + (i % 9000) FROM generate_series(1, $ROWS) i;
INSERT INTO employees SELECT 'small-'||(i%20), i, 'x', 'y', 'z', 1, now() FROM generate_series(1, 20000) i;
VACUUM ANALYZE employees;
SQL
"$T" --vault "$WORK/v" init --source "$DB" >/dev/null
"$T" keygen -o "$WORK/k.txt" --json > "$WORK/k.json"
R=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['recipient'])" "$WORK/k.json")
for t in big $(seq -f "small-%g" 0 19); do "$T" --vault "$WORK/v" -q tenant add "$t" --recipient "$R" >/dev/null; done
/usr/bin/time -f "backup: %e s, max RSS %M KB" "$T" --vault "$WORK/v" -q backup --all
echo "store: $(du -sb "$WORK/v/store" | cut -f1) bytes; inventory: $(du -sb "$WORK/v/inventory" | cut -f1) bytes"
KEY=$((ROWS * 7 / 10 + 3))
for i in $(seq "$RUNS"); do
    psql "$DB" -qc "DELETE FROM employees WHERE tenant_id = 'big' AND id = $KEY"
    /usr/bin/time -f "find: %e s" "$T" --vault "$WORK/v" find big --table public.employees --key "id=$KEY" >/dev/null
    /usr/bin/time -f "restore-records: %e s, max RSS %M KB" \
        "$T" --vault "$WORK/v" restore-records big --table public.employees --key "id=$KEY" --identity "$WORK/k.txt" --json \
        | python3 -c "import json,sys; d=json.load(sys.stdin); print('inserted', d['inserted'], 'store reads', d['store_reads'])"
done

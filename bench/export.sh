#!/usr/bin/env bash
# Benchmark: export one big tenant (tenant `big` of bench/restore.sql: 470,000 rows at --scale 1, about 5M
# rows at the default --scale 11) against what a user would otherwise run, in the same run:
#   (a) psql \copy     one psql session: \copy (SELECT … WHERE <big's rows>) TO file CSV HEADER, per table
#                      (children through their foreign keys), plain files, no encryption
#   (b) export --live  tvault export big --live --format csv: the same rows, csv, compressed and sealed
#                      to the tenant's key
#   (c) export sealed  tvault export big (the latest snapshot; no key: the sealed packs and wrapped key)
#   (d) open sealed    tvault open of (c) with the tenant's key, --format csv (the tenant's side)
# Wall seconds and max RSS of the client process (/usr/bin/time -v); medians over --runs runs go to stdout as
# a Markdown table with ratios to (a), and are appended, with machine info, to bench/results/<date>.md.
#
#   bench/export.sh [--runs N] [--scale X] [-h|--help]
#
# Environment: TVAULT_BIN (default target/release/tvault, built with cargo when missing),
# TVAULT_BENCH_DIR (scratch space, default target/bench; this script uses its export/ subdirectory).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RUNS=3
SCALE=11
DB=tvault_bench_export
WORK=${TVAULT_BENCH_DIR:-$REPO/target/bench}/export

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: install the Debian package 'time'"

tvault_bin
ADMIN_URL=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
DB_URL=${ADMIN_URL%/*}/$DB

heading "Dataset (database $DB, bench/restore.sql at scale $SCALE)"
PARAMS="tvault-bench-export v1 scale=$SCALE sql=$(md5sum <bench/restore.sql | cut -c1-12)"
if [[ $(db_comment) != "$PARAMS" ]]; then
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    psql_db -v scale="$SCALE" -v tenants=200 -f bench/restore.sql >&2
    psql_db -c 'VACUUM ANALYZE'
    set_comment "$PARAMS"
fi
BIG_ROWS=$(psql_db -At <<'SQL'
SELECT (SELECT count(*) FROM app.accounts WHERE tenant_id = 'big')
     + (SELECT count(*) FROM app.orders o JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = 'big')
     + (SELECT count(*) FROM app.order_items i JOIN app.orders o ON o.id = i.order_id
          JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = 'big')
     + (SELECT count(*) FROM app.events WHERE tenant_id = 'big')
SQL
)
log "tenant big: $BIG_ROWS rows"

rm -rf "$WORK"
mkdir -p "$WORK"
OUT=$WORK
V=(--vault "$WORK/vault")
"$TVAULT" "${V[@]}" init --source "$DB_URL" >/dev/null 2>&1
"$TVAULT" keygen -o "$WORK/big.key" >/dev/null 2>&1
PUB=$(grep -o 'age1[0-9a-z]*' "$WORK/big.key" | head -n 1)
"$TVAULT" "${V[@]}" tenant add big --recipient "$PUB" >/dev/null
log "backing up (not timed)"
"$TVAULT" "${V[@]}" -q backup --all --json >"$WORK/backup.json" 2>/dev/null || [[ $? -eq 6 ]]

cat >"$WORK/copy.sql" <<'SQL'
\copy (SELECT a.* FROM app.accounts a WHERE a.tenant_id = 'big') TO 'accounts.csv' WITH (FORMAT csv, HEADER true)
\copy (SELECT o.* FROM app.orders o JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = 'big') TO 'orders.csv' WITH (FORMAT csv, HEADER true)
\copy (SELECT i.* FROM app.order_items i JOIN app.orders o ON o.id = i.order_id JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = 'big') TO 'order_items.csv' WITH (FORMAT csv, HEADER true)
\copy (SELECT e.* FROM app.events e WHERE e.tenant_id = 'big') TO 'events.csv' WITH (FORMAT csv, HEADER true)
SQL

declare -A WALL RSS
for run in $(seq 1 "$RUNS"); do
    heading "Run $run of $RUNS"
    rm -rf "$WORK/copy" "$WORK/live.tvx" "$WORK/sealed.tvx" "$WORK/opened"
    mkdir -p "$WORK/copy"
    # \copy writes relative to the working directory; not a subshell, which would lose the timings.
    cd "$WORK/copy"
    timed copy "$run" -- psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" -f "$WORK/copy.sql"
    cd "$REPO"
    timed live "$run" -- "$TVAULT" "${V[@]}" -q export big --live --format csv -o "$WORK/live.tvx"
    timed sealed "$run" -- "$TVAULT" "${V[@]}" -q export big -o "$WORK/sealed.tvx"
    timed open "$run" -- "$TVAULT" -q open "$WORK/sealed.tvx" --identity "$WORK/big.key" -o "$WORK/opened" --format csv
    # The tenant's side holds the same rows as psql's files (lines: both quote the same way).
    for t in accounts orders order_items events; do
        [[ $(wc -l <"$WORK/copy/$t.csv") == $(wc -l <"$WORK/opened/app.$t.csv") ]] ||
            die "run $run: app.$t.csv opened from the export does not have psql's $(wc -l <"$WORK/copy/$t.csv") lines"
    done
    log "copy $(file_bytes "$WORK/copy") B, live export $(file_bytes "$WORK/live.tvx") B, sealed $(file_bytes "$WORK/sealed.tvx") B"
done

COPY_WALL=$(median "${WALL[copy]}")
row() {
    local name=$1 label=$2 wall rss
    wall=$(median "${WALL[$name]}")
    rss=$(median "${RSS[$name]}")
    printf '| %s | %.2f | %.2f× | %d |\n' "$label" "$wall" "$(awk -v a="$wall" -v b="$COPY_WALL" 'BEGIN { print a / b }')" "$((rss / 1024))"
}
DATE=$(date -u +%Y-%m-%d)
REPORT=$(
    printf '## export: tenant big, %s rows (%s, %s runs, medians)\n\n' "$BIG_ROWS" "$DATE" "$RUNS"
    printf -- '- machine: %s cores, %s GiB RAM; %s\n\n' "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$("$TVAULT" --version)"
    printf '| method | wall s | vs psql \\copy | max RSS MiB |\n|---|---:|---:|---:|\n'
    row copy 'psql \copy … CSV (4 tables, plain files)'
    row live 'tvault export --live --format csv (sealed to the tenant)'
    row sealed 'tvault export (snapshot, sealed, no key)'
    row open 'tvault open --format csv (tenant side)'
    printf '\nsizes: psql CSV %s B; live export %s B; sealed export %s B\n' \
        "$(file_bytes "$WORK/copy")" "$(file_bytes "$WORK/live.tvx")" "$(file_bytes "$WORK/sealed.tvx")"
)
printf '%s\n' "$REPORT"
mkdir -p "$REPO/bench/results"
printf '%s\n\n' "$REPORT" >>"$REPO/bench/results/$DATE.md"
log "appended to bench/results/$DATE.md"

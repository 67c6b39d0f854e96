#!/usr/bin/env bash
# Benchmark: one backup cycle of a database of bridge tenants (one schema each) against what a user
# would otherwise run, in the same run:
#   (a) pg_dump -Fc        of the whole database (one consistent dump, not per tenant)
#   (b) tvault backup --all  one archive per schema-tenant, into a fresh vault each run
#   (c) pg_dump -Fc -n     per schema (the usual per-tenant loop), timed on --sample schemas and
#                          scaled to all of them
# Wall seconds and max RSS (/usr/bin/time -v); medians over --runs runs go to stdout as a Markdown
# table with ratios to (a), and are appended, with machine info, to bench/results/<date>.md.
#
#   bench/bridge.sh [--schemas N] [--tables T] [--runs N] [--sample S] [-h|--help]
#
# Defaults: 2,000 schemas of 3 tables, 3 runs, 20 sampled schemas. --tables 5 --schemas 10000 is the
# lock test of the issue: 50,000 tables with the server's default max_locks_per_transaction.
# Environment: TVAULT_BIN (default target/release/tvault, built with cargo when missing),
# TVAULT_BENCH_DIR (scratch space, default target/bench; this script uses its bridge/ subdirectory).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RUNS=3
SCHEMAS=2000
TABLES=3
SAMPLE=20
WORK=${TVAULT_BENCH_DIR:-$REPO/target/bench}/bridge

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --schemas) SCHEMAS=${2:?--schemas needs a value}; shift 2 ;;
        --tables) TABLES=${2:?--tables needs a value}; shift 2 ;;
        --sample) SAMPLE=${2:?--sample needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
    esac
done
for v in RUNS SCHEMAS SAMPLE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer"
done
[[ $TABLES =~ ^[0-9]+$ && $TABLES -ge 3 ]] || die "--tables must be 3 or more"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: install the Debian package 'time'"

tvault_bin
ADMIN_URL=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
DB=tvault_bench_bridge_${SCHEMAS}_$TABLES
DB_URL=${ADMIN_URL%/*}/$DB

heading "Dataset (database $DB: $SCHEMAS schemas of $TABLES tables)"
PARAMS="tvault-bench-bridge v1 schemas=$SCHEMAS tables=$TABLES sql=$(md5sum <bench/bridge.sql | cut -c1-12)"
if [[ $(db_comment) != "$PARAMS" ]]; then
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    psql_db -v schemas="$SCHEMAS" -v tables="$TABLES" -f bench/bridge.sql >&2
    psql_db -c 'VACUUM ANALYZE'
    set_comment "$PARAMS"
fi
DB_BYTES=$(psql_db -At -c "SELECT pg_database_size(current_database())")
LOCKS=$(psql_db -At -c "SELECT current_setting('max_locks_per_transaction')")
log "database: $DB_BYTES bytes; max_locks_per_transaction = $LOCKS"

# Earlier runs' files go before anything is made or timed (bench/lib.sh, discard).
discard "$WORK"
empty_trash
mkdir -p "$WORK"
OUT=$WORK
"$TVAULT" keygen -o "$WORK/tenant.key" >/dev/null 2>&1
PUB=$(grep -o 'age1[0-9a-z]*' "$WORK/tenant.key" | head -n 1)
psql_db -At -c "SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\_%' ORDER BY 1" |
    awk -v pub="$PUB" '{ printf "%s\t%s\tschema=%s\n", $1, pub, $1 }' >"$WORK/tenants.tsv"
mapfile -t SAMPLED < <(head -n "$SAMPLE" "$WORK/tenants.tsv" | cut -f1)

declare -A WALL RSS
settle
for run in $(seq 1 "$RUNS"); do
    heading "Run $run of $RUNS"
    discard "$WORK/vault" "$WORK/dump.pgdump" "$WORK/per-schema"
    mkdir -p "$WORK/per-schema"
    V=(--vault "$WORK/vault")
    "$TVAULT" "${V[@]}" init --source "$DB_URL" >/dev/null 2>&1
    "$TVAULT" "${V[@]}" -q tenant import "$WORK/tenants.tsv" >/dev/null
    if ! MAY_FAIL=1 timed pg_dump "$run" -- pg_dump -Fc -d "$DB_URL" -f "$WORK/dump.pgdump"; then
        DUMP_ERROR=$(grep -m1 -o 'ERROR: .*' "$WORK/stderr" || tail -n 1 "$WORK/stderr")
        log "pg_dump failed: $DUMP_ERROR"
    fi
    two_cycles "$run"
    printf '%s\n' "${SAMPLED[@]}" >"$WORK/sampled.txt"
    MAY_FAIL=1 timed per_schema "$run" -- bash -c 'while read -r s; do pg_dump -Fc -n "$s" -d "$1" -f "$2/$s.pgdump" || exit 1; done <"$3"' \
        _ "$DB_URL" "$WORK/per-schema" "$WORK/sampled.txt"
    log "dump $(file_bytes "$WORK/dump.pgdump") B; vault store $(file_bytes "$WORK/vault/store") B, $(file_count "$WORK/vault/store") objects"
done

DUMP_WALL=$(median "${WALL[pg_dump]:-}")
ratio() { awk -v a="$1" -v b="$DUMP_WALL" 'BEGIN { if (b == "nan") print "–"; else printf "%.2f", a / b }'; }
DATE=$(date -u +%Y-%m-%d)
TV_WALL=$(median "${WALL[tvault]}")
LOOP_WALL=$(awk -v s="$(median "${WALL[per_schema]:-}")" -v n="$SCHEMAS" -v k="$SAMPLE" 'BEGIN { printf "%.1f", s * n / k }')
REPORT=$(
    printf '## bridge: %s schemas of %s tables, %s MB (%s, %s runs, medians)\n\n' "$SCHEMAS" "$TABLES" "$((DB_BYTES / 1000000))" "$DATE" "$RUNS"
    printf -- '- machine: %s cores, %s GiB RAM; %s; max_locks_per_transaction = %s\n\n' "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$("$TVAULT" --version)" "$LOCKS"
    printf '| method | wall s | vs pg_dump -Fc | max RSS MiB | bytes |\n|---|---:|---:|---:|---:|\n'
    if [[ $DUMP_WALL == nan ]]; then
        printf '| pg_dump -Fc (whole database) | failed: %s | | | |\n' "${DUMP_ERROR:-}"
    else
        printf '| pg_dump -Fc (whole database) | %.2f | 1.00× | %d | %s |\n' "$DUMP_WALL" "$(($(median "${RSS[pg_dump]}") / 1024))" "$(file_bytes "$WORK/dump.pgdump")"
    fi
    printf '| tvault backup --all (%s archives) | %.2f | %s× | %d | %s |\n' "$SCHEMAS" "$TV_WALL" "$(ratio "$TV_WALL")" "$(($(median "${RSS[tvault]}") / 1024))" "$(file_bytes "$WORK/vault/store")"
    printf '| tvault backup --all again, nothing changed (vault +%s%%) | %.2f | %s× | %d | |\n' "$GROWTH" "$(median "${WALL[unchanged]}")" "$(ratio "$(median "${WALL[unchanged]}")")" "$(($(median "${RSS[unchanged]}") / 1024))"
    printf '| pg_dump -Fc -n per schema (%s timed, scaled to %s) | %s | %s× | %d | |\n' "$SAMPLE" "$SCHEMAS" "$LOOP_WALL" "$(ratio "$LOOP_WALL")" "$(($(median "${RSS[per_schema]:-0}") / 1024))"
    printf '\nafter the first cycle (last run): store %s B in %s objects; local state (inventory, audit) %s B\n' \
        "$FIRST_STORE" "$FIRST_OBJECTS" "$((FIRST_BYTES - FIRST_STORE))"
)
write_report "$REPORT"
# What the runs discarded goes now, so that the next script waits less (bench/lib.sh).
empty_trash

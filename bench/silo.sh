#!/usr/bin/env bash
# Benchmark: one backup cycle of silo tenants (one database each) against what a user would
# otherwise run, in the same run:
#   (a) a loop of pg_dump -Fc over the databases (one dump per tenant database, one after another)
#   (b) tvault backup --all  one archive per silo tenant, into a fresh vault each run
# Wall seconds and max RSS (/usr/bin/time -v); medians over --runs runs go to stdout as a Markdown
# table with ratios to (a), and are appended, with machine info, to bench/results/<date>.md.
#
#   bench/silo.sh [--databases N] [--runs N] [-h|--help]
#
# Defaults: 200 databases, 3 runs. Tenant i gets 100 + (i * 37) % 1500 customers, each with 4
# orders, a note on every other one and an audit row per order (bench/silo.sql).
# Environment: TVAULT_BIN (default target/release/tvault, built with cargo when missing),
# TVAULT_BENCH_DIR (scratch space, default target/bench; this script uses its silo/ subdirectory).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RUNS=3
DATABASES=200
WORK=${TVAULT_BENCH_DIR:-$REPO/target/bench}/silo

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --databases) DATABASES=${2:?--databases needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
    esac
done
for v in RUNS DATABASES; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer"
done
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing: install the Debian package 'time'"

tvault_bin
ADMIN_URL=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
PREFIX=tvault_bench_silo
# The source database holds no tenant: every tenant is a silo.
DB=${PREFIX}_main
DB_URL=${ADMIN_URL%/*}/$DB

heading "Dataset ($DATABASES silo databases ${PREFIX}_1…)"
PARAMS="tvault-bench-silo v1 databases=$DATABASES sql=$(md5sum <bench/silo.sql | cut -c1-12)"
if [[ $(db_comment) != "$PARAMS" ]]; then
    psql_admin -At -c "SELECT datname FROM pg_database WHERE datname LIKE '${PREFIX}\_%'" |
        while read -r d; do psql_admin -c "DROP DATABASE \"$d\" WITH (FORCE)"; done
    psql_admin -c "CREATE DATABASE $DB"
    for i in $(seq 1 "$DATABASES"); do
        psql_admin -c "CREATE DATABASE ${PREFIX}_$i"
        psql -X -q -v ON_ERROR_STOP=1 -d "${ADMIN_URL%/*}/${PREFIX}_$i" -f bench/silo.sql \
            -c "SELECT fill_silo(100 + ($i * 37) % 1500, 's$i')" -c 'VACUUM ANALYZE' >/dev/null
    done
    set_comment "$PARAMS"
fi
DB_BYTES=$(psql_admin -At -c "SELECT sum(pg_database_size(datname)) FROM pg_database WHERE datname LIKE '${PREFIX}\_%' AND datname <> '$DB'")
log "silo databases: $DB_BYTES bytes"

# Earlier runs' files go before anything is made or timed (bench/lib.sh, discard).
discard "$WORK"
empty_trash
mkdir -p "$WORK"
OUT=$WORK
"$TVAULT" keygen -o "$WORK/tenant.key" >/dev/null 2>&1
PUB=$(grep -o 'age1[0-9a-z]*' "$WORK/tenant.key" | head -n 1)
for i in $(seq 1 "$DATABASES"); do
    printf 's%s\t%s\tdatabase=%s_%s\n' "$i" "$PUB" "$PREFIX" "$i"
done >"$WORK/tenants.tsv"

declare -A WALL RSS
settle
for run in $(seq 1 "$RUNS"); do
    heading "Run $run of $RUNS"
    discard "$WORK/vault" "$WORK/dumps"
    mkdir -p "$WORK/dumps"
    V=(--vault "$WORK/vault")
    "$TVAULT" "${V[@]}" init --source "$DB_URL" >/dev/null 2>&1
    "$TVAULT" "${V[@]}" -q tenant import "$WORK/tenants.tsv" >/dev/null
    timed pg_dump_loop "$run" -- bash -c 'for i in $(seq 1 "$1"); do pg_dump -Fc -d "$2_$i" -f "$3/$i.pgdump" || exit 1; done' \
        _ "$DATABASES" "${ADMIN_URL%/*}/$PREFIX" "$WORK/dumps"
    two_cycles "$run"
    log "dumps $(file_bytes "$WORK/dumps") B; vault store $FIRST_STORE B, $FIRST_OBJECTS objects"
done

LOOP_WALL=$(median "${WALL[pg_dump_loop]}")
ratio() { awk -v a="$1" -v b="$LOOP_WALL" 'BEGIN { printf "%.2f", a / b }'; }
DATE=$(date -u +%Y-%m-%d)
TV_WALL=$(median "${WALL[tvault]}")
REPORT=$(
    printf '## silo: %s databases, %s MB (%s, %s runs, medians)\n\n' "$DATABASES" "$((DB_BYTES / 1000000))" "$DATE" "$RUNS"
    printf -- '- machine: %s cores, %s GiB RAM; %s; [backup] connections_per_server = 4\n\n' "$(nproc)" "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 }' /proc/meminfo)" "$("$TVAULT" --version)"
    printf '| method | wall s | vs the pg_dump loop | max RSS MiB | bytes |\n|---|---:|---:|---:|---:|\n'
    printf '| pg_dump -Fc per database, one after another | %.2f | 1.00× | %d | %s |\n' "$LOOP_WALL" "$(($(median "${RSS[pg_dump_loop]}") / 1024))" "$(file_bytes "$WORK/dumps")"
    printf '| tvault backup --all (%s archives) | %.2f | %s× | %d | %s |\n' "$DATABASES" "$TV_WALL" "$(ratio "$TV_WALL")" "$(($(median "${RSS[tvault]}") / 1024))" "$FIRST_STORE"
    printf '| tvault backup --all again, nothing changed (vault +%s%%) | %.2f | %s× | %d | |\n' "$GROWTH" "$(median "${WALL[unchanged]}")" "$(ratio "$(median "${WALL[unchanged]}")")" "$(($(median "${RSS[unchanged]}") / 1024))"
    printf '\nafter the first cycle (last run): store %s B in %s objects; local state (inventory, audit) %s B\n' \
        "$FIRST_STORE" "$FIRST_OBJECTS" "$((FIRST_BYTES - FIRST_STORE))"
)
write_report "$REPORT"
# What the runs discarded goes now, so that the next script waits less (bench/lib.sh).
empty_trash

#!/usr/bin/env bash
# Benchmark: back up every tenant of a ~1 GB pooled database (>= 2,000 tenants, Zipf-skewed sizes) with
#   (a) tvault backup --all            into a fresh vault each run (tenants registered once, one key for all)
#   (b) pg_dump -Fc                    the whole database to one file (no per-tenant separation at all)
#   (c) per-tenant \copy               what a careful user scripts by hand: ONE psql session, one
#                                      REPEATABLE READ transaction, one `\copy (SELECT ... WHERE tenant) TO
#                                      file` per tenant and table (child tables joined through their FKs)
#   (d) COPY floor                     plain `COPY app.<t> TO STDOUT` of every table in one session, to a
#                                      byte counter: the cost of reading the data out at all
# Each is timed with /usr/bin/time -v (wall seconds, max RSS of the client process tree; the PostgreSQL
# server's own memory is not included) and the bytes it stored are recorded. Medians over --runs runs go to
# stdout as a Markdown table and are appended, with machine info, to bench/results/<date>.md.
#
#   bench/run.sh [--runs N] [--rebuild] [--tenants N] [--scale X] [--skew X] [--methods a,b,c,d]
#
#   --runs N       timed runs of each method (default 3)
#   --rebuild      regenerate the dataset even if database tvault_bench already holds one with the same params
#   --tenants N    numbered tenants (default 2000; 3 odd demo tenants are added) -- see bench/pool.sql
#   --scale X      size multiplier (default 9: ~1 GB)
#   --skew X       Zipf exponent of tenant sizes (default 1.0)
#   --methods L    comma-separated subset of: tvault,pg_dump,per_tenant,copy_floor (default: all)
#   --db NAME      database of the dataset (default tvault_bench for the default tenants, else
#                  tvault_bench_<tenants>, so datasets of different shapes are kept side by side)
#
# Environment: TVAULT_BIN (default target/release/tvault, built with cargo when missing),
# TVAULT_BENCH_DIR (scratch space, default target/bench), TVAULT_PGPORT/TVAULT_PGDATA (scripts/pg-local.sh).
# The dataset lives in database --db on the local cluster; its parameters are kept in
# COMMENT ON DATABASE, so a later run with the same parameters reuses it.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RUNS=3
REBUILD=0
TENANTS=2000
SCALE=9
SKEW=1.0
METHODS=tvault,pg_dump,per_tenant,copy_floor
DB=
WORK=${TVAULT_BENCH_DIR:-$REPO/target/bench}

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --tenants) TENANTS=${2:?--tenants needs a value}; shift 2 ;;
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        --skew) SKEW=${2:?--skew needs a value}; shift 2 ;;
        --methods) METHODS=${2:?--methods needs a value}; shift 2 ;;
        --db) DB=${2:?--db needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $TENANTS =~ ^[1-9][0-9]*$ ]] || die "--tenants must be a positive integer"
[[ $SCALE =~ ^[0-9]+(\.[0-9]+)?$ && $SKEW =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--scale/--skew must be numbers"
if [[ -z $DB ]]; then
    DB=tvault_bench
    [[ $TENANTS -eq 2000 ]] || DB=tvault_bench_$TENANTS
fi
[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "--db must be a plain lower-case identifier"
IFS=, read -r -a SELECTED <<<"$METHODS"
for m in "${SELECTED[@]}"; do
    case $m in tvault|pg_dump|per_tenant|copy_floor) ;; *) die "unknown method: $m" ;; esac
done
selected() { [[ ,$METHODS, == *",$1,"* ]]; }

# ---------------------------------------------------------------------------------------------------------
heading "Prerequisites"
if [[ ! -x /usr/bin/time ]]; then
    [[ $(id -u) -eq 0 ]] || die "/usr/bin/time missing: install the Debian package 'time'"
    log "installing the Debian package 'time'"
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y time >&2
fi

if selected tvault; then
    tvault_bin
else
    TVAULT=${TVAULT_BIN:-$REPO/target/release/tvault}
fi

ADMIN_URL=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
DB_URL=${ADMIN_URL%/*}/$DB

# ---------------------------------------------------------------------------------------------------------
heading "Dataset (database $DB)"
sql_digest=$(cat demo/schema.sql demo/constraints.sql demo/load.sql bench/pool.sql | md5sum | cut -c1-12)
PARAMS="tvault-bench v1 tenants=$TENANTS scale=$SCALE skew=$SKEW sql=$sql_digest"
current=$(db_comment)
LOAD_INFO="reused an existing load"
if [[ $REBUILD -eq 1 || $current != "$PARAMS" ]]; then
    if [[ -n $current ]]; then
        log "rebuilding (found: '${current}', want: '$PARAMS')"
    fi
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    log "loading bench/pool.sql ($PARAMS); takes about 2 minutes at the default size"
    load_start=$(date +%s.%N)
    psql_db -v tenants="$TENANTS" -v scale="$SCALE" -v skew="$SKEW" -f bench/pool.sql >&2
    LOAD_SECONDS=$(awk -v a="$load_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    LOAD_INFO="loaded in $LOAD_SECONDS s"
    # Only a complete load gets the comment, so an interrupted one is rebuilt next time.
    set_comment "$PARAMS"
    log "loaded in $LOAD_SECONDS s"
else
    log "reusing the existing dataset ($PARAMS); --rebuild to regenerate"
fi

DB_BYTES=$(psql_db -At -c 'SELECT pg_database_size(current_database())')
DATASET=$(psql_db -At -F ' ' <<'SQL'
SELECT (SELECT count(DISTINCT tenant_id) FROM app.customers),
       (SELECT sum(reltuples)::bigint FROM pg_class
         WHERE relnamespace = 'app'::regnamespace AND relkind = 'r'),
       (SELECT count(*) FROM app.customers GROUP BY tenant_id ORDER BY 1 DESC LIMIT 1),
       (SELECT count(*) FROM app.customers GROUP BY tenant_id ORDER BY 1 LIMIT 1);
SQL
)
read -r N_TENANTS N_ROWS BIGGEST SMALLEST <<<"$DATASET"
log "$N_TENANTS tenants, ~$N_ROWS rows, pg_database_size $DB_BYTES bytes ($((DB_BYTES / 1048576)) MiB);"
log "customers per tenant: largest $BIGGEST, smallest $SMALLEST"

# ---------------------------------------------------------------------------------------------------------
# Wall seconds and max RSS of each method's runs, filled by `timed` (bench/lib.sh).
declare -A WALL RSS BYTES
# tvault's store and local state (inventory, key copies, audit trail) after the first and the second
# cycle, and its objects.
STORE1='' LOCAL1='' OBJECTS1='' STORE2='' LOCAL2='' OBJECTS2=''
record_bytes() { BYTES[$1]+="$2 "; }

mkdir -p "$WORK"
# Earlier runs' files go before anything is made or timed (bench/lib.sh, discard).
discard "$WORK"/run-* "$WORK/tvault-template" "$WORK/per-tenant-out"
empty_trash
mapfile -d '' -t TENANT_IDS < <(psql_db -At -0 -c 'SELECT DISTINCT tenant_id FROM app.customers ORDER BY 1')
[[ ${#TENANT_IDS[@]} -gt 0 ]] || die "no tenants in $DB"

# --- (a) tvault: register every tenant once, in a template vault copied fresh for each run ----------------
if selected tvault; then
    heading "tvault: one key, $N_TENANTS tenants registered in a template vault (not timed)"
    TEMPLATE=$WORK/tvault-template
    rm -f "$WORK/bench-key.txt"
    keyout=$("$TVAULT" keygen -o "$WORK/bench-key.txt" --json)
    RECIPIENT=$(grep -o 'age1[0-9a-z]*' <<<"$keyout" | head -n 1 || true)
    [[ -n $RECIPIENT ]] || RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$WORK/bench-key.txt" | head -n 1 || true)
    [[ -n $RECIPIENT ]] || die "could not read the bench key's recipient from: $keyout"
    "$TVAULT" --vault "$TEMPLATE" -q init --source "$DB_URL" >&2
    reg_start=$SECONDS
    for tenant in "${TENANT_IDS[@]}"; do
        printf '%s\t%s\n' "$tenant" "$RECIPIENT"
    done | "$TVAULT" --vault "$TEMPLATE" -q tenant import - >/dev/null
    log "registered ${#TENANT_IDS[@]} tenants in $((SECONDS - reg_start)) s"
    TVAULT_VERSION=$("$TVAULT" --version 2>/dev/null | head -n 1 || true)
fi

# --- (c) per-tenant script: generated once, in SQL, so every tenant id is quoted by format(%L) -------------
if selected per_tenant; then
    PT_OUT=$WORK/per-tenant-out
    PT_SCRIPT=$WORK/per-tenant.psql
    psql_db -At -v dir="$PT_OUT" >"$PT_SCRIPT" <<'SQL'
WITH t AS (
    SELECT tenant_id, :'dir' || '/' || lpad(row_number() OVER (ORDER BY tenant_id COLLATE "C")::text, 5, '0')
           AS d
    FROM (SELECT DISTINCT tenant_id FROM app.customers) x
), lines(grp, d, k, line) AS (
    SELECT 0, '', 0, '\set ON_ERROR_STOP 1'
    UNION ALL SELECT 0, '', 1, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;'
    UNION ALL
    SELECT 1, d, 1, format('\copy (SELECT * FROM app.customers WHERE tenant_id = %L) TO %L',
                           tenant_id, d || '/customers.copy') FROM t
    UNION ALL
    SELECT 1, d, 2, format('\copy (SELECT * FROM app.invoices WHERE tenant_id = %L) TO %L',
                           tenant_id, d || '/invoices.copy') FROM t
    UNION ALL
    SELECT 1, d, 3, format('\copy (SELECT l.* FROM app.invoice_lines l JOIN app.invoices i ON i.tenant_id = l.invoice_tenant AND i.id = l.invoice_id WHERE i.tenant_id = %L) TO %L',
                           tenant_id, d || '/invoice_lines.copy') FROM t
    UNION ALL
    SELECT 1, d, 4, format('\copy (SELECT n.* FROM app.line_notes n JOIN app.invoice_lines l ON l.id = n.line_id JOIN app.invoices i ON i.tenant_id = l.invoice_tenant AND i.id = l.invoice_id WHERE i.tenant_id = %L) TO %L',
                           tenant_id, d || '/line_notes.copy') FROM t
    UNION ALL
    SELECT 1, d, 5, format('\copy (SELECT * FROM app.events WHERE tenant_id = %L) TO %L',
                           tenant_id, d || '/events.copy') FROM t
    UNION ALL SELECT 2, '', 0, format('\copy app.plans TO %L', :'dir' || '/global/plans.copy')
    UNION ALL SELECT 3, '', 0, 'COMMIT;'
)
SELECT line FROM lines ORDER BY grp, d COLLATE "C", k;
SQL
    log "per-tenant script: $(grep -c '^\\copy' "$PT_SCRIPT") \\copy commands in $PT_SCRIPT"
fi

# --- (d) floor: every table of schema app, in one session, one snapshot ----------------------------------
FLOOR_ARGS=(-c 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
while IFS= read -r stmt; do
    FLOOR_ARGS+=(-c "$stmt")
done < <(psql_db -At -c "SELECT format('COPY %s TO STDOUT', c.oid::regclass) FROM pg_class c
                          WHERE c.relnamespace = 'app'::regnamespace AND c.relkind = 'r' ORDER BY 1")
FLOOR_ARGS+=(-c 'COMMIT')
copy_floor() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" "${FLOOR_ARGS[@]}" | wc -c; }

heading "Warm-up: one untimed read of every table (page cache and shared buffers)"
copy_floor >/dev/null

# ---------------------------------------------------------------------------------------------------------
settle
for ((run = 1; run <= RUNS; run++)); do
    heading "Run $run of $RUNS"
    RUN_DIR=$WORK/run-$run
    discard "$RUN_DIR"

    if selected tvault; then
        OUT=$RUN_DIR/tvault
        mkdir -p "$OUT"
        cp -a "$TEMPLATE" "$OUT/vault"
        V=$OUT/vault
        # The template's objects (tenant records and keys, written by `tenant import`) count too.
        timed tvault "$run" -- "$TVAULT" --vault "$V" -q backup --all --json
        record_bytes tvault "$(file_bytes "$V/store")"
        LOCAL_FILES=("$V/inventory" "$V/keys" "$V/audit.log")
        STORE1+="$(file_bytes "$V/store") "
        LOCAL1+="$(file_bytes "${LOCAL_FILES[@]}") "
        OBJECTS1+="$(file_count "$V/store") "
        # A second cycle in which nothing changed: what it adds to the store and the local state.
        timed tvault_again "$run" -- "$TVAULT" --vault "$V" -q backup --all --json
        STORE2+="$(file_bytes "$V/store") "
        LOCAL2+="$(file_bytes "${LOCAL_FILES[@]}") "
        OBJECTS2+="$(file_count "$V/store") "
        # Keep the last run's vault for inspection only.
        [[ $run -eq $RUNS ]] || discard "$V"
    fi

    if selected pg_dump; then
        OUT=$RUN_DIR/pg_dump
        mkdir -p "$OUT"
        timed pg_dump "$run" -- pg_dump -Fc -f "$OUT/dump.pgc" -d "$DB_URL"
        record_bytes pg_dump "$(du -sb "$OUT/dump.pgc" | cut -f1)"
        rm -f "$OUT/dump.pgc"
    fi

    if selected per_tenant; then
        OUT=$RUN_DIR/per_tenant
        mkdir -p "$OUT"
        discard "$PT_OUT"
        mkdir -p "$PT_OUT/global"
        (cd "$PT_OUT" && seq -f '%05g' 1 "${#TENANT_IDS[@]}" | xargs mkdir)
        timed per_tenant "$run" -- psql -X -q -d "$DB_URL" -f "$PT_SCRIPT"
        record_bytes per_tenant "$(du -sb "$PT_OUT" | cut -f1)"
    fi

    if selected copy_floor; then
        OUT=$RUN_DIR/copy_floor
        mkdir -p "$OUT"
        timed copy_floor "$run" -- bash -c "$(declare -p FLOOR_ARGS DB_URL); $(declare -f copy_floor); copy_floor"
        record_bytes copy_floor "$(tr -d ' \n' <"$OUT/stdout")"
    fi
done

# ---------------------------------------------------------------------------------------------------------
heading "Results"
label() {
    case $1 in
        tvault) echo 'tvault backup --all (per-tenant encrypted archives)' ;;
        pg_dump) echo 'pg_dump -Fc (whole database, one file)' ;;
        per_tenant) echo 'per-tenant \copy script, one psql session' ;;
        copy_floor) echo 'floor: COPY every table to a byte counter' ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }

base_wall=nan
base_bytes=nan
if selected pg_dump; then
    base_wall=$(median "${WALL[pg_dump]}")
    base_bytes=$(median "${BYTES[pg_dump]}")
fi
DATE=$(date -u +%Y-%m-%d)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
PG_VERSION=$(psql_db -At -c 'SHOW server_version')
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')
if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]]; then COMMIT+=' (dirty tree)'; fi

REPORT=$(
    printf '## Backup of %s tenants, %s MiB pooled database (%s)\n\n' "$N_TENANTS" "$((DB_BYTES / 1048576))" "$NOW"
    printf -- '- machine: %s cores (nproc), %s, %s GiB RAM; PostgreSQL %s on 127.0.0.1 (local cluster, fsync=off)\n' \
        "$(nproc)" "$CPU" "$MEM_GIB" "$PG_VERSION"
    printf -- '- tvault: %s; commit %s\n' "${TVAULT_VERSION:-not run}" "$COMMIT"
    printf -- '- dataset: `%s`; ~%s rows; customers per tenant %s..%s; pg_database_size %s bytes; %s\n' \
        "$PARAMS" "$N_ROWS" "$SMALLEST" "$BIGGEST" "$DB_BYTES" "$LOAD_INFO"
    printf -- '- runs: %s (medians shown), warm cache; RSS is the client process tree only (not the server)\n\n' "$RUNS"
    printf '| method | wall s | × pg_dump | max RSS MiB | bytes out | × pg_dump |\n'
    printf '|---|---:|---:|---:|---:|---:|\n'
    for m in tvault pg_dump per_tenant copy_floor; do
        selected "$m" || continue
        w=$(median "${WALL[$m]}")
        r=$(median "${RSS[$m]}")
        b=$(median "${BYTES[$m]}")
        printf '| %s | %.2f | %s | %.0f | %s | %s |\n' "$(label "$m")" "$w" "$(ratio "$w" "$base_wall")" \
            "$(awk -v r="$r" 'BEGIN { print r / 1024 }')" "$b" "$(ratio "$b" "$base_bytes")"
    done
    printf '\nbytes out: tvault = bytes of the files of the vault store; pg_dump = dump file (compressed);\n'
    printf 'per-tenant = du -sb of the .copy files (uncompressed, unencrypted); floor = raw COPY text bytes.\n'
    if selected tvault; then
        s1=$(median "$STORE1") l1=$(median "$LOCAL1") o1=$(median "$OBJECTS1")
        s2=$(median "$STORE2") l2=$(median "$LOCAL2") o2=$(median "$OBJECTS2")
        grown=$(awk -v a="$s1" -v b="$l1" -v c="$s2" -v d="$l2" 'BEGIN { printf "%d", (c + d) - (a + b) }')
        printf '\n| tvault | store bytes | local state bytes | local ÷ store | objects | wall s | max RSS MiB |\n'
        printf '|---|---:|---:|---:|---:|---:|---:|\n'
        printf '| first cycle | %s | %s | %s | %s | %.2f | %.0f |\n' "$s1" "$l1" "$(ratio "$l1" "$s1")" "$o1" \
            "$(median "${WALL[tvault]}")" "$(awk -v r="$(median "${RSS[tvault]}")" 'BEGIN { print r / 1024 }')"
        printf '| after an unchanged second cycle | %s | %s | %s | %s | %.2f | %.0f |\n' "$s2" "$l2" \
            "$(ratio "$l2" "$s2")" "$o2" "$(median "${WALL[tvault_again]}")" \
            "$(awk -v r="$(median "${RSS[tvault_again]}")" 'BEGIN { print r / 1024 }')"
        printf '\nThe unchanged second cycle added %s bytes (store and local state), %s of the first cycle'"'"'s, and %s objects.\n' \
            "$grown" "$(awk -v g="$grown" -v a="$s1" -v b="$l1" 'BEGIN { printf "%.2f%%", 100 * g / (a + b) }')" \
            "$((o2 - o1))"
        printf 'Local state = inventory, local copies of wrapped keys and audit trail (file bytes); store bytes include\n'
        printf 'the tenant records and keys that `tenant import` wrote before the first cycle.\n'
    fi
)
printf '%s\n' "$REPORT"
mkdir -p "$REPO/bench/results"
printf '%s\n\n' "$REPORT" >>"$REPO/bench/results/$DATE.md"
log "appended to bench/results/$DATE.md"
# What the runs discarded goes now, so that the next script waits less (bench/lib.sh).
empty_trash

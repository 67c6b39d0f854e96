#!/usr/bin/env bash
# Benchmark: restore one big tenant IN PLACE in a pooled database whose child tables hang off unindexed
# foreign-key columns (bench/restore.sql: tenant `big` with 470,000 rows at --scale 1, 200 small tenants in
# the same tables), against the plain SQL floor measured in the same run:
#   (a) floor          one psql transaction: copy big's rows of every table aside into temp tables (children
#                      joined through their FKs), SET LOCAL session_replication_role = replica (no FK
#                      triggers), delete big's rows (children first), re-insert them (parents first), commit
#   (b) none differ    tvault restore big --snapshot latest, live rows == snapshot
#   (c) 1% differ      the same after changing 1% of big's rows: ~0.5% of each table updated, ~0.25% deleted
#                      (every 400th account with its orders and items; every 400th event), ~0.25% inserted
#   (d) full reload    the same after deleting ALL of big's rows (the worst case)
#   (e) 5 in a row     five consecutive (1% damage, restore) rounds, each restore timed, to show a slowdown
# The damage itself is done in psql with session_replication_role = replica and is not timed. Before each
# measurement of (a)-(d) the tables are vacuumed and a checkpoint is taken (not timed); the rounds of (e)
# follow each other with nothing in between but the damage and the check, autovacuum left as configured.
# After every floor and every restore, big's rows (count and md5 of the ordered row texts, per table) and the
# other tenants' rows must equal what they were right after the backup: otherwise FAIL and exit 1.
# Timed with /usr/bin/time -v (wall seconds, max RSS of the client process: tvault or psql; the PostgreSQL
# server's own memory is not included). Medians over --runs runs go to stdout as a Markdown table, with the
# ratio to the floor and the issue's limits, and are appended, with machine info, to bench/results/<date>.md.
#
#   bench/restore.sh [--runs N] [--rebuild] [--scale X] [-h|--help]
#
#   --runs N       timed runs of (a)-(d) (default 3); (e) is always 5 rounds
#   --rebuild      regenerate the dataset even if database tvault_bench_restore holds one with the same params
#   --scale X      multiplies every row count of bench/restore.sql (default 1: big has 470,000 rows)
#
# Environment: TVAULT_BIN (default target/release/tvault, built with cargo when missing),
# TVAULT_BENCH_DIR (scratch space, default target/bench; this script uses its restore/ subdirectory),
# TVAULT_PGPORT/TVAULT_PGDATA (scripts/pg-local.sh).
# The dataset lives in database tvault_bench_restore on the local cluster; its parameters are kept in
# COMMENT ON DATABASE, so a later run with the same parameters reuses it. The comment is changed while the
# benchmark damages and restores the data and put back only when the run ends with every check passed, so
# an interrupted or failed run makes the next one reload.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

RUNS=3
REBUILD=0
SCALE=1
SMALL_TENANTS=200
SERIES=5
TENANT=big
DB=tvault_bench_restore
WORK=${TVAULT_BENCH_DIR:-$REPO/target/bench}/restore

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --scale) SCALE=${2:?--scale needs a value}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench: unknown argument: $1" >&2; usage 2 ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
if ! [[ $SCALE =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v s="$SCALE" 'BEGIN { exit !(s > 0) }'; then
    die "--scale must be a positive number"
fi

# ---------------------------------------------------------------------------------------------------------
heading "Prerequisites"
if [[ ! -x /usr/bin/time ]]; then
    [[ $(id -u) -eq 0 ]] || die "/usr/bin/time missing: install the Debian package 'time'"
    log "installing the Debian package 'time'"
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y time >&2
fi

tvault_bin
TVAULT_VERSION=$("$TVAULT" --version 2>/dev/null | head -n 1 || true)

ADMIN_URL=$(bash scripts/pg-local.sh start)
PATH=$(bash scripts/pg-local.sh bindir):$PATH
DB_URL=${ADMIN_URL%/*}/$DB

# ---------------------------------------------------------------------------------------------------------
heading "Dataset (database $DB)"
sql_digest=$(md5sum <bench/restore.sql | cut -c1-12)
PARAMS="tvault-bench-restore v1 scale=$SCALE tenants=$SMALL_TENANTS sql=$sql_digest"
IN_USE="$PARAMS (in use: reloaded unless the run that set this finishes)"
current=$(db_comment)
LOAD_INFO="reused an existing load"
if [[ $REBUILD -eq 1 || $current != "$PARAMS" ]]; then
    if [[ -n $current ]]; then
        log "rebuilding (found: '${current}', want: '$PARAMS')"
    fi
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    log "loading bench/restore.sql ($PARAMS); takes a few seconds at the default size"
    load_start=$(date +%s.%N)
    psql_db -v scale="$SCALE" -v tenants="$SMALL_TENANTS" -f bench/restore.sql >&2
    LOAD_SECONDS=$(awk -v a="$load_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    LOAD_INFO="loaded in $LOAD_SECONDS s"
    # Only a complete load gets the comment, so an interrupted one is rebuilt next time.
    set_comment "$PARAMS"
    log "loaded in $LOAD_SECONDS s"
else
    # A run churns the tables (every restore deletes and inserts rows): start each from compact tables.
    log "reusing the existing dataset ($PARAMS); --rebuild to regenerate; compacting it (VACUUM FULL)"
    psql_db -c 'VACUUM FULL ANALYZE app.accounts, app.orders, app.order_items, app.events'
    LOAD_INFO="reused an existing load, compacted with VACUUM FULL"
fi

DB_BYTES=$(psql_db -At -c 'SELECT pg_database_size(current_database())')
DATASET=$(psql_db -At -F ' ' -v tenant="$TENANT" <<'SQL'
SELECT (SELECT count(*) FROM app.accounts WHERE tenant_id = :'tenant'),
       (SELECT count(*) FROM app.orders o JOIN app.accounts a ON a.id = o.account_id
         WHERE a.tenant_id = :'tenant'),
       (SELECT count(*) FROM app.order_items i JOIN app.orders o ON o.id = i.order_id
         JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = :'tenant'),
       (SELECT count(*) FROM app.events WHERE tenant_id = :'tenant'),
       (SELECT count(*) FROM app.accounts) + (SELECT count(*) FROM app.orders)
         + (SELECT count(*) FROM app.order_items) + (SELECT count(*) FROM app.events),
       (SELECT count(*) FROM (SELECT tenant_id FROM app.accounts UNION SELECT tenant_id FROM app.events) t);
SQL
)
read -r BIG_ACCOUNTS BIG_ORDERS BIG_ITEMS BIG_EVENTS N_ROWS N_TENANTS <<<"$DATASET"
BIG_ROWS=$((BIG_ACCOUNTS + BIG_ORDERS + BIG_ITEMS + BIG_EVENTS))
log "$N_TENANTS tenants, $N_ROWS rows, pg_database_size $DB_BYTES bytes ($((DB_BYTES / 1048576)) MiB)"
log "tenant $TENANT: $BIG_ROWS rows ($BIG_ACCOUNTS accounts, $BIG_ORDERS orders, $BIG_ITEMS order_items," \
    "$BIG_EVENTS events)"
[[ $BIG_ROWS -gt 0 ]] || die "tenant $TENANT has no rows in $DB: --rebuild"
if [[ $BIG_ROWS -lt 450000 ]]; then
    log "warning: tenant $TENANT has fewer than 450,000 rows (--scale $SCALE): below the issue's size"
fi

# ---------------------------------------------------------------------------------------------------------
# The SQL of the benchmark, written to $WORK so a run can be inspected or repeated by hand. Every file takes
# the psql variable `tenant`.
rm -rf "$WORK"
mkdir -p "$WORK"

# Per table: count and md5 of the ordered row texts, of the tenant's rows and of everyone else's.
cat >"$WORK/fingerprint.sql" <<'SQL'
SET TimeZone = 'UTC';
SELECT 'app.accounts', CASE WHEN a.tenant_id = :'tenant' THEN 'tenant' ELSE 'others' END, count(*),
       md5(string_agg(a::text, E'\n' ORDER BY a::text COLLATE "C"))
FROM app.accounts a GROUP BY 2
UNION ALL
SELECT 'app.orders', CASE WHEN a.tenant_id = :'tenant' THEN 'tenant' ELSE 'others' END, count(*),
       md5(string_agg(o::text, E'\n' ORDER BY o::text COLLATE "C"))
FROM app.orders o JOIN app.accounts a ON a.id = o.account_id GROUP BY 2
UNION ALL
SELECT 'app.order_items', CASE WHEN a.tenant_id = :'tenant' THEN 'tenant' ELSE 'others' END, count(*),
       md5(string_agg(i::text, E'\n' ORDER BY i::text COLLATE "C"))
FROM app.order_items i JOIN app.orders o ON o.id = i.order_id JOIN app.accounts a ON a.id = o.account_id
GROUP BY 2
UNION ALL
SELECT 'app.events', CASE WHEN e.tenant_id = :'tenant' THEN 'tenant' ELSE 'others' END, count(*),
       md5(string_agg(e::text, E'\n' ORDER BY e::text COLLATE "C"))
FROM app.events e GROUP BY 2
UNION ALL
SELECT 'total', 'all', (SELECT count(*) FROM app.accounts) + (SELECT count(*) FROM app.orders)
                       + (SELECT count(*) FROM app.order_items) + (SELECT count(*) FROM app.events), ''
ORDER BY 1, 2;
SQL

# (a) The floor: what a careful user writes by hand to put the tenant's rows back, minus reading them from
# anywhere (they are copied aside in the same transaction).
cat >"$WORK/floor.sql" <<'SQL'
BEGIN;
CREATE TEMP TABLE floor_accounts ON COMMIT DROP AS
    SELECT a.* FROM app.accounts a WHERE a.tenant_id = :'tenant';
CREATE TEMP TABLE floor_orders ON COMMIT DROP AS
    SELECT o.* FROM app.orders o JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = :'tenant';
CREATE TEMP TABLE floor_order_items ON COMMIT DROP AS
    SELECT i.* FROM app.order_items i JOIN app.orders o ON o.id = i.order_id
    JOIN app.accounts a ON a.id = o.account_id WHERE a.tenant_id = :'tenant';
CREATE TEMP TABLE floor_events ON COMMIT DROP AS
    SELECT e.* FROM app.events e WHERE e.tenant_id = :'tenant';
SET LOCAL session_replication_role = replica;
DELETE FROM app.order_items i USING app.orders o, app.accounts a
    WHERE o.id = i.order_id AND a.id = o.account_id AND a.tenant_id = :'tenant';
DELETE FROM app.orders o USING app.accounts a WHERE a.id = o.account_id AND a.tenant_id = :'tenant';
DELETE FROM app.accounts WHERE tenant_id = :'tenant';
DELETE FROM app.events WHERE tenant_id = :'tenant';
INSERT INTO app.accounts SELECT * FROM floor_accounts;
INSERT INTO app.orders SELECT * FROM floor_orders;
INSERT INTO app.order_items SELECT * FROM floor_order_items;
INSERT INTO app.events SELECT * FROM floor_events;
COMMIT;
SQL

# (c), (e) 1% of the tenant's rows: deletes first (every 400th account with its orders and their items, every
# 400th event), then updates (every 200th row of each table), then inserts (1/400 of each table, ids from
# 900,000,000,001, new orders under new and existing accounts, new items under new and existing orders).
# Deterministic: the same rows every time, and a restore removes the inserted ids again. FK-consistent by
# construction, since session_replication_role = replica switches the FK triggers off.
cat >"$WORK/damage-1pct.sql" <<'SQL'
BEGIN;
SET LOCAL session_replication_role = replica;
CREATE TEMP TABLE d_acc ON COMMIT DROP AS
    SELECT id FROM app.accounts WHERE tenant_id = :'tenant';
CREATE TEMP TABLE d_ord ON COMMIT DROP AS
    SELECT o.id, o.account_id FROM app.orders o JOIN d_acc a ON a.id = o.account_id;
CREATE TEMP TABLE d_cnt ON COMMIT DROP AS
    SELECT (SELECT count(*) FROM d_acc) AS acc, (SELECT count(*) FROM d_ord) AS ord,
           (SELECT count(*) FROM app.order_items i JOIN d_ord o ON o.id = i.order_id) AS items,
           (SELECT count(*) FROM app.events WHERE tenant_id = :'tenant') AS ev;
CREATE TEMP TABLE d_acc_keep ON COMMIT DROP AS
    SELECT id, row_number() OVER (ORDER BY id) AS rn FROM d_acc WHERE id % 400 <> 7;
CREATE TEMP TABLE d_ord_keep ON COMMIT DROP AS
    SELECT id, row_number() OVER (ORDER BY id) AS rn FROM d_ord WHERE account_id % 400 <> 7;

DELETE FROM app.order_items i USING d_ord o WHERE o.id = i.order_id AND o.account_id % 400 = 7;
DELETE FROM app.orders o USING d_ord d WHERE d.id = o.id AND d.account_id % 400 = 7;
DELETE FROM app.accounts WHERE tenant_id = :'tenant' AND id % 400 = 7;
DELETE FROM app.events WHERE tenant_id = :'tenant' AND (payload->>'n')::bigint % 400 = 7;

UPDATE app.accounts SET name = name || ' (renamed)' WHERE tenant_id = :'tenant' AND id % 200 = 3;
UPDATE app.orders o SET total = o.total + 1, note = coalesce(o.note, '') || ' (amended)'
    FROM d_ord d WHERE d.id = o.id AND o.id % 200 = 3;
UPDATE app.order_items i SET qty = i.qty + 1 FROM d_ord d WHERE d.id = i.order_id AND i.id % 200 = 3;
UPDATE app.events SET payload = payload || '{"amended": true}'
    WHERE tenant_id = :'tenant' AND (payload->>'n')::bigint % 200 = 3;

INSERT INTO app.accounts
SELECT :'tenant', 900000000000 + g, 'new account ' || g,
       timestamptz '2025-06-01 00:00:00+00' + g * interval '1 minute'
FROM d_cnt c, generate_series(1, greatest(1, c.acc / 400)) g;
INSERT INTO app.orders
SELECT 900000000000 + g,
       CASE WHEN g % 2 = 1 OR k.id IS NULL THEN 900000000000 + 1 + (g / 2) % greatest(1, c.acc / 400)
            ELSE k.id END,
       timestamptz '2025-06-01 00:00:00+00' + g * interval '1 minute', g * 1.25, 'new order ' || g
FROM d_cnt c CROSS JOIN generate_series(1, greatest(1, c.ord / 400)) g
LEFT JOIN d_acc_keep k ON k.rn = 1 + (g * 7919) % greatest(1, (SELECT count(*) FROM d_acc_keep));
INSERT INTO app.order_items
SELECT 900000000000 + g,
       CASE WHEN g % 2 = 1 OR k.id IS NULL THEN 900000000000 + 1 + (g / 2) % greatest(1, c.ord / 400)
            ELSE k.id END,
       'SKU-NEW-' || g, 1 + g % 5, g * 0.5
FROM d_cnt c CROSS JOIN generate_series(1, greatest(1, c.items / 400)) g
LEFT JOIN d_ord_keep k ON k.rn = 1 + (g * 7919) % greatest(1, (SELECT count(*) FROM d_ord_keep));
INSERT INTO app.events
SELECT :'tenant', timestamptz '2025-06-01 00:00:00+00' + g * interval '1 second', 'new',
       jsonb_build_object('n', 900000000000 + g, 'new', true)
FROM d_cnt c, generate_series(1, greatest(1, c.ev / 400)) g;
COMMIT;
SQL

# (d) every row of the tenant gone.
cat >"$WORK/damage-all.sql" <<'SQL'
BEGIN;
SET LOCAL session_replication_role = replica;
DELETE FROM app.order_items i USING app.orders o, app.accounts a
    WHERE o.id = i.order_id AND a.id = o.account_id AND a.tenant_id = :'tenant';
DELETE FROM app.orders o USING app.accounts a WHERE a.id = o.account_id AND a.tenant_id = :'tenant';
DELETE FROM app.accounts WHERE tenant_id = :'tenant';
DELETE FROM app.events WHERE tenant_id = :'tenant';
COMMIT;
SQL

fingerprint() { psql_db -At -F ' ' -v tenant="$TENANT" -f "$WORK/fingerprint.sql"; }

# check WHAT: the live rows must equal the fingerprint taken right after the backup.
check() {
    fingerprint >"$WORK/fingerprint.now"
    if ! diff -u "$WORK/fingerprint.expected" "$WORK/fingerprint.now" >"$WORK/fingerprint.diff"; then
        printf 'FAIL: after %s the rows differ from the backup (table, whose, count, md5):\n' "$1"
        cat "$WORK/fingerprint.diff"
        die "FAIL after $1 (logs in $WORK; database $DB is left as it is and reloaded next run)"
    fi
}

# damage FILE: applies a damage script; DAMAGED says how many rows it deleted, updated and inserted.
DAMAGED=
damage() {
    local out
    out=$(psql -X -v ON_ERROR_STOP=1 -d "$DB_URL" -v tenant="$TENANT" -f "$1") || die "damage $1 failed"
    DAMAGED=$(awk '$1 == "DELETE" { d += $2 } $1 == "UPDATE" { u += $2 } $1 == "INSERT" { i += $3 }
        END { printf "%d deleted, %d updated, %d inserted", d, u, i }' <<<"$out")
}

# settle: vacuum and checkpoint, so each measurement starts from the same table state (not timed).
settle() {
    psql_db -c 'VACUUM ANALYZE app.accounts, app.orders, app.order_items, app.events' -c 'CHECKPOINT'
}

# ---------------------------------------------------------------------------------------------------------
# Wall seconds and max RSS of each method's runs, filled by `timed` (bench/lib.sh).
declare -A WALL RSS

# floor NAME RUN: one timed run of the floor transaction, then the check.
floor() {
    OUT=$RUN_DIR/$1
    mkdir -p "$OUT"
    settle
    timed "$1" "$2" -- psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" -v tenant="$TENANT" -f "$WORK/floor.sql"
    check "$1 run $2"
}

# restore NAME RUN: one timed tvault restore of the tenant, in place, then its JSON verdict and the check.
restore() {
    OUT=$RUN_DIR/$1
    mkdir -p "$OUT"
    timed "$1" "$2" -- "$TVAULT" --vault "$VAULT" -q restore "$TENANT" --snapshot latest --identity "$KEY" --json
    grep -Eq '"ok"[[:space:]]*:[[:space:]]*true' "$OUT/stdout" \
        || { printf 'FAIL: %s run %s: restore did not report "ok": true\n' "$1" "$2"; cat "$OUT/stdout"
             die "FAIL: $1 run $2 (logs in $OUT)"; }
    check "$1 run $2"
}

# ---------------------------------------------------------------------------------------------------------
heading "tvault: fresh vault, one key, $N_TENANTS tenants, one backup (not timed)"
VAULT=$WORK/vault
KEY=$WORK/bench-key.txt
keyout=$("$TVAULT" keygen -o "$KEY" --json)
RECIPIENT=$(grep -o 'age1[0-9a-z]*' <<<"$keyout" | head -n 1 || true)
[[ -n $RECIPIENT ]] || RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$KEY" | head -n 1 || true)
[[ -n $RECIPIENT ]] || die "could not read the bench key's recipient from: $keyout"
"$TVAULT" --vault "$VAULT" -q init --source "$DB_URL" >&2
psql_db -At -v recipient="$RECIPIENT" >"$WORK/tenants.tsv" <<'SQL'
SELECT tenant_id || E'\t' || :'recipient'
FROM (SELECT tenant_id FROM app.accounts UNION SELECT tenant_id FROM app.events) t ORDER BY 1;
SQL
"$TVAULT" --vault "$VAULT" -q tenant import "$WORK/tenants.tsv" >/dev/null
log "registered $(wc -l <"$WORK/tenants.tsv") tenants"

# From here on the data is damaged and restored: a run that does not finish leaves the comment saying so.
set_comment "$IN_USE"
backup_start=$(date +%s.%N)
"$TVAULT" --vault "$VAULT" -q backup --all --json >"$WORK/backup.json" \
    || die "tvault backup --all failed (output in $WORK/backup.json)"
log "backup --all in $(awk -v a="$backup_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
fingerprint >"$WORK/fingerprint.expected"
grep -q '^app.order_items tenant ' "$WORK/fingerprint.expected" || die "no rows of $TENANT after the backup"

heading "Warm-up: one untimed floor transaction and its check"
RUN_DIR=$WORK/warm-up
floor warm_up 1

# ---------------------------------------------------------------------------------------------------------
DAMAGE_1PCT=
DAMAGE_ALL=
for ((run = 1; run <= RUNS; run++)); do
    heading "Run $run of $RUNS"
    RUN_DIR=$WORK/run-$run

    floor floor "$run"

    settle
    restore none "$run"

    settle
    damage "$WORK/damage-1pct.sql"
    DAMAGE_1PCT=$DAMAGED
    log "1% damage: $DAMAGED"
    restore one_pct "$run"

    settle
    damage "$WORK/damage-all.sql"
    DAMAGE_ALL=$DAMAGED
    log "full damage: $DAMAGED"
    restore full "$run"
done

heading "$SERIES restores in a row, each after the same 1% damage"
RUN_DIR=$WORK/series
settle
for ((i = 1; i <= SERIES; i++)); do
    damage "$WORK/damage-1pct.sql"
    RUN_DIR=$WORK/series/$i
    restore series "$i"
done

# Every check passed and the data is back to the load: the next run may reuse it.
set_comment "$PARAMS"

# ---------------------------------------------------------------------------------------------------------
heading "Results"
label() {
    case $1 in
        floor) echo 'floor: plain SQL, one transaction (copy aside, delete, re-insert; FK triggers off)' ;;
        none) echo 'tvault restore, nothing differs' ;;
        one_pct) echo 'tvault restore, 1% of the rows differ' ;;
        full) echo 'tvault restore, all rows deleted (full reload)' ;;
    esac
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# within A B: "yes" when A <= B (both numbers), else "NO".
within() { awk -v a="$1" -v b="$2" 'BEGIN {
    if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/) print (a + 0 <= b + 0 ? "yes" : "NO"); else print "n/a" }'; }

FLOOR=$(median "${WALL[floor]}")
read -r -a SERIES_WALL <<<"${WALL[series]}"
read -r -a SERIES_RSS <<<"${RSS[series]}"
SERIES_TREND=$(ratio "${SERIES_WALL[$((SERIES - 1))]}" "${SERIES_WALL[0]}")
SERIES_WORST=$(printf '%s\n' "${SERIES_WALL[@]:1}" | sort -g | tail -n 1)
SERIES_WORST_RATIO=$(ratio "$SERIES_WORST" "${SERIES_WALL[0]}")
R_NONE=$(ratio "$(median "${WALL[none]}")" "$FLOOR")
R_ONE=$(ratio "$(median "${WALL[one_pct]}")" "$FLOOR")
R_FULL=$(ratio "$(median "${WALL[full]}")" "$FLOOR")

DATE=$(date -u +%Y-%m-%d)
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
PG_VERSION=$(psql_db -At -c 'SHOW server_version')
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'no commit')
if [[ -n $(git -C "$REPO" status --porcelain 2>/dev/null | head -n 1) ]]; then COMMIT+=' (dirty tree)'; fi

REPORT=$(
    printf '## Restore in place of one tenant (%s rows), %s MiB pooled database, unindexed FKs (%s)\n\n' \
        "$BIG_ROWS" "$((DB_BYTES / 1048576))" "$NOW"
    printf -- '- machine: %s cores (nproc), %s, %s GiB RAM; PostgreSQL %s on 127.0.0.1 (local cluster, fsync=off)\n' \
        "$(nproc)" "$CPU" "$MEM_GIB" "$PG_VERSION"
    printf -- '- tvault: %s; commit %s\n' "${TVAULT_VERSION:-unknown}" "$COMMIT"
    # shellcheck disable=SC2016 # the backticks are Markdown
    printf -- '- dataset: `%s`; tenant `%s`: %s accounts, %s orders, %s order_items, %s events; %s tenants, %s rows in all; pg_database_size %s bytes; %s\n' \
        "$PARAMS" "$TENANT" "$BIG_ACCOUNTS" "$BIG_ORDERS" "$BIG_ITEMS" "$BIG_EVENTS" "$N_TENANTS" "$N_ROWS" \
        "$DB_BYTES" "$LOAD_INFO"
    printf -- '- damage (psql, replica role, not timed): 1%% = %s rows; full = %s rows\n' "$DAMAGE_1PCT" "$DAMAGE_ALL"
    printf -- '- runs: %s (medians shown), warm cache, vacuum + checkpoint before each; RSS is the client process only (not the server); every result checked row for row (count + md5 per table, the tenant and everyone else)\n\n' "$RUNS"
    printf '| method | wall s | × floor | max RSS MiB |\n'
    printf '|---|---:|---:|---:|\n'
    for m in floor none one_pct full; do
        w=$(median "${WALL[$m]}")
        r=$(median "${RSS[$m]}")
        printf '| %s | %.2f | %s | %.0f |\n' "$(label "$m")" "$w" "$(ratio "$w" "$FLOOR")" \
            "$(awk -v r="$r" 'BEGIN { print r / 1024 }')"
    done
    printf '\n%s restores in a row, each after the same 1%% damage (no vacuum in between):\n\n' "$SERIES"
    printf '| round | wall s | × floor | max RSS MiB |\n'
    printf '|---:|---:|---:|---:|\n'
    for ((i = 0; i < SERIES; i++)); do
        printf '| %s | %.2f | %s | %.0f |\n' "$((i + 1))" "${SERIES_WALL[$i]}" \
            "$(ratio "${SERIES_WALL[$i]}" "$FLOOR")" "$(awk -v r="${SERIES_RSS[$i]}" 'BEGIN { print r / 1024 }')"
    done
    printf '\n| requirement | measured | limit | met |\n'
    printf '|---|---:|---:|:---:|\n'
    printf '| full reload ≤ 2 × floor | %s | 2.00 | %s |\n' "$R_FULL" "$(within "$R_FULL" 2)"
    printf '| nothing differs ≤ 2 × floor | %s | 2.00 | %s |\n' "$R_NONE" "$(within "$R_NONE" 2)"
    printf '| 1%% differ ≤ 0.5 × floor | %s | 0.50 | %s |\n' "$R_ONE" "$(within "$R_ONE" 0.5)"
    printf '| %s in a row: round %s / round 1 | %s | 1.20 | %s |\n' "$SERIES" "$SERIES" "$SERIES_TREND" \
        "$(within "$SERIES_TREND" 1.2)"
    printf '| %s in a row: slowest of rounds 2-%s / round 1 | %s | 1.20 | %s |\n' "$SERIES" "$SERIES" \
        "$SERIES_WORST_RATIO" "$(within "$SERIES_WORST_RATIO" 1.2)"
    printf '\nfloor: one psql transaction that copies the rows aside, deletes and re-inserts them with\n'
    printf 'session_replication_role = replica (no FK checks); 1.20 on the rounds is a noise allowance.\n'
)
printf '%s\n' "$REPORT"
mkdir -p "$REPO/bench/results"
printf '%s\n\n' "$REPORT" >>"$REPO/bench/results/$DATE.md"
log "appended to bench/results/$DATE.md"

# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced, not run). Each script sets `set -euo pipefail`,
# REPO, and keeps its usage text in its header comment (lines 2 to `set -euo`).

log() { printf 'bench: %s\n' "$*" >&2; }
heading() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit "${1:-0}"; }

# timed NAME RUN -- CMD...: runs CMD under /usr/bin/time -v, its stdout to $OUT/stdout, stderr to $OUT/stderr;
# appends wall seconds and max RSS (KiB) to WALL[NAME] and RSS[NAME] (associative arrays the caller declares).
# A failure stops the script, or, with MAY_FAIL=1 in the environment, returns 1.
timed() {
    local name=$1 run=$2
    shift 3
    # Write back what earlier steps left dirty (copies and deletions of whole vaults), so that no
    # method pays for another's file system work.
    sync
    local metrics=$OUT/time.txt
    if ! /usr/bin/time -v -o "$metrics" "$@" >"$OUT/stdout" 2>"$OUT/stderr"; then
        tail -n 30 "$OUT/stderr" >&2
        # MAY_FAIL=1: the caller reports the failure (a method that cannot cope is a result).
        [[ ${MAY_FAIL:-0} == 1 ]] && return 1
        die "$name failed in run $run (logs in $OUT)"
    fi
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$metrics")
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$metrics")
    # shellcheck disable=SC2004 # WALL and RSS are associative arrays: $name is a key, not arithmetic
    WALL[$name]+="$wall "
    # shellcheck disable=SC2004
    RSS[$name]+="$rss "
    log "$name run $run: ${wall} s, max RSS $((rss / 1024)) MiB"
}

# Benchmarks delete whole vaults: tens of thousands of files. ext4 without a journal (this machine's
# root file system) does not reuse an inode freed in the last 60 s, or 300 s while its inode table
# block is dirty (as new files beside it make it), and it checks every such inode each time it
# allocates one: creating files after deleting as many costs seconds of kernel time (perf: ext4
# `recently_deleted`). So that no timed method pays for the harness's own deletions, scripts move
# what they discard aside (a rename frees no inode), delete it when they end or next start, and
# wait before their first timed run until 301 s have passed since a deletion. TRASH is shared by
# every script of one bench directory.
TRASH=${TVAULT_BENCH_DIR:-$REPO/target/bench}/trash
TRASH_DELETED=${TVAULT_BENCH_DIR:-$REPO/target/bench}/trash-deleted-at
# discard PATH...: moves each existing PATH into $TRASH.
discard() {
    local p
    mkdir -p "$TRASH"
    for p in "$@"; do
        [[ -e $p ]] && mv "$p" "$TRASH/$(date +%s%N)-$RANDOM"
    done
    return 0
}
# empty_trash: deletes what was discarded, and notes when.
empty_trash() {
    [[ -d $TRASH && -n $(ls -A "$TRASH") ]] || return 0
    log "deleting discarded runs' files ($TRASH)"
    rm -rf "$TRASH"
    sync
    date +%s >"$TRASH_DELETED"
}
# settle: waits until the file system reuses the inodes of the last deletion (see above).
settle() {
    local last wait
    last=$(cat "$TRASH_DELETED" 2>/dev/null || echo 0)
    wait=$((last + 301 - $(date +%s)))
    if ((wait > 0)); then
        log "waiting $wait s, until ext4 reuses the inodes of the files deleted before this run"
        sleep "$wait"
    fi
}

# file_bytes DIR...: the sum of the sizes of the regular files under DIR (not `du`, which counts
# directory entries: a vault of 20,000 tenants has 80,000 directories).
file_bytes() { find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{ s += $1 } END { printf "%d", s }'; }
# file_count DIR...: the number of regular files under DIR.
file_count() { find "$@" -type f 2>/dev/null | wc -l | tr -d ' '; }

# median "v1 v2 ...": the median of space-separated numbers ("nan" when there are none).
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# psql as the cluster's superuser ($ADMIN_URL) or on the benchmark's database ($DB_URL).
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_URL" "$@"; }
psql_db() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB_URL" "$@"; }

# The parameters a complete load of database $DB was made with (its comment; empty when none).
db_comment() {
    psql_admin -At -v db="$DB" <<'SQL'
SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = :'db';
SQL
}

# set_comment PARAMS: marks database $DB as a complete load made with PARAMS.
set_comment() {
    psql_admin -v db="$DB" -v params="$1" <<'SQL'
COMMENT ON DATABASE :"db" IS :'params';
SQL
}

# tvault_bin: sets TVAULT to $TVAULT_BIN, or to the release build (made with cargo when missing).
tvault_bin() {
    TVAULT=${TVAULT_BIN:-$REPO/target/release/tvault}
    if [[ ! -x $TVAULT ]]; then
        [[ -z ${TVAULT_BIN:-} ]] || die "TVAULT_BIN=$TVAULT is not executable"
        log "building $TVAULT (cargo build --release -p vault-cli)"
        cargo build --release -p vault-cli >&2
        [[ -x $TVAULT ]] || die "cargo build did not produce $TVAULT"
    fi
}

# two_cycles RUN: times `backup --all` into the vault $WORK/vault (as "tvault"), then again with
# nothing changed (as "unchanged"); stops when a tenant failed. Sets FIRST_BYTES (the vault after
# the first cycle), FIRST_STORE, FIRST_OBJECTS (its store) and GROWTH (percent the second added).
two_cycles() {
    local run=$1
    timed tvault "$run" -- "$TVAULT" --vault "$WORK/vault" -q backup --all --json
    cp "$WORK/stdout" "$WORK/backup.json"
    grep -q '"failed_tenants": \[\]' "$WORK/backup.json" || die "run $run: some tenants failed (see $WORK/backup.json)"
    FIRST_BYTES=$(file_bytes "$WORK/vault")
    # shellcheck disable=SC2034 # for the caller's report
    FIRST_STORE=$(file_bytes "$WORK/vault/store")
    # shellcheck disable=SC2034
    FIRST_OBJECTS=$(file_count "$WORK/vault/store")
    timed unchanged "$run" -- "$TVAULT" --vault "$WORK/vault" -q backup --all --json
    GROWTH=$(awk -v a="$(file_bytes "$WORK/vault")" -v b="$FIRST_BYTES" 'BEGIN { printf "%.2f", (a - b) * 100 / b }')
    log "unchanged second cycle: vault grew by $GROWTH%"
}

# write_report TEXT: prints a benchmark's Markdown report and appends it to bench/results/<date>.md.
write_report() {
    local date
    date=$(date -u +%Y-%m-%d)
    printf '%s\n' "$1"
    mkdir -p "$REPO/bench/results"
    printf '%s\n\n' "$1" >>"$REPO/bench/results/$date.md"
    log "appended to bench/results/$date.md"
}

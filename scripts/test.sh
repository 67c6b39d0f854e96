#!/usr/bin/env bash
# Runs the whole test suite (README command #2) against a throwaway local PostgreSQL and a local
# S3-compatible server (moto, on loopback).
#
#   scripts/test.sh [extra cargo test args...]     e.g. scripts/test.sh -- --nocapture
#
# Installs PostgreSQL, age, zstd, chromium and chromium-driver (Debian packages) when they are missing; the Rust toolchain is assumed present.
# Environment:
#   TVAULT_TEST_PG   set by this script to the cluster's URL (postgres://tvault@127.0.0.1:54329/postgres);
#                    tests create their own databases there
#   TVAULT_TEST_S3   set by this script to the S3 server's endpoint (http://127.0.0.1:54330); tests create
#                    their own buckets there
#   TVAULT_LINT=1    also run `cargo clippy --all-targets -- -D warnings` and `cargo fmt --check` (CI sets it)
#   TVAULT_STOP_PG=1 stop the clusters afterwards (by default they are left running for the next run)
#   TVAULT_TEST_PG_SECURE_PORT  port of the second, TLS-only cluster the connection tests start (54331)
#   TVAULT_STOP_S3=1 stop the S3 server afterwards
#   TVAULT_PGPORT, TVAULT_PGDATA   passed on to scripts/pg-local.sh; TVAULT_S3PORT to scripts/s3-local.sh
# Exit status: cargo's (the first failing step's).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

heading() { printf '\n==> %s\n' "$*" >&2; }

command -v cargo >/dev/null || { echo "test.sh: cargo not found: install the Rust toolchain" >&2; exit 1; }

heading "PostgreSQL (scripts/pg-local.sh start)"
TVAULT_TEST_PG=$(bash scripts/pg-local.sh start)
export TVAULT_TEST_PG
# Tests may shell out to psql/pg_dump: use the server's own major version.
PATH=$(bash scripts/pg-local.sh bindir):$PATH
export PATH
echo "TVAULT_TEST_PG=$TVAULT_TEST_PG" >&2

# The export tests open exports with stock tools, as docs/EXPORT.md tells tenants to.
missing=()
for tool in age zstd tar; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    heading "Installing ${missing[*]} (Debian packages, apt-get)"
    [[ $(id -u) == 0 ]] || { echo "test.sh: ${missing[*]} missing and not root: apt-get install ${missing[*]}" >&2; exit 1; }
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

# The console's tests drive Debian's Chromium through chromedriver (tests/src/browser.rs).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    heading "Installing chromium and chromium-driver (Debian packages, apt-get)"
    [[ $(id -u) == 0 ]] || { echo "test.sh: chromium missing and not root: apt-get install chromium chromium-driver" >&2; exit 1; }
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >&2
fi

heading "S3 server (scripts/s3-local.sh start)"
TVAULT_TEST_S3=$(bash scripts/s3-local.sh start)
export TVAULT_TEST_S3
echo "TVAULT_TEST_S3=$TVAULT_TEST_S3" >&2

stop_services() {
    if [[ ${TVAULT_STOP_PG:-0} == 1 ]]; then
        bash scripts/pg-local.sh stop || true
        # The TLS-only cluster the connection tests start (tests/src/pg.rs, secure_cluster).
        TVAULT_PGDATA=$REPO/target/pg-secure TVAULT_PGPORT=${TVAULT_TEST_PG_SECURE_PORT:-54331} \
            bash scripts/pg-local.sh stop || true
    fi
    if [[ ${TVAULT_STOP_S3:-0} == 1 ]]; then
        bash scripts/s3-local.sh stop || true
    fi
}
trap stop_services EXIT

status=0
heading "cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@" || status=$?

if [[ ${TVAULT_LINT:-0} == 1 ]]; then
    heading "cargo clippy --all-targets -- -D warnings"
    cargo clippy --workspace --all-targets -- -D warnings || { rc=$?; [[ $status -ne 0 ]] || status=$rc; }
    heading "cargo fmt --check"
    cargo fmt --all --check || { rc=$?; [[ $status -ne 0 ]] || status=$rc; }
fi

if [[ $status -eq 0 ]]; then
    heading "all passed"
else
    heading "FAILED (exit $status)"
    # A full disk shows up as odd linker or I/O errors; say how much room there was.
    df -h "$REPO" "${TMPDIR:-/tmp}" >&2 || true
fi
exit "$status"

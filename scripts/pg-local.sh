#!/usr/bin/env bash
# A throwaway local PostgreSQL cluster for tests, the demo and the benchmark.
#
#   scripts/pg-local.sh start    # init (first time) + start; prints the URL, and only that, on stdout
#   scripts/pg-local.sh stop     # fast shutdown (no-op when not running)
#   scripts/pg-local.sh url      # prints the URL
#   scripts/pg-local.sh status   # exit 0 when running
#   scripts/pg-local.sh bindir   # prints the PostgreSQL bin directory in use (installs PostgreSQL if missing)
#
# Environment:
#   TVAULT_PGDATA  data directory (default: <repo>/target/pg-local)
#   TVAULT_PGPORT  TCP port on 127.0.0.1 (default: 54329)
#   TVAULT_PG_TLS_DIR  when set, a "secure" cluster for the connection tests: TLS on, with a CA, a server
#                  certificate for `localhost` only and a client certificate made in that directory
#                  (root.crt, server.crt, client.crt/.key, and other-root.crt, a CA that signed nothing);
#                  role `tvault` must log in over TLS with password TVAULT_PG_PASSWORD (scram-sha-256), role
#                  `tvault_cert` with the client certificate; connections without TLS are refused except
#                  for the bootstrap role `postgres` (trust), which the tests use to create databases.
#
# THIS IS A TEST CLUSTER ONLY: it uses `trust` authentication for local and 127.0.0.1 connections (anyone on
# this machine can connect as any role, superuser included) and runs with fsync=off, so a crash can corrupt it.
# Never point it at data you care about.
#
# PostgreSQL refuses to run as root, so when we are root the server runs as the `postgres` OS user.
# Everything except the URL goes to stderr so callers can do `url=$(scripts/pg-local.sh start)`.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${TVAULT_PGPORT:-54329}
REQUESTED_PGDATA=${TVAULT_PGDATA:-$REPO/target/pg-local}
SUPERUSER_ROLE=tvault
BOOTSTRAP_ROLE=postgres

log() { printf 'pg-local: %s\n' "$*" >&2; }
die() { printf 'pg-local: error: %s\n' "$*" >&2; exit 1; }

TLS_DIR=${TVAULT_PG_TLS_DIR:-}

url() {
    if [[ -n $TLS_DIR ]]; then
        printf 'postgres://%s@127.0.0.1:%s/postgres\n' "$BOOTSTRAP_ROLE" "$PORT"
    else
        printf 'postgres://%s@127.0.0.1:%s/postgres\n' "$SUPERUSER_ROLE" "$PORT"
    fi
}

# A test CA, a server certificate for the name localhost (not for 127.0.0.1, so that verify-full by
# address fails) and a client certificate for role tvault_cert; made once.
make_certs() {
    [[ -f $TLS_DIR/client.ext ]] && return 0
    mkdir -p "$TLS_DIR"
    log "making a test CA and certificates in $TLS_DIR"
    (
        cd "$TLS_DIR"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -days 3650 -subj /CN=tvault-test-ca -keyout ca.key -out root.crt
        openssl req -x509 "${ec[@]}" -days 3650 -subj /CN=tvault-other-ca -keyout other-ca.key -out other-root.crt
        openssl req "${ec[@]}" -subj /CN=localhost -keyout server.key -out server.csr
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
        openssl x509 -req -in server.csr -CA root.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.crt
        openssl req "${ec[@]}" -subj /CN=tvault_cert -keyout client.key -out client.csr
        printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -in client.csr -CA root.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile client.ext -out client.crt
        chmod 600 client.key
    ) >/dev/null 2>&1 || die "openssl could not make the test certificates in $TLS_DIR"
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a PostgreSQL server-side binary as the right OS user, from a directory that user can read
# (postgres complains when it cannot stat its working directory, e.g. /root). fd 9 is the start lock: the
# postmaster must not inherit it, or the lock would be held for the server's lifetime.
as_pg() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@" 9>&-)
    else
        (cd / && "$@" 9>&-)
    fi
}

# Finds the directory holding initdb/pg_ctl, newest major version first; installs PostgreSQL when absent.
find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -rn); do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return 0
    fi
    return 1
}

ensure_postgres_installed() {
    if BINDIR=$(find_bindir); then
        return 0
    fi
    is_root || die "PostgreSQL (initdb/pg_ctl) not found and not root: install the Debian package 'postgresql'"
    log "PostgreSQL not found: installing the Debian package 'postgresql' (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql postgresql-contrib >&2
    BINDIR=$(find_bindir) || die "PostgreSQL still not found after apt-get install"
}

ensure_pg_os_user() {
    is_root || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating OS user 'postgres'"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi
}

# Chooses the data directory. The server user must be able to traverse every parent of the data directory;
# when it cannot (e.g. a repo checked out under a 0700 directory), fall back to /tmp/tvault-pg-$PORT.
resolve_pgdata() {
    local want=$REQUESTED_PGDATA parent
    [[ $want == /* ]] || want=$PWD/$want
    parent=$(dirname "$want")
    if is_root; then
        mkdir -p "$parent"
        parent=$(cd "$parent" && pwd -P)
        if ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
            PGDATA=/tmp/tvault-pg-$PORT
            if [[ ${1:-} == verbose ]]; then
                log "the 'postgres' OS user cannot traverse $parent: using data directory $PGDATA instead"
            fi
            return 0
        fi
        PGDATA=$parent/$(basename "$want")
    else
        mkdir -p "$parent"
        PGDATA=$(cd "$parent" && pwd -P)/$(basename "$want")
    fi
}

pg_running() {
    [[ -f $PGDATA/PG_VERSION ]] || return 1
    as_pg "$BINDIR/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1
}

init_cluster() {
    if [[ -f $PGDATA/PG_VERSION ]]; then
        return 0
    fi
    log "initialising a new cluster in $PGDATA"
    mkdir -p "$PGDATA"
    if is_root; then
        chown -R postgres: "$PGDATA"
    fi
    chmod 700 "$PGDATA"
    # C collation + UTF8: deterministic sort order on every machine, and any tenant id can be stored.
    as_pg "$BINDIR/initdb" -D "$PGDATA" -U "$BOOTSTRAP_ROLE" --auth=trust --encoding=UTF8 --locale=C \
        --no-sync >"$PGDATA.initdb.log" 2>&1 || {
        cat "$PGDATA.initdb.log" >&2
        die "initdb failed"
    }
    rm -f "$PGDATA.initdb.log"
}

write_config() {
    local sockdir=$PGDATA
    # A unix socket path must fit in sun_path (~107 bytes); we connect over TCP anyway, so drop the socket
    # rather than fail on a deep checkout.
    if (( ${#sockdir} + 16 > 100 )); then
        log "data directory path too long for a unix socket: TCP only"
        sockdir=''
    fi
    local conf
    conf=$(cat <<EOF
# Written by scripts/pg-local.sh on every start. TEST CLUSTER ONLY: durability is switched off.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$sockdir'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
checkpoint_timeout = 30min
logging_collector = off
log_min_messages = warning
EOF
)
    if [[ -n $TLS_DIR ]]; then
        make_certs
        local f
        for f in server.crt server.key root.crt; do
            install -m 600 "$TLS_DIR/$f" "$PGDATA/$f"
            if is_root; then chown postgres: "$PGDATA/$f"; fi
        done
        conf+=$'\nssl = on\nssl_cert_file = \'server.crt\'\nssl_key_file = \'server.key\'\nssl_ca_file = \'root.crt\'\npassword_encryption = scram-sha-256'
    fi
    as_pg tee "$PGDATA/tvault-test.conf" >/dev/null <<<"$conf"
    if ! grep -q "^include_if_exists = 'tvault-test.conf'" "$PGDATA/postgresql.conf"; then
        as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null <<<"include_if_exists = 'tvault-test.conf'"
    fi
    if [[ -n $TLS_DIR ]]; then
        as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/pg-local.sh: the secure test cluster (TVAULT_PG_TLS_DIR). Loopback only.
local     all   all                         trust
host      all   postgres      127.0.0.1/32  trust
hostssl   all   tvault_cert   127.0.0.1/32  cert
hostssl   all   all           127.0.0.1/32  scram-sha-256
EOF
        return 0
    fi
    # trust: test cluster only (see the header). Nothing listens beyond 127.0.0.1.
    as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/pg-local.sh. TEST CLUSTER ONLY: trust authentication, loopback only.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
EOF
}

psql_admin() {
    "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$BOOTSTRAP_ROLE" -d postgres "$@"
}

ensure_role() {
    psql_admin -c "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$SUPERUSER_ROLE') THEN
            CREATE ROLE $SUPERUSER_ROLE LOGIN SUPERUSER;
        END IF;
    END \$\$;" >&2
    if [[ -n $TLS_DIR ]]; then
        local pw=${TVAULT_PG_PASSWORD:?TVAULT_PG_PASSWORD is needed with TVAULT_PG_TLS_DIR}
        psql_admin -v pw="$pw" >&2 <<'EOF'
ALTER ROLE tvault PASSWORD :'pw';
SELECT 'CREATE ROLE tvault_cert LOGIN SUPERUSER' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tvault_cert') \gexec
EOF
    fi
}

wait_ready() {
    local i
    for ((i = 0; i < 120; i++)); do
        if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

cmd_start() {
    ensure_postgres_installed
    ensure_pg_os_user
    resolve_pgdata verbose
    # Serialise concurrent starts (demo and tests may race for the same cluster).
    exec 9>"/tmp/tvault-pg-$PORT.lock"
    flock 9
    if pg_running; then
        log "already running ($PGDATA, port $PORT)"
        wait_ready || die "server in $PGDATA is running but not accepting connections on 127.0.0.1:$PORT"
        ensure_role
        url
        return 0
    fi
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1 || [[ $? -eq 1 ]]; then
        # Something else answers on the port: accept it only if it is usable the same way.
        if "$BINDIR/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$SUPERUSER_ROLE" -d postgres -c 'SELECT 1' \
            >/dev/null 2>&1; then
            log "a PostgreSQL server not started from $PGDATA already serves 127.0.0.1:$PORT; using it"
            url
            return 0
        fi
        die "port $PORT on 127.0.0.1 is in use by something else: set TVAULT_PGPORT"
    fi
    init_cluster
    write_config
    log "starting PostgreSQL ($("$BINDIR/postgres" --version)) on 127.0.0.1:$PORT, data in $PGDATA"
    if ! as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 120 start >&2; then
        tail -n 40 "$PGDATA/server.log" >&2 || true
        die "pg_ctl start failed (log: $PGDATA/server.log)"
    fi
    wait_ready || { tail -n 40 "$PGDATA/server.log" >&2 || true; die "server did not become ready"; }
    ensure_role
    url
}

cmd_stop() {
    BINDIR=$(find_bindir) || { log "PostgreSQL not installed: nothing to stop"; return 0; }
    resolve_pgdata
    if pg_running; then
        log "stopping the cluster in $PGDATA"
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA" -m fast -w -t 120 stop >&2
    else
        log "not running ($PGDATA)"
    fi
}

cmd_status() {
    BINDIR=$(find_bindir) || return 3
    resolve_pgdata
    if pg_running; then
        log "running ($PGDATA, port $PORT)"
        return 0
    fi
    log "not running ($PGDATA)"
    return 3
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) url ;;
    status) cmd_status ;;
    bindir) ensure_postgres_installed; printf '%s\n' "$BINDIR" ;;
    *)
        echo "usage: $0 {start|stop|url|status|bindir}" >&2
        exit 2
        ;;
esac

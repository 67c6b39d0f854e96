#!/usr/bin/env bash
# A throwaway local S3-compatible server for tests: moto in server mode (PyPI), on loopback.
#
#   scripts/s3-local.sh start    # install (first time) + start; prints the endpoint URL, and only that, on stdout
#   scripts/s3-local.sh stop     # stop it (no-op when not running)
#   scripts/s3-local.sh url      # prints the endpoint URL
#   scripts/s3-local.sh status   # exit 0 when it answers
#
# Environment:
#   TVAULT_S3PORT  TCP port on 127.0.0.1 (default: 54330)
#   TVAULT_S3DIR   venv, pid file and log (default: <repo>/target/s3-local)
#
# moto keeps everything in memory and accepts any credentials: a test server only. It implements
# versioning, object lock (retention dates, legal holds, governance and compliance) and multipart
# uploads. The version is pinned: moto 5.2 answers GetBucketVersioning with an XML root that the
# AWS SDKs other than Python's reject.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${TVAULT_S3PORT:-54330}
DIR=${TVAULT_S3DIR:-$REPO/target/s3-local}
MOTO_VERSION=5.1.22
VENV=$DIR/venv-$MOTO_VERSION
PIDFILE=$DIR/moto.pid
LOG=$DIR/moto.log

log() { printf 's3-local: %s\n' "$*" >&2; }
die() { printf 's3-local: error: %s\n' "$*" >&2; exit 1; }
url() { printf 'http://127.0.0.1:%s\n' "$PORT"; }

answers() { python3 - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/moto-api/" % sys.argv[1], timeout=2)
except Exception:
    sys.exit(1)
PY
}

install() {
    [[ -x $VENV/bin/moto_server ]] && return 0
    command -v python3 >/dev/null || {
        log "installing python3 (Debian packages)"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >&2
    }
    mkdir -p "$DIR"
    if ! python3 -m venv "$VENV" >&2 2>&1; then
        log "installing python3-venv (Debian packages)"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
        python3 -m venv "$VENV" >&2
    fi
    log "installing moto[server]==$MOTO_VERSION from PyPI"
    "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2 || die "pip install moto[server]==$MOTO_VERSION failed"
}

start() {
    if answers; then url; return 0; fi
    install
    mkdir -p "$DIR"
    log "starting moto_server on 127.0.0.1:$PORT (log: $LOG)"
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 100); do
        if answers; then url; return 0; fi
        kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { tail -20 "$LOG" >&2; die "moto_server exited"; }
        sleep 0.2
    done
    tail -20 "$LOG" >&2
    die "moto_server did not answer on port $PORT within 20 s"
}

stop() {
    if [[ -f $PIDFILE ]]; then
        kill "$(cat "$PIDFILE")" 2>/dev/null || true
        rm -f "$PIDFILE"
    fi
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    url) url ;;
    status) answers ;;
    *) die "usage: $0 start|stop|url|status" ;;
esac

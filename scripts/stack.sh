#!/usr/bin/env bash
# A throwaway pg_alpaca stack in one folder: a PostgreSQL cluster with the extension, the key
# file and the roles; the Alpaca stand-in over HTTPS with a CA made here; the sidecar.
#
#   scripts/stack.sh up DIR [--fixtures FIXTURES] [--real-alpaca]   start; writes DIR/stack.env
#   scripts/stack.sh down DIR                                        stop everything in DIR
#   scripts/stack.sh status DIR                                      what runs
#
# --real-alpaca: no stand-in; the sidecar talks to Alpaca's real paper/live endpoints.
# Assumes the project is built (scripts/test.sh or scripts/demo.sh build it first).
source "$(dirname "$0")/lib.sh"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
DIR=$2
shift 2
FIXTURES=$PGA_ROOT/test/standin/fixtures
REAL=0
while [ $# -gt 0 ]; do
    case $1 in
        --fixtures) FIXTURES=$(cd "$2" && pwd); shift 2 ;;
        --real-alpaca) REAL=1; shift ;;
        *) usage ;;
    esac
done

pidfile_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stack_up() {
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    [ ! -e "$DIR/stack.env" ] || die "$DIR already holds a stack (scripts/stack.sh down $DIR first)"
    local build=${PGA_BUILD_DIR:-$PGA_ROOT/build}
    [ -x "$build/alpaca-sidecar" ] || die "build first: $build/alpaca-sidecar is missing"
    mkdir -p "$DIR"/{bin,tls,keys,run,log,standin}
    chmod 755 "$DIR"
    cp "$build/alpaca-sidecar" "$build/alpaca-keygen" "$DIR/bin/"
    cp -r "$PGA_ROOT/test/standin/." "$DIR/standin/"
    if [ "$FIXTURES" != "$PGA_ROOT/test/standin/fixtures" ]; then
        rm -rf "$DIR/standin/fixtures"; cp -r "$FIXTURES" "$DIR/standin/fixtures"
    fi
    chmod 700 "$DIR/keys" "$DIR/run"
    [ "$(id -u)" -ne 0 ] || chown -R "$PGA_RUNNER" "$DIR"

    log "test CA and certificates"
    as_runner bash "$PGA_ROOT/scripts/make_test_ca.sh" "$DIR/tls" >/dev/null
    log "key file"
    as_runner "$DIR/bin/alpaca-keygen" new "$DIR/keys/pg_alpaca.keys" >/dev/null

    local pgport; pgport=$(free_port)
    log "PostgreSQL cluster on port $pgport"
    as_runner "$PGA_PG_BIN/initdb" -D "$DIR/pgdata" -U postgres --auth-local=trust \
        --auth-host=reject -E UTF8 --locale=C.UTF-8 >"$DIR/log/initdb.log"
    cat >>"$DIR/pgdata/postgresql.conf" <<CONF
port = $pgport
listen_addresses = ''
unix_socket_directories = '$DIR/run'
shared_preload_libraries = 'pg_alpaca'
pg_alpaca.key_file = '$DIR/keys/pg_alpaca.keys'
pg_alpaca.sidecar_socket = '$DIR/run/sidecar.sock'
fsync = off
max_connections = 200
log_line_prefix = '%m [%p] %q%u@%d '
CONF
    as_runner "$PGA_PG_BIN/pg_ctl" -D "$DIR/pgdata" -l "$DIR/log/postgresql.log" -w -t 60 start >/dev/null
    local psql=("$PGA_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR/run" -p "$pgport" -U postgres)
    as_runner "${psql[@]}" -d postgres -c "CREATE DATABASE alpaca"
    as_runner "${psql[@]}" -d alpaca <<'SQL'
CREATE EXTENSION pg_alpaca;
CREATE ROLE alpaca_sidecar_login LOGIN IN ROLE alpaca_sidecar;
CREATE ROLE app LOGIN IN ROLE alpaca_app;
CREATE ROLE admin LOGIN IN ROLE alpaca_admin;
SQL

    local paper_url=https://paper-api.alpaca.markets live_url=https://api.alpaca.markets ca_line=""
    local paper_port="" live_port="" control_port=""
    if [ $REAL -eq 0 ]; then
        paper_port=$(free_port); live_port=$(free_port); control_port=$(free_port)
        log "Alpaca stand-in: paper :$paper_port, live :$live_port, control :$control_port"
        as_runner bash -c "exec /usr/bin/python3 '$DIR/standin/alpaca_standin.py' \
            --fixtures '$DIR/standin/fixtures' \
            --listen paper=127.0.0.1:$paper_port --listen live=127.0.0.1:$live_port \
            --control 127.0.0.1:$control_port --cert '$DIR/tls/server.crt' --key '$DIR/tls/server.key' \
            --log '$DIR/log/standin.log' --ready-file '$DIR/run/standin.ready' \
            >>'$DIR/log/standin.out' 2>&1 & echo \$! > '$DIR/run/standin.pid'"
        wait_for test -f "$DIR/run/standin.ready" || die "stand-in did not start: $DIR/log/standin.out"
        paper_url=https://127.0.0.1:$paper_port
        live_url=https://127.0.0.1:$live_port
        ca_line="ca_file = $DIR/tls/ca.crt"
    fi

    cat >"$DIR/sidecar.conf" <<CONF
socket_path = $DIR/run/sidecar.sock
socket_mode = 0660
conninfo = host=$DIR/run port=$pgport dbname=alpaca user=alpaca_sidecar_login
pool_size = 4
workers = 16
paper_base_url = $paper_url
live_base_url = $live_url
$ca_line
log_level = info
log_file = $DIR/log/sidecar.log
CONF
    [ "$(id -u)" -ne 0 ] || chown "$PGA_RUNNER" "$DIR/sidecar.conf"
    as_runner "$DIR/bin/alpaca-sidecar" --config "$DIR/sidecar.conf" --check-config >/dev/null
    log "sidecar"
    as_runner bash -c "exec '$DIR/bin/alpaca-sidecar' --config '$DIR/sidecar.conf' \
        >>'$DIR/log/sidecar.out' 2>&1 & echo \$! > '$DIR/run/sidecar.pid'"
    wait_for test -S "$DIR/run/sidecar.sock" || die "sidecar did not start: $DIR/log/sidecar.out"

    cat >"$DIR/stack.env" <<ENV
# Source this file to talk to the stack in $DIR
export PGHOST=$DIR/run
export PGPORT=$pgport
export PGDATABASE=alpaca
export PGUSER=postgres
export PGA_STACK_DIR=$DIR
export PGA_SIDECAR_SOCKET=$DIR/run/sidecar.sock
export PGA_SIDECAR_CONFIG=$DIR/sidecar.conf
export PGA_STANDIN_PAPER_URL=$paper_url
export PGA_STANDIN_LIVE_URL=$live_url
export PGA_STANDIN_CONTROL_URL=${control_port:+http://127.0.0.1:$control_port}
export PGA_CA_FILE=$DIR/tls/ca.crt
export PGA_KEY_FILE=$DIR/keys/pg_alpaca.keys
export PGA_POSTGRES_LOG=$DIR/log/postgresql.log
export PGA_SIDECAR_LOG=$DIR/log/sidecar.log
export PGA_STANDIN_LOG=$DIR/log/standin.log
ENV
    log "stack is up: source $DIR/stack.env"
}

stack_down() {
    [ -d "$DIR" ] || return 0
    local f
    for f in sidecar standin; do
        if pidfile_alive "$DIR/run/$f.pid"; then
            kill -TERM "$(cat "$DIR/run/$f.pid")" 2>/dev/null || true
            PGA_WAIT=10 wait_for bash -c "! kill -0 $(cat "$DIR/run/$f.pid") 2>/dev/null" ||
                kill -KILL "$(cat "$DIR/run/$f.pid")" 2>/dev/null || true
        fi
        rm -f "$DIR/run/$f.pid"
    done
    if [ -f "$DIR/pgdata/postmaster.pid" ]; then
        as_runner "$PGA_PG_BIN/pg_ctl" -D "$DIR/pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -f "$DIR/stack.env"
}

stack_status() {
    local f
    for f in sidecar standin; do
        if pidfile_alive "$DIR/run/$f.pid"; then echo "$f: running (pid $(cat "$DIR/run/$f.pid"))"; else echo "$f: stopped"; fi
    done
    if as_runner "$PGA_PG_BIN/pg_ctl" -D "$DIR/pgdata" status >/dev/null 2>&1; then echo "postgresql: running"; else echo "postgresql: stopped"; fi
}

case $cmd in
    up) stack_up ;;
    down) stack_down ;;
    status) stack_status ;;
    *) usage ;;
esac

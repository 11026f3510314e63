#!/usr/bin/env bash
# A private PostgreSQL server for the appliance's optional PostgreSQL mode and its tests.
#   scripts/postgres.sh start    install (Debian package) if missing, create the cluster once, start it
#   scripts/postgres.sh stop | status | url
# The cluster lives in $PHONE_AGENT_HOME/postgres (default /opt/phone-agent), listens on 127.0.0.1 only (port 5433, so it never
# collides with a distro cluster), and has one role "agent" with a generated password (scram).
# The connection URL is kept in $PHONE_AGENT_HOME/postgres-agent.env (0600, root) and copied to
# state/postgres.env as PHONE_AGENT_PG_URL, so several checkouts share one server.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_VERSION=15
BIN=/usr/lib/postgresql/$PG_VERSION/bin
HOME_DIR=${PHONE_AGENT_HOME:-/opt/phone-agent}
DATA=$HOME_DIR/postgres
PORT=${PHONE_AGENT_PG_PORT:-5433}
ENV_FILE=state/postgres.env
SECRET_FILE=$HOME_DIR/postgres-agent.env

as_postgres() { runuser -u postgres -- "$@"; }

install() {
    if [ ! -x "$BIN/pg_ctl" ]; then
        echo "[postgres] installing postgresql-$PG_VERSION" >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "postgresql-$PG_VERSION" >&2
    fi
    if [ ! -f "$DATA/PG_VERSION" ]; then
        echo "[postgres] creating the cluster in $DATA" >&2
        mkdir -p "$DATA"
        chmod 755 "$HOME_DIR"
        chown postgres:postgres "$DATA"
        chmod 0700 "$DATA"
        as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >/dev/null
        cat >> "$DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DATA'
# durability: every commit reaches the disk before the agent goes on (a crash loses no ended turn)
fsync = on
synchronous_commit = on
CONF
    fi
}

psql_admin() { as_postgres "$BIN/psql" -h "$DATA" -p "$PORT" -q -v ON_ERROR_STOP=1 "$@"; }

credentials() {
    # the role's password lives with the cluster (root only); each checkout copies it into state/
    if [ ! -f "$SECRET_FILE" ]; then make_role; fi
    mkdir -p state && chmod 0700 state
    (umask 077; cp "$SECRET_FILE" "$ENV_FILE")
}

make_role() {
    local secret
    secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname='agent'")" = 1 ]; then
        psql_admin -c "ALTER ROLE agent PASSWORD '$secret'"
    else
        psql_admin -c "CREATE ROLE agent LOGIN PASSWORD '$secret'"
    fi
    [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname='agent'")" = 1 ] \
        || as_postgres "$BIN/createdb" -h "$DATA" -p "$PORT" -O agent agent
    (umask 077; echo "PHONE_AGENT_PG_URL=postgresql+psycopg://agent:$secret@127.0.0.1:$PORT/agent" > "$SECRET_FILE")
}

running() { as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start_server() {
    running && return 0
    as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start >/dev/null
    echo "[postgres] running on 127.0.0.1:$PORT" >&2
}

case "${1:-}" in
    start) install; start_server; credentials ;;
    stop) running && as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null || true ;;
    status) running && echo "running on 127.0.0.1:$PORT" || { echo "stopped"; exit 1; } ;;
    url) cut -d= -f2- "$ENV_FILE" ;;
    *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac

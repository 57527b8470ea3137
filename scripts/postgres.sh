#!/usr/bin/env bash
# A throwaway PostgreSQL for tests and local runs: a private cluster under
# $PDP_PG_DIR (default /tmp/pdp-postgres), listening on 127.0.0.1:$PDP_PG_PORT
# (default 55432, clear of a system cluster on 5432), with track_commit_timestamp=on (SpiceDB's Watch needs it),
# a role pdp (password pdp, CREATEDB: the tests create a database each) and a
# database pdp_test. It leaves any system cluster alone.
#
#   scripts/postgres.sh start    # install if needed, init, start; prints the URL
#   scripts/postgres.sh stop     # stop the private cluster (if running)
#   scripts/postgres.sh status   # exit 0 if the private cluster is running
#   scripts/postgres.sh url      # print the URL
#
#   export PDP_TEST_POSTGRES_URL=$(scripts/postgres.sh start)
#
# Idempotent: start on a running cluster only checks the settings, role and
# database. As root it runs the server as the `postgres` user (PostgreSQL
# refuses root) and installs the server with apt-get when it is missing; as
# another user it runs the server as that user and cannot install. The
# cluster trades durability for speed (fsync=off): test data only.
# Progress goes to stderr, the URL alone to stdout.
set -euo pipefail

DIR=${PDP_PG_DIR:-/tmp/pdp-postgres}
PORT=${PDP_PG_PORT:-55432}
DATA=$DIR/data
SOCK=$DIR/run
URL="postgres://pdp:pdp@127.0.0.1:$PORT/pdp_test?sslmode=disable"

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

is_root() { [[ $(id -u) == 0 ]]; }

# as_pg runs a command as the user that owns the cluster.
as_pg() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

# server_bin finds the directory of the newest installed server binaries.
server_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x $d/postgres && -x $d/initdb && -x $d/pg_ctl ]]; then
      echo "$d"
      return 0
    fi
  done
  local p
  if p=$(command -v postgres 2>/dev/null) && command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$p"
    return 0
  fi
  return 1
}

install_server() {
  is_root || die "no PostgreSQL server found, and installing one needs root (apt-get install postgresql)"
  command -v apt-get >/dev/null || die "no PostgreSQL server found and no apt-get to install one"
  log "installing the PostgreSQL server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

psql_super() {
  as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"
}

running() {
  [[ -n ${BIN:-} && -f $DATA/PG_VERSION ]] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
  BIN=$(server_bin) || { install_server; BIN=$(server_bin) || die "no server binaries after installing"; }
  log "server binaries: $BIN"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "user postgres is missing (it comes with the postgresql package)"
  fi

  mkdir -p "$DIR" "$SOCK"
  if is_root; then chown postgres: "$DIR" "$SOCK"; fi

  if [[ ! -f $DATA/PG_VERSION ]]; then
    log "initdb $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
    as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# scripts/postgres.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
track_commit_timestamp = on
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi

  if running; then
    log "already running ($DATA)"
  else
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
      die "port $PORT is taken by another server; set PDP_PG_PORT"
    fi
    log "starting on 127.0.0.1:$PORT"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -o "-p $PORT -k $SOCK" -w -t 60 start >&2 ||
      { tail -20 "$DIR/server.log" >&2; die "pg_ctl start failed"; }
  fi

  # The setting needs a restart; an existing data dir may predate it.
  if [[ $(psql_super -At -c 'SHOW track_commit_timestamp') != on ]]; then
    log "turning track_commit_timestamp on (restart)"
    psql_super -c 'ALTER SYSTEM SET track_commit_timestamp = on'
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -o "-p $PORT -k $SOCK" -w -t 60 restart >&2
  fi

  psql_super <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pdp') THEN
    CREATE ROLE pdp LOGIN CREATEDB PASSWORD 'pdp';
  ELSE
    ALTER ROLE pdp LOGIN CREATEDB PASSWORD 'pdp';
  END IF;
END $$;
SQL
  if [[ -z $(psql_super -At -c "SELECT 1 FROM pg_database WHERE datname = 'pdp_test'") ]]; then
    psql_super -c 'CREATE DATABASE pdp_test OWNER pdp'
  fi

  PGPASSWORD=pdp "$BIN/psql" -X -q -At -h 127.0.0.1 -p "$PORT" -U pdp -d pdp_test -c 'SELECT 1' >/dev/null ||
    die "cannot log in as pdp over TCP"
  log "ready: $URL"
  echo "$URL"
}

stop() {
  BIN=$(server_bin) || { log "no server installed: nothing to stop"; return 0; }
  if running; then
    log "stopping ($DATA)"
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
  else
    log "not running"
  fi
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status) BIN=$(server_bin) || exit 1; running ;;
  url) echo "$URL" ;;
  *) die "usage: $0 start|stop|status|url" ;;
esac

#!/usr/bin/env bash
# The deployment of deploy/k8s as processes on one machine, without
# containers: a PostgreSQL (scripts/postgres.sh), three `pdp serve`
# replicas on it (all stores shared: relationships in embedded SpiceDB on
# PostgreSQL, delegations, consent, one decision trail), and a sidecar
# attached to the first replica. It runs in the foreground until Ctrl-C
# (or SIGTERM), then stops them all.
#
#   deploy/local-topology.sh
#
# Configuration: deploy/local/pdp.yaml (every replica), deploy/local/sidecar.yaml.
# Environment (all optional):
#   PDP_LOCAL_POSTGRES_URL   a database to use (else scripts/postgres.sh's
#                            server, database pdp_local, created if absent)
#   PDP_LOCAL_PORTS          the replicas' ports (default "8081 8082 8083")
#   PDP_LOCAL_SIDECAR_PORT   the sidecar's port (default 8181)
#   PDP_LOCAL_DATA           logs, trail folders, the sidecar's spool and the
#                            built binary (default pdp-data/local)
#   PDP_BIN                  a pdp binary to run (else go build ./cmd/pdp)
#   PDP_SIDECAR_API_KEY      the sidecar's application key (default the
#                            DEMO key demo-key-mobile-banking)
#
# Logs go to $PDP_LOCAL_DATA/{a,b,c,sidecar}.log; this script's own lines
# to stderr, "local-topology: ready" once every process answers /readyz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

read -r -a PORTS <<<"${PDP_LOCAL_PORTS:-8081 8082 8083}"
SIDECAR_PORT=${PDP_LOCAL_SIDECAR_PORT:-8181}
DATA=${PDP_LOCAL_DATA:-pdp-data/local}
NAMES=(a b c)

log() { printf 'local-topology: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

((${#PORTS[@]} == 3)) || die "PDP_LOCAL_PORTS: want three ports, got '${PORTS[*]}'"
command -v curl >/dev/null || die "curl is needed to wait for /readyz (apt-get install curl)"
mkdir -p "$DATA"

# --- PostgreSQL ---------------------------------------------------------------
if [[ -n ${PDP_LOCAL_POSTGRES_URL:-} ]]; then
  URL=$PDP_LOCAL_POSTGRES_URL
else
  admin=$(scripts/postgres.sh start)
  URL=${admin/\/pdp_test\?/\/pdp_local?}
  command -v psql >/dev/null || die "psql is needed to create the database pdp_local (apt-get install postgresql-client), or set PDP_LOCAL_POSTGRES_URL"
  if [[ $(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = 'pdp_local'") != 1 ]]; then
    psql "$admin" -qc 'CREATE DATABASE pdp_local' >/dev/null
    log "created the database pdp_local"
  fi
fi
export PDP_RELATIONS_POSTGRES_URL=$URL PDP_DELEGATIONS_POSTGRES_URL=$URL PDP_CONSENT_POSTGRES_URL=$URL PDP_TRAIL_POSTGRES_URL=$URL
log "PostgreSQL: ${URL/:*@/:***@}"

# --- the binary ---------------------------------------------------------------
BIN=${PDP_BIN:-}
if [[ -z $BIN ]]; then
  BIN=$DATA/pdp
  log "building $BIN"
  go build -o "$BIN" ./cmd/pdp
fi

# --- processes ----------------------------------------------------------------
pids=()
stop_all() {
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  log "stopped"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# wait_ready NAME PID URL: until URL answers 200, or the process exits, or 120s.
wait_ready() {
  local name=$1 pid=$2 url=$3
  for _ in $(seq 1 240); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      log "$name ready: $url"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$DATA/$name.log" >&2 || true
      die "$name exited before it was ready (log: $DATA/$name.log)"
    fi
    sleep 0.5
  done
  tail -n 20 "$DATA/$name.log" >&2 || true
  die "$name: $url did not answer 200 within 120s (log: $DATA/$name.log)"
}

# One replica after the other: the first creates the tables and imports
# the seeds, the others find them.
for i in 0 1 2; do
  name=${NAMES[i]}
  mkdir -p "$DATA/$name"
  PDP_TRAIL_DIR=$DATA/$name/trail "$BIN" serve --config deploy/local/pdp.yaml \
    --addr "127.0.0.1:${PORTS[i]}" >"$DATA/$name.log" 2>&1 &
  pids+=($!)
  wait_ready "$name" $! "http://127.0.0.1:${PORTS[i]}/readyz"
done

PDP_SIDECAR_API_KEY=${PDP_SIDECAR_API_KEY:-demo-key-mobile-banking} \
  PDP_SIDECAR_SPOOL_DIR=$DATA/sidecar-spool \
  "$BIN" sidecar --config deploy/local/sidecar.yaml \
  --listen "127.0.0.1:$SIDECAR_PORT" --central-url "http://127.0.0.1:${PORTS[0]}" >"$DATA/sidecar.log" 2>&1 &
pids+=($!)
wait_ready sidecar $! "http://127.0.0.1:$SIDECAR_PORT/readyz"

log "ready: replicas a, b, c on ports ${PORTS[*]}, the sidecar (to a) on $SIDECAR_PORT; Ctrl-C stops them"
# Until a signal, or until one of them exits (then the others are stopped).
set +e
wait -n "${pids[@]}"
code=$?
set -e
log "a process exited with status $code; stopping the others"
exit 1

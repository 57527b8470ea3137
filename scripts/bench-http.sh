#!/usr/bin/env bash
# HTTP load run over loopback: the AuthZEN evaluation endpoint on the Todo
# example beside the no-op endpoint of the same server (same middleware,
# same body decoding, answers {"decision":true}), alternating rounds so that
# both see the same machine noise. Prints each round and the medians.
#
#   scripts/bench-http.sh [rounds] [duration] [connections]
#
# Needs wrk (apt-get install -y wrk). Sends traffic to 127.0.0.1 only.
set -euo pipefail
rounds=${1:-3}
duration=${2:-10s}
conns=${3:-32}
port=${PORT:-18181}
cd "$(dirname "$0")/.."

bin=$(mktemp -d)/pdp
go build -o "$bin" ./cmd/pdp
PDP_HTTP_NOOP_ENDPOINT=true PDP_LOG_LEVEL=warn "$bin" serve --dir examples/authzen-todo \
  --addr "127.0.0.1:$port" >/tmp/bench-http-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done

# Morty (editor) updates his own todo: a realistic decision with roles from
# the entities file and the owner from the request.
lua=$(mktemp --suffix=.lua)
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"subject":{"type":"user","id":"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"morty@the-citadel.com"}},"context":{"time":"2026-11-28T10:00:00Z"}}'
LUA

curl -fsS -H 'Content-Type: application/json' --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$lua")" \
  "http://127.0.0.1:$port/access/v1/evaluation"; echo

results=$(mktemp)
for r in $(seq "$rounds"); do
  for ep in noop evaluation; do
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -s "$lua" "http://127.0.0.1:$port/access/v1/$ep")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "round $r $ep rps=$rps p50=$p50 p99=$p99 ${non2xx:+non2xx=$non2xx}"
    echo "$ep $rps $p50 $p99" >>"$results"
  done
done
echo "medians over $rounds rounds, $conns connections, $duration each:"
for ep in noop evaluation; do
  rps=$(awk -v e=$ep '$1==e {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$ep median rps=$rps"
done
noop=$(awk '$1=="noop" {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
eval=$(awk '$1=="evaluation" {print $2}' "$results" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
awk -v n="$noop" -v e="$eval" 'BEGIN {printf "evaluation/noop throughput (ratio of medians) = %.1f%%\n", 100*e/n}'
# Each round runs noop then evaluation back to back, so the ratio within a
# round sees the least drift in machine load; report the median of those.
paste -d' ' <(awk '$1=="noop" {print $2}' "$results") <(awk '$1=="evaluation" {print $2}' "$results") |
  awk '{print 100*$2/$1}' | sort -n |
  awk '{a[NR]=$1} END {printf "evaluation/noop throughput (median of per-round ratios) = %.1f%%\n", a[int((NR+1)/2)]}'

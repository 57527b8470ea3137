#!/usr/bin/env bash
# The trail's cost over HTTP, in one alternating run on loopback: the no-op
# endpoint (same middleware and body decoding, answers {"decision":true})
# beside the AuthZEN evaluation endpoint with trail.mode off, async and
# sync (three servers of one build, the Todo example, each in its own
# directory). Each round runs the four back to back; prints every round,
# the medians, each mode's share of the no-op endpoint (median of the
# per-round ratios) and the trail's bytes per decision.
#
#   scripts/bench-trail-http.sh [rounds] [duration] [connections]
#
# Needs wrk (apt-get install -y wrk). Sends traffic to 127.0.0.1 only.
set -euo pipefail
rounds=${1:-3}
duration=${2:-8s}
conns=${3:-32}
base=${PORT:-18281}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

work=$(mktemp -d)
bin=$work/pdp
go build -o "$bin" ./cmd/pdp
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
modes=(off async sync)
declare -A port
i=0
for m in "${modes[@]}"; do
  port[$m]=$((base + i)); i=$((i + 1))
  mkdir -p "$work/$m"
  (cd "$work/$m" && PDP_HTTP_NOOP_ENDPOINT=true PDP_LOG_LEVEL=warn PDP_TRAIL_MODE=$m PDP_TRAIL_DIR="$work/$m/trail" \
    exec "$bin" serve --dir "$root/examples/authzen-todo" --addr "127.0.0.1:${port[$m]}" >"$work/$m/server.log" 2>&1) &
  pids+=($!)
done
for m in "${modes[@]}"; do
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:${port[$m]}/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done

# Morty (editor) updates his own todo (as scripts/bench-http.sh).
lua=$work/req.lua
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"subject":{"type":"user","id":"CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},"action":{"name":"can_update_todo"},"resource":{"type":"todo","id":"7240d0db-8ff0-41ec-98b2-34a096273b91","properties":{"ownerID":"morty@the-citadel.com"}},"context":{"time":"2026-11-28T10:00:00Z"}}'
LUA

results=$work/results
: >"$results"
names=(noop off async sync)
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    if [ "$n" = noop ]; then url="http://127.0.0.1:${port[off]}/access/v1/noop"; else url="http://127.0.0.1:${port[$n]}/access/v1/evaluation"; fi
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -s "$lua" "$url")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    echo "round $r $n rps=$rps p50=$p50 p99=$p99 ${non2xx:+non2xx=$non2xx}"
    echo "$r $n $rps $p50 $p99" >>"$results"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "medians over $rounds alternating rounds, wrk -t2 -c$conns -d$duration, load average $(cut -d' ' -f1-3 /proc/loadavg):"
echo "| server | req/s (median) | p99 (median) | of the no-op endpoint (median of per-round ratios) |"
echo "|---|---:|---:|---:|"
for n in "${names[@]}"; do
  rps=$(awk -v e="$n" '$2==e {print $3}' "$results" | median)
  p99=$(awk -v e="$n" '$2==e {v=$5; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+/,"",v); f=(u=="us"?0.001:(u=="s"?1000:1)); print v*f}' "$results" | median)
  ratio=$(join <(awk '$2=="noop" {print $1, $3}' "$results" | sort) <(awk -v e="$n" '$2==e {print $1, $3}' "$results" | sort) |
    awk '{print 100*$3/$2}' | median)
  printf '| %s | %.0f | %.2f ms | %.1f %% |\n' "$([ "$n" = noop ] && echo "no-op endpoint" || echo "evaluation, trail \`$n\`")" "$rps" "$p99" "$ratio"
done
for m in async sync; do
  d=$work/$m/trail
  recs=$(curl -fsS "http://127.0.0.1:${port[$m]}/metrics" | awk '/^pdp_trail_records_total/ {print $2}')
  bytes=$(( $(stat -c %s "$d/records.log") + $(stat -c %s "$d/hashes.bin") ))
  awk -v m="$m" -v b="$bytes" -v n="$recs" 'BEGIN {printf "trail %s: %d records, %.0f bytes per record (records.log + hashes.bin)\n", m, n, b/n}'
done

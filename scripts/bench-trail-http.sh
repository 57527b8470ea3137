#!/usr/bin/env bash
# The trail's cost over HTTP, in one alternating run on loopback: the no-op
# endpoint (same middleware and body decoding, answers {"decision":true})
# beside the AuthZEN evaluation endpoint with trail.mode off, async and
# sync (three servers of one build, the Todo example, each in its own
# directory). Each round runs the four back to back; prints every round,
# the medians, each mode's share of the no-op endpoint (median of the
# per-round ratios) and the trail's bytes per decision.
#
# When an OPA binary is found (OPA=/path/to/opa, else
# $HOME/.cache/pdp-bench/bin/opa, else opa on PATH) every round also runs
# two OPA servers on the same decision (scripts/bench/opa: todo.rego and
# data.json; POST /v1/data/todo/allow with {"input": the same request}):
# decision logs off, and decision logs to the console (written to a file).
# Build it once with:
#   GOBIN=$HOME/.cache/pdp-bench/bin go install github.com/open-policy-agent/opa@v1.22.3
#
#   scripts/bench-trail-http.sh [--markdown FILE] [rounds] [duration] [connections]
#
# --markdown FILE (or BENCH_OUT=FILE) also writes the medians table, with
# the date, commit, load average and command, as Markdown to paste into
# BENCHMARKS.md.
#
# Needs wrk (apt-get install -y wrk). Sends traffic to 127.0.0.1 only.
set -euo pipefail
markdown=${BENCH_OUT:-}
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --markdown) markdown=${2:?--markdown needs a file}; shift 2 ;;
    --markdown=*) markdown=${1#--markdown=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
rounds=${args[0]:-3}
duration=${args[1]:-8s}
conns=${args[2]:-32}
base=${PORT:-18281}
if [ -n "$markdown" ]; then markdown=$(realpath -m "$markdown"); fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

opa=${OPA:-}
if [ -z "$opa" ] && [ -x "${HOME:-}/.cache/pdp-bench/bin/opa" ]; then opa=$HOME/.cache/pdp-bench/bin/opa; fi
if [ -z "$opa" ]; then opa=$(command -v opa || true); fi
if [ -n "$opa" ] && ! "$opa" version >/dev/null 2>&1; then
  echo "OPA=$opa does not run ('$opa version' failed)" >&2
  exit 1
fi
if [ -z "$opa" ]; then
  echo "OPA not found (OPA=/path/to/opa, \$HOME/.cache/pdp-bench/bin/opa or opa on PATH): no OPA rows." >&2
  echo "  build it with: GOBIN=\$HOME/.cache/pdp-bench/bin go install github.com/open-policy-agent/opa@v1.22.3" >&2
fi

# The servers use ports base..base+4 (PORT, 18281 by default); another run
# on them would be measured instead of this one's.
for p in $(seq "$base" $((base + 4))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p on 127.0.0.1 is in use (another run?); set PORT to a free range of 5 ports" >&2
    exit 1
  fi
done

work=$(mktemp -d)
bin=$work/pdp
go build -o "$bin" ./cmd/pdp
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
modes=(off async sync)
declare -A port pid log
i=0
for m in "${modes[@]}"; do
  port[$m]=$((base + i)); i=$((i + 1))
  mkdir -p "$work/$m"
  (cd "$work/$m" && PDP_HTTP_NOOP_ENDPOINT=true PDP_LOG_LEVEL=warn PDP_TRAIL_MODE=$m PDP_TRAIL_DIR="$work/$m/trail" \
    exec "$bin" serve --dir "$root/examples/authzen-todo" --addr "127.0.0.1:${port[$m]}" >"$work/$m/server.log" 2>&1) &
  pids+=($!); pid[$m]=$!; log[$m]=$work/$m/server.log
done
opa_names=()
if [ -n "$opa" ]; then
  opa_version=$("$opa" version | awk '/^Version:/ {print $2}')
  # Two servers of the same policy: decision logs off (OPA's default
  # without a decision_logs service) and decision logs to the console,
  # which OPA writes to stderr, here a file in the work directory.
  opa_names=(opa-off opa-console)
  for n in "${opa_names[@]}"; do
    port[$n]=$((base + i)); i=$((i + 1))
    mkdir -p "$work/$n"
    set -- run --server --addr "127.0.0.1:${port[$n]}" --skip-version-check --log-level error
    if [ "$n" = opa-console ]; then set -- "$@" --set decision_logs.console=true; fi
    (cd "$work/$n" && exec "$opa" "$@" "$root/scripts/bench/opa/todo.rego" "$root/scripts/bench/opa/data.json" \
      >"$work/$n/console.log" 2>&1) &
    pids+=($!); pid[$n]=$!; log[$n]=$work/$n/console.log
  done
fi
for m in "${modes[@]}"; do
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:${port[$m]}/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done
for n in "${opa_names[@]}"; do
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:${port[$n]}/health" >/dev/null 2>&1 && break; sleep 0.2; done
done
# A server that could not listen has exited; what answers on its port is
# then someone else's.
for n in "${modes[@]}" "${opa_names[@]}"; do
  if ! kill -0 "${pid[$n]}" 2>/dev/null; then
    echo "the $n server exited (port ${port[$n]} taken? set PORT); its log ends:" >&2
    tail -n 5 "${log[$n]}" >&2
    exit 1
  fi
done

# Morty (editor) updates his own todo (as scripts/bench-http.sh); the same
# request goes to OPA as its input.
body=$(cat "$root/scripts/bench/todo-request.json")
lua=$work/req.lua
opa_lua=$work/opa-req.lua
for f in "$lua" "$opa_lua"; do
  b=$body
  if [ "$f" = "$opa_lua" ]; then b="{\"input\":$body}"; fi
  printf '%s\n' 'wrk.method = "POST"' 'wrk.headers["Content-Type"] = "application/json"' "wrk.body = '$b'" >"$f"
done
# Every target must allow the request before it is measured.
check() { # url body answer-pattern server-log
  local answer
  answer=$(curl -sS -H 'Content-Type: application/json' --data-binary "$2" "$1" 2>&1) || answer="no answer: $answer"
  if ! grep -Eq "$3" <<<"$answer"; then
    echo "$1 did not allow the benchmark's request: $answer; its log ends:" >&2
    tail -n 5 "$4" >&2
    exit 1
  fi
}
for m in "${modes[@]}"; do
  check "http://127.0.0.1:${port[$m]}/access/v1/evaluation" "$body" '"decision":true' "$work/$m/server.log"
done
for n in "${opa_names[@]}"; do
  check "http://127.0.0.1:${port[$n]}/v1/data/todo/allow" "{\"input\":$body}" '"result":true' "$work/$n/console.log"
done

results=$work/results
# The server's CPU (user + system, all threads) from /proc: CPU per request
# is steadier than req/s on a shared machine (wrk's own CPU is not in it).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
: >"$results"
names=(noop off async sync "${opa_names[@]}")
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    script=$lua
    case $n in
      noop) url="http://127.0.0.1:${port[off]}/access/v1/noop" ;;
      opa-*) url="http://127.0.0.1:${port[$n]}/v1/data/todo/allow"; script=$opa_lua ;;
      *) url="http://127.0.0.1:${port[$n]}/access/v1/evaluation" ;;
    esac
    case $n in noop) spid=${pid[off]} ;; *) spid=${pid[$n]} ;; esac
    t0=$(cpu_ticks "$spid")
    out=$(wrk -t2 -c"$conns" -d"$duration" --latency -s "$script" "$url")
    t1=$(cpu_ticks "$spid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu=$(awk -v a="$t0" -v b="$t1" -v n="$reqs" -v t="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b-a)/t*1e6/n}')
    echo "round $r $n rps=$rps p50=$p50 p99=$p99 cpu=${cpu}µs/req ${non2xx:+non2xx=$non2xx}"
    echo "$r $n $rps $p50 $p99 $cpu" >>"$results"
  done
done

label() {
  case $1 in
    noop) echo "no-op endpoint" ;;
    opa-off) echo "OPA v$opa_version, decision logs off" ;;
    opa-console) echo "OPA v$opa_version, decision logs to the console" ;;
    *) echo "evaluation, trail \`$1\`" ;;
  esac
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
table=$work/table
{
  echo "| server | req/s (median) | p99 (median) | of the no-op endpoint (median of per-round ratios) | server CPU per request (median) |"
  echo "|---|---:|---:|---:|---:|"
  for n in "${names[@]}"; do
    rps=$(awk -v e="$n" '$2==e {print $3}' "$results" | median)
    p99=$(awk -v e="$n" '$2==e {v=$5; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+/,"",v); f=(u=="us"?0.001:(u=="s"?1000:1)); print v*f}' "$results" | median)
    ratio=$(join <(awk '$2=="noop" {print $1, $3}' "$results" | sort) <(awk -v e="$n" '$2==e {print $1, $3}' "$results" | sort) |
      awk '{print 100*$3/$2}' | median)
    cpu=$(awk -v e="$n" '$2==e {print $6}' "$results" | median)
    printf '| %s | %.0f | %.2f ms | %.1f %% | %.1f µs |\n' "$(label "$n")" "$rps" "$p99" "$ratio" "$cpu"
  done
} >"$table"
notes=$work/notes
: >"$notes"
for m in async sync; do
  d=$work/$m/trail
  recs=$(curl -fsS "http://127.0.0.1:${port[$m]}/metrics" | awk '/^pdp_trail_records_total/ {print $2}')
  # Stopped first: a running trail's records file holds preallocated zeros,
  # cut off when it closes.
  kill "${pid[$m]}" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "${pid[$m]}" 2>/dev/null || break; sleep 0.1; done
  bytes=$(( $(stat -c %s "$d/records.log") + $(stat -c %s "$d/hashes.bin") ))
  awk -v m="$m" -v b="$bytes" -v n="$recs" 'BEGIN {printf "trail %s: %d records, %.0f bytes per record (records.log + hashes.bin)\n", m, n, b/n}' >>"$notes"
done
if [ -n "$opa" ]; then
  f=$work/opa-console/console.log
  lines=$(grep -c '"msg":"Decision Log"' "$f" || true)
  awk -v n="$lines" -v b="$(stat -c %s "$f")" 'BEGIN {printf "OPA console decision log: %d decisions, %.0f bytes per decision (not fsynced, no hash chain)\n", n, (n ? b/n : 0)}' >>"$notes"
fi

echo
echo "medians over $rounds alternating rounds, wrk -t2 -c$conns -d$duration, load average $load_end:"
cat "$table" "$notes"

if [ -n "$markdown" ]; then
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if ! git -C "$root" diff --quiet HEAD 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
  {
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs, load average $load_start at the start, $load_end at the end."
    echo
    echo '```sh'
    echo "scripts/bench-trail-http.sh $rounds $duration $conns   # $rounds alternating rounds, wrk -t2 -c$conns -d$duration${opa:+, OPA v$opa_version}"
    echo '```'
    echo
    cat "$table"
    echo
    sed 's/^/- /' "$notes"
  } >"$markdown"
  echo "wrote $markdown"
fi

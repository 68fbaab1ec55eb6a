#!/usr/bin/env bash
# Throughput of a hello-world app: NANO (context reset on and off) vs a bare hyper server vs
# workerd vs `deno serve --parallel`, all in one run on this machine, loopback, same load.
# Prints a markdown table of req/s and ratios; RESULTS.md records the figures with this command.
#
#   bench/run.sh [duration_secs=10] [connections=64]
#
# Other apps: BENCH_APP=module.js BENCH_PATH=/route BENCH_SERVERS="nano-reset-false workerd"
# (the bare hyper server only ever answers hello world, so leave it out for other apps).
set -euo pipefail
# BENCH_APP is relative to where the script is run from; the default to bench/.
if [ -n "${BENCH_APP:-}" ]; then
  APP="$(cd "$(dirname "$BENCH_APP")" && pwd)/$(basename "$BENCH_APP")"
else
  APP="$(cd "$(dirname "$0")" && pwd)/apps/hello.js"
fi
cd "$(dirname "$0")"
DURATION="${1:-10}"
CONNS="${2:-64}"
URL_PATH="${BENCH_PATH:-/}"
SERVERS="${BENCH_SERVERS:-hyper nano-reset-false nano-reset-true workerd deno}"
THREADS=2
ROOT="$(cd .. && pwd)"
OUT="$ROOT/bench/out"
mkdir -p "$OUT"

if [ -f "$ROOT/../shared/v8/librusty_v8.a.gz" ] && [ -z "${RUSTY_V8_ARCHIVE:-}" ]; then
  export RUSTY_V8_ARCHIVE="$(cd "$ROOT/../shared/v8" && pwd)/librusty_v8.a.gz"
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x node_modules/.bin/workerd ] && [ -x node_modules/.bin/deno ] || npm install --no-audit --no-fund >/dev/null
(cd "$ROOT" && cargo build --release -q -p nano-dataplane -p nano-bench-baseline)

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # host port
  for _ in $(seq 1 200); do
    curl -s -o /dev/null -H "Host: $1" "http://127.0.0.1:$2$URL_PATH" && return 0
    sleep 0.05
  done
  echo "server on port $2 did not come up" >&2; return 1
}
measure() { # name host port -> prints req/s
  local name=$1 host=$2 port=$3
  wait_http "$host" "$port"
  wrk -t1 -c8 -d2s -H "Host: $host" "http://127.0.0.1:$port$URL_PATH" >/dev/null   # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" "http://127.0.0.1:$port$URL_PATH" > "$OUT/$name.txt"
  awk '/Requests\/sec/ {print $2}' "$OUT/$name.txt"
}
stop_last() { kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'; }

nano_config() { # reset(true|false) port
  cat > "$OUT/nano-$1.json" <<JSON
{ "server": { "host": "127.0.0.1", "port": $2 },
  "apps": [ { "hostname": "bench.local", "entrypoint": "$APP",
              "context_reset": $1, "limits": { "workers": 2 } } ] }
JSON
  echo "$OUT/nano-$1.json"
}

declare -A RPS
wants() { [[ " $SERVERS " == *" $1 "* ]]; }
cp "$APP" "$OUT/app.js"

if wants hyper; then
  PORT=$(free_port); "$ROOT/target/release/hyper-baseline" "127.0.0.1:$PORT" 2>/dev/null & PIDS+=($!)
  RPS[hyper]=$(measure hyper bench.local "$PORT"); stop_last
fi

for reset in false true; do
  wants "nano-reset-$reset" || continue
  PORT=$(free_port); NANO_LOG=warn "$ROOT/target/release/nano" --config "$(nano_config $reset "$PORT")" & PIDS+=($!)
  RPS[nano-reset-$reset]=$(measure "nano-reset-$reset" bench.local "$PORT"); stop_last
done

if wants workerd; then
  PORT=$(free_port)
  cat > "$OUT/workerd.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .app) ],
  sockets = [ (name = "http", address = "127.0.0.1:$PORT", http = (), service = "main") ],
);
const app :Workerd.Worker = (
  modules = [ (name = "app.js", esModule = embed "app.js") ],
  compatibilityDate = "2024-09-23",
);
CAPNP
  node_modules/.bin/workerd serve "$OUT/workerd.capnp" 2>/dev/null & PIDS+=($!)
  RPS[workerd]=$(measure workerd bench.local "$PORT"); stop_last
fi

if wants deno; then
  PORT=$(free_port)
  DENO_NO_UPDATE_CHECK=1 node_modules/.bin/deno serve --quiet --parallel --port "$PORT" --host 127.0.0.1 "$OUT/app.js" 2>/dev/null & PIDS+=($!)
  RPS[deno]=$(measure deno bench.local "$PORT"); stop_last
fi

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
BASES=""
for base in hyper workerd deno; do wants "$base" && BASES="$BASES $base"; done
printf '| server | req/s |'; for b in $BASES; do printf ' vs %s |' "$b"; done; echo
printf '| --- | ---: |'; for b in $BASES; do printf ' ---: |'; done; echo
for name in $SERVERS; do
  printf '| %s | %s |' "$name" "${RPS[$name]}"
  for b in $BASES; do printf ' %s |' "$(ratio "${RPS[$name]}" "${RPS[$b]}")"; done
  echo
done
if wants nano-reset-true && wants nano-reset-false; then
python3 - "$OUT" <<'PY'
import re, sys, pathlib
out = pathlib.Path(sys.argv[1])
def mean_us(name):
    text = (out / f"{name}.txt").read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    return 1e6 / rps
# Per-request cost of a context reset, from throughput at full load (2 cores busy): the extra
# core-time per request is (1/rps_on - 1/rps_off) * cores.
extra = (mean_us("nano-reset-true") - mean_us("nano-reset-false")) * 2
print(f"\ncontext reset cost: {extra:.1f} us of CPU per request (from throughput, 2 cores)")
PY
fi

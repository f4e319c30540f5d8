#!/usr/bin/env bash
# Peak RSS of tether load at 100 and at 10,000 connections, each carrying one request a
# second (a constant total rate of 100 and 10,000 requests/s), against `tether serve
# --workers 1`. The server runs on CPU 0, the load on CPU 1, all on 127.0.0.1.
#
#   crates/tether-load/bench/rss.sh                 10 s runs with a 3 s warm-up
#   DURATION=5 crates/tether-load/bench/rss.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
bin=${TETHER_BIN:-$root/target/release/tether}
[ -x "$bin" ] || cargo build --release -p tether-cli --manifest-path "$root/Cargo.toml"
[ -x /usr/bin/time ] || { echo "GNU time is not installed (apt-get install time)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

taskset -c 0 "$bin" serve --workers 1 --listen 127.0.0.1:0 2>"$work/serve.log" &
server_pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/serve.log" | sed 's|.*http://||') || true
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log" >&2; exit 1; }

echo "connections peak_rss_kb requests_per_sec ok failed p50_us p99_us client_lag_p99_us"
for c in 100 10000; do
    taskset -c 1 /usr/bin/time -f "%M" -o "$work/rss" "$bin" load "http://$addr/plaintext" \
        --threads 1 -c "$c" --rate "$c" -d "${DURATION}s" --warmup "${WARMUP}s" --json >"$work/load.json"
    python3 - "$c" "$(cat "$work/rss")" "$work/load.json" <<'PY'
import json, sys
c, rss, path = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
print(c, rss, f"{r['requests_per_sec']:.0f}", r["requests"]["ok"], r["requests"]["failed"],
      f"{r['latency_us']['p50']:.0f}", f"{r['latency_us']['p99']:.0f}",
      f"{r['client_lag_us']['p99']:.0f}")
PY
done

#!/usr/bin/env bash
# tether load beside wrk on one core, against the same `tether serve --workers 1`.
#
#   crates/tether-load/bench/vs-wrk.sh            3 interleaved rounds of 10 s runs
#   ROUNDS=1 DURATION=3 crates/tether-load/bench/vs-wrk.sh
#
# The server is pinned to CPU 0 (SERVER_CPU), both load generators to CPU 1 (LOAD_CPU), all
# traffic on 127.0.0.1. Loads, each run by wrk -t1 and by tether load --threads 1:
#   saturate   100 connections, closed loop, no pause: requests/s of each generator
#   paced      PACED connections (10), 1 ms pause after each response (wrk: a delay() script):
#              a light load, where neither tool queues requests at the server
#   rate       tether load on as many connections at a constant rate equal to what wrk
#              achieved in `paced`
#   single     1 connection, sequential
# Prints one line per run (load, tool, requests/s, p50, p90, p99 in µs, the generator's own
# CPU time per request in µs, user + system, from GNU time; `other`: the share of the two
# CPUs that anything but the server and the generator used during the run, and `steal`: the
# share the hypervisor gave to other machines, both from /proc/stat), then the median of
# each figure over the rounds, and tether load's over wrk's: once over the runs where other +
# steal stayed under OTHER_MAX percent (2), once over all. CPU per request is
# what a generator costs whatever else runs on the machine: 1e6 / (CPU µs per request) is the
# rate it could sustain on a core of its own.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
PACED=${PACED:-10}
OTHER_MAX=${OTHER_MAX:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
bin=${TETHER_BIN:-$root/target/release/tether}
[ -x "$bin" ] || cargo build --release -p tether-cli --manifest-path "$root/Cargo.toml"
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time is not installed (apt-get install time)" >&2; exit 1; }

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

taskset -c "$SERVER_CPU" "$bin" serve --workers 1 --listen 127.0.0.1:0 2>"$work/serve.log" &
server_pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(grep -o 'listening on http://[0-9.]*:[0-9]*' "$work/serve.log" | sed 's|.*http://||') || true
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log" >&2; exit 1; }
url="http://$addr/plaintext"
printf 'function delay()\n  return 1\nend\n' >"$work/delay.lua"

# Busy ticks (user, nice, system) and steal ticks of the two CPUs and the server's own
# ticks, as one line.
snapshot() {
    local cpus
    cpus=$(awk -v a="cpu$SERVER_CPU" -v b="cpu$LOAD_CPU" '$1 == a || $1 == b { t += $2 + $3 + $4; s += $9 } END { print t, s }' /proc/stat)
    echo "$cpus $(awk '{ print $14 + $15 }' "/proc/$server_pid/stat")"
}

# measure OUT CMD...: runs CMD (pinned to LOAD_CPU) with stdout to OUT; leaves
# "user system" in $work/time and "other steal" (% of the two CPUs) in $work/other.
measure() {
    local out=$1; shift
    local before after start end
    before=$(snapshot)
    start=$(date +%s.%N)
    taskset -c "$LOAD_CPU" /usr/bin/time -f "%U %S" -o "$work/time" "$@" >"$out"
    end=$(date +%s.%N)
    after=$(snapshot)
    python3 - "$before" "$after" "$start" "$end" "$(getconf CLK_TCK)" "$work/time" >"$work/other" <<'PY'
import sys
b_cpu, b_steal, b_srv = map(float, sys.argv[1].split())
a_cpu, a_steal, a_srv = map(float, sys.argv[2].split())
wall = float(sys.argv[4]) - float(sys.argv[3])
hz = float(sys.argv[5])
user, system = map(float, open(sys.argv[6]).read().split())
other = (a_cpu - b_cpu) / hz - (a_srv - b_srv) / hz - (user + system)
steal = (a_steal - b_steal) / hz
print(f"{max(other, 0.0) * 100 / (2 * wall):.1f} {steal * 100 / (2 * wall):.1f}")
PY
}

# wrk OUTPUT TIME -> "rps p50 p90 p99 cpu_us_per_request"
wrk_figures() {
    python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
user, system = map(float, open(sys.argv[2]).read().split())
def us(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
pct = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", text, re.M))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
cpu = (user + system) * 1e6 / max(total, 1)
print(f"{rps:.0f} {us(pct['50']):.0f} {us(pct['90']):.0f} {us(pct['99']):.0f} {cpu:.2f}")
PY
}

# tether load JSON TIME -> "rps p50 p90 p99 cpu_us_per_request"
load_figures() {
    python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, system = map(float, open(sys.argv[2]).read().split())
l = r["latency_us"]
cpu = (user + system) * 1e6 / max(r["requests"]["total"], 1)
print(f"{r['requests_per_sec']:.0f} {l['p50']:.0f} {l['p90']:.0f} {l['p99']:.0f} {cpu:.2f}")
PY
}

run_wrk() { # LABEL ARGS...
    local label=$1; shift
    measure "$work/wrk.txt" wrk -t1 -d"${DURATION}s" --latency "$@" "$url"
    echo "$label wrk $(wrk_figures "$work/wrk.txt" "$work/time") $(cat "$work/other")"
}

run_load() { # LABEL ARGS...
    local label=$1; shift
    measure "$work/load.json" "$bin" load "$url" --threads 1 -d "${DURATION}s" --json "$@"
    echo "$label tether-load $(load_figures "$work/load.json" "$work/time") $(cat "$work/other")"
}

echo "server: tether serve --workers 1 on CPU $SERVER_CPU; load on CPU $LOAD_CPU; ${DURATION}s runs"
echo "load tool req/s p50_us p90_us p99_us cpu_us/req other_% steal_%"
for round in $(seq "$ROUNDS"); do
    echo "# round $round"
    run_wrk saturate -c100
    run_load saturate -c 100
    line=$(run_wrk paced -c"$PACED" -s "$work/delay.lua")
    echo "$line"
    run_load paced -c "$PACED" --interval 1
    rate=$(awk '{ print $3 }' <<<"$line")
    run_load rate -c "$PACED" --rate "$rate"
    run_wrk single -c1
    run_load single -c 1
done | tee "$work/runs.txt"

python3 - "$work/runs.txt" "$OTHER_MAX" <<'PY'
import statistics, sys
limit = float(sys.argv[2])
runs = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 9 and not line.startswith("#"):
        runs.append((f[0], f[1], [float(x) for x in f[2:7]], float(f[7]) + float(f[8])))
for title, keep in [(f"runs with other + steal < {limit:g}%", lambda o: o < limit), ("all runs", lambda o: True)]:
    groups = {}
    for load, tool, v, other in runs:
        if keep(other):
            groups.setdefault((load, tool), []).append(v)
    print(f"# median over {title}; ratio = tether-load / wrk (req/s p50 p90 p99 cpu)")
    med = {k: [statistics.median(c) for c in zip(*v)] for k, v in groups.items()}
    for (load, tool), m in med.items():
        ref = med.get((load, "wrk")) if tool != "wrk" else None
        ratio = "  ".join(f"{a / b:.2f}" if b else "-" for a, b in zip(m, ref)) if ref else ""
        n = len(groups[(load, tool)])
        print(f"{load:9} {tool:12} n={n} {m[0]:9.0f} {m[1]:8.0f} {m[2]:8.0f} {m[3]:8.0f} {m[4]:8.2f}   {ratio}")
PY

#!/usr/bin/env bash
# tether beside its peers under four loads, in one run, each server pinned to one core.
#
#   bench/peers.sh                       the default servers (DEFAULT_SERVERS, bench/lib.sh), RUNS rounds
#   bench/peers.sh axum tether-axum      the same axum router on axum::serve and on tether
#   bench/peers.sh tether hyper floor    only these
#   RUNS=1 DURATION=2 SEQ_DURATION=1 WARMUP=1 AB_N=1000 bench/peers.sh   a smoke run
#   OUT=DIR bench/peers.sh               results in DIR (default bench/results/peers-DATE)
#
# Servers must be built first (bench/build-peers.sh); one that is not is skipped. Each runs
# pinned to CPU 0 (taskset), the load generator to CPU 1. The rounds are interleaved (round
# 1 of every server, then round 2 ...) so that a noisy minute does not fall on one server
# only. Loads, all to 127.0.0.1:
#   a  wrk -t1 -c100 -dDURATION --latency     keep-alive
#   b  the same, 16 pipelined requests per write (wrk/pipeline.lua)
#   c  ab -n AB_N -c 50                       one new connection per request (no -k)
#   d  wrk -t1 -c1 -dSEQ_DURATION --latency   one connection, sequential
# Around every load the server's CPU time (utime and stime of the process and its children,
# from /proc/PID/stat) and the load generator's are read, and the busy time of the two CPUs
# (what else ran there is noise, reported). Raw output goes to OUT/logs/, one row per server
# and round to OUT/peers.tsv; bench/report.py turns it into tables.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
SEQ_DURATION=${SEQ_DURATION:-3}
WARMUP=${WARMUP:-1}
AB_N=${AB_N:-20000}
OUT=${OUT:-$BENCH/results/peers-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$OUT/logs"
for tool in wrk ab taskset curl ss python3; do
    command -v "$tool" > /dev/null || { echo "missing $tool" >&2; exit 1; }
done

trap stop_server EXIT
trap 'exit 130' INT TERM

# cpu_fields LOG REQUESTS: server CPU % of one core, load generator CPU %, other CPU %
# (noise), server CPU seconds per 100k requests, of which user seconds (tab-separated)
cpu_fields() {
    awk -v r="${2:-0}" '{
        u = $1; s = $2; w = $3; l = $4; o = $5
        printf "%.0f\t%.0f\t%.0f\t", 100 * (u + s) / w, 100 * l / w, 100 * o / w
        if (r > 0) printf "%.4f\t%.4f", (u + s) * 1e5 / r, u * 1e5 / r; else printf "\t"
    }' "$1.cpu"
}

# field NAME FILE: the value of NAME=... on the RESULT line that wrk/report.lua printed
field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p" "$2" | head -1; }

# wrk_rps FILE: requests per second, or nothing if wrk printed no RESULT line
wrk_rps() {
    local req dur
    req=$(field requests "$1")
    dur=$(field duration_us "$1")
    [ -n "$req" ] && [ -n "$dur" ] && [ "$dur" -gt 0 ] || return 0
    awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r * 1e6 / d }'
}

# wrk_errors FILE: socket errors + non-2xx/3xx responses
wrk_errors() { echo $(($(field errors "$1" || true) + 0 + $(field non2xx "$1" || true) + 0)); }

tsv_row() {
    local IFS=$'\t'
    echo "$*"
}

bench_server() { # RUN NAME
    local run=$1 name=$2
    local log="$OUT/logs/run$run-$name" scratch="$OUT/scratch/$name"
    mkdir -p "$scratch"
    echo "== round $run: $name"
    server_built "$name" || return 0
    start_server "$name" "$scratch" "$log-server.log" || return 0
    local url=$S_URL
    answering "$name" "$url" "$log-server.log" || return 0

    # The contract: 200, body "Hello, World!", Content-Type text/plain.
    local resp status ctype body bytes
    resp=$(curl -s -i --http1.1 "$url")
    bytes=$(printf '%s' "$resp" | wc -c)
    status=$(printf '%s' "$resp" | head -1 | tr -d '\r' | cut -d' ' -f2)
    ctype=$(printf '%s' "$resp" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Tt]ype: *//p')
    body=$(printf '%s' "$resp" | tail -1)
    if [ "$status" != 200 ] || [ "$ctype" != text/plain ] || [ "$body" != "Hello, World!" ]; then
        echo "   wrong response: status=$status content-type=$ctype body=$body" >&2
    fi

    # warm-up (allocators, caches), not recorded
    measure "$log-warmup" wrk -t1 -c100 -d"${WARMUP}s" "$url"

    # a: keep-alive
    measure "$log-a" wrk -t1 -c100 -d"${DURATION}s" --latency -s "$BENCH/wrk/report.lua" "$url"
    local a_rps a_cpu
    a_rps=$(wrk_rps "$log-a.txt")
    a_cpu=$(cpu_fields "$log-a" "$(field requests "$log-a.txt")")

    # b: pipelined, 16 requests per write
    measure "$log-b" wrk -t1 -c100 -d"${DURATION}s" -s "$BENCH/wrk/pipeline.lua" "$url" -- 16
    local b_rps b_cpu
    b_rps=$(wrk_rps "$log-b.txt")
    b_cpu=$(cpu_fields "$log-b" "$(field requests "$log-b.txt")")

    # c: one new TCP connection per request (HTTP/1.0, no keep-alive)
    measure "$log-c" ab -n "$AB_N" -c 50 -s 10 -r "$url"
    local c_rps c_failed c_cpu
    c_rps=$(sed -n 's/^Requests per second: *\([0-9]*\).*/\1/p' "$log-c.txt")
    c_failed=$(sed -n 's/^Failed requests: *\([0-9]*\).*/\1/p' "$log-c.txt")
    c_cpu=$(cpu_fields "$log-c" "$(sed -n 's/^Complete requests: *\([0-9]*\).*/\1/p' "$log-c.txt")")
    if [ -z "$c_rps" ]; then
        c_failed="ab aborted"
        if grep -q 'timeout specified has expired' "$log-c.txt"; then
            c_failed="ab aborted: timeout"
        fi
        c_cpu=$'\t\t\t\t'
    fi

    # d: one connection, one request at a time
    measure "$log-d" wrk -t1 -c1 -d"${SEQ_DURATION}s" --latency -s "$BENCH/wrk/report.lua" "$url"
    local d_rps d_cpu
    d_rps=$(wrk_rps "$log-d.txt")
    d_cpu=$(cpu_fields "$log-d" "$(field requests "$log-d.txt")")

    if ! kill -0 "$SERVER_PID" 2> /dev/null; then
        echo "   the server died during the loads (see $log-server.log)" >&2
    fi
    stop_server

    tsv_row "$run" "$name" "$bytes" \
        "$a_rps" "$(field mean_us "$log-a.txt")" "$(field p99_us "$log-a.txt")" \
        "$(wrk_errors "$log-a.txt")" "$a_cpu" \
        "$b_rps" "$(wrk_errors "$log-b.txt")" "$b_cpu" \
        "$c_rps" "$c_failed" "$c_cpu" \
        "$d_rps" "$(field mean_us "$log-d.txt")" "$(field p50_us "$log-d.txt")" "$d_cpu" \
        >> "$TSV"
    echo "   a ${a_rps:-?} req/s | b ${b_rps:-?} req/s | c ${c_rps:-?} req/s" \
        "(failed: ${c_failed:-?}) | d ${d_rps:-?} req/s"
    echo "   CPU % server, load, other; server s/100k, user s/100k: a [$a_cpu] b [$b_cpu]" \
        "c [$c_cpu]" | tr '\t' ' '
}

TSV=$OUT/logs/peers.tsv.partial
cpu_head() {
    local f
    for f in srv_cpu_pct load_cpu_pct other_cpu_pct cpu_s_per_100k user_s_per_100k; do
        echo "$1_$f"
    done
}
# shellcheck disable=SC2046 # one column name per word
tsv_row run server resp_bytes \
    a_rps a_mean_us a_p99_us a_errors $(cpu_head a) \
    b_rps b_errors $(cpu_head b) \
    c_rps c_failed $(cpu_head c) \
    d_rps d_mean_us d_p50_us $(cpu_head d) > "$TSV"
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "rounds: $RUNS interleaved rounds; ${DURATION} s for a and b, ${SEQ_DURATION} s for d," \
        "ab -n $AB_N; ${WARMUP} s of warm-up per server"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$OUT/peers-meta.txt"

read -r -a servers <<< "$(selected_servers "$@")"
for run in $(seq "$RUNS"); do
    for name in "${servers[@]}"; do
        bench_server "$run" "$name"
    done
done
rm -rf "$OUT/scratch"
mv "$TSV" "$OUT/peers.tsv"
echo "wrote $OUT/peers.tsv"

#!/usr/bin/env bash
# `tether serve DIR` as a static file server beside nginx, static-web-server and miniserve,
# in one run, each server pinned to one core, then the "files" table of BENCHMARKS.md
# rewritten from the results.
#
#   bench/files.sh                       all four servers, RUNS rounds (about 4 minutes on 2 cores)
#   bench/files.sh tether nginx          only these (names: tether nginx sws miniserve)
#   RUNS=1 DURATION=2 WARMUP=0 DOC= bench/files.sh    a smoke run (about 30 s), results.md only
#   DOC= bench/files.sh                  leave BENCHMARKS.md alone (results.md only)
#   OUT=DIR bench/files.sh               results in DIR (default bench/results/files-DATE)
#
# Knobs: RUNS (interleaved rounds, 3), DURATION (seconds per load, 5), WARMUP (seconds of
# keep-alive load on /1k.bin before a server's loads, not recorded, 1; 0 for none), B_CONNS
# (connections of load b, 4), TREE (where to make the tree; a temporary folder by default).
#
# The servers, all serving the same tree, one worker, logs and access logs off:
#   tether     tether serve --workers 1 (this tree's build: sendfile(2), TCP_CORK, an
#              open-file cache)
#   nginx      Debian's, worker_processes 1, sendfile on, tcp_nopush on, open_file_cache
#              (bench/peers/files/nginx.conf)
#   sws        static-web-server from crates.io, --threads-multiplier 1 (one worker thread
#              per CPU it may run on: one, under taskset), dynamic compression off so that
#              it sends the file as it is, no configuration file (--config-file /dev/null)
#   miniserve  miniserve from crates.io, --workers 1 (it lists folders; only files are asked)
# static-web-server and miniserve are built on demand (cargo install --locked into
# bench/peers/files/bin/, ignored by git) when missing (remove that folder to build them
# anew); tether with cargo build --release -p tether-cli.
#
# The tree, made by the script in a temporary folder: 1k.bin (1 KiB) and 100m.bin (100 MiB),
# random bytes, so that nothing compresses and every server sends the same bodies. Each
# server runs pinned to CPU 0 (taskset), the load generator to CPU 1. The rounds are
# interleaved (round 1 of every server, then round 2 ...) so that a noisy minute does not
# fall on one server only. Loads, all to 127.0.0.1:
#   a  GET /1k.bin, wrk -t1 -c100 -dDURATION, keep-alive: requests/s and server CPU seconds
#      per 100,000 requests (what a small file costs: the request, the open-file lookup, the
#      headers, the body).
#   b  GET /100m.bin, wrk -t1 -cB_CONNS -dDURATION, keep-alive: MiB/s and server CPU seconds
#      per GiB sent (what moving the bytes costs: sendfile(2) against read and write).
#      wrk reads every body to its end on a kept connection and counts every byte it reads,
#      the part of a body still in flight at the end too, so bytes / server CPU is the
#      server's cost per byte; no process starts per transfer (as a loop of curl would
#      have), and a few connections keep the server busy while one waits on a full socket.
#      wrk reads 8 KiB at a time, so MiB/s is most likely wrk's limit (its CPU % tells).
#   c  GET /1k.bin with the validator of the server's own answer, wrk -t1 -c100: every
#      response a 304 (revalidation): requests/s and server CPU seconds per 100,000
#      requests. The validator is the ETag (If-None-Match) when the server sends one, else
#      Last-Modified (If-Modified-Since: static-web-server sends no ETag); one curl checks
#      the 304 first, and the load is skipped, loudly, for a server that does not answer it.
#      wrk counts a 304 as a success; the bytes per response it read (headers only, no
#      body) are recorded as a check.
# Around every load the server's CPU time (utime and stime of the process, all its threads,
# and its direct children, from /proc/PID/stat) and the load generator's are read, and the
# busy time of the two CPUs (what else ran there is noise, reported).
#
# Targets: (a) and (c) tether's CPU per request at most nginx's; (b) tether's CPU per GiB at
# most 1.1 x nginx's and below both static-web-server's and miniserve's.
#
# Raw output goes to OUT/logs/, one row per server and round to OUT/files.tsv, the run's
# facts to OUT/meta.txt; bench/report.py turns them into OUT/results.md and, unless DOC is
# empty, rewrites the "files" section of DOC (default BENCHMARKS.md). Nothing here runs in CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
B_CONNS=${B_CONNS:-4}
OUT=${OUT:-$BENCH/results/files-$(date -u +%Y%m%d-%H%M%S)}
DOC=${DOC-$ROOT/BENCHMARKS.md}
FILES=$BENCH/peers/files
PEER_BIN=$FILES/bin/bin # cargo install --root $FILES/bin puts programs in bin/ below it
FILE_SERVERS=(tether nginx sws miniserve)
for tool in wrk taskset curl ss python3 cargo; do
    command -v "$tool" > /dev/null || { echo "missing $tool" >&2; exit 1; }
done

start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------- build

# build_peer NAME CRATE: cargo install CRATE into bench/peers/files/bin unless its program
# is there; the log goes to bench/results/build/NAME.log. Fails if the build fails.
build_peer() {
    local name=$1 crate=$2 logs=$BENCH/results/build
    [ -x "$PEER_BIN/$crate" ] && return 0
    mkdir -p "$logs"
    echo "building $crate (cargo install --locked; several minutes)"
    if cargo install --locked --root "$FILES/bin" "$crate" > "$logs/$name.log" 2>&1; then
        echo "built $name"
    else
        echo "FAILED to build $name (see $logs/$name.log); skipped" >&2
        return 1
    fi
}

servers=("$@")
[ $# -gt 0 ] || servers=("${FILE_SERVERS[@]}")
for name in "${servers[@]}"; do
    case " ${FILE_SERVERS[*]} " in
        *" $name "*) ;;
        *) echo "unknown server: $name (known: ${FILE_SERVERS[*]})" >&2; exit 1 ;;
    esac
done

cargo build --release -p tether-cli --manifest-path "$ROOT/Cargo.toml"
for name in "${servers[@]}"; do
    case $name in
        sws) build_peer sws static-web-server || true ;;
        miniserve) build_peer miniserve miniserve || true ;;
    esac
done

# ---------------------------------------------------------------------------- the tree

mkdir -p "$OUT/logs"
cleanup() {
    stop_server
    [ -z "$TREE_MADE" ] || rm -rf "$TREE"
    rm -rf "$OUT/scratch"
}
TREE_MADE=
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -z "${TREE:-}" ]; then
    TREE=$(mktemp -d)
    TREE_MADE=1
fi
mkdir -p "$TREE"
head -c 1024 /dev/urandom > "$TREE/1k.bin"
head -c $((100 << 20)) /dev/urandom > "$TREE/100m.bin"
TREE=$(cd "$TREE" && pwd)
chmod a+rx "$TREE" # nginx's worker runs as nobody when started as root
chmod a+r "$TREE"/*.bin
SMALL_BYTES=1024
BIG_BYTES=$((100 << 20))

# ---------------------------------------------------------------------------- the servers

# The entries of bench/lib.sh's start_server (name|path|command), replacing its list of
# hello-world servers: path is the file of loads a and c.
# shellcheck disable=SC2034 # SERVERS and ALL_SERVERS are read by bench/lib.sh's functions
SERVERS=(
    "tether|/1k.bin|$TETHER_BIN serve --workers 1 --listen $HOST:{port} $TREE"
    "nginx|/1k.bin|nginx -p {run}/nginx/ -c nginx.conf -e stderr"
    "sws|/1k.bin|$PEER_BIN/static-web-server --host $HOST --port {port} --root $TREE --threads-multiplier 1 --compression false --log-level error --config-file /dev/null"
    "miniserve|/1k.bin|$PEER_BIN/miniserve --interfaces $HOST --port {port} --workers 1 --quiet $TREE"
)
# shellcheck disable=SC2034
ALL_SERVERS=("${FILE_SERVERS[@]}")

# prepare_run NAME RUN_DIR (replaces bench/lib.sh's): nginx's prefix folder, with the file
# server's configuration.
prepare_run() {
    if [ "$1" = nginx ]; then
        mkdir -p "$2/nginx/run"
        sed -e "s|{port}|$S_PORT|" -e "s|{root}|$TREE|" "$FILES/nginx.conf" > "$2/nginx/nginx.conf"
    fi
}

# ---------------------------------------------------------------------------- measuring
# cpu_ticks, cpus_busy and measure come from lib.sh (bounded at DURATION + 60 s here);
# cpu_fields here takes the unit of the load (requests or bytes).
MEASURE_LIMIT=$((DURATION + 60))

# cpu_fields LOG UNITS SCALE: server CPU % of one core, load generator CPU %, other CPU %
# (noise), server CPU seconds per SCALE UNITS, of which user seconds (tab-separated)
cpu_fields() {
    awk -v n="${2:-0}" -v k="$3" '{
        u = $1; s = $2; w = $3; l = $4; o = $5
        printf "%.0f\t%.0f\t%.0f\t", 100 * (u + s) / w, 100 * l / w, 100 * o / w
        if (n > 0) printf "%.4f\t%.4f", (u + s) * k / n, u * k / n; else printf "\t"
    }' "$1.cpu"
}

# field NAME FILE: the value of NAME=... on the RESULT line that wrk/report.lua printed
field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p" "$2" | head -1; }

# per_second FILE NAME [DIVISOR]: NAME (requests, bytes) per second of the wrk run, divided
# by DIVISOR; nothing if wrk printed no RESULT line
per_second() {
    local n dur
    n=$(field "$2" "$1")
    dur=$(field duration_us "$1")
    [ -n "$n" ] && [ -n "$dur" ] && [ "$dur" -gt 0 ] || return 0
    awk -v n="$n" -v d="$dur" -v k="${3:-1}" 'BEGIN { printf "%.0f", n * 1e6 / d / k }'
}

# per_request FILE: bytes read per response (head and body)
per_request() {
    local req bytes
    req=$(field requests "$1")
    bytes=$(field bytes "$1")
    [ -n "$req" ] && [ "$req" -gt 0 ] || return 0
    awk -v r="$req" -v b="$bytes" 'BEGIN { printf "%.0f", b / r }'
}

# wrk_errors FILE: socket errors + responses with a status of 400 or more
wrk_errors() { echo $(($(field errors "$1" || true) + 0 + $(field non2xx "$1" || true) + 0)); }

tsv_row() {
    local IFS=$'\t'
    echo "$*"
}

# header NAME: the value of header NAME in a response head on stdin
header() { tr -d '\r' | sed -n "s/^$1: *//Ip" | head -1; }

bench_server() { # RUN NAME
    local run=$1 name=$2
    local log="$OUT/logs/run$run-$name" scratch="$OUT/scratch/$name"
    mkdir -p "$scratch"
    echo "== round $run: $name"
    server_built "$name" 2> /dev/null || {
        echo "   $name is not built or installed; skipped" >&2
        return 0
    }
    start_server "$name" "$scratch" "$log-server.log" || return 0
    local base="http://$HOST:$S_PORT"
    answering "$name" "$base/1k.bin" "$log-server.log" || return 0

    # The contract: 200 and the whole file, for both files.
    local resp_head status got problem=
    resp_head=$(curl -s -D - -o /dev/null --http1.1 "$base/1k.bin")
    local resp_bytes
    resp_bytes=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' --http1.1 "$base/1k.bin" |
        awk '{ print $1 + $2 }')
    status=$(head -1 <<< "$resp_head" | cut -d' ' -f2)
    got=$(header content-length <<< "$resp_head")
    [ "$status" = 200 ] && [ "$got" = "$SMALL_BYTES" ] ||
        problem="1k.bin: status $status, content-length $got"
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --http1.1 "$base/100m.bin")
    [ "$got" = "200 $BIG_BYTES" ] || problem+="${problem:+; }100m.bin: status and bytes $got"
    if [ -n "$problem" ]; then
        echo "   wrong response ($problem); skipped" >&2
        stop_server
        return 0
    fi

    # the validator of load c: the ETag, or Last-Modified if the server sends no ETag
    local validator cond
    validator=$(header etag <<< "$resp_head")
    if [ -n "$validator" ]; then
        cond="If-None-Match: $validator"
    else
        validator=$(header last-modified <<< "$resp_head")
        cond="If-Modified-Since: $validator"
    fi
    got=$(curl -s -o /dev/null -w '%{http_code}' --http1.1 -H "$cond" "$base/1k.bin")
    if [ -z "$validator" ] || [ "$got" != 304 ]; then
        echo "   *** $name answers $got, not 304, to \"$cond\": no load c ***" >&2
        cond=
    fi

    if [ "$WARMUP" != 0 ]; then # allocators, caches; not recorded
        measure "$log-warmup" wrk -t1 -c100 -d"${WARMUP}s" "$base/1k.bin"
    fi

    # a: 1 KiB, keep-alive
    measure "$log-a" wrk -t1 -c100 -d"${DURATION}s" --latency -s "$BENCH/wrk/report.lua" \
        "$base/1k.bin"
    local a_cpu
    a_cpu=$(cpu_fields "$log-a" "$(field requests "$log-a.txt")" 1e5)

    # b: 100 MiB, a few keep-alive connections
    measure "$log-b" wrk -t1 -c"$B_CONNS" -d"${DURATION}s" --timeout 60s \
        -s "$BENCH/wrk/report.lua" "$base/100m.bin"
    local b_cpu
    b_cpu=$(cpu_fields "$log-b" "$(field bytes "$log-b.txt")" $((1 << 30)))

    # c: 304 to a conditional GET of 1k.bin
    local c_cpu=$'\t\t\t\t' c_kind=
    if [ -n "$cond" ]; then
        c_kind=$(cut -d: -f1 <<< "$cond")
        measure "$log-c" wrk -t1 -c100 -d"${DURATION}s" --latency -s "$BENCH/wrk/report.lua" \
            -H "$cond" "$base/1k.bin"
        c_cpu=$(cpu_fields "$log-c" "$(field requests "$log-c.txt")" 1e5)
        got=$(curl -s -o /dev/null -w '%{http_code}' --http1.1 -H "$cond" "$base/1k.bin")
        [ "$got" = 304 ] || echo "   *** $name answered $got after load c, not 304 ***" >&2
    fi

    if ! kill -0 "$SERVER_PID" 2> /dev/null; then
        echo "   the server died during the loads (see $log-server.log)" >&2
    fi
    stop_server

    local c_cols=("" "" "" "" "")
    if [ -n "$cond" ]; then
        c_cols=("$(per_second "$log-c.txt" requests)" "$(per_request "$log-c.txt")"
            "$(field mean_us "$log-c.txt")" "$(field p99_us "$log-c.txt")"
            "$(wrk_errors "$log-c.txt")")
    fi
    tsv_row "$run" "$name" "$resp_bytes" \
        "$(per_second "$log-a.txt" requests)" "$(per_request "$log-a.txt")" \
        "$(field mean_us "$log-a.txt")" "$(field p99_us "$log-a.txt")" \
        "$(wrk_errors "$log-a.txt")" "$a_cpu" \
        "$(per_second "$log-b.txt" bytes $((1 << 20)))" "$(field bytes "$log-b.txt")" \
        "$(field requests "$log-b.txt")" "$(wrk_errors "$log-b.txt")" "$b_cpu" \
        "$c_kind" "${c_cols[@]}" "$c_cpu" >> "$TSV"
    tail -1 "$TSV" | awk -F'\t' '{
        printf "   a %s req/s, %s s/100k | b %s MiB/s, %s s/GiB | c %s req/s, %s s/100k (%s)\n",
            $4, $12, $14, $21, $24, $32, $23 }'
}

TSV=$OUT/logs/files.tsv.partial
cpu_head() { # LOAD UNIT
    local f
    for f in srv_cpu_pct load_cpu_pct other_cpu_pct "cpu_s_per_$2" "user_s_per_$2"; do
        echo "$1_$f"
    done
}
# shellcheck disable=SC2046 # one column name per word
tsv_row run server resp_bytes \
    a_rps a_bytes_per_resp a_mean_us a_p99_us a_errors $(cpu_head a 100k) \
    b_mib_s b_bytes b_responses b_errors $(cpu_head b gib) \
    c_validator c_rps c_bytes_per_resp c_mean_us c_p99_us c_errors $(cpu_head c 100k) > "$TSV"

for run in $(seq "$RUNS"); do
    for name in "${servers[@]}"; do
        bench_server "$run" "$name"
    done
done
mv "$TSV" "$OUT/files.tsv"
echo "wrote $OUT/files.tsv"

elapsed=$(($(date +%s) - start))
{
    run_meta "bench/files.sh${*:+ $*}" "$elapsed" "$load_before"
    echo "files rounds: $RUNS interleaved rounds; ${DURATION} s per load, ${WARMUP} s of" \
        "warm-up per server; b over $B_CONNS connections"
    echo "version nginx: $(nginx -v 2>&1 | sed 's|^nginx version: nginx/||'), worker_processes 1," \
        "sendfile on, tcp_nopush on, open_file_cache max=1000"
    if [ -x "$PEER_BIN/static-web-server" ]; then
        echo "version static-web-server: $("$PEER_BIN/static-web-server" --version |
            sed -n 's/^Version: *//p'), --threads-multiplier 1, --compression false"
    fi
    if [ -x "$PEER_BIN/miniserve" ]; then
        echo "version miniserve: $("$PEER_BIN/miniserve" --version | sed 's/^miniserve //')," \
            "--workers 1"
    fi
} > "$OUT/meta.txt"

write_report
echo "results: $OUT ($((elapsed / 60)) min $((elapsed % 60)) s)"

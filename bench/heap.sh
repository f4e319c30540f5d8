#!/usr/bin/env bash
# Heap allocations of the real server binaries, per keep-alive request and per connection,
# from valgrind memcheck's heap summary (every malloc, calloc and realloc of the process).
#
#   bench/heap.sh                   tether, hyper, may_minihttp, actix, floor
#   bench/heap.sh tether hyper      only these
#   bench/heap.sh axum tether-axum  the same axum router on axum::serve and on tether
#   HEAP_N=2000 CONNS=300 OUT=DIR bench/heap.sh
#
# Per request: 1,000 then 1,000 + HEAP_N sequential keep-alive requests over one connection;
# the difference over HEAP_N. Per connection: 100 then 100 + CONNS connections, each accepted, given
# one request and closed by the client; the difference over CONNS (it covers accept, the
# request and the close). The engine's own proof of zero allocations per request is the
# counting-allocator test (cargo test --release -p tether --test alloc), which bench/alloc.sh
# runs; this script gives the same kind of figure for the peers. With OUT set it appends
# "server allocs_per_request bytes_per_request allocs_per_connection bytes_per_connection
# requests connections" rows to OUT/heap.tsv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HEAP_N=${HEAP_N:-2000}
CONNS=${CONNS:-300}
valgrind_setup heap.tsv server allocs_per_request bytes_per_request allocs_per_connection \
    bytes_per_connection requests connections

usage() { # NAME TAG CLIENT_ARGS... -> "ALLOCS BYTES" allocated over the server's whole run
    local name=$1 log="$scratch/$1.$2.log"
    shift 2
    valgrind_session "$name" "$scratch" "$log" --tool=memcheck --leak-check=no \
        --undef-value-errors=no -- "$@" || return 1
    # "==PID== total heap usage: 1,234 allocs, 1,200 frees, 56,789 bytes allocated"
    sed -n 's/.*total heap usage: \([0-9,]*\) allocs, [0-9,]* frees, \([0-9,]*\) bytes allocated.*/\1 \2/p' \
        "$log" | tr -d , | tail -1 | grep . ||
        { echo "$name: no heap summary (see $log)" >&2; return 1; }
}

per() { # A B COUNT: "allocs bytes" per unit, from two "ALLOCS BYTES" pairs
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%.2f %.0f", (y[1] - x[1]) / n, (y[2] - x[2]) / n
    }'
}

read -r -a servers <<< "$(selected_servers "$@")"
[ $# -gt 0 ] || servers=(tether hyper may_minihttp actix floor)
for name in "${servers[@]}"; do
    server_built "$name" || continue
    a=$(usage "$name" req1 1000) || continue
    b=$(usage "$name" req2 $((1000 + HEAP_N))) || continue
    read -r req_allocs req_bytes <<< "$(per "$a" "$b" "$HEAP_N")"
    a=$(usage "$name" conn1 100 --connections) || continue
    b=$(usage "$name" conn2 $((100 + CONNS)) --connections) || continue
    read -r conn_allocs conn_bytes <<< "$(per "$a" "$b" "$CONNS")"
    echo "$name: $req_allocs allocations ($req_bytes bytes) per keep-alive request," \
        "$conn_allocs allocations ($conn_bytes bytes) per connection"
    [ -z "${OUT:-}" ] || printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$req_allocs" \
        "$req_bytes" "$conn_allocs" "$conn_bytes" "$HEAP_N" "$CONNS" >> "$OUT/heap.tsv"
done

#!/usr/bin/env bash
# Instructions per request (valgrind --tool=callgrind): a count that machine noise does not
# move, so that regressions show.
#
#   bench/callgrind.sh                        tether, hyper, may_minihttp, actix, floor
#   bench/callgrind.sh tether hyper           only these
#   bench/callgrind.sh axum tether-axum       the same axum router on axum::serve and on tether
#   DEPTHS=1 N=5000 OUT=DIR bench/callgrind.sh
#
# Each server runs twice under callgrind: once for 1,000 x DEPTH keep-alive requests over one
# connection and once for (1,000 + N) x DEPTH; the difference over N x DEPTH requests is the
# steady-state cost of one request, without start-up and shutdown. DEPTH 1 is one request
# at a time, DEPTH 16 pipelines 16 requests per write. DEPTH cC is C connections at once,
# one request at a time on each (`tether load` as the client), 100 x C then 100 x C + 10 x N
# requests in all: the instruction count behind user CPU under a closed-loop load, where
# the server finds many connections ready at each wake-up (DEPTHS="1 16 c100" by
# default). tether runs
# with --max-requests 0 so that one connection carries every request. Servers must be built
# (bench/build-peers.sh); one that is not is skipped. Prints one line per server and depth,
# and with OUT set appends "server depth instructions measured_requests" rows to
# OUT/callgrind.tsv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DEPTHS=${DEPTHS:-1 16 c100}
N=${N:-5000}
valgrind_setup callgrind.tsv server depth instructions measured_requests

total() { # NAME REQUESTS DEPTH -> total instructions of the server's run
    local name=$1 n=$2 depth=$3 file="$scratch/$1.$2.out" client
    client=("$n" "$depth")
    [[ $depth != c* ]] || client=(--load "${depth#c}" "$n")
    valgrind_session "$name" "$scratch" "$scratch/$name.$n.log" \
        --tool=callgrind --callgrind-out-file="$file" -- "${client[@]}" || return 1
    [ -s "$file" ] || { echo "$name: callgrind wrote nothing (see $scratch/$name.$n.log)" >&2; return 1; }
    sed -n 's/^summary: //p; s/^totals: //p' "$file" | head -1
}

read -r -a servers <<< "$(selected_servers "$@")"
[ $# -gt 0 ] || servers=(tether hyper may_minihttp actix floor)
for depth in $DEPTHS; do
    for name in "${servers[@]}"; do
        server_built "$name" || continue
        if [[ $depth == c* ]]; then
            first=$((100 * ${depth#c})) measured=$((10 * N))
        else
            first=$((1000 * depth)) measured=$((N * depth))
        fi
        a=$(total "$name" "$first" "$depth") || continue
        b=$(total "$name" $((first + measured)) "$depth") || continue
        per=$(((b - a) / measured))
        echo "$name: $per instructions per request (depth $depth)"
        [ -z "${OUT:-}" ] || printf '%s\t%s\t%s\t%s\n' "$name" "$depth" "$per" "$measured" \
            >> "$OUT/callgrind.tsv"
    done
done

#!/usr/bin/env bash
# The same axum router on axum::serve (hyper) and on tether's tower adapter, in one run,
# then the "axum" tables of BENCHMARKS.md rewritten from the results.
#
#   bench/axum.sh                 build, measure (about 8 minutes on 2 cores), rewrite
#   RUNS=5 bench/axum.sh          more rounds of the four loads (3 by default)
#   DOC= bench/axum.sh            leave BENCHMARKS.md alone (results.md only)
#
# Steps: build-peers.sh axum tether-axum floor (one crate, bench/peers/axum, and the C
# floor), peers.sh (the four loads, interleaved rounds; the floor runs beside the two as the
# least CPU per request any server can reach on this machine), callgrind.sh (instructions per request, sequential and 100
# connections), heap.sh (allocations per request and per connection), the router's own
# instructions (axum-peer --direct: called without a server), then report.py.
# Results go to bench/results/axum-DATE/ (OUT=DIR to choose). Nothing here runs in CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OUT=${OUT:-$BENCH/results/axum-$(date -u +%Y%m%d-%H%M%S)}
DOC=${DOC-$ROOT/BENCHMARKS.md}
export OUT RUNS=${RUNS:-3}
mkdir -p "$OUT"
start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

"$BENCH/build-peers.sh" axum tether-axum floor
"$BENCH/peers.sh" axum tether-axum floor
DEPTHS="1 c100" "$BENCH/callgrind.sh" axum tether-axum
"$BENCH/heap.sh" axum tether-axum

# The router alone (axum-peer --direct N: no server, no socket): its instructions per
# request, the part of both servers' figures that is axum's, as a row "axum-direct 1".
direct() { # N -> total instructions
    local file
    file=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$BENCH/peers/axum/target/release/axum-peer" --direct "$1" > /dev/null 2>&1
    sed -n 's/^summary: //p; s/^totals: //p' "$file" | head -1
    rm -f "$file"
}
a=$(direct 1000)
b=$(direct 6000)
echo "axum-direct: $(((b - a) / 5000)) instructions per request (the router alone)"
printf 'axum-direct\t1\t%s\t5000\n' "$(((b - a) / 5000))" >> "$OUT/callgrind.tsv"

elapsed=$(($(date +%s) - start))
{
    run_meta "bench/axum.sh" "$elapsed" "$load_before"
    echo "version axum: axum $(lock_version axum axum), hyper $(lock_version axum hyper), hyper-util" \
        "$(lock_version axum hyper-util), tokio $(lock_version axum tokio); axum::serve on a" \
        "current-thread runtime; on tether: tether::tower::run_make_until, workers(1)"
} > "$OUT/meta.txt"

write_report
echo "results: $OUT ($((elapsed / 60)) min $((elapsed % 60)) s)"

#!/usr/bin/env bash
# tether beside peer servers, measured in one run by the shared peer harness.
#
#   bench/peers.sh                      tether, hyper and the C floor, 2 interleaved runs
#   bench/peers.sh tether hyper actix   any servers the harness knows
#   RUNS=1 DURATION=3 bench/peers.sh    a shorter run (the harness's variables apply)
#
# The server is pinned to CPU 0 with one worker, the load generator (wrk, ab) to CPU 1.
# Results go to bench/results/peers-DATE/ (results.md, results.tsv, logs/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS:-$root/../shared/peers}
[ -x "$peers/run.sh" ] || { echo "peer harness not found at $peers (set PEERS)" >&2; exit 1; }
cargo build --release -p tether-cli --manifest-path "$root/Cargo.toml"
out=$root/bench/results/peers-$(date -u +%Y%m%d-%H%M)
mkdir -p "$out"
[ $# -gt 0 ] || set -- tether hyper floor
TETHER="$root/target/release/tether serve --workers 1 --listen 127.0.0.1:{port}" \
    TETHER_PATH=/plaintext OUT="$out" "$peers/run.sh" "$@"
echo "results: $out/results.md"

#!/usr/bin/env bash
# tether's heap allocations per steady-state request and per connection, from the
# counting-allocator test of the engine (crates/tether/tests/alloc.rs).
#
#   bench/alloc.sh              prints the figures
#   OUT=DIR bench/alloc.sh      also writes OUT/alloc.txt (the test's output) and OUT/alloc.tsv
#
# The test counts every allocation of its process over 10,000 keep-alive requests on one
# connection, after 1,000 warm-up requests, for GET /plaintext (static body) and POST /echo
# (32-byte body read and written back), and over 100 connections of one request each
# (accept, request, close). It fails if a steady-state request allocates.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release -p tether --manifest-path "$ROOT/Cargo.toml" --test alloc \
    -- --nocapture --test-threads=1 > "$log" 2>&1 || status=$?

# "GET /plaintext HTTP/1.1: 0 allocations over 10000 requests (0 per request); ..."
per_request() {
    grep -o "$1 HTTP/1.1: [0-9]* allocations over [0-9]* requests" "$log" | head -1 |
        awk '{ printf "%g", $(NF - 4) / $(NF - 1) }'
}
plaintext=$(per_request "GET /plaintext")
echo_=$(per_request "POST /echo")
# "400 allocations over 100 connections of one request each: 4 per connection; ..."
per_conn=$(grep -o '[0-9]* allocations over [0-9]* connections' "$log" | head -1 |
    awk '{ printf "%g", $1 / $4 }')
result=$(grep -E '^test result:' "$log" | tail -1 || true)

echo "plaintext: ${plaintext:-?} allocations per request; echo: ${echo_:-?} per request;" \
    "${per_conn:-?} per connection (accept, one request, close)"
echo "${result:-no test result}"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    cp "$log" "$OUT/alloc.txt"
    printf 'plaintext_per_request\techo_per_request\tper_connection\ttest_status\n%s\t%s\t%s\t%s\n' \
        "$plaintext" "$echo_" "$per_conn" "$status" > "$OUT/alloc.tsv"
fi
if [ "$status" != 0 ]; then
    tail -40 "$log" >&2
    echo "the allocation test failed (status $status)" >&2
    exit "$status"
fi

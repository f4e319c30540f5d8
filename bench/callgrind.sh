#!/usr/bin/env bash
# Instructions per request (valgrind --tool=callgrind), stable across noisy runs.
#
#   bench/callgrind.sh [DEPTH]     tether serve and, if built, the hyper peer
#
# Each server runs twice under callgrind: once for 1,000 x DEPTH requests over one
# keep-alive connection and once for 6,000 x DEPTH; the difference over 5,000 x DEPTH is the
# steady-state cost of one request, without start-up. DEPTH > 1 pipelines that many
# requests per write.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
depth=${1:-1}
peers=${PEERS:-$root/../shared/peers}
cargo build --release -p tether-cli --manifest-path "$root/Cargo.toml" >&2
out=$(mktemp -d)

total() { # NAME N COMMAND... -> total instructions
    local name=$1 n=$2 port; shift 2
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    local cmd=("${@//\{port\}/$port}")
    valgrind --tool=callgrind --callgrind-out-file="$out/$name.$n" "${cmd[@]}" > /dev/null 2> "$out/$name.$n.log" &
    local pid=$!
    # Wait for the listening socket without connecting to it (a probe connection would
    # count as work in one run and not the other).
    for _ in $(seq 100); do
        ss -Htln "sport = :$port" | grep -q . && break
        sleep 0.2
    done
    python3 "$root/bench/client.py" "$port" "$n" "$depth" > /dev/null || echo "$name: client failed" >&2
    # SIGINT first (callgrind writes its profile on any exit); some servers want SIGTERM.
    kill -INT "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -TERM "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    sed -n 's/^summary: //p; s/^totals: //p' "$out/$name.$n" | head -1
}

per_request() { # NAME COMMAND...
    local name=$1 a b n=$((5000 * depth)); shift
    a=$(total "$name" $((1000 * depth)) "$@"); b=$(total "$name" $((1000 * depth + n)) "$@")
    echo "$name: $(( (b - a) / n )) instructions per request (depth $depth)"
}

# One connection carries every request: no per-connection request limit.
per_request tether "$root/target/release/tether" serve --workers 1 --max-requests 0 \
    --listen "127.0.0.1:{port}"
hyper=$peers/hyper-hello/target/release/hyper-hello
if [ -x "$hyper" ]; then per_request hyper "$hyper" "127.0.0.1:{port}"; fi
rm -rf "$out"

#!/usr/bin/env bash
# Builds the servers under test, on demand.
#
#   bench/build-peers.sh                 the default servers (DEFAULT_SERVERS, bench/lib.sh)
#   bench/build-peers.sh tether floor    only these
#   bench/build-peers.sh axum tether-axum    the axum peer (one crate, both modes)
#
# tether is `cargo build --release -p tether-cli` of this tree. The Rust peers are crates of
# their own under bench/peers/ (each has its own [workspace] table and the root Cargo.toml
# excludes them), built into their own target/ folder. The floor is built with gcc, the Go
# peer with Debian's golang-go, nginx is Debian's package. A peer whose toolchain is missing
# or whose build fails is reported and skipped; the scripts that measure skip it too. Build
# logs go to bench/results/build/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

logs=$BENCH/results/build
mkdir -p "$logs"
failed=0

step() { # NAME COMMAND...: run COMMAND, log to $logs/NAME.log
    local name=$1
    shift
    if "$@" > "$logs/$name.log" 2>&1; then
        echo "built $name"
    else
        echo "FAILED to build $name (see $logs/$name.log); skipped" >&2
        failed=$((failed + 1))
    fi
}

cargo_peer() { # NAME FOLDER
    if ! command -v cargo > /dev/null; then
        echo "skipped $1: cargo not found" >&2
        return
    fi
    step "$1" cargo build --release --manifest-path "$BENCH/peers/$2/Cargo.toml" \
        --target-dir "$BENCH/peers/$2/target"
}

for name in $(selected_servers "$@"); do
    case $name in
        tether)
            # The engine itself must build: a failure here stops everything.
            cargo build --release -p tether-cli --manifest-path "$ROOT/Cargo.toml"
            echo "built tether"
            ;;
        hyper | actix | may_minihttp) cargo_peer "$name" "$name" ;;
        # One crate, bench/peers/axum, for both (tether-axum is `axum-peer --tether`, tether
        # by path from this tree): built once when both are named.
        axum | tether-axum)
            [ -z "${axum_built:-}" ] || continue
            axum_built=1
            cargo_peer axum axum
            ;;
        floor)
            if command -v gcc > /dev/null; then
                step floor gcc -O2 -Wall -Wextra -o "$BENCH/floor/floor" "$BENCH/floor/floor.c"
            else
                echo "skipped floor: apt-get install gcc" >&2
            fi
            ;;
        go-nethttp)
            if command -v go > /dev/null; then
                step go-nethttp env GO111MODULE=off go build -trimpath -o "$BENCH/peers/go-nethttp/go-nethttp" \
                    "$BENCH/peers/go-nethttp/main.go"
            else
                echo "skipped go-nethttp: apt-get install golang-go" >&2
            fi
            ;;
        nginx)
            if command -v nginx > /dev/null || [ -x /usr/sbin/nginx ]; then
                echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //') (installed)"
            else
                echo "skipped nginx: apt-get install nginx-light" >&2
            fi
            ;;
        *) server_entry "$name" ;;
    esac
done
[ "$failed" = 0 ] || echo "$failed build(s) failed; the others are measured" >&2

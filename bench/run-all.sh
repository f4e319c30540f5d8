#!/usr/bin/env bash
# Every benchmark of bench/, then the tables of BENCHMARKS.md rewritten from the results.
#
#   bench/run-all.sh              build, measure (about 13 minutes on 2 cores), rewrite
#   QUICK=1 bench/run-all.sh      a smoke run of every script in about 3 minutes; its figures
#                                 go to results.md only, not to BENCHMARKS.md
#   DOC=FILE bench/run-all.sh     rewrite FILE instead of BENCHMARKS.md (DOC= : none)
#   WAIT_QUIET=300 bench/run-all.sh   first wait up to 300 s for the load average to fall
#                                 below 0.5 (other work on the machine makes the figures noisy)
#
# Steps, each its own script: build-peers.sh (tether and the peers, on demand), peers.sh
# (four loads against every server, in interleaved rounds), callgrind.sh (instructions per
# request), heap.sh (allocations of the real binaries, valgrind), alloc.sh (tether's
# counting-allocator test), idle.sh (RSS per idle connection), then report.py. Results go
# to bench/results/DATE/ (OUT=DIR to choose). If tether does not build nothing is measured;
# a later step that fails is reported, the others still run and the exit status is 1.
# Nothing here runs in CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

OUT=${OUT:-$BENCH/results/$(date -u +%Y%m%d-%H%M%S)}
if [ "${QUICK:-0}" = 1 ]; then
    export RUNS=1 DURATION=2 SEQ_DURATION=1 WARMUP=1 AB_N=2000 N=300 HEAP_N=300 CONNS=50 IDLE_N=1000
    DOC=${DOC-}
else
    export RUNS=${RUNS:-3}
    DOC=${DOC-$ROOT/BENCHMARKS.md}
fi
export OUT
mkdir -p "$OUT"

if [ -n "${WAIT_QUIET:-}" ]; then
    for _ in $(seq "$((WAIT_QUIET / 10))"); do
        awk '{ exit !($1 < 0.5) }' /proc/loadavg && break
        echo "waiting for a quiet machine (load $(cut -d' ' -f1 /proc/loadavg))"
        sleep 10
    done
fi
start=$(date +%s) # the run's duration leaves the wait out
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
if ! awk '{ exit !($1 < 1.0) }' /proc/loadavg; then
    echo "warning: the machine is busy (load $load_before); figures will be noisy" >&2
fi

failed=()
step() { # NAME COMMAND...
    local name=$1 t0
    shift
    t0=$(date +%s)
    echo
    echo "==> $name"
    if "$@"; then
        echo "<== $name: $(($(date +%s) - t0)) s"
    else
        echo "<== $name FAILED" >&2
        failed+=("$name")
    fi
}

# tether must build (a peer that does not is skipped by build-peers.sh itself): measuring
# a stale binary would put wrong figures in BENCHMARKS.md.
step build "$BENCH/build-peers.sh"
if [ ${#failed[@]} -gt 0 ]; then
    echo "tether did not build; nothing measured" >&2
    exit 1
fi
step peers "$BENCH/peers.sh"
step callgrind "$BENCH/callgrind.sh"
step heap "$BENCH/heap.sh"
step alloc "$BENCH/alloc.sh"
step idle "$BENCH/idle.sh"

deb_version() { dpkg-query -W -f '${Version}' "$1" 2> /dev/null || echo "?"; }
first_line() { "$@" 2>&1 | head -1 || true; }
elapsed=$(($(date +%s) - start))
{
    run_meta "${RUN_ALL_COMMAND:-bench/run-all.sh}" "$elapsed" "$load_before"
    echo "tether: tether serve --workers 1 --listen 127.0.0.1:PORT"
    echo "version hyper: hyper $(lock_version hyper hyper), hyper-util" \
        "$(lock_version hyper hyper-util), tokio $(lock_version hyper tokio), current-thread runtime"
    echo "version actix: actix-web $(lock_version actix actix-web), workers(1)"
    echo "version may_minihttp: may_minihttp $(lock_version may_minihttp may_minihttp)," \
        "may $(lock_version may_minihttp may), set_workers(1)"
    nginx_pkg=$(dpkg-query -W -f '${Package} ${Version}\n' nginx-light nginx-core nginx 2> /dev/null |
        awk 'NF == 2 { print; exit }' || true)
    echo "version nginx: $(first_line nginx -v | sed 's/^nginx version: //')" \
        "(Debian ${nginx_pkg:-package}), worker_processes 1"
    echo "version go-nethttp: $(first_line go version), GOMAXPROCS=1"
    echo "version floor: bench/floor/floor.c, $(first_line gcc --version) -O2"
    echo "version tools: wrk $(deb_version wrk), ab (apache2-utils $(deb_version apache2-utils))," \
        "$(first_line valgrind --version)"
} > "$OUT/meta.txt"

write_report
echo "results: $OUT ($((elapsed / 60)) min $((elapsed % 60)) s)"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed steps: ${failed[*]}" >&2
    exit 1
fi

#!/usr/bin/env bash
# Memory per idle keep-alive connection: RSS growth of each server over N idle connections.
#
#   bench/idle.sh                      tether, hyper, nginx, go-nethttp, may_minihttp, actix, floor
#   bench/idle.sh tether nginx         only these
#   bench/idle.sh axum tether-axum     the same axum router on axum::serve and on tether
#   IDLE_N=10000 OUT=DIR bench/idle.sh
#
# Each server is started pinned to CPU 0 with RLIMIT_NOFILE raised (bench/lib.sh), and
# bench/idle_rss.py opens IDLE_N connections (default 10,000), each after one request, and
# leaves them idle; the RSS of the server's processes (nginx: master and worker) is read
# before and after. Servers must be built (bench/build-peers.sh); one that is not is
# skipped. With OUT set it appends "server connections before_kib after_kib bytes_per_conn"
# rows to OUT/idle.tsv.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IDLE_N=${IDLE_N:-10000}
scratch=$(mktemp -d)
trap 'stop_server; rm -rf "$scratch"' EXIT
if [ "$(ulimit -n)" -lt $((IDLE_N + 200)) ]; then
    echo "RLIMIT_NOFILE is $(ulimit -n), below the $((IDLE_N + 200)) needed" >&2
    exit 1
fi
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT"
    [ -s "$OUT/idle.tsv" ] ||
        printf 'server\tconnections\tbefore_kib\tafter_kib\tbytes_per_conn\n' > "$OUT/idle.tsv"
fi

read -r -a servers <<< "$(selected_servers "$@")"
[ $# -gt 0 ] || servers=(tether hyper nginx go-nethttp may_minihttp actix floor)
for name in "${servers[@]}"; do
    server_built "$name" || continue
    start_server "$name" "$scratch" "$scratch/$name.log" || continue
    sleep 0.5
    if result=$(taskset -c "$LOAD_CPU" timeout 300 python3 "$BENCH/idle_rss.py" "$S_PORT" \
        "$SERVER_PID" "$IDLE_N" --path "$S_PATH"); then
        echo "$name: $(head -1 <<< "$result")"
        line=$(grep '^RESULT' <<< "$result")
        [ -z "${OUT:-}" ] || awk -v s="$name" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "%s\t%s\t%s\t%s\t%s\n", s, v["n"], v["before_kib"], v["after_kib"], v["bytes_per_conn"]
        }' <<< "$line" >> "$OUT/idle.tsv"
    else
        echo "$name: idle_rss.py failed (server log: $scratch/$name.log)" >&2
        cat "$scratch/$name.log" >&2 || true
    fi
    stop_server
done

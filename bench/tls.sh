#!/usr/bin/env bash
# tether over TLS beside nginx (OpenSSL) and hyper + tokio-rustls, in one run, each server
# pinned to one core, then the "tls" section of BENCHMARKS.md rewritten from the results.
#
#   bench/tls.sh                      everything (about 9 minutes on 2 cores)
#   bench/tls.sh tether nginx         only these servers (names: tether nginx hyper-tls)
#   RUNS=1 DURATION=2 IDLE_N=500 HEAP_N=200 DOC= bench/tls.sh    a smoke run, results.md only
#   STEPS="rounds idle" bench/tls.sh  only some steps (rounds compare idle heap callgrind
#                                     strace alloc)
#   DOC= bench/tls.sh                 leave BENCHMARKS.md alone (results.md only)
#   OUT=DIR bench/tls.sh              results in DIR (default bench/results/tls-DATE)
#
# Knobs: RUNS (interleaved rounds, 5), DURATION (seconds per load, 5), WARMUP (seconds of
# keep-alive load before a server's loads, not recorded, 1; 0 for none), HS_CONNS
# (connections at once in the handshake loads, 4), IDLE_N (idle connections, 10,000),
# HEAP_N (requests measured under valgrind memcheck, 2,000), CG_N and CG_HS (keep-alive
# requests, 2,000, and handshakes, 300, measured under callgrind), SC_N (requests and
# connections counted under strace, 3,000), STEPS, KEEP (set: keep OUT/scratch, the
# servers' run folders and the callgrind profiles).
#
# The servers, each with one worker and the SAME certificate, an ECDSA P-256 key made by
# this script at start with openssl (in a temporary folder, removed at the end; nothing is
# committed; self-signed, for localhost and 127.0.0.1, marked CA:FALSE so that rustls's
# webpki takes it as the trusted end entity of tether load's --cacert), answering `GET /plaintext` with the 13 bytes `Hello, World!` as text/plain,
# keep-alive, TLS 1.2 and 1.3, ALPN http/1.1, resumption on:
#   tether     tether serve --workers 1 --tls-cert --tls-key (rustls 0.23, ring provider;
#              TLS 1.3 tickets on, a session cache of 4,096: the defaults)
#   nginx      Debian's, with its OpenSSL: worker_processes 1, access_log off,
#              ssl_session_cache shared:SSL:10m, ssl_session_tickets on, keepalive_requests
#              1,000,000, `return 200 "Hello, World!"` (bench/tls/nginx.conf)
#   hyper-tls  hyper 1 + tokio-rustls on a current_thread runtime (bench/peers/hyper-tls:
#              rustls 0.23 with the ring provider like tether, so the crypto is the same;
#              rustls's default session cache of 256 and ring's Ticketer)
# The rounds are interleaved (round 1 of every server, then round 2 ...). Loads, all to
# 127.0.0.1, the server on CPU 0 and the client on CPU 1:
#   a  keep-alive: wrk -t1 -c100 -dDURATION https://.../plaintext: server CPU seconds per
#      100,000 requests, requests/s
#   b  full handshakes: a new connection per request, one request each (Connection:
#      close), no resumption: server CPU µs per handshake, handshakes per server CPU second
#      (per core) and per second
#   c  resumed handshakes: the same, each connection resuming a session (TLS 1.3 ticket)
# The client of b and c is `tether load --no-keepalive --tls-resume off|on -c HS_CONNS`
# when this build of tether load speaks https, otherwise bench/tls/client.py (Python's ssl,
# that is OpenSSL), HS_CONNS processes of it each doing one connection after the other;
# the report names the client. On 2 cores the client is likely the side that saturates
# (its CPU % is recorded beside the server's), so the figure the targets use is the
# server's CPU per handshake: handshakes per second per core = 1 / that.
# After the rounds and the compare, once per server:
#   idle   RSS growth per idle TLS connection: bench/idle_rss.py --tls opens IDLE_N
#          connections (handshake complete, one request each) and holds them; read 3 s after
#          the last one opened, past tether's --park-after (1 s); tether's parked count is
#          read from /metrics. tether also runs with --park-after 0 (never parks) as
#          "tether-nopark".
#   heap   heap allocations per keep-alive request, valgrind memcheck's heap summary
#          (bench/heap.sh's method: 1,000 then 1,000 + HEAP_N sequential requests over one
#          TLS connection, the difference over HEAP_N); nginx with master_process off.
#   callgrind  instructions of the server (valgrind --tool=callgrind) per keep-alive TLS
#          request (1,000 then 1,000 + CG_N sequential requests over one connection), per
#          connection with a full handshake and per connection with a resumed one (100 then
#          100 + CG_HS connections of one request each, bench/tls/client.py, one at a time):
#          the difference over CG_N or CG_HS, so that start-up cancels out. The two
#          profiles subtracted function by function (bench/tls/cg_diff.py: instructions of
#          their own per unit) go to OUT/tls-callgrind-SERVER-LOAD.tsv: where the cost goes.
#   strace system calls of the server per keep-alive request (SC_N sequential requests
#          over one TLS connection) and per connection with a resumed handshake (SC_N
#          connections of one request each, one at a time), by `strace -c -f` attached to
#          the running server, bench/tls/client.py as the client: OUT/tls-syscalls.tsv.
#   alloc  tether's allocations per request over TLS from the counting-allocator test
#          (crates/tether/tests/alloc.rs, tls_keep_alive_allocations_per_request), the
#          client's thread counted apart; with TETHER_ALLOC_TRACE the backtraces of the
#          first allocations, kept in OUT/tls-alloc-trace.txt, their sites in
#          OUT/tls-alloc-sites.tsv.
#   compare `tether load --compare` over https against tether (when tether load speaks it),
#          right after the rounds, measured like a load so that the noise during it is known.
# Targets (tether against each peer, the same run): resumed handshakes per second per core
# >= nginx's, full >= 0.8 x nginx's; keep-alive CPU per request <= nginx's and <=
# hyper-tls's; 0 allocations per steady-state request; RSS per idle TLS connection below
# nginx's and hyper-tls's.
#
# Raw output goes to OUT/logs/; rows to OUT/tls.tsv, tls-negotiated.tsv (protocol, cipher,
# key exchange, ALPN and whether the server sends close_notify on `Connection: close`, with
# openssl s_client), tls-idle.tsv, tls-heap.tsv, tls-callgrind.tsv, tls-syscalls.tsv,
# tls-alloc.tsv, tls-compare.txt; the run's facts to OUT/meta.txt; bench/report.py turns them into
# OUT/results.md and, unless DOC is empty, rewrites the "tls" section of DOC (default
# BENCHMARKS.md). Every process started here is stopped by its PID; every load is bounded
# in time. Nothing here runs in CI.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
HS_CONNS=${HS_CONNS:-4}
IDLE_N=${IDLE_N:-10000}
HEAP_N=${HEAP_N:-2000}
CG_N=${CG_N:-2000}
CG_HS=${CG_HS:-300}
SC_N=${SC_N:-3000}
STEPS=${STEPS:-rounds compare idle heap callgrind strace alloc}
OUT=${OUT:-$BENCH/results/tls-$(date -u +%Y%m%d-%H%M%S)}
DOC=${DOC-$ROOT/BENCHMARKS.md}
HYPER_TLS=$BENCH/peers/hyper-tls/target/release/hyper-tls-peer
TLS_SERVERS=(tether nginx hyper-tls)
for tool in wrk taskset curl ss python3 cargo openssl; do
    command -v "$tool" > /dev/null || { echo "missing $tool" >&2; exit 1; }
done

servers=("$@")
[ $# -gt 0 ] || servers=("${TLS_SERVERS[@]}")
for name in "${servers[@]}"; do
    case " ${TLS_SERVERS[*]} " in
        *" $name "*) ;;
        *) echo "unknown server: $name (known: ${TLS_SERVERS[*]})" >&2; exit 1 ;;
    esac
done
step() { [[ " $STEPS " == *" $1 "* ]]; }

start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------- build

cargo build --release -p tether-cli --manifest-path "$ROOT/Cargo.toml"
if [[ " ${servers[*]} " == *" hyper-tls "* ]]; then
    mkdir -p "$BENCH/results/build"
    cargo build --release --manifest-path "$BENCH/peers/hyper-tls/Cargo.toml" \
        --target-dir "$BENCH/peers/hyper-tls/target" > "$BENCH/results/build/hyper-tls.log" 2>&1 ||
        { echo "FAILED to build hyper-tls (see $BENCH/results/build/hyper-tls.log)" >&2; exit 1; }
fi
# tether load over https (--tls-resume) in this build? Otherwise the Python client.
if "$TETHER_BIN" load --help 2> /dev/null | grep -q -- '--tls-resume'; then
    TLOAD=1
    HS_CLIENT="tether load --threads 1 -c $HS_CONNS --no-keepalive --tls-resume off|on"
else
    TLOAD=
    HS_CLIENT="bench/tls/client.py handshakes (Python $(python3 -c 'import platform; print(platform.python_version())'), $(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)')), $HS_CONNS processes at once"
fi

# ---------------------------------------------------------------------------- certificate

mkdir -p "$OUT/logs" "$OUT/scratch"
CERT_DIR=$(mktemp -d)
cleanup() {
    stop_server
    rm -rf "$CERT_DIR"
    [ -n "${KEEP:-}" ] || rm -rf "$OUT/scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
CERT=$CERT_DIR/cert.pem
KEY=$CERT_DIR/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$KEY" -out "$CERT" -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth" 2> "$OUT/logs/openssl-req.log"
chmod a+rx "$CERT_DIR"
chmod a+r "$CERT" "$KEY"

# ---------------------------------------------------------------------------- the servers

# The entries of bench/lib.sh's start_server (name|path|command), replacing its list.
# shellcheck disable=SC2034 # SERVERS and ALL_SERVERS are read by bench/lib.sh's functions
SERVERS=(
    "tether|/plaintext|$TETHER_BIN serve --workers 1 --listen $HOST:{port} --tls-cert $CERT --tls-key $KEY"
    "tether-nopark|/plaintext|$TETHER_BIN serve --workers 1 --listen $HOST:{port} --tls-cert $CERT --tls-key $KEY --park-after 0"
    "nginx|/plaintext|nginx -p {run}/nginx/ -c nginx.conf -e stderr"
    "hyper-tls|/plaintext|$HYPER_TLS $HOST:{port} $CERT $KEY"
)
# shellcheck disable=SC2034
ALL_SERVERS=(tether tether-nopark nginx hyper-tls)

# prepare_run NAME RUN_DIR (replaces bench/lib.sh's): nginx's prefix folder with the TLS
# configuration; NGINX_SINGLE=1 runs it as one process (master_process off, for valgrind).
prepare_run() {
    if [ "$1" = nginx ]; then
        mkdir -p "$2/nginx/run"
        sed -e "s|{port}|$S_PORT|" -e "s|{cert}|$CERT|" -e "s|{key}|$KEY|" \
            "$BENCH/tls/nginx.conf" > "$2/nginx/nginx.conf"
        [ -z "${NGINX_SINGLE:-}" ] || sed -i 's/^master_process on;/master_process off;/' \
            "$2/nginx/nginx.conf"
    fi
}

# start_tls NAME LOG [WRAPPER...]: start_server, then S_URL over https and a first answer.
start_tls() {
    local name=$1 log=$2 scratch="$OUT/scratch/$1"
    shift 2
    mkdir -p "$scratch"
    start_server "$name" "$scratch" "$log" "$@" || return 1
    # the certificate names 127.0.0.1 as well as localhost
    S_URL="https://$HOST:$S_PORT$S_PATH"
    local _
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 5 --cacert "$CERT" "$S_URL" && return 0
        sleep 0.2
    done
    echo "   $name does not answer on $S_URL (see $log); skipped" >&2
    stop_server
    return 1
}

# ---------------------------------------------------------------------------- measuring
# shellcheck disable=SC2034 # read by lib.sh's measure
MEASURE_LIMIT=$((DURATION + 60))

field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p" "$2" | head -1; }

tsv_row() {
    local IFS=$'\t'
    echo "$*"
}

# cpu_fields LOG COUNT: server CPU %, load CPU %, other CPU %, server CPU s per 100k
# requests and its user part, server CPU µs per unit and its user part, units per server
# CPU second (tab-separated; empty when COUNT is 0)
cpu_fields() {
    awk -v n="${2:-0}" '{
        u = $1; s = $2; w = $3; l = $4; o = $5
        printf "%.0f\t%.0f\t%.0f\t", 100 * (u + s) / w, 100 * l / w, 100 * o / w
        if (n > 0 && u + s > 0)
            printf "%.4f\t%.4f\t%.1f\t%.1f\t%.0f", (u + s) * 1e5 / n, u * 1e5 / n,
                (u + s) * 1e6 / n, u * 1e6 / n, n / (u + s)
        else printf "\t\t\t\t"
    }' "$1.cpu"
}

# tether_handshakes: "FULL RESUMED" from tether's /metrics (one more handshake itself)
tether_handshakes() {
    curl -s --max-time 5 --cacert "$CERT" "https://$HOST:$S_PORT/metrics" | awk '
        /^tether_tls_handshakes_total\{result="full"\}/ { f = $2 }
        /^tether_tls_handshakes_total\{result="resumed"\}/ { r = $2 }
        END { print f + 0, r + 0 }'
}

# handshake_load LOG MODE (full|resumed): DURATION seconds of new connections, one request
# each; LOG.txt gets "RESULT handshakes=N resumed=R failed=F seconds=T" in the end.
handshake_load() {
    local log=$1 mode=$2 resume=off flag=
    [ "$mode" = full ] || { resume=on; flag=--resume; }
    if [ -n "$TLOAD" ]; then
        measure "$log" "$TETHER_BIN" load --threads 1 -c "$HS_CONNS" --no-keepalive \
            -d "${DURATION}s" --cacert "$CERT" --tls-resume "$resume" --json "$S_URL"
        local result
        result=$(python3 "$BENCH/tls/load_json.py" "$log.txt") || true
        echo "$result" >> "$log.txt"
    else
        local i script=
        for i in $(seq "$HS_CONNS"); do
            script+="python3 $BENCH/tls/client.py handshakes $S_PORT --cafile $CERT --seconds $DURATION $flag > $log.$i 2>&1 & "
        done
        measure "$log" bash -c "$script wait"
        cat "$log".[0-9]* >> "$log.txt"
        awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] += kv[2]
                if (kv[1] == "seconds" && kv[2] > s) s = kv[2] } }
            END { printf "RESULT handshakes=%d resumed=%d failed=%d seconds=%.3f\n",
                v["handshakes"], v["resumed"], v["failed"], s }' "$log".[0-9]* >> "$log.txt"
        rm -f "$log".[0-9]*
    fi
}

# close_notify: whether the server ends a connection whose request said `Connection: close`
# with TLS close_notify ("yes") or closes the socket without it ("no": OpenSSL reads an
# unexpected EOF, and drops the session, so that `openssl s_time -reuse` cannot resume)
close_notify() {
    local got
    got=$(printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$S_PATH" |
        timeout 10 openssl s_client -connect "$HOST:$S_PORT" -servername localhost -ign_eof \
            -CAfile "$CERT" 2>&1 || true)
    if grep -q 'unexpected eof' <<< "$got"; then echo no
    elif grep -q 'Hello, World!' <<< "$got"; then echo yes
    else echo "?"; fi
}

# ---------------------------------------------------------------------------- rounds

bench_server() { # RUN NAME
    local run=$1 name=$2 log="$OUT/logs/run$1-$2"
    echo "== round $run: $name"
    server_built "$name" 2> /dev/null || {
        echo "   $name is not built or installed; skipped" >&2
        return 0
    }
    start_tls "$name" "$log-server.log" || return 0
    local resp_bytes
    resp_bytes=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' --cacert "$CERT" \
        "$S_URL" | awk '{ print $1 + $2 }')
    if [ "$run" = 1 ]; then # what an OpenSSL client and the server agree on
        local hs
        hs=$(timeout 10 openssl s_client -connect "$HOST:$S_PORT" -servername localhost \
            -alpn http/1.1 -CAfile "$CERT" < /dev/null 2>&1 || true)
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
            "$(sed -n 's/^New, \([^,]*\), Cipher is \(.*\)/\1/p' <<< "$hs" | head -1)" \
            "$(sed -n 's/^New, \([^,]*\), Cipher is \(.*\)/\2/p' <<< "$hs" | head -1)" \
            "$(sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' <<< "$hs" | head -1)" \
            "$(sed -n 's/^ALPN protocol: //p' <<< "$hs" | head -1)" \
            "$(close_notify)" >> "$OUT/tls-negotiated.tsv"
    fi
    if [ "$WARMUP" != 0 ]; then
        measure "$log-warmup" wrk -t1 -c100 -d"${WARMUP}s" "$S_URL"
    fi
    measure "$log-a" wrk -t1 -c100 -d"${DURATION}s" --latency -s "$BENCH/wrk/report.lua" "$S_URL"
    local a_req a_dur
    a_req=$(field requests "$log-a.txt")
    a_dur=$(field duration_us "$log-a.txt")
    local a_rps=
    [ -z "$a_req" ] || a_rps=$(awk -v n="$a_req" -v d="$a_dur" 'BEGIN { printf "%.0f", n * 1e6 / d }')

    local mode l m0 m1 hs_cols=()
    for mode in full resumed; do
        l=$log-$([ "$mode" = full ] && echo b || echo c)
        m0=
        [ "${name%%-*}" != tether ] || m0=$(tether_handshakes)
        handshake_load "$l" "$mode"
        m1=
        [ "${name%%-*}" != tether ] || m1=$(tether_handshakes)
        local n res failed secs rate srv_counts='' p50 p99
        n=$(field handshakes "$l.txt")
        p50=$(field hs_p50_us "$l.txt")
        p99=$(field hs_p99_us "$l.txt")
        res=$(field resumed "$l.txt")
        failed=$(field failed "$l.txt")
        secs=$(field seconds "$l.txt")
        rate=$(awk -v n="${n:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%.0f", n / s }')
        if [ -n "$m0" ] && [ -n "$m1" ]; then
            # the server's own count over the load (less the one /metrics handshake)
            srv_counts=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " ")
                printf "%d full, %d resumed", y[1] - x[1] - 1, y[2] - x[2] }')
        fi
        hs_cols+=("${n:-0}" "${res:-0}" "${failed:-0}" "$rate" "$p50" "$p99" "$srv_counts"
            "$(cpu_fields "$l" "${n:-0}")")
    done
    if ! kill -0 "$SERVER_PID" 2> /dev/null; then
        echo "   the server died during the loads (see $log-server.log)" >&2
    fi
    stop_server
    tsv_row "$run" "$name" "$resp_bytes" "$a_rps" "$(field mean_us "$log-a.txt")" \
        "$(field p99_us "$log-a.txt")" \
        "$(($(field errors "$log-a.txt" || true) + 0 + $(field non2xx "$log-a.txt" || true) + 0))" \
        "$(cpu_fields "$log-a" "${a_req:-0}")" "${hs_cols[@]}" >> "$TSV"
    tail -1 "$TSV" | awk -F'\t' '{
        printf "   a %s req/s, %s s/100k (srv %s%%, load %s%%) | b %s hs/s, %s µs/hs (srv %s%%, load %s%%) | c %s hs/s (%s of %s resumed), %s µs/hs (srv %s%%, load %s%%)\n",
            $4, $11, $8, $9, $19, $28, $23, $24, $34, $32, $31, $43, $38, $39 }'
}

cpu_head() { # LOAD
    local f
    for f in srv_cpu_pct load_cpu_pct other_cpu_pct cpu_s_per_100k user_s_per_100k \
        cpu_us_per_unit user_us_per_unit units_per_cpu_s; do
        echo "$1_$f"
    done
}
hs_head() { # LOAD
    echo "$1_handshakes $1_resumed $1_failed $1_rate $1_hs_p50_us $1_hs_p99_us $1_server_counts $(cpu_head "$1")"
}

if step rounds; then
    printf 'server\tprotocol\tcipher\tkey_exchange\talpn\tclose_notify\n' > "$OUT/tls-negotiated.tsv"
    TSV=$OUT/logs/tls.tsv.partial
    # shellcheck disable=SC2046 # one column name per word
    tsv_row run server resp_bytes a_rps a_mean_us a_p99_us a_errors $(cpu_head a) \
        $(hs_head b) $(hs_head c) > "$TSV"
    for run in $(seq "$RUNS"); do
        for name in "${servers[@]}"; do
            bench_server "$run" "$name"
        done
    done
    mv "$TSV" "$OUT/tls.tsv"
    echo "wrote $OUT/tls.tsv"
fi

# ---------------------------------------------------------------------------- compare

if step compare && [ -n "$TLOAD" ] && [[ " ${servers[*]} " == *" tether "* ]]; then
    echo "== compare: tether load --compare over https against tether"
    if start_tls tether "$OUT/logs/compare-server.log"; then
        # measured like a load, so that the noise during it is known (tls-compare.cpu)
        MEASURE_LIMIT=$((4 * DURATION + 120)) measure "$OUT/logs/compare" "$TETHER_BIN" load \
            --threads 1 -c "$HS_CONNS" -d "${DURATION}s" --cacert "$CERT" --compare "$S_URL"
        cp "$OUT/logs/compare.txt" "$OUT/tls-compare.txt"
        cp "$OUT/logs/compare.cpu" "$OUT/tls-compare.cpu"
        grep -q 'errors' "$OUT/tls-compare.txt" ||
            echo "tether load --compare failed (see $OUT/tls-compare.txt)" >&2
        stop_server
        cat "$OUT/tls-compare.txt"
    fi
fi

# ---------------------------------------------------------------------------- idle

if step idle; then
    printf 'server\tconnections\tbefore_kib\tafter_kib\tbytes_per_conn\tparked\n' > "$OUT/tls-idle.tsv"
    idle_servers=()
    for name in "${servers[@]}"; do
        idle_servers+=("$name")
        [ "$name" != tether ] || idle_servers+=(tether-nopark)
    done
    for name in "${idle_servers[@]}"; do
        echo "== idle: $name ($IDLE_N TLS connections)"
        server_built "$name" 2> /dev/null || continue
        start_tls "$name" "$OUT/logs/idle-$name-server.log" || continue
        metrics=()
        [ "${name%%-*}" != tether ] || metrics=(--metrics /metrics)
        sleep 0.5
        if taskset -c "$LOAD_CPU" timeout 600 python3 "$BENCH/idle_rss.py" "$S_PORT" \
            "$SERVER_PID" "$IDLE_N" --path "$S_PATH" --tls "$CERT" --wait 3 "${metrics[@]}" \
            > "$OUT/logs/idle-$name.txt" 2>&1; then
            echo "   $(head -1 "$OUT/logs/idle-$name.txt")"
            grep '^RESULT' "$OUT/logs/idle-$name.txt" | awk -v s="$name" '{
                for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
                printf "%s\t%s\t%s\t%s\t%s\t%s\n", s, v["n"], v["before_kib"], v["after_kib"],
                    v["bytes_per_conn"], v["parked"]
            }' >> "$OUT/tls-idle.tsv"
        else
            echo "   idle_rss.py failed (see $OUT/logs/idle-$name.txt)" >&2
        fi
        stop_server
    done
fi

# ---------------------------------------------------------------------------- heap

# heap_usage NAME TAG N: "ALLOCS BYTES" of the server's whole run under memcheck with N
# sequential keep-alive requests over one TLS connection
heap_usage() {
    local name=$1 log="$OUT/logs/heap-$1-$2.log" rc=0
    NGINX_SINGLE=1 start_tls "$name" "$log" valgrind --tool=memcheck --leak-check=no \
        --undef-value-errors=no || return 1
    taskset -c "$LOAD_CPU" timeout 600 python3 "$BENCH/tls/client.py" requests "$S_PORT" "$3" \
        --cafile "$CERT" --path "$S_PATH" > "$log.client" 2>&1 ||
        { echo "$name: the client failed (see $log.client)" >&2; rc=1; }
    sleep 0.5
    STOP_SIGNAL=INT stop_server
    [ "$rc" = 0 ] || return 1
    sed -n 's/.*total heap usage: \([0-9,]*\) allocs, [0-9,]* frees, \([0-9,]*\) bytes allocated.*/\1 \2/p' \
        "$log" | tr -d , | tail -1 | grep . ||
        { echo "$name: no heap summary (see $log)" >&2; return 1; }
}

if step heap; then
    if command -v valgrind > /dev/null; then
        printf 'server\tallocs_per_request\tbytes_per_request\trequests\n' > "$OUT/tls-heap.tsv"
        for name in "${servers[@]}"; do
            echo "== heap: $name (valgrind memcheck)"
            server_built "$name" 2> /dev/null || continue
            # the start-up answer check is one more connection and request, in both runs
            a=$(heap_usage "$name" a 1000) || continue
            b=$(heap_usage "$name" b $((1000 + HEAP_N))) || continue
            read -r allocs bytes <<< "$(awk -v a="$a" -v b="$b" -v n="$HEAP_N" 'BEGIN {
                split(a, x, " "); split(b, y, " ")
                printf "%.2f %.0f", (y[1] - x[1]) / n, (y[2] - x[2]) / n }')"
            echo "   $allocs allocations ($bytes bytes) per keep-alive TLS request"
            printf '%s\t%s\t%s\t%s\n' "$name" "$allocs" "$bytes" "$HEAP_N" >> "$OUT/tls-heap.tsv"
        done
    else
        echo "heap: valgrind is not installed (apt-get install valgrind); skipped" >&2
    fi
fi

# ---------------------------------------------------------------------------- callgrind

# cg_total NAME TAG CLIENT_ARGS...: total instructions of the server's run under callgrind
# with `bench/tls/client.py CLIENT_ARGS...` as the client; the profile stays in
# OUT/scratch/cg-NAME-TAG.out
cg_total() {
    local name=$1 log="$OUT/logs/cg-$1-$2.log" file="$OUT/scratch/cg-$1-$2.out" rc=0
    shift 2
    NGINX_SINGLE=1 start_tls "$name" "$log" valgrind --tool=callgrind \
        --callgrind-out-file="$file" || return 1
    taskset -c "$LOAD_CPU" timeout 900 python3 "$BENCH/tls/client.py" "${@/\{port\}/$S_PORT}" \
        --cafile "$CERT" --path "$S_PATH" > "$log.client" 2>&1 ||
        { echo "$name: the client failed (see $log.client)" >&2; rc=1; }
    sleep 0.5
    STOP_SIGNAL=INT stop_server
    [ "$rc" = 0 ] || return 1
    [ -s "$file" ] || { echo "$name: callgrind wrote nothing (see $log)" >&2; return 1; }
    sed -n 's/^summary: //p; s/^totals: //p' "$file" | head -1
}

# cg_top NAME LOAD UNITS: the functions with the most instructions of their own per unit
# of LOAD (the two profiles subtracted, bench/tls/cg_diff.py), into
# OUT/tls-callgrind-NAME-LOAD.tsv
cg_top() {
    local a="$OUT/scratch/cg-$1-$2-a.out" b="$OUT/scratch/cg-$1-$2-b.out"
    [ -s "$a" ] && [ -s "$b" ] || return 0
    python3 "$BENCH/tls/cg_diff.py" "$a" "$b" "$3" 30 > "$OUT/tls-callgrind-$1-$2.tsv" ||
        echo "$1: cg_diff.py failed for $2" >&2
}

if step callgrind; then
    if command -v valgrind > /dev/null; then
        printf 'server\tload\tinstructions\tmeasured\n' > "$OUT/tls-callgrind.tsv"
        for name in "${servers[@]}"; do
            server_built "$name" 2> /dev/null || continue
            echo "== callgrind: $name"
            for load in keepalive full resumed; do
                case $load in
                    keepalive) first=(requests '{port}' 1000) second=(requests '{port}' $((1000 + CG_N)))
                        measured=$CG_N ;;
                    full) first=(handshakes '{port}' -n 100 --seconds 900)
                        second=(handshakes '{port}' -n $((100 + CG_HS)) --seconds 900) measured=$CG_HS ;;
                    resumed) first=(handshakes '{port}' -n 100 --seconds 900 --resume)
                        second=(handshakes '{port}' -n $((100 + CG_HS)) --seconds 900 --resume)
                        measured=$CG_HS ;;
                esac
                a=$(cg_total "$name" "$load-a" "${first[@]}") || continue
                b=$(cg_total "$name" "$load-b" "${second[@]}") || continue
                per=$(((b - a) / measured))
                echo "   $load: $per instructions per $([ "$load" = keepalive ] && echo request || echo connection)"
                printf '%s\t%s\t%s\t%s\n' "$name" "$load" "$per" "$measured" >> "$OUT/tls-callgrind.tsv"
                cg_top "$name" "$load" "$measured"
            done
        done
    else
        echo "callgrind: valgrind is not installed (apt-get install valgrind); skipped" >&2
    fi
fi

# ---------------------------------------------------------------------------- strace

# sc_count NAME LOAD UNITS CLIENT_ARGS...: strace -c -f over the server (its pids, nginx's
# worker too) while the client runs; rows "server load syscall calls errors units" appended
# to OUT/tls-syscalls.tsv
sc_count() {
    local name=$1 load=$2 units=$3 log="$OUT/logs/strace-$1-$2" tracer pids=() pid
    shift 3
    start_tls "$name" "$log-server.log" || return 1
    for pid in $(server_pids); do pids+=(-p "$pid"); done
    timeout 300 strace -c -f "${pids[@]}" -o "$log.txt" 2> "$log.strace-err" &
    tracer=$!
    sleep 1 # attached
    taskset -c "$LOAD_CPU" timeout 300 python3 "$BENCH/tls/client.py" "${@/\{port\}/$S_PORT}" \
        --cafile "$CERT" --path "$S_PATH" > "$log.client" 2>&1 ||
        echo "$name: the client failed (see $log.client)" >&2
    sleep 0.5
    kill -INT "$tracer" 2> /dev/null || true
    wait "$tracer" 2> /dev/null || true
    stop_server
    # "% time seconds usecs/call calls errors syscall" rows, errors possibly empty
    awk -v s="$name" -v l="$load" -v n="$units" '
        /^-+/ { rule++; next }
        rule == 1 && NF >= 5 { e = (NF == 6 ? $5 : 0); printf "%s\t%s\t%s\t%s\t%s\t%s\n", s, l, $NF, $4, e, n }
    ' "$log.txt" >> "$OUT/tls-syscalls.tsv"
}

if step strace; then
    if command -v strace > /dev/null; then
        printf 'server\tload\tsyscall\tcalls\terrors\tunits\n' > "$OUT/tls-syscalls.tsv"
        for name in "${servers[@]}"; do
            server_built "$name" 2> /dev/null || continue
            echo "== strace: $name"
            sc_count "$name" keepalive "$SC_N" requests '{port}' "$SC_N" || true
            sc_count "$name" resumed "$SC_N" handshakes '{port}' -n "$SC_N" --seconds 300 \
                --resume || true
            awk -F'\t' -v s="$name" '$1 == s { c[$2] += $4; e[$2] += $5; n[$2] = $6 }
                END { for (l in c) printf "   %s: %.2f system calls per unit (%.2f failed)\n", l, c[l] / n[l], e[l] / n[l] }' \
                "$OUT/tls-syscalls.tsv"
        done
    else
        echo "strace: not installed (apt-get install strace); skipped" >&2
    fi
fi

# ---------------------------------------------------------------------------- alloc

if step alloc; then
    echo "== alloc: cargo test --release -p tether --test alloc tls_keep_alive_allocations_per_request"
    status=0
    TETHER_ALLOC_TRACE=${TETHER_ALLOC_TRACE:-2} cargo test --release -p tether \
        --manifest-path "$ROOT/Cargo.toml" --test alloc -- --nocapture --test-threads=1 \
        tls_keep_alive_allocations_per_request > "$OUT/tls-alloc-trace.txt" 2>&1 || status=$?
    per_request() { # WHAT -> server per request, client per request
        grep -o "$1 HTTP/1.1 over TLS: [0-9]* allocations over [0-9]* requests.*counted apart): [0-9]*" \
            "$OUT/tls-alloc-trace.txt" | head -1 |
            awk '{ printf "%g\t%g", $6 / $9, $NF / $9 }'
    }
    printf 'plaintext_per_request\tplaintext_client_per_request\techo_per_request\techo_client_per_request\ttest_status\n%s\t%s\t%s\n' \
        "$(per_request "GET /plaintext")" "$(per_request "POST /echo")" "$status" \
        > "$OUT/tls-alloc.tsv"
    # The allocation sites: for each traced allocation, its size, the first rustls frame
    # and the first frame of tether's own code.
    # "what<TAB>bytes<TAB>rustls frames (innermost first, up to 3)<TAB>rustls's source line
    # of the first<TAB>the first frame of tether's code<TAB>the rustls frame it called"
    awk '
        function flush() { if (what != "") print what "\t" size "\t" r "\t" src "\t" t "\t" entry }
        /^--- / { flush(); what = $2 " " $3; size = $0; sub(/.*window, /, "", size)
                  sub(/ bytes.*/, "", size); r = ""; nr = 0; src = ""; t = ""; entry = ""; next }
        what == "" { next }
        /^ *[0-9]+: / { f = $0; sub(/^ *[0-9]+: /, "", f)
                        if (f ~ /^<?rustls::/) { if (nr < 3) r = r (nr ? " ← " : "") f; nr++
                                                  if (t == "") entry = f }
                        else if (f ~ /^<?tether::/ && t == "") t = f }
        /^ *at .*rustls-[0-9.]*\/src\// && src == "" && nr == 1 { src = $2; sub(/.*rustls-/, "rustls-", src) }
        END { flush() }
    ' "$OUT/tls-alloc-trace.txt" | sort -u > "$OUT/tls-alloc-sites.tsv"
    cat "$OUT/tls-alloc.tsv"
    [ "$status" = 0 ] || echo "the allocation test failed (status $status; see $OUT/tls-alloc-trace.txt)" >&2
fi

# ---------------------------------------------------------------------------- report

elapsed=$(($(date +%s) - start))
{
    run_meta "bench/tls.sh${*:+ $*}" "$elapsed" "$load_before"
    echo "tls rounds: $RUNS interleaved rounds; ${DURATION} s per load, ${WARMUP} s of warm-up per server; handshake loads over $HS_CONNS connections at once; $IDLE_N idle connections; $HEAP_N requests under valgrind"
    echo "tls client: $HS_CLIENT"
    [ -z "$TLOAD" ] || echo "tls compare: tether load --threads 1 -c $HS_CONNS -d ${DURATION}s --cacert CERT --compare"
    echo "tls certificate: ECDSA P-256 (prime256v1), self-signed, made by openssl req at start"
    echo "version nginx: $(nginx -v 2>&1 | sed 's|^nginx version: nginx/||') with $(nginx -V 2>&1 | sed -n 's/^built with \(OpenSSL [^ ]*\).*running with \(OpenSSL [^ ]*\).*/\1, running with \2/p'), worker_processes 1, ssl_session_cache shared:SSL:10m, ssl_session_tickets on"
    echo "version hyper-tls: hyper $(lock_version hyper-tls hyper), tokio-rustls $(lock_version hyper-tls tokio-rustls), rustls $(lock_version hyper-tls rustls) (ring $(lock_version hyper-tls ring)), tokio $(lock_version hyper-tls tokio), current_thread runtime"
    echo "version tether rustls: rustls $(awk '$0 == "name = \"rustls\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock") with ring"
    echo "version wrk: $(wrk -v 2>&1 | head -1 | awk '{ print $2 }')"
    echo "version openssl: $(openssl version)"
} > "$OUT/meta.txt"

write_report
echo "results: $OUT ($((elapsed / 60)) min $((elapsed % 60)) s)"

# Shared by the bench scripts (sourced, not run): the servers under test and how to start,
# pin and stop them. Every server answers `Hello, World!` as text/plain with keep-alive,
# on 127.0.0.1 only.

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
HOST=127.0.0.1
SERVER_CPU=${SERVER_CPU:-0} # the server runs pinned to this CPU
LOAD_CPU=${LOAD_CPU:-1}     # the load generator (wrk, ab, the Python clients) to this one
TETHER_BIN=${TETHER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tether}

# name|path|command. {port} becomes a port free at start, {run} a scratch folder of the run;
# path is the URL path that answers 200 "Hello, World!".
SERVERS=(
    "tether|/plaintext|$TETHER_BIN serve --workers 1 --listen $HOST:{port}"
    "hyper|/|$BENCH/peers/hyper/target/release/hyper-peer $HOST:{port}"
    "actix|/|$BENCH/peers/actix/target/release/actix-peer $HOST:{port}"
    "may_minihttp|/|$BENCH/peers/may_minihttp/target/release/may-minihttp-peer $HOST:{port}"
    "nginx|/|nginx -p {run}/nginx/ -c nginx.conf -e stderr"
    "go-nethttp|/|env GOMAXPROCS=1 $BENCH/peers/go-nethttp/go-nethttp $HOST:{port}"
    "floor|/|$BENCH/floor/floor {port}"
    # The same axum router (bench/peers/axum) on axum::serve (hyper) and on tether's tower
    # adapter: what the engine costs under a real framework, beside the stack axum ships with.
    "axum|/|$BENCH/peers/axum/target/release/axum-peer $HOST:{port}"
    "tether-axum|/|$BENCH/peers/axum/target/release/axum-peer $HOST:{port} --tether"
)
ALL_SERVERS=(tether hyper actix may_minihttp nginx go-nethttp floor axum tether-axum)
# What the scripts run when no server is named (axum and tether-axum only when named:
# bench/build-peers.sh axum tether-axum; bench/callgrind.sh axum tether-axum ...).
DEFAULT_SERVERS=(tether hyper actix may_minihttp nginx go-nethttp floor)

# Many idle connections need many descriptors, in the servers (which inherit this limit)
# and in the clients.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"

# server_entry NAME: sets S_NAME S_PATH S_CMD (placeholders still in), or fails.
server_entry() {
    local entry
    for entry in "${SERVERS[@]}"; do
        IFS='|' read -r S_NAME S_PATH S_CMD <<< "$entry"
        [ "$S_NAME" = "$1" ] && return 0
    done
    echo "unknown server: $1 (known: ${ALL_SERVERS[*]})" >&2
    return 1
}

# server_built NAME: is the server's program there? (says what is missing if not)
server_built() {
    server_entry "$1" || return 1
    local prog
    read -r prog _ <<< "$S_CMD"
    [ "$prog" = env ] && prog=$(awk '{ print $3 }' <<< "$S_CMD")
    if [ "$1" = nginx ]; then
        command -v nginx > /dev/null || [ -x /usr/sbin/nginx ] || {
            echo "$1: nginx is not installed (apt-get install nginx-light); skipped" >&2
            return 1
        }
        return 0
    fi
    [ -x "$prog" ] || {
        echo "$1: $prog is not built (bench/build-peers.sh $1); skipped" >&2
        return 1
    }
}

# prepare_run NAME RUN_DIR: per-run files some servers need (nginx's prefix folder), once
# S_PORT is chosen.
prepare_run() {
    if [ "$1" = nginx ]; then
        mkdir -p "$2/nginx/run"
        sed "s/{port}/$S_PORT/" "$BENCH/peers/nginx/nginx.conf" > "$2/nginx/nginx.conf"
    fi
}

SERVER_PID=

# start_server NAME RUN_DIR LOG [WRAPPER...]: starts the server on a free port, pinned to
# SERVER_CPU (under WRAPPER, e.g. valgrind, if given), and waits until the port listens,
# without connecting to it. Sets SERVER_PID, S_PORT, S_URL. Fails if the server does not
# start.
start_server() {
    local name=$1 run=$2 log=$3 cmd
    shift 3
    server_entry "$name" || return 1
    S_PORT=$(free_port)
    prepare_run "$name" "$run"
    cmd=${S_CMD//\{port\}/$S_PORT}
    cmd=${cmd//\{run\}/$run}
    S_URL="http://$HOST:$S_PORT$S_PATH"
    # shellcheck disable=SC2086 # the command is split into words on purpose
    taskset -c "$SERVER_CPU" "$@" $cmd > "$log" 2>&1 &
    SERVER_PID=$!
    local _
    for _ in $(seq 300); do
        ss -Htln "sport = :$S_PORT" | grep -q . && return 0
        kill -0 "$SERVER_PID" 2> /dev/null || break
        sleep 0.1
    done
    echo "$name: did not start (see $log)" >&2
    stop_server
    return 1
}

# stop_server: SIGTERM (or STOP_SIGNAL) to the server this shell started, then SIGTERM
# after 5 s, then SIGKILL after 5 s more.
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
        local sig _
        for sig in "${STOP_SIGNAL:-TERM}" TERM KILL; do
            kill -"$sig" "$SERVER_PID" 2> /dev/null || true
            for _ in $(seq 50); do
                kill -0 "$SERVER_PID" 2> /dev/null || break 2
                sleep 0.1
            done
        done
    fi
    [ -z "$SERVER_PID" ] || wait "$SERVER_PID" 2> /dev/null || true
    SERVER_PID=
}

# valgrind_session NAME SCRATCH LOG VALGRIND_ARGS... -- CLIENT_ARGS...: starts NAME under
# valgrind (pinned to SERVER_CPU), runs `client.py PORT CLIENT_ARGS... --path PATH` (the
# server's path) on LOAD_CPU, then stops the server with SIGINT so that valgrind writes its
# results. CLIENT_ARGS `--load C N` instead runs `tether load` with C connections for N
# requests in all (one at a time on each): Python cannot keep many connections busy
# enough for the server to see them ready together. Fails if the server did not start or
# the client failed.
valgrind_session() {
    local name=$1 scratch=$2 log=$3 vg=() rc=0
    shift 3
    while [ "$1" != -- ]; do
        vg+=("$1")
        shift
    done
    shift
    start_server "$name" "$scratch" "$log" valgrind "${vg[@]}" || return 1
    local client=(python3 "$BENCH/client.py" "$S_PORT" "$@" --path "$S_PATH")
    [ "$1" != --load ] ||
        client=("$TETHER_BIN" load --threads 1 -c "$2" -n "$3" --timeout 60s "$S_URL")
    taskset -c "$LOAD_CPU" timeout 300 "${client[@]}" > "$log.client" 2>&1 ||
        { echo "$name: the client failed (see $log.client)" >&2; rc=1; }
    # tether load reports failed requests rather than failing: every one must succeed.
    [ "$1" != --load ] || grep -q ' 0 failed' "$log.client" ||
        { echo "$name: requests failed (see $log.client)" >&2; rc=1; }
    sleep 0.5 # let the server finish closing what the client closed
    STOP_SIGNAL=INT stop_server
    return "$rc"
}

# valgrind_setup TSV COLUMN...: the start of the scripts that run servers under valgrind.
# Fails without valgrind; makes the folder $scratch, removed (after stopping the server) on
# exit (copied first to $KEEP when set, to read the profiles); gives tether
# --max-requests 0 so that one connection carries every request; with OUT set, starts
# OUT/TSV with the tab-separated COLUMNs unless it holds rows already.
valgrind_setup() {
    command -v valgrind > /dev/null || { echo "missing valgrind (apt-get install valgrind)" >&2; exit 1; }
    scratch=$(mktemp -d)
    trap 'stop_server; [ -n "${KEEP:-}" ] && cp -r "$scratch" "$KEEP"; rm -rf "$scratch"' EXIT
    local i
    for i in "${!SERVERS[@]}"; do
        [[ ${SERVERS[$i]} == tether\|* ]] && SERVERS[$i]+=" --max-requests 0"
    done
    if [ -n "${OUT:-}" ]; then
        mkdir -p "$OUT"
        local tsv="$OUT/$1"
        shift
        [ -s "$tsv" ] || (IFS=$'\t' && echo "$*") > "$tsv"
    fi
}

# server_pids: the server and its direct children (nginx's worker is a child of its master).
server_pids() {
    echo "$SERVER_PID"
    pgrep -P "$SERVER_PID" || true
}

# free_port: a port the kernel considers free now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# selected_servers ARGS...: the names given, or DEFAULT_SERVERS.
selected_servers() {
    if [ $# -gt 0 ]; then echo "$@"; else echo "${DEFAULT_SERVERS[@]}"; fi
}

# run_meta COMMAND SECONDS LOAD_BEFORE: the lines of OUT/meta.txt that every full run
# writes (date, machine, commit, command, duration, load, rounds, rustc), for report.py.
run_meta() {
    local commit cpu family
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo "?")
    if [ -n "$(git -C "$ROOT" status --porcelain -- crates/tether crates/tether-cli 2> /dev/null)" ]; then
        commit+=" with uncommitted changes to the engine"
    fi
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $cpu (family $family), $(nproc) logical CPUs," \
        "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
        "Linux $(uname -r); servers pinned to CPU $SERVER_CPU, load to CPU $LOAD_CPU"
    echo "commit: $commit"
    echo "command: $1"
    echo "duration: $(($2 / 60)) min $(($2 % 60)) s"
    echo "load before: $3"
    sed -n 's/^rounds: /peers rounds: /p' "$OUT/peers-meta.txt" 2> /dev/null || true
    echo "version rust: $(rustc --version)"
}

# lock_version FOLDER CRATE: the version of CRATE in bench/peers/FOLDER/Cargo.lock.
lock_version() {
    awk -v c="$2" '$0 == "name = \"" c "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
        "$BENCH/peers/$1/Cargo.lock"
}

# ---------------------------------------------------------------------------- CPU accounting

CLK_TCK=$(getconf CLK_TCK)

# "UTIME STIME", in clock ticks, of the server and its direct children
cpu_ticks() {
    local pid user=0 sys=0 stat
    for pid in $(server_pids); do
        stat=$(cat "/proc/$pid/stat" 2> /dev/null) || continue
        # shellcheck disable=SC2086 # fields from 3 on; the name before may hold spaces
        set -- ${stat##*) }
        user=$((user + ${12}))
        sys=$((sys + ${13}))
    done
    echo "$user $sys"
}

# busy ticks (all but idle and iowait) of the two CPUs, from /proc/stat
cpus_busy() {
    awk -v a="cpu$SERVER_CPU" -v b="cpu$LOAD_CPU" \
        '$1 == a || $1 == b { t += $2 + $3 + $4 + $7 + $8 + $9 } END { print t }' /proc/stat
}

# measure LOG COMMAND...: run a load on LOAD_CPU, bounded in time (MEASURE_LIMIT seconds,
# 120 by default). Its output goes to
# LOG.txt; LOG.cpu gets, in seconds: the server's user and sys time, the wall time, the load
# generator's CPU time, and the CPU time of anything else on the two CPUs (noise).
measure() {
    local log=$1 t0 t1 w0 w1 b0 b1 TIMEFORMAT='%U %S'
    shift
    t0=$(cpu_ticks)
    b0=$(cpus_busy)
    w0=$(date +%s.%N)
    { time timeout "${MEASURE_LIMIT:-120}" taskset -c "$LOAD_CPU" "$@" > "$log.txt" 2>&1; } 2> "$log.time" || true
    t1=$(cpu_ticks)
    b1=$(cpus_busy)
    w1=$(date +%s.%N)
    awk -v t0="$t0" -v t1="$t1" -v w0="$w0" -v w1="$w1" -v b="$((b1 - b0))" -v hz="$CLK_TCK" '{
        split(t0, x, " "); split(t1, y, " ")
        u = (y[1] - x[1]) / hz; s = (y[2] - x[2]) / hz; l = $1 + $2
        other = b / hz - u - s - l
        printf "%.2f %.2f %.3f %.2f %.2f\n", u, s, w1 - w0, l, (other > 0 ? other : 0)
    }' "$log.time" > "$log.cpu"
    rm -f "$log.time"
}

# write_report: OUT/results.md from the results in OUT, and with DOC set the tables of that
# file rewritten (bench/report.py).
write_report() {
    if [ -n "$DOC" ]; then
        python3 "$BENCH/report.py" "$OUT" --doc "$DOC"
    else
        python3 "$BENCH/report.py" "$OUT"
    fi
}

# answering NAME URL LOG: waits up to 5 s for the started server to answer URL; if it does
# not, says so (naming LOG), stops it and fails.
answering() {
    local _
    for _ in $(seq 50); do
        curl -s -o /dev/null --max-time 1 "$2" && return 0
        sleep 0.1
    done
    echo "   $1 does not answer on $2 (see $3); skipped" >&2
    stop_server
    return 1
}

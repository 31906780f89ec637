#!/bin/bash
# SPDX-License-Identifier: MIT
# Unary NodeRegistry/Heartbeat under h2load against galaxy-poold and against the
# gRPC C++ reference server (bench/ref), both holding the same number of nodes,
# alternating the two servers shape by shape (connections x streams).  For every
# run: requests/s (h2load's "finished in ..., N req/s"), server CPU time per call
# (utime+stime from /proc/PID/stat) and the kernel's part of it (stime: the
# syscalls, loopback TCP's delivery to the client included), h2load's own CPU
# time per call (the client's share: with client and server on the same cores,
# req/s is about cores divided by the two together), and a status check: h2load
# counts HTTP 200s,
# which a gRPC error also is, so every run must have exactly as many grpc-status 0
# responses in the server's own counters (reference: its SIGUSR1 counts;
# galaxy-poold: galaxy_grpc_calls_total on /metrics) as h2load counted successes,
# and no non-OK call at all.  Prints a table with the ratio; exits 1 if any run
# failed that check.  Every h2load run is bounded by -n and a timeout.
#
# galaxy-poold runs with the whole phase chain: the modules auth_apikey and rbac
# (API keys and the access rules; anonymous heartbeats in the public pool
# mainnet pass them) and the access log written to a file, which must hold one
# OK line per call of the run; --bare runs it without modules and with the
# access log off, as before.
#
# --floor PATH adds a third server to the same alternation: bench/ref/bare_server,
# nghttp2 + libevent + protobuf-c doing the same map update and nothing else
# (same command line and counts as ref_server).  Its CPU per call is the floor
# galaxy-poold's is judged against; the table then shows poold's CPU per call
# divided by the floor's, and the floor's req/s divided by the reference's.
#
#   bench/heartbeat.sh --build /tmp/build-rel --ref /tmp/ref/ref_server
#   bench/heartbeat.sh --ref-only --ref /tmp/ref/ref_server -n 200000
#   bench/heartbeat.sh --build /tmp/build-rel --ref /tmp/ref/ref_server \
#       --floor /tmp/bare/bare_server
#   bench/heartbeat.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
ref=${REF_SERVER:-$src/bench/ref/ref_server}
floor=
mode=both
bare=0
module_dir=
n=200000
warmup=20000
nodes=100000
node=n42
shapes="1x100 16x32 64x16 256x1"
rounds=1
workers=$(nproc)
client_threads=$(nproc)
poold_conf=
poold_args=()
ref_register=0
reg_conc=256
h2load_timeout=600
log_dir=
server_cpus=
client_cpus=
srv_pin=()
cli_pin=()

usage() {
    cat <<EOF
usage: bench/heartbeat.sh [options]
  --build DIR            galaxy-poold build directory (default .)
  --ref PATH             reference server (default \$REF_SERVER or bench/ref/ref_server)
  --floor PATH           also measure bench/ref/bare_server (the CPU floor) in the same rounds
  --ref-only             measure only the reference server
  --poold-only           measure only galaxy-poold
  -n N                   requests per shape, per server and round (default $n)
  --warmup N             requests of one 16x32 warm-up run per server (default $warmup; 0 = none)
  --nodes N              nodes registered in pool mainnet, n0..n{N-1} (default $nodes)
  --node ID              the node every heartbeat is for (default $node)
  --shapes "CxM ..."     connections x streams (default "$shapes")
  --rounds R             repeat the whole alternation; the table shows medians (default 1)
  --workers N            server threads: galaxy-poold --workers, ref_server -t (default nproc)
  --client-threads N     h2load -t, at most the connections of the shape (default nproc)
  --bare                 galaxy-poold without modules and with the access log off (default:
                         auth_apikey and rbac loaded, access log written to a file)
  --module-dir DIR       where the modules are (default BUILD/modules/.libs)
  --poold-config FILE    galaxy-poold -c (replaces the generated configuration)
  --poold-arg ARG        one more galaxy-poold argument (repeatable)
  --ref-register         register the reference's nodes through Register too (default:
                         ref_server --preload, token "bench-token")
  --register-concurrency N  Register calls in flight (default $reg_conc)
  --h2load-timeout S     kill an h2load run after S seconds (default $h2load_timeout)
  --log-dir DIR          keep h2load outputs, server logs and the table here
  --server-cpus LIST     run every server on these CPUs only (taskset -c LIST, e.g. 0)
  --client-cpus LIST     run h2load on these CPUs only (e.g. 1): with both set, the load
                         generator no longer competes with the server for its cores
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    opt=$1
    val=${2-}
    shift
    case $opt in
    --ref-only) mode=ref; continue ;;
    --poold-only) mode=poold; continue ;;
    --ref-register) ref_register=1; continue ;;
    --bare) bare=1; continue ;;
    -h|--help) usage ;;
    esac
    [ $# -gt 0 ] || { echo "heartbeat.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    --ref) ref=$val ;;
    --floor) floor=$val ;;
    -n) n=$val ;;
    --warmup) warmup=$val ;;
    --nodes) nodes=$val ;;
    --node) node=$val ;;
    --shapes) shapes=$val ;;
    --rounds) rounds=$val ;;
    --workers) workers=$val ;;
    --client-threads) client_threads=$val ;;
    --module-dir) module_dir=$val ;;
    --poold-config) poold_conf=$val ;;
    --poold-arg) poold_args+=("$val") ;;
    --register-concurrency) reg_conc=$val ;;
    --h2load-timeout) h2load_timeout=$val ;;
    --log-dir) log_dir=$val ;;
    --server-cpus) server_cpus=$val ;;
    --client-cpus) client_cpus=$val ;;
    *) echo "heartbeat.sh: unknown argument $opt" >&2; usage ;;
    esac
done

for v in "$n" "$warmup" "$nodes" "$rounds" "$workers" "$client_threads" "$reg_conc" \
         "$h2load_timeout"; do
    isnum "$v" || { echo "heartbeat.sh: \"$v\" is not a number" >&2; exit 2; }
done
if [ "$n" -lt 1 ] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 50 ] || [ "$client_threads" -lt 1 ]; then
    echo "heartbeat.sh: need -n > 0, --rounds 1..50, --client-threads >= 1" >&2
    exit 2
fi
node_idx=${node#n}
if ! isnum "$node_idx" || [ "$node_idx" -ge "$nodes" ]; then
    echo "heartbeat.sh: --node must be one of n0..n$((nodes - 1))" >&2
    exit 2
fi
shapes_check heartbeat.sh 1 $shapes
for v in "$server_cpus" "$client_cpus"; do
    if [ -n "$v" ] && ! taskset -c "$v" true 2>/dev/null; then
        echo "heartbeat.sh: \"$v\" is not a CPU list this machine has (taskset -c)" >&2
        exit 2
    fi
done
if [ -n "$server_cpus" ]; then srv_pin=(taskset -c "$server_cpus"); fi
if [ -n "$client_cpus" ]; then cli_pin=(taskset -c "$client_cpus"); fi
servers=()
if [ "$mode" != poold ]; then servers+=(ref); fi
if [ "$mode" != ref ]; then servers+=(poold); fi
if [ -n "$floor" ]; then
    [ $ref_register = 0 ] ||
        { echo "heartbeat.sh: --floor takes no --ref-register (bare_server serves Heartbeat" \
               "only; its nodes come from --preload)" >&2; exit 2; }
    [ -x "$floor" ] ||
        { echo "heartbeat.sh: no floor server at $floor (bench/ref/Makefile.bare)" >&2; exit 1; }
    servers+=(floor)
fi
command -v h2load >/dev/null || { echo "heartbeat.sh: no h2load: run bench/deps.sh" >&2; exit 1; }
if [ "$mode" != poold ] && [ ! -x "$ref" ]; then
    echo "heartbeat.sh: no reference server at $ref (make -C bench/ref, or --ref)" >&2
    exit 1
fi
if [ "$mode" != ref ] && [ ! -x "$build/galaxy-poold" ]; then
    echo "heartbeat.sh: no $build/galaxy-poold (--build DIR)" >&2
    exit 1
fi
[ -n "$module_dir" ] || module_dir=$build/modules/.libs
if [ "$mode" != ref ] && [ $bare = 0 ] && [ -z "$poold_conf" ] &&
   { [ ! -f "$module_dir/auth_apikey.so" ] || [ ! -f "$module_dir/rbac.so" ]; }; then
    echo "heartbeat.sh: no auth_apikey.so and rbac.so in $module_dir (--module-dir DIR, or" \
         "--bare)" >&2
    exit 1
fi
if [ -n "$poold_conf" ]; then conf_desc="configuration $poold_conf"
elif [ $bare = 1 ]; then conf_desc="bare: no modules, access log off"
else conf_desc="whole phase chain: auth_apikey + rbac, access log to a file"; fi

tmp=$(mktemp -d)
declare -A pid addr admin
cleanup() {
    local s
    for s in "${!pid[@]}"; do kill "${pid[$s]}" 2>/dev/null || true; done
    if [ -n "$log_dir" ]; then mkdir -p "$log_dir"; cp -r "$tmp"/. "$log_dir"/; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
py=/usr/bin/python3
reg="$py $src/bench/register_nodes.py"
alog=$tmp/access.log
# start_refish NAME BINARY: ref_server, or a server with its command line (bare_server)
start_refish() {
    local name=$1 bin=$2 pre=$nodes
    if [ $ref_register = 1 ]; then pre=0; fi
    ${srv_pin[@]+"${srv_pin[@]}"} "$bin" --listen 127.0.0.1:0 -t "$workers" --preload "$pre" --ready-file "$tmp/$name.ready" \
        2>"$tmp/$name.log" &
    pid[$name]=$!
    wait_file "$tmp/$name.ready" "${pid[$name]}" ||
        { echo "heartbeat.sh: $bin did not start:" >&2; cat "$tmp/$name.log" >&2; exit 1; }
    addr[$name]=$(sed -n 's/^h2c=//p' "$tmp/$name.ready")
    if [ $ref_register = 1 ]; then
        $reg --target "${addr[$name]}" --count "$nodes" --concurrency "$reg_conc" \
            --node "$node" --body "$tmp/$name.body" --check
    else
        $reg --target "${addr[$name]}" --node "$node" --token bench-token \
            --body "$tmp/$name.body" --check
    fi
}
start_ref() { start_refish ref "$ref"; }
start_floor() { start_refish floor "$floor"; }

start_poold() {
    local conf=$poold_conf
    if [ -z "$conf" ]; then
        conf=$tmp/poold.yaml
        if [ $bare = 1 ]; then
            printf 'server:\n  log_level: warn\n  access_log: "off"\n' >"$conf"
        else
            printf 'server:\n  log_level: warn\n  access_log: "%s"\n' "$alog" >"$conf"
            printf 'modules:\n  - path: auth_apikey\n  - path: rbac\n' >>"$conf"
        fi
    fi
    ${srv_pin[@]+"${srv_pin[@]}"} "$build/galaxy-poold" -c "$conf" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$tmp/poold-var" --module-dir "$module_dir" --workers "$workers" \
        --ready-file "$tmp/poold.ready" ${poold_args[@]+"${poold_args[@]}"} \
        2>"$tmp/poold.log" &
    pid[poold]=$!
    wait_file "$tmp/poold.ready" "${pid[poold]}" ||
        { echo "heartbeat.sh: galaxy-poold did not start:" >&2; cat "$tmp/poold.log" >&2; exit 1; }
    addr[poold]=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
    admin[poold]=$(sed -n 's/^admin=//p' "$tmp/poold.ready")
    [ -n "${admin[poold]}" ] ||
        { echo "heartbeat.sh: galaxy-poold has no admin listener (needed for /metrics)" >&2
          exit 1; }
    $reg --target "${addr[poold]}" --count "$nodes" --concurrency "$reg_conc" \
        --node "$node" --body "$tmp/poold.body" --check ||
        { echo "heartbeat.sh: registering $nodes nodes in galaxy-poold failed" >&2; exit 1; }
    # the --check Heartbeat's access-log line comes with its worker's next flush (100 ms):
    # wait for it, so that it is not counted in the first run
    if [ -f "$alog" ]; then
        alog_count 1 >/dev/null
        : >"$alog"
    fi
}
# "OK ERR": grpc-status 0 Heartbeat responses, and non-OK calls of any method.
counts_refish() {
    local name=$1 before after i=0 line
    before=$(grep -c '(SIGUSR1)$' "$tmp/$name.log" || true)
    kill -USR1 "${pid[$name]}"
    while [ $i -lt 100 ]; do
        after=$(grep -c '(SIGUSR1)$' "$tmp/$name.log" || true)
        [ "$after" -gt "$before" ] && break
        sleep 0.02
        i=$((i + 1))
    done
    line=$(grep '(SIGUSR1)$' "$tmp/$name.log" | tail -1)
    echo "$line" | sed -n 's/^ok=[0-9]* err=\([0-9]*\) heartbeat_ok=\([0-9]*\) .*/\2 \1/p'
}
counts_ref() { counts_refish ref; }
counts_floor() { counts_refish floor; }

counts_poold() {
    curl -sf --max-time 5 "http://${admin[poold]}/metrics" | awk '
        /^galaxy_grpc_calls_total\{/ {
            if ($0 ~ /method="\/galaxy.pool.v1.NodeRegistry\/Heartbeat",code="OK"/) ok += $NF
            else if ($0 !~ /code="OK"/) err += $NF
        }
        END { printf "%d %d\n", ok, err }'
}

counts() { "counts_$1"; }

# galaxy-poold's access-log lines of OK Heartbeat calls; waits (bounded: each worker
# writes its lines every 100 ms, later on a busy machine) until there are at least $1
alog_count() {
    local want=$1 i=0 got=0
    while [ $i -lt 200 ]; do
        got=$(grep -c 'method=/galaxy.pool.v1.NodeRegistry/Heartbeat status=OK ' "$alog" \
              2>/dev/null || true)
        [ "${got:-0}" -ge "$want" ] && break
        sleep 0.05
        i=$((i + 1))
    done
    echo "${got:-0}"
}

# run SERVER CONNS STREAMS REQUESTS LABEL -> appends "rps us_per_call" to $tmp/res.SERVER.LABEL
failures=0
run() {
    local s=$1 c=$2 m=$3 req=$4 label=$5 t out rps ndone succ u0 s0 u1 s1 us sus cus ok0 err0 ok1
    local err1 i
    local verdict
    local logged=$req a0=0
    t=$client_threads
    if [ "$t" -gt "$c" ]; then t=$c; fi
    read -r ok0 err0 <<<"$(counts "$s")"
    if [ "$s" = poold ] && [ -f "$alog" ]; then a0=$(alog_count 0); fi
    read -r u0 s0 <<<"$(cpu_split "$s")"
    # bash's time gives h2load's own CPU (user + system seconds): the client's share
    { TIMEFORMAT='%U %S'
      time timeout "$h2load_timeout" ${cli_pin[@]+"${cli_pin[@]}"} h2load -n "$req" -c "$c" -m "$m" -t "$t" \
          -d "$tmp/$s.body" -H 'content-type: application/grpc' -H 'te: trailers' \
          "http://${addr[$s]}/galaxy.pool.v1.NodeRegistry/Heartbeat" \
          >"$tmp/h2load.$s.$label.txt" 2>&1 || true; } 2>"$tmp/h2load.time"
    read -r u1 s1 <<<"$(cpu_split "$s")"
    out=$(cat "$tmp/h2load.$s.$label.txt")
    cus=$(awk -v n="$req" '{ printf "%.2f", ($1 + $2) * 1000000 / n }' "$tmp/h2load.time")
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    ndone=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' <<<"$out")
    succ=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    # The server may count a call just after its response left: wait (bounded).
    i=0
    while :; do
        read -r ok1 err1 <<<"$(counts "$s")"
        [ $((ok1 - ok0)) -ge "${succ:-0}" ] || [ $i -ge 50 ] && break
        sleep 0.02
        i=$((i + 1))
    done
    # the access log, when galaxy-poold writes one, has a line for every call; it is
    # emptied after each count (O_APPEND: the server's next lines go to its new end)
    if [ "$s" = poold ] && [ -f "$alog" ]; then
        logged=$(( $(alog_count $((a0 + req))) - a0 ))
        : >"$alog"
    fi
    us=$(echo "($u1 + $s1 - $u0 - $s0) * 1000000 / $ticks / $req" | bc -l)
    sus=$(echo "($s1 - $s0) * 1000000 / $ticks / $req" | bc -l)
    verdict=ok
    if [ -z "$rps" ] || [ "${ndone:-0}" != "$req" ] || [ "${succ:-0}" != "$req" ] ||
       [ $((ok1 - ok0)) != "$req" ] || [ $((err1 - err0)) != 0 ] || [ "$logged" != "$req" ]; then
        verdict="FAILED (h2load done=${ndone:-?} succeeded=${succ:-?}; server grpc-status 0: \
$((ok1 - ok0)), non-OK: $((err1 - err0)), access-log lines: $logged; see h2load.$s.$label.txt)"
        failures=$((failures + 1))
        rps=${rps:-0}
    fi
    printf '%-5s %4s x %-3s %10.0f req/s %7.2f us CPU/call (kernel %5.2f; h2load %5.2f)  %s\n' \
        "$s" "$c" "$m" "$rps" "$us" "$sus" "$cus" "$verdict"
    echo "$rps $us $cus ${verdict%% *} $sus" >>"$tmp/res.$s.${c}x$m"
}
echo "heartbeat: $nodes nodes, node $node, -n $n per shape, $rounds round(s), server threads" \
     "$workers, h2load -t <= $client_threads, $(nproc) cores" \
     "${server_cpus:+(servers on CPUs $server_cpus)}${client_cpus:+ (h2load on CPUs $client_cpus)}"
if [ "$mode" != ref ]; then echo "galaxy-poold: $conf_desc"; fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the numbers)"
for s in "${servers[@]}"; do "start_$s"; done
if [ "$warmup" -gt 0 ]; then
    for s in "${servers[@]}"; do run "$s" 16 32 "$warmup" warmup >/dev/null; done
    rm -f "$tmp"/res.*.16x32
    if [ $failures -gt 0 ]; then
        echo "heartbeat.sh: warm-up run failed the status check" >&2
        exit 1
    fi
fi
k=0
for r in $(seq 1 "$rounds"); do
    for shape in $shapes; do
        # the order turns at every shape, so that no server always runs first
        i=$((k % ${#servers[@]}))
        order=("${servers[@]:$i}" "${servers[@]:0:$i}")
        k=$((k + 1))
        for s in "${order[@]}"; do run "$s" "${shape%x*}" "${shape#*x}" "$n" "r$r.$shape"; done
    done
done

ratio() { echo "$1 / $2" | bc -l 2>/dev/null || echo nan; }
{
    echo
    printf '%-9s' "shape"
    for s in "${servers[@]}"; do
        printf ' %12s %8s %9s %9s' "$s req/s" "us/call" "kernel us" "h2load us"
    done
    if [ "$mode" = both ]; then printf ' %10s' "poold/ref"; fi
    if [ -n "$floor" ] && [ "$mode" != poold ]; then printf ' %10s' "floor/ref"; fi
    if [ -n "$floor" ] && [ "$mode" != ref ]; then printf ' %15s' "poold/floor CPU"; fi
    echo
    for shape in $shapes; do
        printf '%-9s' "${shape/x/ x }"
        declare -A med=() cpu_med=()
        for s in "${servers[@]}"; do
            med[$s]=$(median 1 "$tmp/res.$s.$shape")
            cpu_med[$s]=$(median 2 "$tmp/res.$s.$shape")
            printf ' %12.0f %8.2f %9.2f %9.2f' "${med[$s]}" "${cpu_med[$s]}" \
                "$(median 5 "$tmp/res.$s.$shape")" "$(median 3 "$tmp/res.$s.$shape")"
        done
        if [ "$mode" = both ]; then printf ' %10.2f' "$(ratio "${med[poold]}" "${med[ref]}")"; fi
        if [ -n "$floor" ] && [ "$mode" != poold ]; then
            printf ' %10.2f' "$(ratio "${med[floor]}" "${med[ref]}")"
        fi
        if [ -n "$floor" ] && [ "$mode" != ref ]; then
            printf ' %15.2f' "$(ratio "${cpu_med[poold]}" "${cpu_med[floor]}")"
        fi
        if cat "$tmp"/res.*."$shape" | grep -q FAILED; then printf '  FAILED status check'; fi
        echo
    done
    if [ "$rounds" -gt 1 ]; then echo "(medians of $rounds rounds)"; fi
    if [ "$mode" != ref ]; then echo "(galaxy-poold: $conf_desc)"; fi
} | tee "$tmp/table.txt"

for s in "${servers[@]}"; do
    kill -TERM "${pid[$s]}"
    i=0
    while kill -0 "${pid[$s]}" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    wait "${pid[$s]}" || echo "heartbeat.sh: $s exited with status $?" >&2
    unset "pid[$s]"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$mode" != poold ]; then echo "ref_server final counts: $(tail -1 "$tmp/ref.log")"; fi
if [ -n "$floor" ]; then echo "floor final counts: $(tail -1 "$tmp/floor.log")"; fi
if [ $failures -gt 0 ]; then
    echo "heartbeat.sh: $failures run(s) failed the grpc-status check" >&2
    exit 1
fi
echo "all runs verified: every response h2load counted had grpc-status 0"

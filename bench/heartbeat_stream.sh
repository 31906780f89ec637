#!/bin/bash
# SPDX-License-Identifier: MIT
# Streamed heartbeats: NodeRegistry/HeartbeatStream messages per second on
# galaxy-poold (bidi streams driven by bench/gx_load --stream-msgs), against the
# unary NodeRegistry/Heartbeat of the gRPC C++ reference server (bench/ref,
# h2load, as heartbeat.sh measures it), both holding the same number of nodes.
# The reference's unary runs (default 16x32 and 256x1) alternate with the
# stream runs in the same script run (ref, stream, ref, stream, ..., ref), and
# the table gives every stream shape's messages/s over the reference's best
# unary req/s (the target is 3x at 256 streams).
#
# Every stream sends K framed HeartbeatRequests (at most --window awaiting their
# response), half-closes, and must get exactly K well-formed responses and
# grpc-status 0 (gx_load checks); galaxy-poold must count as many OK
# HeartbeatStream calls as streams and no non-OK call (/metrics), and, with the
# access log on, log one OK line per stream.  Reference runs are checked as in
# heartbeat.sh.  Server CPU per message: utime+stime from /proc/PID/stat over
# the run, divided by the messages.  Every run is bounded by a count and a
# timeout; the script exits 1 if any run failed a check.
#
#   bench/heartbeat_stream.sh --build /tmp/build-rel --ref /tmp/ref/ref_server
#   bench/heartbeat_stream.sh --build /tmp/build-rel --bare --poold-only
#   bench/heartbeat_stream.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
ref=${REF_SERVER:-$src/bench/ref/ref_server}
gx_load=
mode=both
bare=0
n=200000
msgs=1000000
window=1
warmup=1
nodes=100000
node=n42
shapes="4x4 4x16 4x64"
ref_shapes="16x32 256x1"
rounds=1
workers=$(nproc)
client_threads=$(nproc)
module_dir=
poold_conf=
poold_args=()
reg_conc=256
run_timeout=600
target=3
log_dir=

usage() {
    cat <<EOF
usage: bench/heartbeat_stream.sh [options]
  --build DIR            galaxy-poold build directory (default .)
  --ref PATH             reference server (default \$REF_SERVER or bench/ref/ref_server)
  --poold-only           no reference runs (no ratio)
  --gx-load PATH         gx_load binary (default: bench/gx_load.c built into the temp dir)
  --messages N           HeartbeatRequests per stream run, all streams together (default
                         $msgs; each stream sends N / streams, rounded up)
  --window W             requests of a stream awaiting their response (default $window)
  -n N                   requests of each reference unary run (default $n)
  --warmup 0|1           one short run of each server first (default $warmup)
  --nodes N              nodes registered in pool mainnet, n0..n{N-1} (default $nodes)
  --node ID              the node every heartbeat is for (default $node)
  --shapes "CxS ..."     stream runs: connections x streams per connection (default "$shapes")
  --ref-shapes "CxM ..." reference unary runs: connections x streams (default "$ref_shapes")
  --rounds R             repeat the whole sequence; the table shows medians (default 1)
  --workers N            server threads: galaxy-poold --workers, ref_server -t (default nproc)
  --client-threads N     gx_load -t and h2load -t, at most the connections (default nproc)
  --bare                 galaxy-poold without modules and with the access log off (default:
                         auth_apikey and rbac loaded, access log written to a file)
  --module-dir DIR       where the modules are (default BUILD/modules/.libs)
  --poold-config FILE    galaxy-poold -c (replaces the generated configuration)
  --poold-arg ARG        one more galaxy-poold argument (repeatable)
  --register-concurrency N  Register calls in flight (default $reg_conc)
  --timeout S            bound of every client run in seconds (default $run_timeout)
  --target X             the ratio the 256-stream run should reach (default $target)
  --log-dir DIR          keep client outputs, server logs and the table here
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    opt=$1
    val=${2-}
    shift
    case $opt in
    --poold-only) mode=poold; continue ;;
    --bare) bare=1; continue ;;
    -h|--help) usage ;;
    esac
    [ $# -gt 0 ] || { echo "heartbeat_stream.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    --ref) ref=$val ;;
    --gx-load) gx_load=$val ;;
    --messages) msgs=$val ;;
    --window) window=$val ;;
    -n) n=$val ;;
    --warmup) warmup=$val ;;
    --nodes) nodes=$val ;;
    --node) node=$val ;;
    --shapes) shapes=$val ;;
    --ref-shapes) ref_shapes=$val ;;
    --rounds) rounds=$val ;;
    --workers) workers=$val ;;
    --client-threads) client_threads=$val ;;
    --module-dir) module_dir=$val ;;
    --poold-config) poold_conf=$val ;;
    --poold-arg) poold_args+=("$val") ;;
    --register-concurrency) reg_conc=$val ;;
    --timeout) run_timeout=$val ;;
    --target) target=$val ;;
    --log-dir) log_dir=$val ;;
    *) echo "heartbeat_stream.sh: unknown argument $opt" >&2; usage ;;
    esac
done

die() { echo "heartbeat_stream.sh: $*" >&2; exit 1; }
for v in "$n" "$msgs" "$window" "$warmup" "$nodes" "$rounds" "$workers" "$client_threads" \
         "$reg_conc" "$run_timeout"; do
    isnum "$v" || { echo "heartbeat_stream.sh: \"$v\" is not a number" >&2; exit 2; }
done
if [ "$n" -lt 1 ] || [ "$msgs" -lt 1 ] || [ "$window" -lt 1 ] || [ "$window" -gt 4096 ] ||
   [ "$rounds" -lt 1 ] || [ "$rounds" -gt 50 ] || [ "$client_threads" -lt 1 ] ||
   [ "$run_timeout" -lt 1 ]; then
    echo "heartbeat_stream.sh: need -n, --messages, --timeout > 0, --window 1..4096," \
         "--rounds 1..50, --client-threads >= 1" >&2
    exit 2
fi
node_idx=${node#n}
if ! isnum "$node_idx" || [ "$node_idx" -ge "$nodes" ]; then
    echo "heartbeat_stream.sh: --node must be one of n0..n$((nodes - 1))" >&2
    exit 2
fi
shapes_check heartbeat_stream.sh 1 $shapes $ref_shapes
[ -n "$module_dir" ] || module_dir=$build/modules/.libs
[ -x "$build/galaxy-poold" ] || die "no $build/galaxy-poold (--build DIR)"
if [ "$mode" = both ]; then
    [ -x "$ref" ] || die "no reference server at $ref (make -C bench/ref, or --ref)"
    command -v h2load >/dev/null || die "no h2load: run bench/deps.sh"
fi
if [ $bare = 0 ] && [ -z "$poold_conf" ] &&
   { [ ! -f "$module_dir/auth_apikey.so" ] || [ ! -f "$module_dir/rbac.so" ]; }; then
    die "no auth_apikey.so and rbac.so in $module_dir (--module-dir DIR, or --bare)"
fi

tmp=$(mktemp -d)
declare -A pid addr
admin=
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

gx_load_build heartbeat_stream.sh
start_ref() {
    "$ref" --listen 127.0.0.1:0 -t "$workers" --preload "$nodes" --ready-file "$tmp/ref.ready" \
        2>"$tmp/ref.log" &
    pid[ref]=$!
    wait_file "$tmp/ref.ready" "${pid[ref]}" ||
        { echo "heartbeat_stream.sh: ref_server did not start:" >&2; cat "$tmp/ref.log" >&2
          exit 1; }
    addr[ref]=$(sed -n 's/^h2c=//p' "$tmp/ref.ready")
    $reg --target "${addr[ref]}" --node "$node" --token bench-token --body "$tmp/ref.body" \
        --check || die "the reference does not answer the heartbeat"
}

# the configuration galaxy-poold runs with: the whole phase chain (API keys, access
# rules, access log to a file) unless --bare
poold_config() {
    if [ -n "$poold_conf" ]; then echo "$poold_conf"; return; fi
    if [ $bare = 1 ]; then
        printf 'server:\n  log_level: warn\n  access_log: "off"\n' >"$tmp/poold.yaml"
    else
        printf 'server:\n  log_level: warn\n  access_log: "%s"\n' "$alog" >"$tmp/poold.yaml"
        printf 'modules:\n  - path: auth_apikey\n  - path: rbac\n' >>"$tmp/poold.yaml"
    fi
    echo "$tmp/poold.yaml"
}

start_poold() {
    "$build/galaxy-poold" -c "$(poold_config)" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$tmp/poold-var" --module-dir "$module_dir" --workers "$workers" \
        --ready-file "$tmp/poold.ready" ${poold_args[@]+"${poold_args[@]}"} \
        2>"$tmp/poold.log" &
    pid[poold]=$!
    wait_file "$tmp/poold.ready" "${pid[poold]}" ||
        { echo "heartbeat_stream.sh: galaxy-poold did not start:" >&2; cat "$tmp/poold.log" >&2
          exit 1; }
    addr[poold]=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
    admin=$(sed -n 's/^admin=//p' "$tmp/poold.ready")
    [ -n "$admin" ] || die "galaxy-poold has no admin listener (needed for /metrics)"
    $reg --target "${addr[poold]}" --count "$nodes" --concurrency "$reg_conc" \
        --node "$node" --body "$tmp/poold.body" --check ||
        die "registering $nodes nodes in galaxy-poold failed"
}
# "OK ERR": grpc-status 0 Heartbeat responses, and non-OK calls of any method.
counts_ref() {
    local before after i=0 line
    before=$(grep -c '(SIGUSR1)$' "$tmp/ref.log" || true)
    kill -USR1 "${pid[ref]}"
    while [ $i -lt 100 ]; do
        after=$(grep -c '(SIGUSR1)$' "$tmp/ref.log" || true)
        [ "$after" -gt "$before" ] && break
        sleep 0.02
        i=$((i + 1))
    done
    line=$(grep '(SIGUSR1)$' "$tmp/ref.log" | tail -1)
    echo "$line" | sed -n 's/^ok=[0-9]* err=\([0-9]*\) heartbeat_ok=\([0-9]*\) .*/\2 \1/p'
}

# "OK ERR": OK HeartbeatStream calls, and non-OK calls of any method.
counts_poold() {
    curl -sf --max-time 5 "http://$admin/metrics" | awk '
        /^galaxy_grpc_calls_total\{/ {
            if ($0 ~ /method="\/galaxy.pool.v1.NodeRegistry\/HeartbeatStream",code="OK"/)
                ok += $NF
            else if ($0 !~ /code="OK"/) err += $NF
        }
        END { printf "%d %d\n", ok, err }'
}

# access-log lines of OK HeartbeatStream calls so far; waits (bounded: the log is
# written every 100 ms) until there are at least $1
alog_count() {
    local want=$1 i=0 got=0
    while [ $i -lt 50 ]; do
        got=$(grep -c 'method=/galaxy.pool.v1.NodeRegistry/HeartbeatStream status=OK ' \
              "$alog" 2>/dev/null || true)
        [ "${got:-0}" -ge "$want" ] && break
        sleep 0.05
        i=$((i + 1))
    done
    echo "${got:-0}"
}

field() {    # NAME RESULT: the value of NAME= in gx_load's result line
    sed -n "s/.* $1=\\([0-9.]*\\).*/\\1/p" <<<" $2"
}

failures=0

# stream CONNS STREAMS LABEL -> appends "msgs/s us/msg p99_ms verdict" to res.poold.CxS
stream() {
    local c=$1 m=$2 label=$3 t streams k out res ok recv sent bad mrps p99 c0 c1 us i
    local ok0 err0 ok1 err1 a0 a1 verdict rc=0
    streams=$((c * m))
    k=$(( (msgs + streams - 1) / streams ))
    t=$client_threads
    if [ "$t" -gt "$c" ]; then t=$c; fi
    read -r ok0 err0 <<<"$(counts_poold)"
    a0=0
    if [ -f "$alog" ]; then a0=$(alog_count 0); fi
    c0=$(cpu poold)
    out=$(timeout $((run_timeout + 30)) "$gx_load" -n "$streams" -c "$c" -m "$m" -t "$t" \
          --stream-msgs "$k" --stream-window "$window" --timeout "$run_timeout" \
          -d "$tmp/poold.body" --framed \
          "http://${addr[poold]}/galaxy.pool.v1.NodeRegistry/HeartbeatStream" 2>&1) || rc=$?
    c1=$(cpu poold)
    printf '%s\n' "$out" >"$tmp/gx_load.poold.$label.txt"
    res=$(sed -n 's/^result: //p' <<<"$out")
    ok=$(field ok "$res"); sent=$(field msgs_sent "$res"); recv=$(field msgs_recv "$res")
    bad=$(field msgs_bad "$res"); mrps=$(field msg_rps "$res"); p99=$(field p99_ms "$res")
    i=0
    while :; do
        read -r ok1 err1 <<<"$(counts_poold)"
        [ $((ok1 - ok0)) -ge "${ok:-0}" ] || [ $i -ge 50 ] && break
        sleep 0.02
        i=$((i + 1))
    done
    a1=$a0
    if [ -f "$alog" ]; then a1=$(alog_count $((a0 + streams))); fi
    us=$(echo "($c1 - $c0) * 1000000 / $ticks / ($streams * $k)" | bc -l)
    verdict=ok
    if [ $rc != 0 ] || [ -z "$mrps" ] || [ "${ok:-0}" != "$streams" ] ||
       [ "${sent:-0}" != $((streams * k)) ] || [ "${recv:-0}" != $((streams * k)) ] ||
       [ "${bad:-1}" != 0 ] || [ $((ok1 - ok0)) != "$streams" ] || [ $((err1 - err0)) != 0 ] ||
       { [ -f "$alog" ] && [ $((a1 - a0)) != "$streams" ]; }; then
        verdict="FAILED (gx_load exit $rc, OK streams ${ok:-?}/$streams, responses ${recv:-?}/\
$((streams * k)), malformed ${bad:-?}; server: OK streams $((ok1 - ok0)), non-OK \
$((err1 - err0)), access-log lines $((a1 - a0)); see gx_load.poold.$label.txt)"
        failures=$((failures + 1))
        mrps=${mrps:-0}
    fi
    printf '%-5s %4s x %-3s %5d streams x %6d msgs %10.0f msg/s %7.2f us CPU/msg' \
        poold "$c" "$m" "$streams" "$k" "$mrps" "$us"
    printf ' p99 %7.3f ms  %s\n' "${p99:-0}" "$verdict"
    echo "$mrps $us ${p99:-0} ${verdict%% *}" >>"$tmp/res.poold.${c}x$m"
}

# unary CONNS STREAMS REQUESTS LABEL -> appends "req/s us/call verdict" to res.ref.CxM
unary() {
    local c=$1 m=$2 req=$3 label=$4 t out rps ndone succ c0 c1 us ok0 err0 ok1 err1 i verdict
    t=$client_threads
    if [ "$t" -gt "$c" ]; then t=$c; fi
    read -r ok0 err0 <<<"$(counts_ref)"
    c0=$(cpu ref)
    out=$(timeout "$run_timeout" h2load -n "$req" -c "$c" -m "$m" -t "$t" \
          -d "$tmp/ref.body" -H 'content-type: application/grpc' -H 'te: trailers' \
          "http://${addr[ref]}/galaxy.pool.v1.NodeRegistry/Heartbeat" 2>&1) || true
    c1=$(cpu ref)
    printf '%s\n' "$out" >"$tmp/h2load.ref.$label.txt"
    rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
    ndone=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' <<<"$out")
    succ=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
    i=0
    while :; do
        read -r ok1 err1 <<<"$(counts_ref)"
        [ $((ok1 - ok0)) -ge "${succ:-0}" ] || [ $i -ge 50 ] && break
        sleep 0.02
        i=$((i + 1))
    done
    us=$(echo "($c1 - $c0) * 1000000 / $ticks / $req" | bc -l)
    verdict=ok
    if [ -z "$rps" ] || [ "${ndone:-0}" != "$req" ] || [ "${succ:-0}" != "$req" ] ||
       [ $((ok1 - ok0)) != "$req" ] || [ $((err1 - err0)) != 0 ]; then
        verdict="FAILED (h2load done=${ndone:-?} succeeded=${succ:-?}; server grpc-status 0: \
$((ok1 - ok0)), non-OK: $((err1 - err0)); see h2load.ref.$label.txt)"
        failures=$((failures + 1))
        rps=${rps:-0}
    fi
    printf '%-5s %4s x %-3s %39s %10.0f req/s %7.2f us CPU/call  %s\n' \
        ref "$c" "$m" "(unary Heartbeat, h2load)" "$rps" "$us" "$verdict"
    echo "$rps $us ${verdict%% *}" >>"$tmp/res.ref.${c}x$m"
}
if [ -n "$poold_conf" ]; then conf_desc="configuration $poold_conf"
elif [ $bare = 1 ]; then conf_desc="bare (no modules, access log off)"
else conf_desc="auth_apikey + rbac, access log to a file"; fi
echo "heartbeat_stream: $nodes nodes, node $node, $msgs messages a stream run (window" \
     "$window), $n requests a reference run, $rounds round(s), server threads $workers," \
     "client threads <= $client_threads, $(nproc) cores"
echo "galaxy-poold: $conf_desc"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" \
     "(anything else running skews the numbers)"
start_poold
if [ "$mode" = both ]; then start_ref; fi
read -r -a sh_s <<<"$shapes"
read -r -a sh_r <<<"$ref_shapes"
if [ "$warmup" = 1 ]; then
    msgs_saved=$msgs
    msgs=$((msgs / 10 + 1))
    stream "${sh_s[0]%x*}" "${sh_s[0]#*x}" warmup >/dev/null
    msgs=$msgs_saved
    if [ "$mode" = both ]; then unary 16 32 $((n / 10 + 1)) warmup >/dev/null; fi
    rm -f "$tmp"/res.*
    [ $failures = 0 ] || die "a warm-up run failed its checks (see --log-dir)"
fi
# ref, stream, ref, stream, ..., ref: the reference shapes in turn between the stream runs
nref=${#sh_s[@]}
nref=$((nref + 1))
if [ $nref -lt ${#sh_r[@]} ]; then nref=${#sh_r[@]}; fi
for r in $(seq 1 "$rounds"); do
    for i in $(seq 0 $((nref - 1))); do
        if [ "$mode" = both ]; then
            shape=${sh_r[$(( (i + r - 1) % ${#sh_r[@]} ))]}
            unary "${shape%x*}" "${shape#*x}" "$n" "r$r.$i.$shape"
        fi
        if [ "$i" -lt ${#sh_s[@]} ]; then
            shape=${sh_s[$i]}
            stream "${shape%x*}" "${shape#*x}" "r$r.$shape"
        fi
    done
done

best=0
best_shape=
{
    echo
    if [ "$mode" = both ]; then
        printf 'reference, unary Heartbeat (h2load)\n%-9s %12s %10s\n' shape "req/s" "us/call"
        for shape in "${sh_r[@]}"; do
            med=$(median 1 "$tmp/res.ref.$shape")
            printf '%-9s %12.0f %10.2f' "${shape/x/ x }" "$med" "$(median 2 "$tmp/res.ref.$shape")"
            if grep -q FAILED "$tmp/res.ref.$shape"; then printf '  FAILED status check'; fi
            echo
            if [ "$(echo "$med > $best" | bc -l)" = 1 ]; then best=$med; best_shape=$shape; fi
        done
        echo
    fi
    printf 'galaxy-poold, HeartbeatStream (gx_load, window %s; %s)\n' "$window" "$conf_desc"
    printf '%-9s %8s %12s %10s %9s' shape streams "msgs/s" "us/msg" "p99 ms"
    if [ "$mode" = both ]; then printf ' %14s' "/ best ref"; fi
    echo
    for shape in "${sh_s[@]}"; do
        med=$(median 1 "$tmp/res.poold.$shape")
        printf '%-9s %8d %12.0f %10.2f %9.3f' "${shape/x/ x }" $(( ${shape%x*} * ${shape#*x} )) \
            "$med" "$(median 2 "$tmp/res.poold.$shape")" "$(median 3 "$tmp/res.poold.$shape")"
        if [ "$mode" = both ]; then
            printf ' %13.2fx' "$(echo "$med / $best" | bc -l 2>/dev/null || echo nan)"
        fi
        if grep -q FAILED "$tmp/res.poold.$shape"; then printf '  FAILED checks'; fi
        echo
    done
    if [ "$rounds" -gt 1 ]; then echo "(medians of $rounds rounds)"; fi
    if [ "$mode" = both ]; then
        printf 'best reference unary: %.0f req/s at %s\n' "$best" "${best_shape/x/ x }"
        for shape in "${sh_s[@]}"; do
            [ $(( ${shape%x*} * ${shape#*x} )) = 256 ] || continue
            med=$(median 1 "$tmp/res.poold.$shape")
            if [ "$(echo "$med >= $target * $best" | bc -l)" = 1 ]; then v=met; else v="NOT met"; fi
            printf 'target: 256 streams (%s) >= %sx the best reference unary: %.2fx, %s\n' \
                "${shape/x/ x }" "$target" "$(echo "$med / $best" | bc -l)" "$v"
        done
    fi
} | tee "$tmp/table.txt"

for s in "${!pid[@]}"; do
    kill -TERM "${pid[$s]}"
    i=0
    while kill -0 "${pid[$s]}" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    wait "${pid[$s]}" || echo "heartbeat_stream.sh: $s exited with status $?" >&2
    unset "pid[$s]"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -v -e 'admin API key created' "$tmp/poold.log" | grep -q .; then
    echo "galaxy-poold logged:"
    grep -v -e 'admin API key created' "$tmp/poold.log" | head -20
fi
if [ $failures -gt 0 ]; then
    echo "heartbeat_stream.sh: $failures run(s) failed their checks" >&2
    exit 1
fi
echo "all runs verified: every stream got one well-formed response per request and" \
     "grpc-status 0, and the servers counted exactly those calls"

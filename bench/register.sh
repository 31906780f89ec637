#!/bin/bash
# SPDX-License-Identifier: MIT
# Durable registrations per second: galaxy.pool.v1.NodeRegistry/Register on
# galaxy-poold (LMDB, group commit) against etcdserverpb.KV/Put on Debian's
# etcd (single member, default fsync), both driven by bench/gx_load with the
# same payload (bench/make_body.py: the Put's value is the Register body), each
# request naming a distinct node / key (b-00000000, b-00000001, ...), the two
# servers alternating shape by shape (connections x streams; the order flips at
# every shape).  gx_load reads every grpc-status; a run with any non-OK status,
# or unfinished, is FAILED.
#
# Every run starts both servers on fresh, empty data directories (galaxy-poold's
# Register cost grows with the pool's size, etcd's hardly: runs on a store that
# keeps growing would not compare), and ends with a durability check: the server
# is killed with SIGKILL, restarted on the same data directory, and must hold
# exactly as many b- nodes / keys as it acknowledged with grpc-status 0 in the
# run (galaxy-poold: ListNodes of pool mainnet through bench/count_nodes.py;
# etcd: the count of the b- prefix, and the store revision).  --accumulate
# keeps one server of each for all runs instead (the pool grows run after run)
# and checks once at the end.  Prints a table of medians with the ratio
# poold/etcd and exits 1 if any run or check failed.  Every gx_load run is
# bounded by -n and --timeout, every wait by a count of tries.
#
#   bench/register.sh --build /tmp/build-rel
#   bench/register.sh --build /tmp/build-rel --rounds 3 --log-dir /tmp/reg
#   bench/register.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
mode=both
n=100000
warmup=10000
shapes="16x32 64x16 256x4"
rounds=3
workers=$(nproc)
client_threads=1
gx_load=
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
pad=0
run_timeout=120
log_dir=
accumulate=0
tmp_parent=${TMPDIR:-/tmp}

usage() {
    cat <<EOF
usage: bench/register.sh [options]
  --build DIR            galaxy-poold build directory (default .)
  --poold-only           measure only galaxy-poold
  --etcd-only            measure only etcd
  -n N                   Register / Put requests per run (default $n)
  --accumulate           one server of each for all runs (the store grows from run to run),
                         one warm-up run first and one durability check at the end
  --warmup N             with --accumulate: requests of one 16x32 warm-up run per server
                         (default $warmup; 0 = none)
  --shapes "CxM ..."     connections x streams (default "$shapes")
  --rounds R             repeat the whole alternation; the table shows medians (default $rounds)
  --workers N            galaxy-poold --workers (default nproc)
  --client-threads N     gx_load -t (default $client_threads)
  --gx-load PATH         use this gx_load binary (default: build bench/gx_load.c into the
                         temporary directory with cc -O2)
  --etcd PATH            etcd binary (default $etcd_bin)
  --pad N                bytes of an extra label in every node (default 0: 116-byte body)
  --timeout S            bound of every gx_load run in seconds (default $run_timeout)
  --tmp-dir DIR          parent of the temporary directory holding both data directories
                         (default \$TMPDIR or /tmp): put it on the file system to measure
  --log-dir DIR          keep gx_load outputs, server logs, bodies and the table here
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    opt=$1
    val=${2-}
    shift
    case $opt in
    --poold-only) mode=poold; continue ;;
    --etcd-only) mode=etcd; continue ;;
    --accumulate) accumulate=1; continue ;;
    -h|--help) usage ;;
    esac
    [ $# -gt 0 ] || { echo "register.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    -n) n=$val ;;
    --warmup) warmup=$val ;;
    --shapes) shapes=$val ;;
    --rounds) rounds=$val ;;
    --workers) workers=$val ;;
    --client-threads) client_threads=$val ;;
    --gx-load) gx_load=$val ;;
    --etcd) etcd_bin=$val ;;
    --pad) pad=$val ;;
    --timeout) run_timeout=$val ;;
    --tmp-dir) tmp_parent=$val ;;
    --log-dir) log_dir=$val ;;
    *) echo "register.sh: unknown argument $opt" >&2; usage ;;
    esac
done

for v in "$n" "$warmup" "$rounds" "$workers" "$client_threads" "$pad" "$run_timeout"; do
    isnum "$v" || { echo "register.sh: \"$v\" is not a number" >&2; exit 2; }
done
if [ "$n" -lt 1 ] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ] || [ "$client_threads" -lt 1 ] ||
   [ "$run_timeout" -lt 1 ]; then
    echo "register.sh: need -n > 0, --rounds 1..20, --client-threads >= 1, --timeout >= 1" >&2
    exit 2
fi
shapes_check register.sh 1 $shapes
nshapes=$(echo $shapes | wc -w)
# node ids have 8 digits
if [ $((warmup + rounds * nshapes * n)) -ge 100000000 ]; then
    echo "register.sh: more than 10^8 requests per server" >&2
    exit 2
fi
servers=()
if [ "$mode" != poold ]; then servers+=(etcd); fi
if [ "$mode" != etcd ]; then servers+=(poold); fi
if [ "$mode" != poold ]; then
    if [ ! -x "$etcd_bin" ] || ! command -v etcdctl >/dev/null; then
        echo "register.sh: no etcd/etcdctl: run bench/deps.sh" >&2
        exit 1
    fi
fi
if [ "$mode" != etcd ] && [ ! -x "$build/galaxy-poold" ]; then
    echo "register.sh: no $build/galaxy-poold (--build DIR)" >&2
    exit 1
fi

tmp=$(mktemp -d "$tmp_parent/gx-register.XXXXXX")
declare -A pid addr
cleanup() {
    local s
    for s in "${!pid[@]}"; do kill -9 "${pid[$s]}" 2>/dev/null || true; done
    tmp_done
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
py=/usr/bin/python3
export ETCDCTL_API=3

gx_load_build register.sh
$py "$src/bench/make_body.py" --register "$tmp/poold.body" --put "$tmp/etcd.body" --pad "$pad"

wait_until() {    # TRIES PID CMD...: CMD every 0.05 s while PID lives, at most TRIES times
    local tries=$1 p=$2 i=0
    shift 2
    while [ $i -lt "$tries" ]; do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$p" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

free_ports() {    # two free TCP ports on 127.0.0.1 (closed again: a small race, loopback only)
    $py -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}

start_poold() {
    local conf=$tmp/poold.yaml
    printf 'server:\n  log_level: warn\n  access_log: "off"\n' >"$conf"
    rm -f "$tmp/poold.ready"
    "$build/galaxy-poold" -c "$conf" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$tmp/poold-data" --workers "$workers" --ready-file "$tmp/poold.ready" \
        2>>"$tmp/poold.log" &
    pid[poold]=$!
    disown "${pid[poold]}"    # no "Killed" job report after the SIGKILL
    wait_until 400 "${pid[poold]}" test -s "$tmp/poold.ready" ||
        { echo "register.sh: galaxy-poold did not start:" >&2; cat "$tmp/poold.log" >&2; exit 1; }
    addr[poold]=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
}

etcd_port=
etcd_peer=
start_etcd() {    # the restart reuses both ports
    local peer
    if [ -z "$etcd_port" ]; then read -r etcd_port etcd_peer <<<"$(free_ports)"; fi
    peer=$etcd_peer
    "$etcd_bin" --name bench --data-dir "$tmp/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "bench=http://127.0.0.1:$peer" \
        --logger zap --log-level warn >>"$tmp/etcd.log" 2>&1 &
    pid[etcd]=$!
    disown "${pid[etcd]}"
    addr[etcd]=127.0.0.1:$etcd_port
    wait_until 400 "${pid[etcd]}" etcdctl --endpoints "${addr[etcd]}" endpoint health ||
        { echo "register.sh: etcd did not start:" >&2; tail -20 "$tmp/etcd.log" >&2; exit 1; }
}

stop() {    # SERVER SIGNAL
    local i=0
    kill "-$2" "${pid[$1]}" 2>/dev/null || true
    while kill -0 "${pid[$1]}" 2>/dev/null && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    if kill -0 "${pid[$1]}" 2>/dev/null; then
        echo "register.sh: $1 (pid ${pid[$1]}) did not stop on SIG$2" >&2
        failures=$((failures + 1))
    fi
    unset "pid[$1]"
}
declare -A next=([poold]=0 [etcd]=0) acked=([poold]=0 [etcd]=0)
declare -A rpc=([poold]=/galaxy.pool.v1.NodeRegistry/Register [etcd]=/etcdserverpb.KV/Put)
failures=0
incomplete=0

# run SERVER CONNS STREAMS REQUESTS LABEL: one gx_load run (then, unless --accumulate, the
# durability check and the stop); appends "rps us_per_call p99 verdict" to res.SERVER.LABEL
run() {
    local s=$1 c=$2 m=$3 req=$4 label=$5 out rc c0 c1 rps ok ndone p99 us verdict
    c0=$(cpu "$s")
    rc=0
    out=$(timeout $((run_timeout + 30)) "$gx_load" -n "$req" -c "$c" -m "$m" -t "$client_threads" \
          -d "$tmp/$s.body" --start "${next[$s]}" --timeout "$run_timeout" \
          "http://${addr[$s]}${rpc[$s]}" 2>&1) || rc=$?
    c1=$(cpu "$s")
    next[$s]=$((next[$s] + req))
    printf '%s\n' "$out" >"$tmp/gx_load.$s.$label.txt"
    rps=$(sed -n 's/^result: .* rps=\([0-9.]*\) .*/\1/p' <<<"$out")
    ok=$(sed -n 's/^result: .* ok=\([0-9]*\) .*/\1/p' <<<"$out")
    ndone=$(sed -n 's/^result: done=\([0-9]*\) .*/\1/p' <<<"$out")
    p99=$(sed -n 's/^result: .* p99_ms=\([0-9.]*\) .*/\1/p' <<<"$out")
    acked[$s]=$((acked[$s] + ${ok:-0}))
    if [ "${ndone:-0}" != "$req" ]; then incomplete=1; fi
    us=$(echo "($c1 - $c0) * 1000000 / $ticks / $req" | bc -l)
    verdict=ok
    if [ $rc != 0 ] || [ -z "$rps" ] || [ "${ok:-0}" != "$req" ]; then
        verdict="FAILED (exit $rc; $(grep -E '^(status|first error):' <<<"$out" | tr '\n' ' ')"
        verdict="$verdict see gx_load.$s.$label.txt)"
        failures=$((failures + 1))
        rps=${rps:-0}
    fi
    if [ $accumulate = 0 ]; then
        durable "$s" "${ok:-0}" "$([ "${ndone:-0}" = "$req" ] && echo 1 || echo 0)" ||
            verdict="FAILED durability ($durable_msg)${verdict#ok}"
        stop "$s" TERM
    fi
    printf '%-5s %4s x %-3s %10.0f writes/s  p99 %8.2f ms  %7.2f us server CPU/write  %s\n' \
        "$s" "$c" "$m" "$rps" "${p99:-0}" "$us" "$verdict"
    echo "$rps $us ${p99:-0} ${verdict%% *}" >>"$tmp/res.$s.$label"
}

# durable SERVER ACKED COMPLETE: SIGKILL, restart on the same data, count the b- entries;
# sets durable_msg; @return 1 unless the count is ACKED (or more, when COMPLETE is 0: a
# request cut by the timeout may be stored without an acknowledgement)
durable_msg=
durable() {
    local s=$1 want=$2 complete=$3 found json
    stop "$s" KILL
    "start_$s"
    case $s in
    poold)
        found=$($py "$src/bench/count_nodes.py" --target "${addr[poold]}" --prefix b- \
                2>>"$tmp/poold.log") || found=-1
        ;;
    etcd)
        json=$(etcdctl --endpoints "${addr[etcd]}" get b- --prefix --limit 1 -w json) || json=
        found=$(sed -n 's/.*"count":\([0-9]*\).*/\1/p' <<<"$json")
        found="${found:--1} (revision $(sed -n 's/.*"revision":\([0-9]*\).*/\1/p' <<<"$json"))"
        ;;
    esac
    durable_msg="acknowledged $want, found after SIGKILL + restart $found"
    echo "durability $s: $durable_msg" >>"$tmp/durability.txt"
    found=${found%% *}
    if [ "$found" = "$want" ]; then return 0; fi
    if [ "$complete" = 0 ] && [ "$found" -gt "$want" ]; then
        durable_msg="$durable_msg (more: some requests were cut short)"
        return 0
    fi
    failures=$((failures + 1))
    return 1
}

# fresh SERVER: a new server on an empty data directory
fresh() {
    rm -rf "${tmp:?}/$1-data"
    next[$1]=0
    "start_$1"
}
# ------------------------------------------------------------------ measure
t_begin=$(date +%s)
echo "register: -n $n per run, shapes $shapes, $rounds round(s), galaxy-poold --workers $workers," \
     "gx_load -t $client_threads, $(nproc) cores, data under $tmp ($(df -PT "$tmp" |
     awk 'NR == 2 {print $2}'))"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" \
     "(anything else running skews the numbers)"
if [ $accumulate = 1 ]; then
    for s in "${servers[@]}"; do "start_$s"; done
fi
if [ $accumulate = 1 ] && [ "$warmup" -gt 0 ]; then
    for s in "${servers[@]}"; do run "$s" 16 32 "$warmup" warmup >/dev/null; done
    if [ $failures -gt 0 ]; then
        echo "register.sh: warm-up run failed:" >&2
        cat "$tmp"/res.*.warmup >&2
        exit 1
    fi
fi
k=0
for r in $(seq 1 "$rounds"); do
    for shape in $shapes; do
        order=("${servers[@]}")
        if [ ${#servers[@]} = 2 ] && [ $((k % 2)) = 1 ]; then order=(poold etcd); fi
        k=$((k + 1))
        for s in "${order[@]}"; do
            if [ $accumulate = 0 ]; then fresh "$s"; fi
            run "$s" "${shape%x*}" "${shape#*x}" "$n" "$shape.r$r"
        done
    done
done
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

{
    echo
    printf '%-9s' "shape"
    for s in "${servers[@]}"; do printf ' %12s %9s %8s' "$s w/s" "p99 ms" "us/write"; done
    if [ ${#servers[@]} = 2 ]; then printf ' %11s' "poold/etcd"; fi
    echo
    for shape in $shapes; do
        printf '%-9s' "${shape/x/ x }"
        declare -A med=()
        for s in "${servers[@]}"; do
            cat "$tmp"/res."$s"."$shape".r* >"$tmp/all.$s.$shape"
            med[$s]=$(median 1 "$tmp/all.$s.$shape")
            printf ' %12.0f %9.2f %8.2f' "${med[$s]}" "$(median 3 "$tmp/all.$s.$shape")" \
                "$(median 2 "$tmp/all.$s.$shape")"
        done
        if [ ${#servers[@]} = 2 ]; then
            printf ' %11.2f' "$(echo "${med[poold]} / ${med[etcd]}" | bc -l 2>/dev/null ||
                                echo nan)"
        fi
        if cat "$tmp"/all.*."$shape" | grep -q FAILED; then printf '  FAILED'; fi
        echo
    done
    echo "(medians of $rounds round(s); w/s = acknowledged durable writes per second;" \
         "$([ $accumulate = 1 ] && echo "one store for all runs" ||
            echo "each run on an empty store"))"
} | tee "$tmp/table.txt"

# ------------------------------------------------------------------ durability
if [ $accumulate = 1 ]; then
    elapsed=$(($(date +%s) - t_begin))
    if [ $elapsed -gt 300 ]; then
        echo "register.sh: warning: the runs took ${elapsed}s; galaxy-poold removes nodes" \
             "without heartbeats after 2 x ttl + retention (360 s with mainnet's defaults)" >&2
    fi
    for s in "${servers[@]}"; do
        if durable "$s" "${acked[$s]}" $((1 - incomplete)); then v=ok; else v=FAILED; fi
        echo "durability $s: $durable_msg: $v" | tee -a "$tmp/table.txt"
        stop "$s" TERM
    done
else
    echo "durability: every run checked (acknowledged = found after SIGKILL + restart)," \
         "details in durability.txt" | tee -a "$tmp/table.txt"
fi

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# what the servers logged besides the expected: galaxy-poold logs at warn (count_nodes.py's
# lines share its log file); etcd logs zap JSON at warn
for s in "${servers[@]}"; do
    case $s in
    poold) pat='^count_nodes: ' ;;
    etcd) pat='"msg":"simple token is not cryptographically signed"'
          pat="$pat|addrConn.createTransport failed to connect" ;;    # its gateway, at start
    esac
    if grep -vqE "$pat" "$tmp/$s.log"; then
        echo "register.sh: $s logged (first lines; all in $s.log with --log-dir):" >&2
        grep -vE "$pat" "$tmp/$s.log" | head -5 | cut -c1-300 >&2
    fi
done
if [ $failures -gt 0 ]; then
    echo "register.sh: $failures run(s) or check(s) failed" >&2
    exit 1
fi
echo "all runs verified: every request answered grpc-status 0, every acknowledged write found"

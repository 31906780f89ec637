#!/bin/bash
# SPDX-License-Identifier: MIT
# Memory per registered node and restart recovery time (issue 3): starts
# galaxy-poold (fresh data directory, access log off, --workers = cores),
# registers N distinct nodes (default 1,000,000) into pool mainnet with
# bench/gx_load (Register, body from bench/memory_body.py: 2 specializations,
# 4 labels of a known byte count, address, version, capacity; the node id's
# placeholder makes every request a new node), checks that every Register was
# OK and that ListNodes counts N (bench/count_nodes.py), and reads the
# server's VmRSS, RssAnon and RssFile (/proc/PID/status) before and after:
# bytes per node = (after - before) / N, and that minus the labels' own bytes.
# RssAnon (heap, stacks: what the process allocated) is the memory the target
# refers to; VmRSS adds RssFile, the LMDB pages mapped from the page cache.
#
# Then the restarts: SIGTERM (the server must exit 0), start again on the same
# data directory and time from exec to the ready file (written after the
# registry was rebuilt from the store and the listeners bound), count N again,
# read the RSS again; then the same after SIGKILL (crash recovery); --restarts R
# does both R times and reports the median ready time and RSS.  Exits 1 if
# any check fails (a Register not OK, a count not N, an exit status not 0, a
# server that does not start or stop within its bound), 0 otherwise; the
# targets (< 1 KiB per node beyond the labels, < 3 s restart) are reported as
# met or MISSED.  Every wait is bounded by a count of tries.
#
#   bench/memory.sh --build /tmp/build-rel
#   bench/memory.sh --build /tmp/build-rel --nodes 100000 --log-dir /tmp/mem
#   bench/memory.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
nodes=1000000
workers=$(nproc)
shape=16x32
client_threads=1
gx_load=
run_timeout=600
start_tries=1200    # x 0.05 s: 60 s for a start (the registry is rebuilt first)
stop_tries=2400     # x 0.05 s: 120 s for an exit (a clean exit frees every node)
restarts=1
tmp_parent=${TMPDIR:-/tmp}
log_dir=
target_bytes=1024
target_restart=3

usage() {
    cat <<EOF
usage: bench/memory.sh [options]
  --build DIR            galaxy-poold build directory, optimised, no sanitizers (default .)
  --nodes N              nodes to register (default $nodes)
  --workers N            galaxy-poold --workers (default nproc: $workers)
  --shape CxM            gx_load connections x streams per connection (default $shape)
  --client-threads N     gx_load -t (default $client_threads)
  --gx-load PATH         use this gx_load binary (default: build bench/gx_load.c into the
                         temporary directory with cc -O2)
  --timeout S            bound of the gx_load run in seconds (default $run_timeout)
  --restarts R           restart R times after SIGTERM and R times after SIGKILL, in turn;
                         the table shows the median ready time (default $restarts, at most 20)
  --tmp-dir DIR          parent of the temporary directory (data directory, logs)
                         (default \$TMPDIR or /tmp)
  --log-dir DIR          keep the server log, gx_load output, RSS samples and the tables here
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    opt=$1
    val=${2-}
    shift
    case $opt in
    -h|--help) usage ;;
    esac
    [ $# -gt 0 ] || { echo "memory.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    --nodes) nodes=$val ;;
    --workers) workers=$val ;;
    --shape) shape=$val ;;
    --client-threads) client_threads=$val ;;
    --gx-load) gx_load=$val ;;
    --timeout) run_timeout=$val ;;
    --restarts) restarts=$val ;;
    --tmp-dir) tmp_parent=$val ;;
    --log-dir) log_dir=$val ;;
    *) echo "memory.sh: unknown argument $opt" >&2; usage ;;
    esac
done

case $shape in
*x*) ;;
*) echo "memory.sh: bad --shape \"$shape\" (want CONNSxSTREAMS)" >&2; exit 2 ;;
esac
for v in "$nodes" "$workers" "$client_threads" "$run_timeout" "$restarts" "${shape%x*}" \
         "${shape#*x}"; do
    isnum "$v" || { echo "memory.sh: \"$v\" is not a number" >&2; exit 2; }
done
# node ids have 8 digits
if [ "$nodes" -lt 1 ] || [ "$nodes" -ge 100000000 ] || [ "$workers" -lt 1 ] ||
   [ "$client_threads" -lt 1 ] || [ "$run_timeout" -lt 1 ] || [ "${shape%x*}" -lt 1 ] ||
   [ "${shape#*x}" -lt 1 ] || [ "$restarts" -lt 1 ] || [ "$restarts" -gt 20 ]; then
    echo "memory.sh: need --nodes 1..99999999, --restarts 1..20, --workers, --client-threads," \
         "--timeout and both parts of --shape >= 1" >&2
    exit 2
fi
if [ ! -x "$build/galaxy-poold" ]; then
    echo "memory.sh: no $build/galaxy-poold (--build DIR)" >&2
    exit 1
fi
# an ASan build references __asan_init (gcc: from libasan.so; clang: linked in)
if grep -q -a __asan_init "$build/galaxy-poold" 2>/dev/null; then
    echo "memory.sh: warning: $build/galaxy-poold is built with sanitizers: the RSS is not" \
         "representative" >&2
fi

tmp=$(mktemp -d "$tmp_parent/gx-memory.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        { kill -9 "$pid"; wait "$pid"; } 2>/dev/null || true
    fi
    tmp_done
}
trap cleanup EXIT
py=/usr/bin/python3
failures=0

fail() {
    echo "memory.sh: FAILED: $*" >&2
    echo "FAILED: $*" >>"$tmp/failures.txt"
    failures=$((failures + 1))
}

gx_load_build memory.sh
shape_line=$($py "$src/bench/memory_body.py" --out "$tmp/register.body")
label_bytes=$(sed -n 's/.*label_bytes=\([0-9]*\).*/\1/p' <<<"$shape_line")
nlabels=$(sed -n 's/.*labels=\([0-9]*\).*/\1/p' <<<"$shape_line")
body_bytes=$(sed -n 's/.*body_bytes=\([0-9]*\).*/\1/p' <<<"$shape_line")
if ! isnum "$label_bytes" || ! isnum "$body_bytes"; then
    echo "memory.sh: memory_body.py said \"$shape_line\"" >&2
    exit 1
fi

printf 'server:\n  log_level: info\n  access_log: "off"\n' >"$tmp/poold.yaml"
data=$tmp/data

# start_poold: exec on $data, waits for the ready file; sets pid, h2c and ready_s (seconds
# from just before the exec to the ready file's mtime: the file is renamed into place
# once the store is open, the registry rebuilt and the listeners bound)
h2c=
ready_s=
start_poold() {
    local t0 i=0 mtime
    rm -f "$tmp/poold.ready"
    echo "---- start $(date -u +%FT%TZ)" >>"$tmp/poold.log"
    t0=$(date +%s.%N)
    "$build/galaxy-poold" -c "$tmp/poold.yaml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$data" --workers "$workers" --ready-file "$tmp/poold.ready" \
        2>>"$tmp/poold.log" &
    pid=$!
    while [ ! -s "$tmp/poold.ready" ] && [ $i -lt $start_tries ]; do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.05
        i=$((i + 1))
    done
    if [ ! -s "$tmp/poold.ready" ]; then
        echo "memory.sh: galaxy-poold did not start within $((start_tries / 20)) s:" >&2
        tail -20 "$tmp/poold.log" >&2
        exit 1
    fi
    mtime=$(stat -c %.9Y "$tmp/poold.ready")
    ready_s=$(awk -v a="$t0" -v b="$mtime" 'BEGIN {printf "%.3f", b - a}')
    h2c=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
}

# stop_poold SIGNAL: sends it, waits (bounded) for the exit; sets stop_rc and stop_s
stop_rc=
stop_s=
stop_poold() {
    local sig=$1 i=0 t0 t1
    t0=$(date +%s%N)
    stop_rc=0
    {
        kill "-$sig" "$pid" || true
        while kill -0 "$pid" && [ $i -lt $stop_tries ]; do sleep 0.05; i=$((i + 1)); done
    } 2>/dev/null
    t1=$(date +%s%N)
    stop_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e9}')
    if kill -0 "$pid" 2>/dev/null; then
        fail "galaxy-poold (pid $pid) did not exit within $((stop_tries / 20)) s of SIG$sig"
        { kill -9 "$pid"; wait "$pid"; } 2>/dev/null || true
        stop_rc=timeout
    else
        { wait "$pid"; } 2>/dev/null || stop_rc=$?
    fi
    pid=
}

# rss_sample: "VmRSS RssAnon RssFile" in kB
rss_sample() {
    awk '/^(VmRSS|RssAnon|RssFile):/ {v[$1] = $2}
         END {print v["VmRSS:"] + 0, v["RssAnon:"] + 0, v["RssFile:"] + 0}' "/proc/$pid/status"
}

# rss_settled LABEL: samples every 0.5 s until three samples in a row have RssAnon within
# 0.1% (at most 40 samples); sets rss to the last "VmRSS RssAnon RssFile"
rss=
rss_settled() {
    local label=$1 i=0 a b c settled=no
    a=-1 b=-2
    while [ $i -lt 40 ]; do
        rss=$(rss_sample)
        c=${rss#* }
        c=${c%% *}
        echo "$label $i $rss" >>"$tmp/rss-samples.txt"
        if awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {d = c * 0.001;
               exit !((a - c <= d && c - a <= d) && (b - c <= d && c - b <= d))}'; then
            settled=yes
            break
        fi
        a=$b
        b=$c
        sleep 0.5
        i=$((i + 1))
    done
    if [ $settled = no ]; then
        echo "memory.sh: warning: RSS still moving after 20 s ($label); last sample taken" >&2
    fi
}

# count_check LABEL: ListNodes of mainnet must count exactly $nodes nodes with our prefix
count_check() {
    local label=$1 found
    found=$($py "$src/bench/count_nodes.py" --target "$h2c" --prefix m- --deadline 300 \
            2>>"$tmp/count_nodes.log") || found=-1
    counted=$found
    if [ "$found" != "$nodes" ]; then
        fail "$label: ListNodes counts $found m- nodes, want $nodes (see poold.log: nodes" \
             "that never heartbeat are removed after 2 x ttl + retention, 360 s in mainnet)"
    fi
}

loaded() {    # the node count of the last "registry loaded" line of the log
    sed -n 's/.*registry loaded .*nodes=\([0-9]*\).*/\1/p' "$tmp/poold.log" | tail -1
}

per_node() {    # AFTER_KB BEFORE_KB: bytes per node
    awk -v a="$1" -v b="$2" -v n="$nodes" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}'
}

declare -A rss_of ready_of count_of exit_of=() loaded_of
counted=

# ------------------------------------------------------------------ measure
say "memory: $nodes nodes into pool mainnet (each: 2 specializations, $nlabels labels of" \
     "$label_bytes bytes in all, address, version, capacity; Register body $body_bytes bytes)," \
     "galaxy-poold --workers $workers, gx_load $shape -t $client_threads, $(nproc) cores," \
     "data under $tmp ($(df -PT "$tmp" | awk 'NR == 2 {print $2}'))"
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (others' work on the machine" \
     "moves the times)"

start_poold
rss_settled empty
rss_of[empty]=$rss
ready_of[first]=$ready_s

t_reg0=$(date +%s)
rc=0
out=$(timeout $((run_timeout + 30)) "$gx_load" -n "$nodes" -c "${shape%x*}" -m "${shape#*x}" \
      -t "$client_threads" -d "$tmp/register.body" --timeout "$run_timeout" \
      "http://$h2c/galaxy.pool.v1.NodeRegistry/Register" 2>&1) || rc=$?
printf '%s\n' "$out" >"$tmp/gx_load.txt"
ok=$(sed -n 's/^result: .* ok=\([0-9]*\) .*/\1/p' <<<"$out")
rps=$(sed -n 's/^result: .* rps=\([0-9.]*\) .*/\1/p' <<<"$out")
secs=$(sed -n 's/^result: .* secs=\([0-9.]*\) .*/\1/p' <<<"$out")
if [ $rc != 0 ] || [ "${ok:-0}" != "$nodes" ]; then
    fail "gx_load exit $rc, $ok of $nodes Register OK: $(grep -E '^(status|first error):' \
          <<<"$out" | tr '\n' ' ')"
fi
say "register: ${ok:-0} of $nodes Register OK in ${secs:-?} s (${rps:-?}/s), gx_load exit $rc"
rss_settled registered
rss_of[registered]=$rss
count_check registered
count_of[registered]=$counted
elapsed=$(($(date +%s) - t_reg0))
say "ListNodes: $counted nodes, ${elapsed} s after the first Register"
data_kb=$(du -k "$data/data.mdb" 2>/dev/null | cut -f1 || echo 0)

for r in $(seq 1 "$restarts"); do
    for how in TERM KILL; do
        stop_poold "$how"
        exit_of[$how]="${exit_of[$how]:-}${exit_of[$how]:+,}$stop_rc"
        if [ "$how" = TERM ] && [ "$stop_rc" != 0 ]; then
            fail "galaxy-poold exited $stop_rc after SIGTERM, want 0"
        fi
        say "SIG$how: galaxy-poold exited ($stop_rc) after ${stop_s} s"
        start_poold
        echo "$ready_s" >>"$tmp/ready.$how.txt"
        loaded_of[$how]=$(loaded)
        if [ "${loaded_of[$how]}" != "$nodes" ]; then
            fail "after SIG$how: the registry loaded ${loaded_of[$how]:-?} nodes, want $nodes"
        fi
        rss_settled "restart-$r-$how"
        echo "$rss" >>"$tmp/rss.$how.txt"
        count_check "after SIG$how and restart"
        count_of[$how]=$counted
        say "restart $r/$restarts after SIG$how: ready in ${ready_s} s, registry loaded" \
             "${loaded_of[$how]:-?} nodes, ListNodes $counted"
    done
done
stop_poold TERM
if [ "$stop_rc" != 0 ]; then fail "galaxy-poold exited $stop_rc after the last SIGTERM"; fi
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ report
median() {    # FILE [COLUMN]: the median of a column of numbers (default the first)
    sort -g -k"${2:-1}" "$1" | awk -v k="${2:-1}" '{v[NR] = $k} END {
        if (NR == 0) print "nan"; else if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
        else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for k in TERM KILL; do    # the median restarted server, column by column
    rss_of[$k]=$(printf '%.0f %.0f %.0f' "$(median "$tmp/rss.$k.txt" 1)" \
                 "$(median "$tmp/rss.$k.txt" 2)" "$(median "$tmp/rss.$k.txt" 3)")
done
exits() {    # the exit statuses of the restarts: "0 x5" when all the same
    tr ',' '\n' <<<"$1" | sort | uniq -c | awk '{printf "%s%s x%d", (NR > 1 ? ", " : ""), $2, $1}'
}
verdict() {    # VALUE LIMIT: "met" when VALUE < LIMIT
    awk -v v="$1" -v l="$2" 'BEGIN {print (v < l) ? "met" : "MISSED"}'
}
{
    echo
    echo "RSS of galaxy-poold ($nodes nodes; kB from /proc/PID/status; restarted: the median" \
         "of $restarts)"
    printf '%-28s %10s %10s %10s\n' "" VmRSS RssAnon RssFile
    for k in empty registered TERM KILL; do
        case $k in
        empty) label="empty, ready" ;;
        registered) label="after $nodes Register" ;;
        *) label="restarted after SIG$k" ;;
        esac
        read -r vm an fl <<<"${rss_of[$k]}"
        printf '%-28s %10s %10s %10s\n' "$label" "$vm" "$an" "$fl"
    done
    echo "(LMDB data.mdb: $data_kb kB on disk)"
    echo
    echo "bytes per node = (RSS - RSS of the empty server) / $nodes; labels: $label_bytes bytes"
    printf '%-28s %8s %8s %16s   %s\n' "" VmRSS RssAnon "RssAnon-labels" \
        "target RssAnon-labels < $target_bytes"
    read -r vm0 an0 _ <<<"${rss_of[empty]}"
    for k in registered TERM KILL; do
        case $k in
        registered) label="after Register" ;;
        *) label="restarted after SIG$k" ;;
        esac
        read -r vm an _ <<<"${rss_of[$k]}"
        pa=$(per_node "$an" "$an0")
        printf '%-28s %8s %8s %16s   %s\n' "$label" "$(per_node "$vm" "$vm0")" "$pa" \
            "$((pa - label_bytes))" "$(verdict $((pa - label_bytes)) $target_bytes)"
    done
    echo "(after Register also holds the pool's watch feed: copies of its last changes, at most"
    echo " watch_history = 10000 by default, about 10 MB whatever N; a restarted server's feed is"
    echo " empty.  RssFile is the LMDB map in the page cache, shared, not counted in the target)"
    echo
    echo "restart (exec to ready file: store open, registry rebuilt, listeners bound;" \
         "$restarts of each)"
    printf '%-14s %-12s %8s %8s %8s %10s %10s   %s\n' "" exit "ready s" min max loaded \
        ListNodes "target median < $target_restart s"
    for k in TERM KILL; do
        med=$(median "$tmp/ready.$k.txt")
        printf '%-14s %-12s %8s %8s %8s %10s %10s   %s\n' "after SIG$k" \
            "$(exits "${exit_of[$k]}")" "$med" "$(sort -g "$tmp/ready.$k.txt" | head -1)" \
            "$(sort -g "$tmp/ready.$k.txt" | tail -1)" "${loaded_of[$k]:-?}" "${count_of[$k]}" \
            "$(verdict "$med" $target_restart)"
    done
    echo "(ready s: median; the first start, on the empty data directory: ${ready_of[first]} s)"
    cat "$tmp/ready.TERM.txt" "$tmp/ready.KILL.txt" >"$tmp/ready.all.txt"
    slow=$(awk -v m="$(median "$tmp/ready.all.txt")" '$1 > 3 * m && $1 > 1 {n++}
               END {print n + 0}' "$tmp/ready.all.txt")
    if [ "$slow" -gt 0 ]; then
        echo "($slow restart(s) took over 3x the median and over 1 s: the nodes hash table was"
        echo " not grown during the load; see bench/README.md, memory.sh, Caveats)"
    fi
} | tee "$tmp/table.txt" | tee -a "$tmp/output.txt"

# what the server logged besides its info lines (nothing heartbeats: once more than half of
# the nodes lapsed, the pool goes into self-preservation, which is expected here)
pat='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]* (info |warn self-preservation on pool=mainnet )'
pat="$pat|^---- start"
if grep -vqE "$pat" "$tmp/poold.log"; then
    echo "memory.sh: galaxy-poold logged (first lines; all in poold.log with --log-dir):" >&2
    grep -vE "$pat" "$tmp/poold.log" | head -5 | cut -c1-300 >&2
fi
if [ $failures -gt 0 ]; then
    echo "memory.sh: $failures check(s) failed" >&2
    exit 1
fi
say "all checks passed: every Register OK, $nodes nodes listed after each restart," \
     "exit 0 after SIGTERM"

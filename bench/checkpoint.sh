#!/bin/bash
# SPDX-License-Identifier: MIT
# The checkpoint of last-seen times at scale: galaxy-poold keeps every node's
# last heartbeat time in memory and writes the ones that changed to LMDB every
# registry.checkpoint_ms.  This starts galaxy-poold (fresh data directory,
# access log off, --workers = cores) with checkpoint_ms = --checkpoint-ms and
# pool mainnet's node TTL at ten hours (no node lapses during the run),
# registers --nodes N distinct nodes (b-00000000, b-00000001, ...; body from
# bench/make_body.py) with bench/gx_load --tokens-out, which keeps every lease
# token the server returned, then --rounds times:
#
#   1. waits until the store is idle (galaxy_store_commits_total still for 1 s),
#      heartbeats node 0 alone and waits for the checkpoint that writes it
#      (galaxy_checkpoint_records_total grows), so that the pass below starts
#      just after a checkpoint and the next one comes checkpoint_ms later;
#   2. heartbeats every node once (gx_load --tokens: each request carries its
#      node's own token; every call must be grpc-status 0);
#   3. samples the server's CPU per thread (utime+stime of gx-keeper, gx-store
#      and the whole process, /proc/PID/task/*/stat and /proc/PID/stat), its
#      write_bytes (/proc/PID/io) and the size of data.mdb;
#   4. polls /metrics until galaxy_checkpoint_records_total has grown by at
#      least N since before the pass and galaxy_store_commits_total has not
#      moved for 1 s (the checkpoint's writes are committed), and samples again.
#
# Per round it prints what was measured between 3 and 4: the checkpoint's own
# time (galaxy_checkpoint_last_seconds: the keeper's scan, records and queued
# writes), keeper / store / whole-process CPU seconds, MB written to disk, the
# size of data.mdb after, and the heartbeat pass's requests/s.  When the pass
# takes longer than checkpoint_ms, a checkpoint falls into it and writes part of
# the nodes before step 3: the "ckpts" column then says so (during+after the
# pass) and only the records written after the pass are in the figures; use a
# larger --checkpoint-ms.  Exits 0 if every round verified (every Register and
# Heartbeat OK, records grown by N, the store idle again within --timeout), 1
# otherwise, 2 on usage errors.  Every gx_load run is bounded by -n and
# --timeout, every wait by --timeout or a count of tries.
#
#   bench/checkpoint.sh --build /tmp/build-rel --nodes 100000
#   bench/checkpoint.sh --build /tmp/build-rel --checkpoint-ms 30000 --log-dir /tmp/ckpt
#   bench/checkpoint.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
nodes=1000000
checkpoint_ms=5000
rounds=2
gx_load=
log_dir=
run_timeout=600
workers=$(nproc)
node_ttl_ms=36000000    # ten hours: every node stays HEALTHY for the whole run
tmp_parent=${TMPDIR:-/tmp}

usage() {
    cat <<EOF
usage: bench/checkpoint.sh [options]
  --build DIR            galaxy-poold build directory, optimised, no sanitizers (default .)
  --nodes N              nodes to register and heartbeat (default $nodes)
  --checkpoint-ms MS     registry.checkpoint_ms (default $checkpoint_ms; 1000..86400000)
  --rounds R             heartbeat passes, each followed by the checkpoint measured
                         (default $rounds, at most 20)
  --gx-load PATH         use this gx_load binary (default: build bench/gx_load.c into the
                         temporary directory with cc -O2)
  --timeout S            bound of every gx_load run and of every wait, in seconds
                         (default $run_timeout)
  --log-dir DIR          keep the server log, gx_load outputs, tokens, samples and the table
                         here (the temporary directory is under \$TMPDIR or /tmp)
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
    [ $# -gt 0 ] || { echo "checkpoint.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    --nodes) nodes=$val ;;
    --checkpoint-ms) checkpoint_ms=$val ;;
    --rounds) rounds=$val ;;
    --gx-load) gx_load=$val ;;
    --timeout) run_timeout=$val ;;
    --log-dir) log_dir=$val ;;
    *) echo "checkpoint.sh: unknown argument $opt" >&2; usage ;;
    esac
done

for v in "$nodes" "$checkpoint_ms" "$rounds" "$run_timeout"; do
    isnum "$v" || { echo "checkpoint.sh: \"$v\" is not a number" >&2; exit 2; }
done
# node ids have 8 digits
if [ "$nodes" -lt 1 ] || [ "$nodes" -ge 100000000 ] || [ "$checkpoint_ms" -lt 1000 ] ||
   [ "$checkpoint_ms" -gt 86400000 ] || [ "$rounds" -lt 1 ] || [ "$rounds" -gt 20 ] ||
   [ "$run_timeout" -lt 1 ]; then
    echo "checkpoint.sh: need --nodes 1..99999999, --checkpoint-ms 1000..86400000," \
         "--rounds 1..20, --timeout >= 1" >&2
    exit 2
fi
if [ ! -x "$build/galaxy-poold" ]; then
    echo "checkpoint.sh: no $build/galaxy-poold (--build DIR)" >&2
    exit 1
fi
if grep -q -a __asan_init "$build/galaxy-poold" 2>/dev/null; then
    echo "checkpoint.sh: warning: $build/galaxy-poold is built with sanitizers: the CPU" \
         "times are not representative" >&2
fi
command -v curl >/dev/null || { echo "checkpoint.sh: no curl (bench/deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d "$tmp_parent/gx-checkpoint.XXXXXX")
declare -A pid
cleanup() {
    if [ -n "${pid[poold]-}" ]; then
        { kill -9 "${pid[poold]}"; wait "${pid[poold]}"; } 2>/dev/null || true
    fi
    tmp_done
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
py=/usr/bin/python3
rpc=/galaxy.pool.v1.NodeRegistry
failures=0

fail() {
    echo "checkpoint.sh: FAILED: $*" >&2
    echo "FAILED: $*" >>"$tmp/output.txt"
    failures=$((failures + 1))
}

gx_load_build checkpoint.sh
$py "$src/bench/make_body.py" --register "$tmp/register.body" >/dev/null
# the Heartbeat template: node "b-@@@@@@@@" (gx_load's counter) with the token placeholder
# (gx_load --tokens' default: 48 '#', as long as the server's lease tokens)
$py - "$src" "$tmp/heartbeat.body" <<'EOF'
import os
import sys
sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
import register_nodes  # noqa: E402  (compiles pool.proto with protoc)
pb = register_nodes.load_pool_pb2(os.path.join(sys.argv[1], "proto"))
data = pb.HeartbeatRequest(pool="mainnet", node_id="b-@@@@@@@@", lease_token="#" * 48,
                           load=0.5, running_jobs=1).SerializeToString()
if data.count(b"@@@@@@@@") != 1 or data.count(b"#" * 48) != 1:
    raise SystemExit("checkpoint.sh: each placeholder must appear once in the Heartbeat body")
with open(sys.argv[2], "wb") as f:
    f.write(data)
EOF

# max_nodes and max_node_memory_mb: their defaults (2,000,000 nodes, 2 GiB) hold 1,000,000
# make_body.py nodes; more nodes get room in proportion (4 KiB a node at most)
max_nodes=$((nodes > 2000000 ? nodes : 2000000))
max_mb=$((nodes / 256 > 2048 ? nodes / 256 : 2048))
cat >"$tmp/poold.yaml" <<EOF
server:
  log_level: warn
  access_log: "off"
registry:
  checkpoint_ms: $checkpoint_ms
  retention_factor: 1000
  max_nodes: $max_nodes
  max_node_memory_mb: $max_mb
pools:
  - name: mainnet
    visibility: public
    node_ttl_ms: $node_ttl_ms
EOF

rm -f "$tmp/poold.ready"
"$build/galaxy-poold" -c "$tmp/poold.yaml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --data-dir "$tmp/var" --workers "$workers" --ready-file "$tmp/poold.ready" \
    2>>"$tmp/poold.log" &
pid[poold]=$!
wait_file "$tmp/poold.ready" "${pid[poold]}" ||
    { echo "checkpoint.sh: galaxy-poold did not start:" >&2; tail -20 "$tmp/poold.log" >&2; exit 1; }
h2c=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
admin=$(sed -n 's/^admin=//p' "$tmp/poold.ready")
{ [ -n "$h2c" ] && [ -n "$admin" ]; } ||
    { echo "checkpoint.sh: no h2c= or admin= in the ready file" >&2; exit 1; }

now_ms() { date +%s%3N; }

# metric NAME: its value in a /metrics scrape kept in $scrape
metric() { awk -v k="$1" '$1 == k {print $2; f = 1} END {exit !f}' <<<"$scrape"; }

# metrics: "records checkpoints commits last_seconds" from /metrics
metrics() {
    local scrape
    scrape=$(curl -sf --max-time 5 "http://$admin/metrics") || return 1
    echo "$(metric galaxy_checkpoint_records_total) $(metric galaxy_checkpoints_total)" \
         "$(metric galaxy_store_commits_total) $(metric galaxy_checkpoint_last_seconds)"
}

# sample: "keeper store process write_bytes mdb_bytes": CPU in ticks of the threads by
# name and of the whole process, bytes the process caused to be written to storage, the
# size of data.mdb
sample() {
    local p=${pid[poold]} f line comm t k=0 s=0 wb mdb
    local -a a
    for f in /proc/"$p"/task/*/stat; do
        line=$(cat "$f" 2>/dev/null) || continue    # a thread that just ended
        comm=${line#*(}
        comm=${comm%)*}
        read -r -a a <<<"${line##*) }"
        t=$((a[11] + a[12]))
        case $comm in
        gx-keeper) k=$((k + t)) ;;
        gx-store) s=$((s + t)) ;;
        esac
    done
    wb=$(awk '$1 == "write_bytes:" {print $2}' "/proc/$p/io")
    mdb=$(stat -c %s "$tmp/var/data.mdb")
    echo "$k $s $(cpu poold) $wb $mdb"
}

# store_idle: waits (bounded by --timeout) until galaxy_store_commits_total has not moved
# for 1 s; @return 1 if it kept moving or the server went away
store_idle() {
    local deadline=$(($(now_ms) + run_timeout * 1000)) m com prev=-1 since=0 t
    while :; do
        m=$(metrics) || return 1
        read -r _ _ com _ <<<"$m"
        t=$(now_ms)
        if [ "$com" != "$prev" ]; then prev=$com; since=$t; fi
        [ $((t - since)) -lt 1000 ] || return 0
        [ "$t" -lt "$deadline" ] && kill -0 "${pid[poold]}" 2>/dev/null || return 1
        sleep 0.1
    done
}

# gx_load_run LABEL N START TOKENS_OPTION FILE BODY METHOD: one gx_load run, its output in
# gx_load.LABEL.txt; sets run_rc, run_ok, run_rps
run_rc=
run_ok=
run_rps=
gx_load_run() {
    local label=$1 req=$2 start=$3 topt=$4 tfile=$5 body=$6 method=$7 out
    run_rc=0
    out=$(timeout $((run_timeout + 30)) "$gx_load" -n "$req" -c 16 -m 32 -d "$body" \
          --start "$start" "$topt" "$tfile" --timeout "$run_timeout" \
          "http://$h2c$rpc/$method" 2>&1) || run_rc=$?
    printf '%s\n' "$out" >"$tmp/gx_load.$label.txt"
    run_ok=$(sed -n 's/^result: .* ok=\([0-9]*\) .*/\1/p' <<<"$out")
    run_rps=$(sed -n 's/^result: .* rps=\([0-9.]*\) .*/\1/p' <<<"$out")
    if [ $run_rc != 0 ] || [ "${run_ok:-0}" != "$req" ]; then
        fail "$label: gx_load exit $run_rc, $(grep -E '^(status|first error):' <<<"$out" |
              tr '\n' ' ')(gx_load.$label.txt with --log-dir)"
        grep -E '^gx_load: ' <<<"$out" | grep -v ' requests to \| token placeholder' >&2 || true
        return 1
    fi
}

# ------------------------------------------------------------------ register
say "checkpoint: $nodes nodes, checkpoint_ms $checkpoint_ms, $rounds round(s), galaxy-poold" \
    "--workers $workers, gx_load 16 x 32, $(nproc) cores, data under $tmp ($(df -PT "$tmp" |
    awk 'NR == 2 {print $2}'))"
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the" \
    "numbers)"
gx_load_run register "$nodes" 0 --tokens-out "$tmp/tokens.txt" "$tmp/register.body" Register ||
    exit 1
ntok=$(wc -l <"$tmp/tokens.txt")
if [ "$ntok" != "$nodes" ]; then
    fail "register: $ntok lease tokens written, want $nodes"
    exit 1
fi
say "register: $nodes nodes OK at $run_rps req/s, $ntok lease tokens"
awk '$1 == 0' "$tmp/tokens.txt" >"$tmp/token0.txt"
scrape=$(curl -sf --max-time 5 "http://$admin/metrics") || scrape=
v=$(metric galaxy_registry_nodes || echo "?")
[ "$v" = "$nodes" ] || fail "galaxy_registry_nodes is $v, want $nodes"
v=$(awk '$1 == "galaxy_pool_node_ttl_ms{pool=\"mainnet\"}" {print $2}' <<<"$scrape")
[ "$v" = "$node_ttl_ms" ] ||
    fail "pool mainnet's node TTL is ${v:-?} ms, want $node_ttl_ms (a data directory not new?)"

# ------------------------------------------------------------------ rounds
printf '%s %s %s %s %s %s %s %s %s %s %s\n' round nodes ckpts ckpt_s keeper_s store_s \
    proc_s written_mb mdb_mb hb_rps verdict >"$tmp/results.txt"
for r in $(seq 1 "$rounds"); do
    verdict=ok
    # 1. idle store, then the checkpoint that writes node 0's heartbeat
    if ! store_idle; then
        fail "round $r: the store did not go idle (commits still moving) within $run_timeout s"
        verdict=FAILED
    fi
    read -r rec0 ck0 com0 _ <<<"$(metrics)"
    gx_load_run "sync.r$r" 1 0 --tokens "$tmp/token0.txt" "$tmp/heartbeat.body" Heartbeat ||
        verdict=FAILED
    deadline=$(($(now_ms) + 2 * checkpoint_ms + run_timeout * 1000))
    while read -r rec _ _ _ <<<"$(metrics)" && [ "$rec" -le "$rec0" ] &&
          [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    if [ "$rec" -le "$rec0" ]; then
        fail "round $r: no checkpoint wrote node 0's heartbeat (galaxy_checkpoint_records_total" \
             "stayed at $rec)"
        verdict=FAILED
    fi

    # 2. the heartbeat pass
    read -r rec0 ck0 com0 _ <<<"$(metrics)"
    t0=$(now_ms)
    pass_ok=1
    gx_load_run "heartbeat.r$r" "$nodes" 0 --tokens "$tmp/tokens.txt" "$tmp/heartbeat.body" \
        Heartbeat || { pass_ok=0; verdict=FAILED; }
    hb_rps=${run_rps:-0}

    # 3. right after it
    s1=$(sample)
    t1=$(now_ms)
    read -r rec1 ck1 com1 _ <<<"$(metrics)"

    # 4. until the records are written and committed (not all of them after a failed pass)
    deadline=$(($(now_ms) + run_timeout * 1000))
    prev=-1 since=$t1 settled=0
    while [ $pass_ok = 1 ]; do
        m=$(metrics) || break
        read -r rec2 ck2 com2 last2 <<<"$m"
        t=$(now_ms)
        if [ "$com2" != "$prev" ]; then prev=$com2; since=$t; fi
        if [ $((rec2 - rec0)) -ge "$nodes" ] && [ $((t - since)) -ge 1000 ]; then
            settled=1
            break
        fi
        if [ "$t" -ge "$deadline" ] || ! kill -0 "${pid[poold]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    s2=$(sample)
    read -r rec2 ck2 com2 last2 <<<"$(metrics)"
    if [ $settled = 0 ] && [ $pass_ok = 1 ]; then
        fail "round $r: within $run_timeout s after the pass galaxy_checkpoint_records_total grew" \
             "by $((rec2 - rec0)) (want >= $nodes), galaxy_store_commits_total at $com2"
        verdict=FAILED
    fi
    echo "$r pass $t0 $t1 $rec0 $ck0 $com0 | after $rec1 $ck1 $com1 $s1 | settled $since" \
         "$rec2 $ck2 $com2 $last2 $s2" >>"$tmp/samples.txt"

    read -r k1 st1 p1 wb1 mdb1 <<<"$s1"
    read -r k2 st2 p2 wb2 mdb2 <<<"$s2"
    ckpts="$((ck1 - ck0))+$((ck2 - ck1))"
    say "round $r: heartbeat pass of $nodes nodes at $hb_rps req/s; checkpoints $ckpts" \
        "(during+after the pass) wrote $((rec1 - rec0))+$((rec2 - rec1)) records in" \
        "$((com2 - com0)) commits; last commit $(awk -v a="$t1" -v b="$since" \
        'BEGIN {printf "%.1f", (b - a) / 1000}') s after the pass; data.mdb" \
        "$(awk -v a="$mdb1" -v b="$mdb2" 'BEGIN {printf "%.1f -> %.1f MB", a / 1048576, b / 1048576}')"
    if [ "$ck1" != "$ck0" ]; then
        say "round $r: warning: $((ck1 - ck0)) checkpoint(s) ran during the pass and wrote" \
            "$((rec1 - rec0)) of the records: only the other $((rec2 - rec1)) are in the figures" \
            "(the pass took longer than checkpoint_ms; use a larger --checkpoint-ms)"
    fi
    awk -v r="$r" -v n="$nodes" -v c="$ckpts" -v l="$last2" -v hz="$ticks" -v k="$((k2 - k1))" \
        -v s="$((st2 - st1))" -v p="$((p2 - p1))" -v wb="$((wb2 - wb1))" -v mdb="$mdb2" \
        -v rps="$hb_rps" -v v="$verdict" 'BEGIN {
        printf "%s %s %s %.6f %.2f %.2f %.2f %.1f %.1f %.0f %s\n", r, n, c, l, k / hz, s / hz,
               p / hz, wb / 1048576, mdb / 1048576, rps, v }' >>"$tmp/results.txt"
done

# ------------------------------------------------------------------ table
{
    echo
    printf '%-5s %9s %6s %9s %9s %9s %9s %11s %9s %10s  %s\n' round nodes ckpts ckpt_s \
        "keeper s" "store s" "proc s" "written MB" "mdb MB" "hb req/s" verdict
    awk 'NR > 1 {printf "%-5s %9s %6s %9.3f %9.2f %9.2f %9.2f %11.1f %9.1f %10.0f  %s\n",
                 $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11}' "$tmp/results.txt"
    echo "(from the end of each heartbeat pass until its records were committed; ckpt_s:" \
         "galaxy_checkpoint_last_seconds, the keeper's scan and queued writes of the last" \
         "checkpoint; ckpts: checkpoints during+after the pass; proc s: all threads;" \
         "written MB: /proc/PID/io write_bytes; mdb MB: size of data.mdb after)"
} | tee "$tmp/table.txt"
cat "$tmp/table.txt" >>"$tmp/output.txt"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# a clean stop (it writes nothing new: every last-seen time is in the store)
kill -TERM "${pid[poold]}" 2>/dev/null || true
i=0
while kill -0 "${pid[poold]}" 2>/dev/null && [ $i -lt 2400 ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "${pid[poold]}" 2>/dev/null; then
    fail "galaxy-poold (pid ${pid[poold]}) did not exit within 120 s of SIGTERM"
else
    rc=0
    wait "${pid[poold]}" 2>/dev/null || rc=$?
    [ $rc = 0 ] || fail "galaxy-poold exited $rc after SIGTERM"
    unset "pid[poold]"
fi
# a restart on that store: every node's record and last-seen time are read back
if [ $failures -eq 0 ]; then
    rm -f "$tmp/poold.ready"
    t0=$(now_ms)
    "$build/galaxy-poold" -c "$tmp/poold.yaml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$tmp/var" --workers "$workers" --ready-file "$tmp/poold.ready" \
        2>>"$tmp/poold.log" &
    pid[poold]=$!
    if wait_file "$tmp/poold.ready" "${pid[poold]}"; then
        t1=$(now_ms)
        admin=$(sed -n 's/^admin=//p' "$tmp/poold.ready")
        scrape=$(curl -sf --max-time 5 "http://$admin/metrics") || scrape=
        got=$(metric galaxy_registry_nodes || true)
        say "restart: ready in $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1000 }') s" \
            "with ${got:-?} nodes"
        [ "${got:-0}" = "$nodes" ] || fail "the restart holds ${got:-?} nodes, not $nodes"
        kill -TERM "${pid[poold]}" 2>/dev/null || true
        wait "${pid[poold]}" 2>/dev/null || fail "galaxy-poold exited non-zero after the restart"
    else
        fail "galaxy-poold did not restart"
    fi
    unset "pid[poold]"
fi
if [ -s "$tmp/poold.log" ]; then
    echo "checkpoint.sh: galaxy-poold logged (first lines; all in poold.log with --log-dir):" >&2
    head -5 "$tmp/poold.log" | cut -c1-300 >&2
fi
if [ $failures -gt 0 ]; then
    echo "checkpoint.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "all rounds verified: every Register and Heartbeat OK, every round's records written" \
     "and committed"

#!/bin/bash
# SPDX-License-Identifier: MIT
# Route + assign throughput: galaxy.pool.v1.Jobs/SubmitJob on galaxy-poold, per
# routing policy (least_loaded, built in; p2c from modules/route_p2c; hash from
# modules/route_hash).  For each policy a fresh galaxy-poold (fresh data
# directory, both routing modules loaded) holds one public pool with that
# policy and 10,000 nodes over 10 specializations (spec-0..spec-9, 1,000 each,
# capacity zero = unlimited; the pool's heartbeat interval and TTL are long
# enough that they stay HEALTHY without heartbeats), registered and checked by
# bench/jobs_setup.py.  Then bench/gx_load drives SubmitJob at each shape
# (connections x streams): one gx_load process per specialization, each with
# its share of the connections and of the requests, sending that
# specialization's body (a distinct routing_key per request).  A SubmitJob is
# answered after its job's record is committed to LMDB, so every OK is a
# durable, routed job.
#
# For every run: SubmitJob/s (all OKs over the slowest process's time), server
# CPU per call (utime+stime from /proc/PID/stat), and from /metrics the mean
# and p99 routing decision time (galaxy_job_routing_seconds: sum/count and the
# buckets, differences over the run; without buckets the max, said so), and
# the check that every acknowledged job is ASSIGNED: galaxy_jobs{state=
# "ASSIGNED"} equals the OKs so far on that server, none PENDING, one routing
# decision per OK, nothing re-routed.  A run fails if a call did not end with
# grpc-status 0 (gx_load's exit status), the check does not hold, or the
# server does not stop cleanly; the script then exits 1.  Every gx_load run is
# bounded by -n and --timeout, every wait by a count of tries.
#
#   bench/jobs.sh --build /tmp/build-rel
#   bench/jobs.sh --build /tmp/build-rel --policies "least_loaded p2c" --log-dir /tmp/jobs
#   bench/jobs.sh --help
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/lib.sh"
build=.
module_dir=
policies="least_loaded p2c hash"
shapes="16x32 64x16"
n=50000
warmup=5000
nodes=10000
specs=10
workers=$(nproc)
gx_load=
run_timeout=120
log_dir=
tmp_parent=${TMPDIR:-/tmp}
pool="jobs"

usage() {
    cat <<EOF
usage: bench/jobs.sh [options]
  --build DIR            galaxy-poold build directory (default .)
  --module-dir DIR       where route_p2c.so and route_hash.so are (default BUILD/modules/.libs)
  --policies "P ..."     routing policies, each on a fresh server (default "$policies")
  --shapes "CxM ..."     connections x streams; C at least --specs (default "$shapes")
  -n N                   SubmitJob calls per run (default $n)
  --warmup N             SubmitJob calls of one unreported run per server, at the first shape
                         (default $warmup; 0 = none)
  --nodes N              nodes in the pool (default $nodes, at most 99999)
  --specs S              specializations spec-0..spec-{S-1}, N/S nodes each (default $specs)
  --workers N            galaxy-poold --workers (default nproc)
  --gx-load PATH         use this gx_load binary (default: build bench/gx_load.c into the
                         temporary directory with cc -O2)
  --timeout S            bound of every gx_load run in seconds (default $run_timeout)
  --tmp-dir DIR          parent of the temporary directory holding the data directories
                         (default \$TMPDIR or /tmp): put it on the file system to measure
  --log-dir DIR          keep gx_load outputs, /metrics snapshots, server logs and the table
EOF
    exit 2
}

while [ $# -gt 0 ]; do
    opt=$1
    val=${2-}
    shift
    case $opt in -h|--help) usage ;; esac
    [ $# -gt 0 ] || { echo "jobs.sh: $opt needs a value" >&2; usage; }
    shift
    case $opt in
    --build) build=$val ;;
    --module-dir) module_dir=$val ;;
    --policies) policies=$val ;;
    --shapes) shapes=$val ;;
    -n) n=$val ;;
    --warmup) warmup=$val ;;
    --nodes) nodes=$val ;;
    --specs) specs=$val ;;
    --workers) workers=$val ;;
    --gx-load) gx_load=$val ;;
    --timeout) run_timeout=$val ;;
    --tmp-dir) tmp_parent=$val ;;
    --log-dir) log_dir=$val ;;
    *) echo "jobs.sh: unknown argument $opt" >&2; usage ;;
    esac
done

for v in "$n" "$warmup" "$nodes" "$specs" "$workers" "$run_timeout"; do
    isnum "$v" || { echo "jobs.sh: \"$v\" is not a number" >&2; exit 2; }
done
if [ "$n" -lt 1 ] || [ "$specs" -lt 1 ] || [ "$specs" -gt 100 ] || [ "$nodes" -gt 99999 ] ||
   [ "$nodes" -lt "$specs" ] || [ $((nodes % specs)) != 0 ] || [ "$run_timeout" -lt 1 ]; then
    echo "jobs.sh: need -n > 0, --specs 1..100 dividing --nodes (at most 99999), --timeout >= 1" >&2
    exit 2
fi
shapes_check jobs.sh "$specs" $shapes    # one gx_load per specialization
nshapes=$(echo $shapes | wc -w)
jobs_total=$((warmup + nshapes * n))    # per server; routing keys have 8 digits
if [ "$jobs_total" -ge 100000000 ]; then
    echo "jobs.sh: more than 10^8 jobs per server" >&2
    exit 2
fi
[ -n "$module_dir" ] || module_dir=$build/modules/.libs
declare -A module=([least_loaded]="" [p2c]=route_p2c [hash]=route_hash)
for p in $policies; do
    if [ -z "${module[$p]+set}" ]; then
        echo "jobs.sh: unknown policy \"$p\" (least_loaded, p2c, hash)" >&2
        exit 2
    fi
    if [ -n "${module[$p]}" ] && [ ! -f "$module_dir/${module[$p]}.so" ]; then
        echo "jobs.sh: policy $p needs $module_dir/${module[$p]}.so (--module-dir DIR," \
             "or --policies without it)" >&2
        exit 1
    fi
done
if [ ! -x "$build/galaxy-poold" ]; then
    echo "jobs.sh: no $build/galaxy-poold (--build DIR)" >&2
    exit 1
fi

tmp=$(mktemp -d "$tmp_parent/gx-jobs.XXXXXX")
declare -A pid
gl=()    # the gx_load processes of the current run
admin=
h2c=
cleanup() {
    local s
    for s in "${!pid[@]}"; do kill -9 "${pid[$s]}" 2>/dev/null || true; done
    for s in "${gl[@]}"; do kill "$s" 2>/dev/null || true; done
    tmp_done
}
trap cleanup EXIT
ticks=$(getconf CLK_TCK)
py=/usr/bin/python3

gx_load_build jobs.sh
$py "$src/bench/jobs_setup.py" --pool "$pool" --nodes "$nodes" --specs "$specs" \
    --bodies "$tmp/bodies" --bodies-only

# the server's configuration for POLICY: the pool, the jobs limits, the routing modules
write_conf() {
    local conf=$tmp/poold.$1.yaml m
    {
        printf 'server:\n  log_level: warn\n  access_log: "off"\n'
        # nothing may wait (every node takes jobs) or be routed again during the runs
        printf 'jobs:\n  queue_max: %d\n  jobs_max: %d\n  ack_timeout_ms: 86400000\n' \
            "$((jobs_total + 1000))" "$((jobs_total + 1000))"
        printf 'pools:\n  - name: %s\n    visibility: public\n    routing_policy: %s\n' \
            "$pool" "$1"
        printf '    heartbeat_interval_ms: 600000\n    node_ttl_ms: 1800000\n'
        printf 'modules:\n'
        for m in route_p2c route_hash; do
            if [ -f "$module_dir/$m.so" ]; then printf '  - path: %s\n' "$m"; fi
        done
    } >"$conf"
    grep -q '  - path' "$conf" || sed -i '$d' "$conf"    # no modules: no empty list
    echo "$conf"
}

start_poold() {    # POLICY
    local conf i=0
    conf=$(write_conf "$1")
    rm -rf "$tmp/data" "$tmp/poold.ready"
    "$build/galaxy-poold" -c "$conf" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$tmp/data" --module-dir "$module_dir" --workers "$workers" \
        --ready-file "$tmp/poold.ready" 2>>"$tmp/poold.$1.log" &
    pid[poold]=$!
    wait_file "$tmp/poold.ready" "${pid[poold]}" ||
        { echo "jobs.sh: galaxy-poold did not start:" >&2; cat "$tmp/poold.$1.log" >&2; exit 1; }
    # the ready file is written once; wait (bounded) until it holds both addresses
    while ! grep -q '^admin=' "$tmp/poold.ready" && [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    h2c=$(sed -n 's/^h2c=//p' "$tmp/poold.ready")
    admin=$(sed -n 's/^admin=//p' "$tmp/poold.ready")
    if [ -z "$admin" ] || [ -z "$h2c" ]; then
        echo "jobs.sh: galaxy-poold has no h2c or admin listener" >&2
        exit 1
    fi
}

# stop_poold POLICY: SIGTERM, a bounded wait, the exit status
stop_poold() {
    local i=0 rc=0
    kill -TERM "${pid[poold]}" 2>/dev/null || true
    while kill -0 "${pid[poold]}" 2>/dev/null && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
    if kill -0 "${pid[poold]}" 2>/dev/null; then
        echo "jobs.sh: galaxy-poold ($1, pid ${pid[poold]}) did not stop within 60 s" >&2
        kill -9 "${pid[poold]}" 2>/dev/null || true
        failures=$((failures + 1))
    fi
    wait "${pid[poold]}" || rc=$?
    if [ $rc != 0 ]; then
        echo "jobs.sh: galaxy-poold ($1) exited with status $rc" >&2
        failures=$((failures + 1))
    fi
    unset "pid[poold]"
}

metrics() {    # FILE: a /metrics snapshot
    curl -sf --max-time 10 "http://$admin/metrics" >"$1" ||
        { echo "jobs.sh: reading http://$admin/metrics failed" >&2; : >"$1"; }
}

metric() {    # FILE NAME: the value of the sample NAME (exact, labels included), or 0
    awk -v k="$2" '$1 == k {v = $2} END {print v + 0}' "$1"
}

# route_stats BEFORE AFTER: "count mean_us p99_us max_us" of the routing decisions between
# the two snapshots; p99 as Prometheus' histogram_quantile() (linear in the bucket), "-"
# when the server has no buckets; max is the server's since it started
route_stats() {
    awk '
        function val(s) { return s + 0 }
        FNR == 1 { f++ }
        /^galaxy_job_routing_seconds_bucket\{le="/ {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
            if (f == 1) b0[le] = val($2); else { b1[le] = val($2); les[++nb] = le }
        }
        $1 == "galaxy_job_routing_seconds_sum" { s[f] = val($2) }
        $1 == "galaxy_job_routings_total" { c[f] = val($2) }
        $1 == "galaxy_job_routing_seconds_max" { mx = val($2) }
        END {
            cnt = c[2] - c[1]
            mean = cnt > 0 ? (s[2] - s[1]) / cnt * 1e6 : 0
            p99 = "-"
            if (nb > 0) {
                total = b1["+Inf"] - b0["+Inf"]; rank = 0.99 * total; prev = 0; lo = 0
                for (i = 1; i <= nb && total > 0; i++) {
                    d = b1[les[i]] - b0[les[i]]
                    if (d >= rank) {
                        if (les[i] == "+Inf") p99 = sprintf("%.1f", lo * 1e6)
                        else p99 = sprintf("%.1f", (lo + (les[i] - lo) * \
                                   (d > prev ? (rank - prev) / (d - prev) : 1)) * 1e6)
                        break
                    }
                    prev = d; lo = les[i] + 0
                }
            }
            printf "%d %.1f %s %.1f\n", cnt, mean, p99, mx * 1e6
        }' "$1" "$2"
}

failures=0
acked=0       # OK SubmitJobs on the current server
next=0        # the first routing-key number of the next run on it
hist_seen=1

# run POLICY CONNS STREAMS REQUESTS LABEL: one gx_load per specialization, together; prints
# a line and appends "policy shape rps us_per_call mean p99 max check verdict" to results
# (LABEL warmup: to results.warmup, not in the table)
run() {
    local p=$1 c=$2 m=$3 req=$4 label=$5 k ck rk c_lo c_hi r_lo r_hi
    local c0 c1 rc=0 ok ndone secs p99c rps us assigned pending rerouted
    local cnt mean p99 max check verdict
    gl=()
    metrics "$tmp/metrics.$p.$label.0"
    c0=$(cpu poold)
    for k in $(seq 0 $((specs - 1))); do
        # connections k*c/specs .. (k+1)*c/specs - 1, and the requests in proportion
        c_lo=$((k * c / specs)); c_hi=$(((k + 1) * c / specs))
        r_lo=$((c_lo * req / c)); r_hi=$((c_hi * req / c))
        ck=$((c_hi - c_lo)); rk=$((r_hi - r_lo))
        if [ "$ck" -lt 1 ] || [ "$rk" -lt 1 ]; then continue; fi
        timeout $((run_timeout + 30)) "$gx_load" -n "$rk" -c "$ck" -m "$m" \
            -d "$tmp/bodies/spec-$k.body" --start $((next + r_lo)) --timeout "$run_timeout" \
            "http://$h2c/galaxy.pool.v1.Jobs/SubmitJob" >"$tmp/gx_load.$p.$label.spec-$k.txt" 2>&1 &
        gl+=($!)
    done
    for k in "${gl[@]}"; do wait "$k" || rc=$?; done
    gl=()
    c1=$(cpu poold)
    metrics "$tmp/metrics.$p.$label.1"
    next=$((next + req))
    # all the processes' OKs over the slowest one's time; the worst client p99
    read -r ok ndone secs p99c <<<"$(awk '/^result: / {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] + 0 }
            ok += v["ok"]; n += v["done"]
            if (v["secs"] > secs) secs = v["secs"]
            if (v["p99_ms"] > p99) p99 = v["p99_ms"]
        } END { printf "%d %d %.6f %.3f\n", ok, n, secs, p99 }' \
        "$tmp/gx_load.$p.$label".spec-*.txt)"
    acked=$((acked + ok))
    rps=$(awk -v o="$ok" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0 ? o / s : 0)}')
    us=$(awk -v d="$((c1 - c0))" -v t="$ticks" -v r="$((ndone > 0 ? ndone : req))" \
         'BEGIN {printf "%.1f", d * 1e6 / t / r}')
    read -r cnt mean p99 max <<<"$(route_stats "$tmp/metrics.$p.$label".[01])"
    if [ "$p99" = "-" ]; then hist_seen=0; fi
    assigned=$(metric "$tmp/metrics.$p.$label.1" 'galaxy_jobs{state="ASSIGNED"}')
    pending=$(metric "$tmp/metrics.$p.$label.1" 'galaxy_jobs{state="PENDING"}')
    rerouted=$(metric "$tmp/metrics.$p.$label.1" galaxy_jobs_rerouted_total)
    check=ok
    if [ "$assigned" != "$acked" ] || [ "$pending" != 0 ] || [ "$cnt" != "$ok" ] ||
       [ "$rerouted" != 0 ]; then
        check="MISMATCH"
    fi
    verdict=ok
    if [ $rc != 0 ] || [ "$ok" != "$req" ] || [ "$ndone" != "$req" ] || [ $check != ok ]; then
        verdict="FAILED (gx_load exit $rc, done $ndone, ok $ok of $req; ASSIGNED $assigned"
        verdict="$verdict of $acked acknowledged, PENDING $pending, routings $cnt,"
        verdict="$verdict re-routed $rerouted; see gx_load.$p.$label.spec-*.txt)"
        failures=$((failures + 1))
    fi
    if [ "$label" = warmup ]; then printf 'warm-up: '; fi
    printf '%-12s %4s x %-3s %8s SubmitJob/s  p99 %7.1f ms  %6s us CPU/call  route mean %6.1f' \
        "$p" "$c" "$m" "$rps" "$p99c" "$us" "$mean"
    printf ' p99 %6s max %7.1f us  ASSIGNED %s/%s  %s\n' "$p99" "$max" "$assigned" "$acked" \
        "$verdict"
    echo "$p ${c}x$m $rps $us $mean $p99 $max $assigned/$acked ${verdict%% *}" \
        >>"$tmp/results$([ "$label" != warmup ] || echo .warmup)"
}

# ------------------------------------------------------------------ measure
echo "jobs: SubmitJob, -n $n per run, shapes $shapes, policies $policies; $nodes nodes in" \
     "$specs specializations; galaxy-poold --workers $workers, one gx_load per specialization," \
     "$(nproc) cores, data under $tmp ($(df -PT "$tmp" | awk 'NR == 2 {print $2}'))"
echo "uptime before: $(uptime)"
for p in $policies; do
    start_poold "$p"
    acked=0
    next=0
    if ! timeout 600 $py "$src/bench/jobs_setup.py" --target "$h2c" --pool "$pool" --policy "$p" \
            --nodes "$nodes" --specs "$specs" 2>&1 | sed 's/^/  /'; then
        echo "jobs.sh: setting up the nodes for $p failed" >&2
        failures=$((failures + 1))
        stop_poold "$p"
        continue
    fi
    first=${shapes%% *}
    if [ "$warmup" -gt 0 ]; then
        run "$p" "${first%x*}" "${first#*x}" "$warmup" warmup
    fi
    for shape in $shapes; do
        run "$p" "${shape%x*}" "${shape#*x}" "$n" "$shape"
    done
    echo "uptime after $p: $(uptime)"
    stop_poold "$p"
done

{
    echo
    printf '%-12s %-9s %12s %9s %11s %10s %10s %15s\n' policy shape SubmitJob/s us/call \
        "route mean" "route p99" "route max" "ASSIGNED/acked"
    while read -r p shape rps us mean p99 max chk verdict; do
        printf '%-12s %-9s %12s %9.1f %8.1f us %7s us %7.1f us %15s' "$p" "${shape/x/ x }" \
            "$rps" "$us" "$mean" "$p99" "$max" "$chk"
        if [ "$verdict" != ok ]; then printf '  FAILED'; fi
        echo
    done <"$tmp/results"
    echo "(SubmitJob/s: acknowledged after the LMDB commit, all OKs over the slowest gx_load;"
    echo " us/call: server utime+stime per call; route: galaxy_job_routing_seconds over the run,"
    if [ $hist_seen = 1 ]; then
        echo " p99 interpolated in its power-of-two buckets; max: the server's, since it started)"
    else
        echo " no histogram buckets on /metrics: no p99, see max (the server's, since it started))"
    fi
    echo "uptime after: $(uptime)"
} | tee "$tmp/table.txt"

for p in $policies; do
    if [ -s "$tmp/poold.$p.log" ]; then
        echo "jobs.sh: galaxy-poold ($p) logged (first lines; all in poold.$p.log with" \
             "--log-dir):" >&2
        head -5 "$tmp/poold.$p.log" | cut -c1-300 >&2
    fi
done
if [ $failures -gt 0 ]; then
    echo "jobs.sh: $failures run(s) or check(s) failed" >&2
    exit 1
fi
echo "all runs verified: every SubmitJob answered grpc-status 0, every acknowledged job" \
     "is ASSIGNED"

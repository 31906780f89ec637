#!/bin/sh
# SPDX-License-Identifier: MIT
# h2load against grpc.health.v1.Health/Check on a fresh galaxy-poold, at the
# connection × stream shapes of the benchmark plan.  Prints requests/s, the
# server's CPU time per call, and checks the server's own counters: every
# response h2load counted must have had grpc-status 0 (h2load cannot see it).
#
#   bench/health.sh [BUILDDIR] [REQUESTS]
set -eu
build=${1:-.}
n=${2:-300000}
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT

printf '\000\000\000\000\000' > "$tmp/req"    # one empty HealthCheckRequest
"$build/galaxy-poold" -c "$src/etc/galaxy-poold.yaml" --listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --data-dir "$tmp/var" --ready-file "$tmp/ready" \
    --module-dir "$build/modules/.libs" --log-level warn 2>"$tmp/server.log" &
pid=$!
i=0
while [ ! -f "$tmp/ready" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -f "$tmp/ready" ] || { echo "health.sh: galaxy-poold did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
h2c=$(sed -n 's/^h2c=//p' "$tmp/ready")
admin=$(sed -n 's/^admin=//p' "$tmp/ready")
ticks=$(getconf CLK_TCK)

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
ok() {
    curl -s "http://$admin/metrics" |
        sed -n 's/^galaxy_grpc_calls_total{method="\/grpc.health.v1.Health\/Check",code="OK"} //p'
}

total=0
for shape in "1 100" "16 32" "64 16" "256 1"; do
    set -- $shape
    threads=2
    [ "$1" -lt 2 ] && threads=1
    c0=$(cpu)
    out=$(h2load -n "$n" -c "$1" -m "$2" -t $threads -d "$tmp/req" \
          -H 'content-type: application/grpc' -H 'te: trailers' \
          "http://$h2c/grpc.health.v1.Health/Check")
    c1=$(cpu)
    rps=$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')
    succ=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
    total=$((total + succ))
    us=$(echo "($c1 - $c0) * 1000000 / $ticks / $n" | bc -l)
    printf '%4s conns x %3s streams: %10s req/s  %5.2f us server CPU/call  %s ok\n' \
        "$1" "$2" "$rps" "$us" "$succ"
done
server_ok=$(ok)
echo "h2load succeeded: $total; server counted grpc-status OK: $server_ok"
[ "$server_ok" = "$total" ] || { echo "MISMATCH: some responses were not OK" >&2; exit 1; }

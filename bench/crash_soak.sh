#!/bin/sh
# SPDX-License-Identifier: MIT
# The long versions of t/integration/test_crash.py: test_crash_under_load with
# many SIGKILLs under Register load (default 200, bounded by --seconds), and
# test_recovery with 100,000 nodes, which reports the restart recovery time
# (process start to ready file) after SIGTERM and after SIGKILL.  Every
# server it starts listens on 127.0.0.1 and is stopped by the test fixtures.
#
#   bench/crash_soak.sh [--build DIR] [--kills N] [--seconds S] [--nodes N]
#                       [--seed N] [--only crash|recovery]
#
# --build     build directory (default .; use one without sanitizers for the
#             recovery times, any for the kills)
# --kills     SIGKILLs under load (GX_CRASH_KILLS, default 200)
# --seconds   time bound of the kill loop (GX_CRASH_SECONDS, default 300)
# --nodes     nodes of the recovery test (GX_RECOVERY_NODES, default 100000)
# --seed      the kill schedule (GX_CRASH_SEED, default random; printed)
# Exit status: pytest's (0: every acknowledged registration survived).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=.
kills=200
seconds=300
nodes=100000
seed=
only=
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --kills) kills=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    -h|--help) sed -n '3,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "crash_soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $only in
"") select="test_crash_under_load or test_recovery" ;;
crash) select="test_crash_under_load" ;;
recovery) select="test_recovery" ;;
*) echo "crash_soak.sh: --only crash|recovery" >&2; exit 2 ;;
esac
build=$(cd "$build" && pwd)
[ -x "$build/galaxy-poold" ] || { echo "crash_soak.sh: no $build/galaxy-poold" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "build $build ($(if ldd "$build/galaxy-poold" | grep -q libasan; then echo ASan;
    else echo no sanitizers; fi)), kills $kills within ${seconds}s, recovery nodes $nodes"
rc=0
cd "$src"
GX_BUILDDIR=$build GX_CRASH_KILLS=$kills GX_CRASH_SECONDS=$seconds GX_RECOVERY_NODES=$nodes \
GX_CRASH_SEED=$seed GX_CRASH_REPORT=$tmp/report \
    timeout $((seconds + 900)) /usr/bin/python3 -m pytest -p no:cacheprovider -q -ra \
    --basetemp "$tmp/pytest" --durations=0 -k "$select" t/integration/test_crash.py || rc=$?
echo "---- report"
cat "$tmp/report" 2>/dev/null || true
exit $rc

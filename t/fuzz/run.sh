#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds t/fuzz/fuzz_poold (galaxy-poold under libFuzzer, ASan and UBSan; see
# the comment at the top of fuzz_poold.c) in its own build directory with
# clang, then fuzzes for SECONDS (default 600) with a corpus that persists
# between runs.  Needs clang and libclang-rt-14-dev (Debian 12).
#
#   t/fuzz/run.sh [SECONDS] [libFuzzer options...]
#   GX_FUZZ_BUILD=/tmp/gx-fuzz-build t/fuzz/run.sh 3600 -jobs=2 -workers=2
#   t/fuzz/run.sh 0 crash-<sha1>      replays one input (0: no time limit)
#
# A crash leaves crash-*, a hang of the server leaves the input before the
# abort; both in the current directory.
set -eu

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${GX_FUZZ_BUILD:-${TMPDIR:-/tmp}/gx-fuzz-build}
corpus=${GX_FUZZ_CORPUS:-$build/corpus}
seconds=${1:-600}
[ $# -gt 0 ] && shift

command -v clang >/dev/null || { echo "run.sh: clang is needed (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
mkdir -p "$build" "$corpus"
if [ ! -f "$build/Makefile" ]; then
    [ -x "$src/configure" ] || (cd "$src" && autoreconf -fi)
    (cd "$build" && "$src/configure" -q CC=clang CFLAGS="-g -O1" --enable-fuzzer)
fi
make -C "$build" -j"$(nproc)" -s t/fuzz/fuzz_poold modules/auth_apikey.la modules/rbac.la \
    modules/route_p2c.la

# each run's server state (its data directory) under the build, wiped here
rm -rf "$build/state"
mkdir -p "$build/state"
export TMPDIR="$build/state"

# The server's leaks show at exit, which libFuzzer's own leak check would
# blame on the last input: LeakSanitizer runs at the end instead.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [ $# -gt 0 ] && [ -f "$1" ]; then
    exec "$build/t/fuzz/fuzz_poold" "$@"   # replay the inputs named
fi
set -- -max_len=4096 -timeout=20 -detect_leaks=0 -print_final_stats=1 "$@"
[ "$seconds" -gt 0 ] && set -- -max_total_time="$seconds" "$@"
exec "$build/t/fuzz/fuzz_poold" "$@" "$corpus"

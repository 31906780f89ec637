#!/bin/sh
# SPDX-License-Identifier: MIT
# Every header compiles on its own (STYLE.md 5): each is included alone,
# after config.h, into an empty translation unit.
set -eu
: "${CC:=cc}"
src=${srcdir:-.}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
for h in $(cd "$src" && ls include/galaxy/*.h src/*/*.h); do
    printf '#include "config.h"\n#include "%s"\n' "$h" > "$tmp/t.c"
    if ! $CC $GX_HDR_CFLAGS -I. -I"$src/include" -I"$src/src" -I"$src" -Igen \
         -fsyntax-only "$tmp/t.c" 2>"$tmp/err"; then
        echo "FAIL: $h does not compile alone:"; cat "$tmp/err"
        fail=$((fail + 1))
    fi
    n=$((n + 1))
done
echo "$n headers checked, $fail failed"
[ $fail -eq 0 ]

#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages that only the benchmarks need (the gRPC C++
# reference server, h2load, etcd for the Register comparison), and nothing when
# they are all there already.  Safe to run again and again.  The server itself
# builds and tests with contrib/deps.sh alone.
set -eu

PKGS="build-essential pkg-config make
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
      nghttp2-client curl bc procps
      python3 python3-grpcio python3-protobuf
      etcd-server etcd-client"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "bench deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "bench deps: missing packages and not root; run: apt-get install$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

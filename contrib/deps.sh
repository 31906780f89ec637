#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages galaxy-poold builds and tests with, and nothing
# when they are all there already.  Safe to run again and again.
set -eu

PKGS="build-essential pkg-config autoconf automake libtool autoconf-archive
      libnghttp2-dev libevent-dev libssl-dev zlib1g-dev
      libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
      liblmdb-dev liburcu-dev libyaml-dev libcyaml-dev libjansson-dev check
      python3 python3-grpcio python3-protobuf python3-pytest python3-h2
      nghttp2-client openssl"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps: missing packages and not root; run: apt-get install$missing" >&2
        exit 1
    fi
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

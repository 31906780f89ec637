#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes a throw-away CA and a server certificate for localhost/127.0.0.1 in
# DIR (default ./var/tls) unless they are there already: what `make run` uses
# for its TLS listener.  Development only; nothing here is a secret worth
# keeping, and nothing of it is committed.
set -eu
dir=${1:-var/tls}
[ -f "$dir/server.crt" ] && [ -f "$dir/server.key" ] && [ -f "$dir/ca.crt" ] && exit 0
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=galaxy-poold dev CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
echo "dev-cert: made $dir/ca.crt and a server certificate for localhost" >&2

# SPDX-License-Identifier: MIT
"""A bounded heartbeat soak: h2load drives unary Heartbeat (anonymous and
with an API key) and HeartbeatStream (many messages per stream) against a
server with the whole phase chain on (auth_apikey, rbac, access log to a
file). Every call must succeed by the server's own counters, and the
server's RSS must stop growing once warm: what a call allocates goes with
it. Bounded in requests and time; ASan's quarantine is kept small so that
freed memory does not look like growth."""
import importlib
import os
import shutil
import subprocess

import pytest

from conftest import BINARY, rss_kib
from gxapi import Api, with_key
from h2raw import grpc_frame

ADMIN = "soak-admin-0123456789abcdef0123456789"
ROUNDS = 4
PER_ROUND = 20000
STREAM_MSGS = 50
HEARTBEAT = "/galaxy.pool.v1.NodeRegistry/Heartbeat"
STREAM = "/galaxy.pool.v1.NodeRegistry/HeartbeatStream"

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None,
                                reason="h2load (nghttp2-client) is not installed")


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def asan_build():
    with open(BINARY, "rb") as f:
        return b"__asan_init" in f.read()


def h2load(addr, path, body, n, conns, streams, headers=()):
    args = ["h2load", "-n", str(n), "-c", str(conns), "-m", str(streams), "-t", "1",
            "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + ["http://%s%s" % (addr, path)], capture_output=True,
                         text=True, timeout=120).stdout
    assert "%d succeeded, 0 failed, 0 errored" % n in out, out


def ok_calls(server, path):
    m = server.metrics()
    return m.get('galaxy_grpc_calls_total{method="%s",code="OK"}' % path, 0)


def bad_calls(server):
    return sum(v for k, v in server.metrics().items()
               if k.startswith("galaxy_grpc_calls_total{") and 'code="OK"' not in k)


def test_heartbeat_soak_rss_is_flat(make_server, pb, tmp_path):
    log = tmp_path / "access.log"
    s = make_server(tls=False, modules=("auth_apikey", "rbac"),
                    config="server:\n  log_level: warn\n  access_log: %s\n" % log,
                    env={"GALAXY_ADMIN_KEY": ADMIN,
                         "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1"})
    with s.channel() as ch:
        admin = Api(with_key(ch, ADMIN), pb)
        key = admin.CreateApiKey(pb.CreateApiKeyRequest(name="nodes", role=pb.ROLE_NODE),
                                 timeout=5).secret
        token = Api(ch, pb).register("soak-1", pool="mainnet").lease_token
    hb = pb.HeartbeatRequest(pool="mainnet", node_id="soak-1", lease_token=token, load=0.25,
                             running_jobs=1).SerializeToString()
    unary = tmp_path / "hb.bin"
    unary.write_bytes(grpc_frame(hb))
    stream = tmp_path / "hb-stream.bin"
    stream.write_bytes(grpc_frame(hb) * STREAM_MSGS)
    auth = ["authorization: Bearer " + key]

    def round_():
        h2load(s.h2c, HEARTBEAT, str(unary), PER_ROUND, 8, 16)
        h2load(s.h2c, HEARTBEAT, str(unary), PER_ROUND, 8, 16, auth)
        h2load(s.h2c, STREAM, str(stream), PER_ROUND // STREAM_MSGS, 4, 8, auth)

    round_()  # warm-up: allocator pools, arenas, per-thread caches
    base = rss_kib(s.proc.pid)
    peak = base
    for _ in range(ROUNDS):
        round_()
        peak = max(peak, rss_kib(s.proc.pid))
    total = ROUNDS + 1
    assert ok_calls(s, HEARTBEAT) == total * 2 * PER_ROUND
    assert ok_calls(s, STREAM) == total * (PER_ROUND // STREAM_MSGS)
    assert bad_calls(s) == 0
    # 4 rounds of 60,000 heartbeats (40,000 unary, 20,000 streamed) after the
    # warm-up: a leak of 16 bytes a heartbeat would be 3.7 MB.  Under ASan,
    # whose allocator keeps freed blocks in per-thread caches and its
    # quarantine, RSS creeps ~400 KiB a round (12 rounds: +4.3 to +6.2 MiB, on
    # b84e584 alike) while 12 rounds without it stay under 256 KiB: there
    # LeakSanitizer at exit is the leak check, and the bound only a coarse one.
    # Under GX_SERVER_WRAP (valgrind) the RSS is the wrapper's own, and its
    # --leak-check is the check.
    limit = 16384 if asan_build() else 3072
    if not os.environ.get("GX_SERVER_WRAP"):
        assert peak - base < limit, "RSS grew from %d to %d KiB" % (base, peak)
    assert s.stop() == 0
    lines = log.read_text().splitlines()
    unary_ok = [l for l in lines if "method=%s status=OK " % HEARTBEAT in l]
    assert len(unary_ok) == total * 2 * PER_ROUND
    # the keyed half is logged with the key's identity
    assert sum('identity="key:' in l for l in unary_ok) == total * PER_ROUND

# SPDX-License-Identifier: MIT
"""The store's limits: its own ceiling (server.data_max_mb), and its disk
running out of space.  Either way the server keeps serving, refuses the
writes it cannot store with RESOURCE_EXHAUSTED naming the cause (not a bare
INTERNAL), stores nothing of them, and takes writes again once there is room;
everything acknowledged survives a restart.  The full disk is a 4 MiB tmpfs
the test mounts under its own temporary directory and unmounts at the end;
that test is skipped where mounting is not allowed (not root, or no
CAP_SYS_ADMIN)."""
import importlib
import os
import subprocess

import grpc
import pytest

from gxapi import Api, status_of

FULL = "no space left on the data directory's disk"


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % (r.stderr.strip() or r.returncode))
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


LABELS = {"k%02d" % i: "v" * 500 for i in range(20)}  # ~12 KB a node


def fill(api, why):
    """Registers nodes until one is refused (at most 1,000, 12 MB: more than
    the stores here hold).  @return the ids acknowledged and the refused one,
    after checking that it was RESOURCE_EXHAUSTED for @why and not stored."""
    acked = []
    for i in range(1000):
        try:
            api.register("n%04d" % i, labels=LABELS)
        except grpc.RpcError as e:
            code, msg = e.code(), e.details()
            break
        acked.append("n%04d" % i)
    else:
        pytest.fail("1,000 nodes of 12 KB were stored")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
    assert why in msg, msg
    assert len(acked) > 50
    refused = "n%04d" % len(acked)
    assert status_of(api.get, refused)[0] == grpc.StatusCode.NOT_FOUND
    return acked, refused


def test_disk_full(small_disk, make_server, pb):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1 << 20))
    s = make_server(tls=False, data_dir=str(small_disk / "data"))
    with s.channel() as ch:
        api = Api(ch, pb)
        acked, refused = fill(api, FULL)
        # the server goes on serving what it has
        assert api.list_all(page_size=1000) == acked
        m = s.metrics()
        assert m["galaxy_store_no_space_total"] >= 1
        assert m["galaxy_store_batches_failed_total"] >= 1
        assert FULL in s.log()
    # a restart on the full disk: the store opens and the server serves
    assert s.stop() == 0
    s.start()
    with s.channel() as ch:
        api = Api(ch, pb)
        assert api.list_all(page_size=1000) == acked
        code, msg = status_of(api.register, refused, labels=LABELS)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and FULL in msg, (code, msg)
        # space comes back: so do writes
        filler.unlink()
        api.register(refused, labels=LABELS)
        acked.append(refused)
    assert s.stop() == 0
    s.start()
    with s.channel() as ch:
        assert Api(ch, pb).list_all(page_size=1000) == acked


def test_data_max_mb(make_server, pb):
    """The map grows up to server.data_max_mb and no further: the writes past
    it are RESOURCE_EXHAUSTED naming the key, nothing of them is stored, the
    server serves what it has, and a restart with a larger bound takes
    writes again."""
    config = "server:\n  log_level: info\n  data_max_mb: %d\n"
    s = make_server(tls=False, config=config % 2)
    with s.channel() as ch:
        api = Api(ch, pb)
        acked, refused = fill(api, "store is full (server.data_max_mb)")
        assert api.list_all(page_size=1000) == acked
        assert s.metrics()["galaxy_store_map_bytes"] == 2 << 20
    assert s.stop() == 0
    with open(s.conf_path, "w") as f:
        f.write(config % 8)
    s.start()
    with s.channel() as ch:
        api = Api(ch, pb)
        api.register(refused, labels=LABELS)
        assert api.list_all(page_size=1000) == acked + [refused]

# SPDX-License-Identifier: MIT
"""Last-seen times are checkpointed in batches (issue 3): a heartbeat is not
written when it comes, the keeper writes the last-seen times that changed
every registry.checkpoint_ms, and those survive a crash.  A node whose record
was just written (Register) is not written again until a heartbeat changes
it; the store's commit counter shows what the checkpoints wrote."""
import importlib
import time

import pytest

from conftest import wait_for
from gxapi import Api

CONF = "server:\n  log_level: info\nregistry:\n  checkpoint_ms: 1000\n"


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def commits(server):
    return server.metrics()["galaxy_store_commits_total"]


def test_checkpoint_writes_only_what_changed(make_server, pb):
    s = make_server(config=CONF)
    with s.channel() as ch:
        api = Api(ch, pb)
        api.create_pool("ck", heartbeat_interval_ms=60000)
        tokens = {"n%02d" % i: api.register("n%02d" % i, "ck").lease_token for i in range(50)}
        registered = {id: api.get(id, "ck").last_heartbeat_unix_ms for id in tokens}
        # two checkpoints pass: nothing changed since the Registers wrote their records
        before = commits(s)
        time.sleep(2.5)
        assert commits(s) == before
        m = s.metrics()
        assert m["galaxy_checkpoints_total"] == 0
        assert m["galaxy_checkpoint_records_total"] == 0
        # heartbeats of three nodes: one checkpoint commit writes them, then nothing more
        beat = sorted(tokens)[:3]
        for id in beat:
            api.heartbeat(id, tokens[id], pool="ck")
        seen = {id: api.get(id, "ck").last_heartbeat_unix_ms for id in beat}
        assert all(seen[id] >= registered[id] for id in beat)
        assert wait_for(lambda: commits(s) == before + 1, 3), commits(s) - before
        time.sleep(1.5)
        assert commits(s) == before + 1
        m = s.metrics()
        assert m["galaxy_checkpoints_total"] == 1
        assert m["galaxy_checkpoint_records_total"] == 3
        assert 0 < m["galaxy_checkpoint_last_seconds"] < 1
    # a crash right after: the checkpointed times are what a restart finds
    s.kill()
    s.start()
    with s.channel() as ch:
        api = Api(ch, pb)
        for id in tokens:
            got = api.get(id, "ck").last_heartbeat_unix_ms
            assert got == seen.get(id, registered[id]), (id, got)
    assert s.stop() == 0


def test_clean_stop_writes_last_seen_times(make_server, pb):
    """A clean stop (SIGTERM) checkpoints what changed since the last
    checkpoint; a crash (SIGKILL) loses it.  Here no periodic checkpoint
    comes in time (checkpoint_ms one hour)."""
    conf = "server:\n  log_level: info\nregistry:\n  checkpoint_ms: 3600000\n"
    s = make_server(config=conf)
    got = {}
    for how in ("term", "kill"):
        with s.channel() as ch:
            api = Api(ch, pb)
            if how == "term":
                api.create_pool("ck", heartbeat_interval_ms=60000)
            token = api.register("x-" + how, "ck").lease_token
            registered = api.get("x-" + how, "ck").last_heartbeat_unix_ms
            time.sleep(0.05)
            api.heartbeat("x-" + how, token, pool="ck")
            beat = api.get("x-" + how, "ck").last_heartbeat_unix_ms
            assert beat > registered
        assert (s.stop() if how == "term" else s.kill()) in (0, -9)
        s.start()
        with s.channel() as ch:
            got[how] = (Api(ch, pb).get("x-" + how, "ck").last_heartbeat_unix_ms, registered, beat)
    assert got["term"][0] == got["term"][2], got      # written at the stop
    assert got["kill"][0] == got["kill"][1], got      # only the Register's record
    assert s.stop() == 0

# SPDX-License-Identifier: MIT
"""Liveness at scale over the real binary, with short TTLs: self-preservation
(a pool whose nodes lapse en masse holds them SUSPECT instead of demoting
them to DOWN, shows it in GetPool, /metrics and the log, lets Deregister and
Drain through, and leaves the mode by itself once heartbeats come back; pools
below the minimum and pools where only a few nodes lapse demote as usual),
and adaptive heartbeat intervals under registry.max_heartbeats_per_second
(stretched in Register and Heartbeat answers, obeyed without demotion, shrunk
back when nodes go, with the longer TTL kept for the nodes that heard it)."""
import importlib
import time

import grpc
import pytest

from conftest import wait_for
from gxapi import Api, Heartbeater, status_of


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def state(api, pool, id):
    try:
        return api.get(id, pool).state
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
        return None


def states(api, pool, ids):
    return [state(api, pool, i) for i in ids]


def get_pool(api, pb, name):
    return api.GetPool(pb.GetPoolRequest(name=name), timeout=5)


def fleet(api, pool, n, hb=None):
    """Registers n nodes n00, n01, …: {id: token}.  With a Heartbeater, each
    node heartbeats from its registration on (none lapses while the others
    register, however slow the build)."""
    out = {}
    for i in range(n):
        id = "n%02d" % i
        out[id] = api.register(id, pool=pool).lease_token
        if hb is not None:
            hb.add(id, out[id])
    return out


@pytest.fixture
def api(server, pb):
    with server.channel() as ch:
        yield Api(ch, pb)


# ---------------------------------------------------------------- self-preservation

def test_self_preservation_holds_back_down(server, api, pb):
    api.create_pool("sp", heartbeat_interval_ms=100, node_ttl_ms=300)
    hb = Heartbeater(api, "sp")
    try:
        nodes = fleet(api, "sp", 10, hb)
        ids = sorted(nodes)
        time.sleep(0.4)
        assert set(states(api, "sp", ids)) == {pb.NODE_STATE_HEALTHY}
        assert not get_pool(api, pb, "sp").self_preservation
        # 6 of 10 stop at once: SUSPECT, and the pool holds them there
        alive, lapsed = ids[:4], ids[4:]
        hb.set({i: nodes[i] for i in alive})
        assert wait_for(lambda: set(states(api, "sp", lapsed)) == {pb.NODE_STATE_SUSPECT}, 3)
        assert wait_for(lambda: get_pool(api, pb, "sp").self_preservation, 2)
        time.sleep(1.0)  # past 2 x ttl since they lapsed: DOWN without the mode
        assert set(states(api, "sp", lapsed)) == {pb.NODE_STATE_SUSPECT}
        assert set(states(api, "sp", alive)) == {pb.NODE_STATE_HEALTHY}
        m = server.metrics()
        assert m['galaxy_pool_self_preservation{pool="sp"}'] == 1
        assert m['galaxy_pool_self_preservation_entries_total{pool="sp"}'] == 1
        assert m['galaxy_pool_self_preservation{pool="devnet"}'] == 0
        assert "self-preservation on pool=sp nodes=10 " in server.log()
        # Drain and Deregister are never held back
        d = api.Drain(pb.DrainRequest(pool="sp", node_id=alive[0]), timeout=5)
        assert d.state == pb.NODE_STATE_DRAINING
        api.Drain(pb.DrainRequest(pool="sp", node_id=lapsed[0]), timeout=5)
        assert state(api, "sp", lapsed[0]) == pb.NODE_STATE_SUSPECT
        api.Deregister(pb.DeregisterRequest(pool="sp", node_id=lapsed[1],
                                            lease_token=nodes[lapsed[1]]), timeout=5)
        assert state(api, "sp", lapsed[1]) is None
        # 5 of 9 still lapsed: more than half, the mode goes on
        time.sleep(0.3)
        assert get_pool(api, pb, "sp").self_preservation
        # one comes back: 4 of 9 lapsed, the mode ends by itself and the
        # nodes it held go DOWN
        back = lapsed[2]
        hb.set({i: nodes[i] for i in alive + [back]})
        assert wait_for(lambda: not get_pool(api, pb, "sp").self_preservation, 2)
        assert state(api, "sp", back) == pb.NODE_STATE_HEALTHY
        rest = [lapsed[0]] + lapsed[3:]
        assert wait_for(lambda: set(states(api, "sp", rest)) == {pb.NODE_STATE_DOWN}, 2)
        assert state(api, "sp", alive[0]) == pb.NODE_STATE_DRAINING
        m = server.metrics()
        assert m['galaxy_pool_self_preservation{pool="sp"}'] == 0
        assert m['galaxy_pool_self_preservation_entries_total{pool="sp"}'] == 1
        assert "self-preservation off pool=sp" in server.log()
    finally:
        hb.stop()


def test_self_preservation_not_for_small_pools_or_few_lapses(server, api, pb):
    api.create_pool("small", heartbeat_interval_ms=100, node_ttl_ms=300)
    api.create_pool("few", heartbeat_interval_ms=100, node_ttl_ms=300)
    hs, hf = Heartbeater(api, "small"), Heartbeater(api, "few")
    try:
        small, few = fleet(api, "small", 9, hs), fleet(api, "few", 10, hf)
        # below self_preservation_min_nodes (10): 6 of 9 lapse and go DOWN
        hs.set({i: small[i] for i in sorted(small)[:3]})
        # at the minimum, but only 3 of 10 lapse: they go DOWN
        hf.set({i: few[i] for i in sorted(few)[:7]})
        assert wait_for(lambda: set(states(api, "small", sorted(small)[3:])) ==
                        {pb.NODE_STATE_DOWN}, 3)
        assert wait_for(lambda: set(states(api, "few", sorted(few)[7:])) ==
                        {pb.NODE_STATE_DOWN}, 3)
        assert set(states(api, "few", sorted(few)[:7])) == {pb.NODE_STATE_HEALTHY}
        for name in ("small", "few"):
            assert not get_pool(api, pb, name).self_preservation
        m = server.metrics()
        assert m['galaxy_pool_self_preservation_entries_total{pool="small"}'] == 0
        assert m['galaxy_pool_self_preservation_entries_total{pool="few"}'] == 0
        assert "self-preservation on" not in server.log()
    finally:
        hs.stop()
        hf.stop()


# ---------------------------------------------------------------- adaptive heartbeats

BUDGET = "server:\n  log_level: info\nregistry:\n  max_heartbeats_per_second: 20\n"


def test_adaptive_interval_stretches_and_shrinks(make_server, pb):
    srv = make_server(config=BUDGET)
    with srv.channel() as ch:
        api = Api(ch, pb)
        api.create_pool("ad", heartbeat_interval_ms=100, node_ttl_ms=300)
        nodes = fleet(api, "ad", 10)
        ids = sorted(nodes)
        # 10 nodes x 10/s is over 20/s: every 500 ms, and the TTL in proportion
        r = api.register(ids[0], pool="ad", token=nodes[ids[0]])
        assert (r.heartbeat_interval_ms, r.ttl_ms) == (500, 1500)
        assert api.heartbeat(ids[0], nodes[ids[0]], pool="ad").heartbeat_interval_ms == 500
        m = srv.metrics()
        assert m['galaxy_pool_heartbeat_interval_ms{pool="ad"}'] == 500
        assert m['galaxy_pool_node_ttl_ms{pool="ad"}'] == 1500
        assert m['galaxy_pool_heartbeat_interval_ms{pool="devnet"}'] == 10000
        # the pool's own settings do not change
        p = api.GetPool(pb.GetPoolRequest(name="ad"), timeout=5)
        assert (p.heartbeat_interval_ms, p.node_ttl_ms) == (100, 300)
        # nodes that heartbeat at the stretched interval stay HEALTHY, well
        # past the 2 x 300 ms that would make them DOWN at the pool's own TTL
        flaps = sum(api.get(i, "ad").flap_count for i in ids)
        for _ in range(4):
            for i in ids:
                assert api.heartbeat(i, nodes[i], pool="ad").heartbeat_interval_ms == 500
            time.sleep(0.45)
            assert set(states(api, "ad", ids)) == {pb.NODE_STATE_HEALTHY}
        assert sum(api.get(i, "ad").flap_count for i in ids) == flaps
        # nodes go: 5 left, 250 ms; 1 left, the pool's own 100 ms
        last = api.heartbeat(ids[0], nodes[ids[0]], pool="ad")
        assert last.heartbeat_interval_ms == 500
        t0 = time.monotonic()
        for i in ids[5:]:
            api.Deregister(pb.DeregisterRequest(pool="ad", node_id=i, lease_token=nodes[i]),
                           timeout=5)
        assert api.heartbeat(ids[1], nodes[ids[1]], pool="ad").heartbeat_interval_ms == 250
        for i in ids[1:5]:
            api.Deregister(pb.DeregisterRequest(pool="ad", node_id=i, lease_token=nodes[i]),
                           timeout=5)
        r = api.register(ids[1], pool="ad")
        assert (r.heartbeat_interval_ms, r.ttl_ms) == (100, 300)
        # ids[0] last heard 500 ms: it is not judged by the 300 ms TTL yet
        time.sleep(max(0.0, 0.5 - (time.monotonic() - t0)))
        assert state(api, "ad", ids[0]) == pb.NODE_STATE_HEALTHY
        assert srv.metrics()['galaxy_pool_node_ttl_ms{pool="ad"}'] == 1500
        assert api.heartbeat(ids[0], nodes[ids[0]], pool="ad").heartbeat_interval_ms == 100
        # one held TTL later, liveness is back to the pool's 300 ms
        assert wait_for(lambda: srv.metrics()['galaxy_pool_node_ttl_ms{pool="ad"}'] == 300, 3)
        assert wait_for(lambda: state(api, "ad", ids[0]) != pb.NODE_STATE_HEALTHY, 1)


def test_adaptive_budget_is_shared_by_all_pools(make_server, pb):
    srv = make_server(config=BUDGET)
    with srv.channel() as ch:
        api = Api(ch, pb)
        api.create_pool("fast", heartbeat_interval_ms=100, node_ttl_ms=300)
        api.create_pool("slow", heartbeat_interval_ms=1000, node_ttl_ms=3000)
        fast, slow = fleet(api, "fast", 10), fleet(api, "slow", 5)
        # 10000/F + 5000/max(1000, F) <= 20 first holds at F = 667: fast nodes
        # are stretched to 667 ms, slow ones keep their own 1000 ms
        f0, s0 = sorted(fast)[0], sorted(slow)[0]
        assert api.heartbeat(f0, fast[f0], pool="fast").heartbeat_interval_ms == 667
        assert api.heartbeat(s0, slow[s0], pool="slow").heartbeat_interval_ms == 1000
        r = api.register(f0, pool="fast", token=fast[f0])
        assert (r.heartbeat_interval_ms, r.ttl_ms) == (667, 2001)
        code, _ = status_of(api.heartbeat, f0, "not-the-token", pool="fast")
        assert code == grpc.StatusCode.PERMISSION_DENIED

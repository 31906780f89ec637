# SPDX-License-Identifier: MIT
"""The registry: NodeRegistry, Discovery and the pool part of PoolAdmin over
the real binary: every RPC's success and the statuses it can return, field
validation, lease tokens, liveness with short TTLs, paging, filters, and
durability across a restart."""
import importlib
import os
import time

import grpc
import pytest

from conftest import wait_for
from gxapi import PKG, Api, status_of


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@pytest.fixture
def api(server, pb):
    with server.channel() as ch:
        yield Api(ch, pb)


# ---------------------------------------------------------------- pools

def test_default_pools(api, pb):
    pools = {p.name: p for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools}
    for name in ("mainnet", "testnet", "devnet"):
        assert pools[name].visibility == pb.VISIBILITY_PUBLIC
        assert pools[name].heartbeat_interval_ms == 10000
        assert pools[name].node_ttl_ms == 30000
        assert pools[name].routing_policy == "least_loaded"
        assert pools[name].created_unix_ms > 0


def test_pool_create_get_update_delete(api, pb):
    p = api.create_pool("acme", tier="enterprise", visibility=pb.VISIBILITY_PUBLIC,
                        heartbeat_interval_ms=2000, specializations=["storage"],
                        labels={"org": "acme"}, max_nodes=5)
    assert p.node_ttl_ms == 6000 and p.routing_policy == "least_loaded"
    assert api.GetPool(pb.GetPoolRequest(name="acme"), timeout=5) == p
    code, msg = status_of(api.create_pool, "acme")
    assert code == grpc.StatusCode.ALREADY_EXISTS
    u = api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name="acme", description="d")),
                       timeout=5)
    assert u.description == "d" and u.tier == "enterprise" and u.max_nodes == 5
    assert list(u.specializations) == ["storage"] and dict(u.labels) == {"org": "acme"}
    assert u.created_unix_ms == p.created_unix_ms
    u = api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name="acme", labels={"x": "y"})),
                       timeout=5)
    assert dict(u.labels) == {"x": "y"}
    code, msg = status_of(api.UpdatePool, pb.UpdatePoolRequest(
        pool=pb.Pool(name="acme", visibility=pb.VISIBILITY_PRIVATE)), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "visibility" in msg
    code, _ = status_of(api.UpdatePool, pb.UpdatePoolRequest(pool=pb.Pool(name="nope")),
                        timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    api.register("s1", pool="acme", specs=["storage"])
    code, msg = status_of(api.DeletePool, pb.DeletePoolRequest(name="acme"), timeout=5)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "name" in msg
    api.DeletePool(pb.DeletePoolRequest(name="acme", force=True), timeout=5)
    code, _ = status_of(api.GetPool, pb.GetPoolRequest(name="acme"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.get, "s1", pool="acme")
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.DeletePool, pb.DeletePoolRequest(name="acme"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("force", [
    b"\x11\x01\x00\x00\x00\x00\x00\x00\x00",  # field 2 as fixed64
    b"\x15\x01\x00\x00\x00",                      # as fixed32
    b"\x12\x01\x01",                                # as length-delimited
], ids=["fixed64", "fixed32", "len"])
def test_bool_with_a_wrong_wire_type_is_refused(api, pb, force):
    """protobuf-c reads a bool of any wire type as true when a byte is set; every other
    implementation keeps it as an unknown field (force=false).  The server must not act
    on a reading its clients do not share: such a request does not decode."""
    api.create_pool("wire", specializations=["storage"])
    api.register("w1", pool="wire", specs=["storage"])
    raw = pb.DeletePoolRequest(name="wire").SerializeToString() + force
    assert pb.DeletePoolRequest.FromString(raw).force is False
    delete = api.ch.unary_unary("/galaxy.pool.v1.PoolAdmin/DeletePool")
    code, msg = status_of(delete, raw, timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "force" in msg
    assert api.GetPool(pb.GetPoolRequest(name="wire"), timeout=5).name == "wire"
    assert api.get("w1", pool="wire").id == "w1"
    code, msg = status_of(api.DeletePool, pb.DeletePoolRequest(name="wire"), timeout=5)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    api.DeletePool(pb.DeletePoolRequest(name="wire", force=True), timeout=5)


@pytest.mark.parametrize("bad", [
    b"\x82\x80\x80\x80\x10\x02hi",  # field number 2^29, one past the largest
    b"\x02\x02hi",                      # field number 0
], ids=["2^29", "0"])
def test_field_number_out_of_range_is_refused(api, pb, bad):
    """protobuf-c keeps such a field as unknown and packs it again; stored with a Node,
    Job or Pool it would make every later answer carrying the record undecodable for
    every other parser (one Register could break ListNodes of a whole pool)."""
    def ld(num, body):
        return bytes([num << 3 | 2, len(body)]) + body
    node = pb.Node(id="fn1", pool="devnet", specializations=["developer"],
                   address="10.0.0.1:1").SerializeToString()
    job = pb.Job(pool="devnet", specialization="developer").SerializeToString()
    pool = pb.Pool(name="fnp", visibility=pb.VISIBILITY_PUBLIC).SerializeToString()
    for path, raw in (("NodeRegistry/Register", ld(1, node + bad)),
                      ("NodeRegistry/Register", ld(1, node) + bad),
                      ("Jobs/SubmitJob", ld(1, job + bad)),
                      ("PoolAdmin/CreatePool", ld(1, pool + bad))):
        call = api.ch.unary_unary("/galaxy.pool.v1." + path)
        code, msg = status_of(call, raw, timeout=5)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "field number" in msg, (path, msg)
    code, _ = status_of(api.get, "fn1", pool="devnet")
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.GetPool, pb.GetPoolRequest(name="fnp"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    listed = api.ListNodes(pb.ListNodesRequest(pool="devnet"), timeout=5)  # decodes
    assert "fn1" not in [n.id for n in listed.nodes]


def test_pool_deleted_then_created_again(api, pb):
    """Each worker remembers the pool it found last: a pool deleted and created again
    under the same name must be the new one at once, on every call after the delete."""
    for i, interval in enumerate((2000, 3000, 4000)):
        api.create_pool("again", heartbeat_interval_ms=interval, specializations=["storage"])
        r = api.register("a%d" % i, pool="again", specs=["storage"])
        assert r.heartbeat_interval_ms == interval
        assert api.heartbeat("a%d" % i, r.lease_token, pool="again").heartbeat_interval_ms == \
            interval
        api.DeletePool(pb.DeletePoolRequest(name="again", force=True), timeout=5)
        code, _ = status_of(api.heartbeat, "a%d" % i, r.lease_token, pool="again")
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = status_of(api.GetPool, pb.GetPoolRequest(name="again"), timeout=5)
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = status_of(api.register, "b%d" % i, pool="again", specs=["storage"])
        assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("pool,field", [
    (dict(name=""), "pool.name"),
    (dict(name="Bad_Name"), "pool.name"),
    (dict(name="a" * 64), "pool.name"),
    (dict(name="ok", visibility=0), "pool.visibility"),
    (dict(name="ok", visibility=7), "pool.visibility"),
    (dict(name="ok", heartbeat_interval_ms=1), "pool.heartbeat_interval_ms"),
    (dict(name="ok", heartbeat_interval_ms=1000, node_ttl_ms=500), "pool.node_ttl_ms"),
    (dict(name="ok", specializations=["Bad"]), "pool.specializations"),
    (dict(name="ok", description="x" * 2000), "pool.description"),
    (dict(name="ok", labels={"k%d" % i: "v" for i in range(65)}), "pool.labels"),
])
def test_pool_validation(api, pb, pool, field):
    pool.setdefault("visibility", pb.VISIBILITY_PUBLIC)
    code, msg = status_of(api.CreatePool, pb.CreatePoolRequest(pool=pb.Pool(**pool)), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in msg
    names = [p.name for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools]
    assert sorted(names) == ["devnet", "mainnet", "testnet"]


def test_open_server_refuses_private_pools_and_checks_keys(api, pb):
    # no authentication module and no access policy: nobody could keep a private pool private
    code, msg = status_of(api.create_pool, "hidden", visibility=pb.VISIBILITY_PRIVATE)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and msg.startswith("pool.visibility:")
    code, msg = status_of(api.CreateApiKey, pb.CreateApiKeyRequest(name="k"), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("role:")


def test_list_modules_builtin(api, pb):
    mods = {m.name: m for m in api.ListModules(pb.ListModulesRequest(), timeout=5).modules}
    assert set(mods) == {"health", "reflection", "registry", "discovery", "pooladmin", "jobs",
                         "route_least_loaded"}
    for m in mods.values():
        assert m.edition == "community" and m.path == "(built-in)" and m.version
        assert ("route" if m.name.startswith("route_") else "handler") in m.phases
    assert list(mods["route_least_loaded"].phases) == ["route"]
    assert "route" in mods["jobs"].phases
    assert list(mods["health"].phases) == ["handler"]


def test_list_modules_loaded(make_server, pb):
    from conftest import BUILDDIR
    hooks = os.path.join(BUILDDIR, "t", "modules", ".libs", "hooks.so")
    s = make_server(modules=(hooks, "interop"), tls=False)
    with s.channel() as ch:
        mods = {m.name: m for m in Api(ch, pb).ListModules(pb.ListModulesRequest(),
                                                           timeout=5).modules}
    assert mods["test_hooks"].path == hooks
    assert list(mods["test_hooks"].phases) == ["post_read", "authn", "access", "limit", "route",
                                               "handler", "log"]
    assert mods["interop"].path.endswith("/interop.so")
    assert list(mods["interop"].phases) == ["handler"]


# ---------------------------------------------------------------- nodes

def test_register_get_heartbeat_deregister(api, pb):
    r = api.register("n1", labels={"region": "eu"}, capacity=pb.Resources(cpu_millis=4000))
    assert len(r.lease_token) >= 32 and r.heartbeat_interval_ms == 10000 and r.ttl_ms == 30000
    assert r.node.state == pb.NODE_STATE_HEALTHY and r.node.revision > 0
    n = api.get("n1")
    assert n == r.node  # the answer is the node as stored, with its revision
    assert n.id == "n1" and n.pool == "devnet" and dict(n.labels) == {"region": "eu"}
    assert n.capacity.cpu_millis == 4000 and n.state == pb.NODE_STATE_HEALTHY
    assert n.registered_unix_ms > 0 and n.owner == ""
    h = api.heartbeat("n1", r.lease_token, load=0.25, jobs=3)
    assert h.state == pb.NODE_STATE_HEALTHY and h.heartbeat_interval_ms == 10000
    n = api.get("n1")
    assert n.load == 0.25 and n.running_jobs == 3
    api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="n1", lease_token=r.lease_token),
                   timeout=5)
    code, msg = status_of(api.get, "n1")
    assert code == grpc.StatusCode.NOT_FOUND and "node_id" in msg
    code, _ = status_of(api.heartbeat, "n1", r.lease_token)
    assert code == grpc.StatusCode.NOT_FOUND


def test_lease_token_rules(api, pb):
    r = api.register("n1", labels={"v": "1"})
    tokens = {r.lease_token}
    # the holder re-registers: same token, same registration time, new labels
    r2 = api.register("n1", token=r.lease_token, labels={"v": "2"})
    assert r2.lease_token == r.lease_token
    assert r2.node.registered_unix_ms == r.node.registered_unix_ms
    assert r2.node == api.get("n1") and r2.node.revision > r.node.revision
    assert dict(api.get("n1").labels) == {"v": "2"}
    for token in ("", "x" * 48):
        code, msg = status_of(api.register, "n1", token=token)
        assert code == grpc.StatusCode.ALREADY_EXISTS and "n1" in msg
    code, msg = status_of(api.heartbeat, "n1", "wrong")
    assert code == grpc.StatusCode.PERMISSION_DENIED and "lease_token" in msg
    code, _ = status_of(api.Deregister, pb.DeregisterRequest(
        pool="devnet", node_id="n1", lease_token="wrong"), timeout=5)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert api.get("n1").id == "n1"
    for i in range(20):
        tokens.add(api.register("t%d" % i).lease_token)
    assert len(tokens) == 21
    assert all(len(t) >= 32 for t in tokens)


@pytest.mark.parametrize("node,field", [
    (dict(id=""), "node.id"),
    (dict(id="bad id"), "node.id"),
    (dict(id="x" * 129), "node.id"),
    (dict(pool=""), "node.pool"),
    (dict(pool="NoSuch"), "node.pool"),
    (dict(specs=()), "node.specializations"),
    (dict(specs=("Dev",)), "node.specializations"),
    (dict(specs=("a" * 33,)), "node.specializations"),
    (dict(specs=("dev", "dev")), "node.specializations"),
    (dict(specs=["s%d" % i for i in range(33)]), "node.specializations"),
    (dict(labels={"k%d" % i: "v" for i in range(65)}), "node.labels"),
    (dict(labels={"k": "v" * 513}), "node.labels"),
    (dict(labels={"": "v"}), "node.labels"),
    (dict(address="a" * 256), "node.address"),
    (dict(version="v\n1"), "node.version"),
    (dict(load=1.5), "node.load"),
])
def test_register_validation(api, pb, node, field):
    kw = dict(id="n1", pool="devnet", specs=("developer",))
    kw.update(node)
    n = api.node(kw.pop("id"), kw.pop("pool"), **kw)
    code, msg = status_of(api.Register, pb.RegisterRequest(node=n), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in msg
    assert list(api.list().nodes) == []


def test_register_missing_node_and_bad_token(api, pb):
    code, msg = status_of(api.Register, pb.RegisterRequest(), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "node" in msg
    code, msg = status_of(api.Register, pb.RegisterRequest(node=api.node("n1"),
                                                           lease_token="a b"), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "lease_token" in msg


@pytest.mark.parametrize("req,field", [
    (dict(pool="", node_id="n", lease_token="t"), "pool"),
    (dict(pool="devnet", node_id="", lease_token="t"), "node_id"),
    (dict(pool="devnet", node_id="n", lease_token=""), "lease_token"),
    (dict(pool="devnet", node_id="n", lease_token="t", load=-1), "load"),
    (dict(pool="devnet", node_id="n", lease_token="t", load=float("nan")), "load"),
])
def test_heartbeat_validation(api, pb, req, field):
    code, msg = status_of(api.Heartbeat, pb.HeartbeatRequest(**req), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in msg


def test_unknown_pool_and_node(api, pb):
    code, msg = status_of(api.register, "n1", pool="nosuch")
    assert code == grpc.StatusCode.NOT_FOUND and "pool" in msg
    code, _ = status_of(api.get, "n1", pool="nosuch")
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.list, pool="nosuch")
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.get, "nosuch")
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.Drain, pb.DrainRequest(pool="devnet", node_id="nosuch"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = status_of(api.Deregister, pb.DeregisterRequest(
        pool="devnet", node_id="nosuch", lease_token="t"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = status_of(api.GetNode, pb.GetNodeRequest(pool="devnet"), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "node_id" in msg
    code, msg = status_of(api.Drain, pb.DrainRequest(pool="devnet"), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "node_id" in msg


def test_max_nodes_and_allowed_specializations(api, pb):
    api.create_pool("small", max_nodes=2, specializations=["storage", "analytics"])
    api.register("a", pool="small", specs=["storage"])
    api.register("b", pool="small", specs=["analytics", "storage"])
    code, msg = status_of(api.register, "c", pool="small", specs=["storage"])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_nodes" in msg
    code, msg = status_of(api.register, "a", pool="small", specs=["developer"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "specializations" in msg
    assert api.GetPool(pb.GetPoolRequest(name="small"), timeout=5).node_count == 2


FULL = "server:\n  log_level: info\nregistry:\n  max_nodes: %d\n  max_node_memory_mb: %d\n"


def test_registry_max_nodes(make_server, pb):
    """registry.max_nodes bounds the nodes of all pools together: a new node
    beyond it is RESOURCE_EXHAUSTED naming the limit, is counted and logged,
    and stores nothing; nodes already in keep re-registering; room comes back
    when one leaves, and a restart counts what it loads."""
    s = make_server(config=FULL % (5, 2048))
    with s.channel() as ch:
        api = Api(ch, pb)
        tokens = {}
        for i, pool in enumerate(["devnet", "devnet", "devnet", "mainnet", "mainnet"]):
            tokens["n%d" % i] = api.register("n%d" % i, pool=pool).lease_token
        code, msg = status_of(api.register, "n5", pool="testnet")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "registry.max_nodes 5" in msg, msg
        code, _ = status_of(api.get, "n5", pool="testnet")
        assert code == grpc.StatusCode.NOT_FOUND
        assert api.GetPool(pb.GetPoolRequest(name="testnet"), timeout=5).node_count == 0
        # a node already in is not a new one: its re-register goes through
        assert api.register("n0", token=tokens["n0"], labels={"zone": "b"}).lease_token == \
            tokens["n0"]
        m = s.metrics()
        assert m["galaxy_registry_nodes"] == 5 and m["galaxy_registry_full_total"] == 1
        assert "registry full: registry.max_nodes=5 reached" in s.log()
        api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="n1",
                                            lease_token=tokens["n1"]), timeout=5)
        api.register("n5", pool="testnet")
    assert s.stop() == 0
    s.start()
    assert "registry full: new nodes are refused until some leave nodes=5 max_nodes=5" in s.log()
    with s.channel() as ch:
        api = Api(ch, pb)
        code, msg = status_of(api.register, "n6")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "registry.max_nodes" in msg
        assert s.metrics()["galaxy_registry_nodes"] == 5


def test_registry_max_node_memory(make_server, pb):
    """registry.max_node_memory_mb bounds the memory the nodes take: large
    nodes fill it, the one that does not fit is refused naming the limit, a
    node that shrinks always fits, and what it gives back takes the next."""
    s = make_server(config=FULL % (1000, 1))
    fat = {("k%02d" % i) + "x" * 125: "v" * 512 for i in range(64)}
    with s.channel() as ch:
        api = Api(ch, pb)
        tokens = []
        for i in range(40):
            try:
                tokens.append(api.register("fat%02d" % i, labels=fat).lease_token)
            except grpc.RpcError as e:
                code, msg = e.code(), e.details()
                break
        else:
            pytest.fail("40 nodes of 40 KB fit in 1 MiB")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
        assert "registry.max_node_memory_mb 1" in msg, msg
        assert 15 <= len(tokens) <= 25, len(tokens)
        code, _ = status_of(api.get, "fat%02d" % len(tokens))
        assert code == grpc.StatusCode.NOT_FOUND
        m = s.metrics()
        held = m["galaxy_registry_node_memory_bytes"]
        assert 1 << 20 >= held > len(tokens) * 40000, held
        assert m["galaxy_registry_full_total"] == 1
        assert "registry full: nodes would take more than registry.max_node_memory_mb=1" in s.log()
        # fat00 sheds its labels under its lease (a shrink always fits) and
        # fat01 leaves: what they give back takes the node refused before
        api.register("fat00", token=tokens[0])
        assert api.get("fat00").labels == {}
        assert s.metrics()["galaxy_registry_node_memory_bytes"] < held - 40000
        api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="fat01",
                                            lease_token=tokens[1]), timeout=5)
        api.register("fat%02d" % len(tokens), labels=fat)
        held = s.metrics()["galaxy_registry_node_memory_bytes"]
        assert held <= 1 << 20
    # a restart charges what it loads the same
    assert s.stop() == 0
    s.start()
    assert s.metrics()["galaxy_registry_node_memory_bytes"] == held
    # and refuses what would not fit (fat00's shrink left room for one more at most)
    with s.channel() as ch:
        api = Api(ch, pb)
        for i in (99, 98):
            try:
                api.register("fat%02d" % i, labels=fat)
            except grpc.RpcError as e:
                code, msg = e.code(), e.details()
                break
        else:
            pytest.fail("two more fat nodes fit after the restart")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_node_memory_mb" in msg
        assert s.metrics()["galaxy_registry_node_memory_bytes"] <= 1 << 20


def test_drain(api, pb):
    r = api.register("n1")
    d = api.Drain(pb.DrainRequest(pool="devnet", node_id="n1"), timeout=5)
    assert d.state == pb.NODE_STATE_DRAINING and d.id == "n1"
    assert api.get("n1").state == pb.NODE_STATE_DRAINING
    assert api.heartbeat("n1", r.lease_token).state == pb.NODE_STATE_DRAINING
    # registering again clears the drain
    api.register("n1", token=r.lease_token)
    assert api.get("n1").state == pb.NODE_STATE_HEALTHY


def test_heartbeat_stream(api, pb):
    r = api.register("n1")
    reqs = [pb.HeartbeatRequest(pool="devnet", node_id="n1", lease_token=r.lease_token,
                                load=i / 10) for i in range(5)]
    out = list(api.HeartbeatStream(iter(reqs), timeout=5))
    assert len(out) == 5 and all(o.state == pb.NODE_STATE_HEALTHY for o in out)
    assert api.get("n1").load == 0.4
    bad = [pb.HeartbeatRequest(pool="devnet", node_id="n1", lease_token="nope")]
    with pytest.raises(grpc.RpcError) as e:
        list(api.HeartbeatStream(iter(bad), timeout=5))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


# ---------------------------------------------------------------- liveness

def state_of(api, id, pool="fast"):
    try:
        return api.get(id, pool).state
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
        return None


def test_liveness_healthy_suspect_down_removed(api, pb):
    api.create_pool("fast", heartbeat_interval_ms=100, node_ttl_ms=300)
    r = api.register("n1", pool="fast")
    assert r.heartbeat_interval_ms == 100 and r.ttl_ms == 300
    t0 = time.monotonic()
    assert wait_for(lambda: state_of(api, "n1") == pb.NODE_STATE_SUSPECT, 2)
    assert time.monotonic() - t0 >= 0.25
    assert wait_for(lambda: state_of(api, "n1") == pb.NODE_STATE_DOWN, 2)
    # another agent may take a DOWN id over: new token
    r2 = api.register("n1", pool="fast")
    assert r2.lease_token != r.lease_token
    assert state_of(api, "n1") == pb.NODE_STATE_HEALTHY
    code, _ = status_of(api.heartbeat, "n1", r.lease_token, pool="fast")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # a heartbeat brings SUSPECT/DOWN back
    assert wait_for(lambda: state_of(api, "n1") == pb.NODE_STATE_DOWN, 2)
    assert api.heartbeat("n1", r2.lease_token, pool="fast").state == pb.NODE_STATE_HEALTHY
    assert api.get("n1", "fast").flap_count >= 1
    # removed 10 x ttl after going DOWN
    assert wait_for(lambda: state_of(api, "n1") is None, 6)
    assert time.monotonic() - t0 >= 3.0
    assert api.GetPool(pb.GetPoolRequest(name="fast"), timeout=5).node_count == 0


def test_liveness_heartbeats_keep_node_healthy(api, pb):
    api.create_pool("fast", heartbeat_interval_ms=100, node_ttl_ms=300)
    r = api.register("n1", pool="fast")
    for _ in range(10):
        assert api.heartbeat("n1", r.lease_token, pool="fast").state == pb.NODE_STATE_HEALTHY
        time.sleep(0.1)
    n = api.get("n1", "fast")
    assert n.state == pb.NODE_STATE_HEALTHY and n.flap_count == 0


# ---------------------------------------------------------------- paging and filters

def register_many(api, pb, ids, pool="devnet", **kw):
    futs = [api.Register.future(pb.RegisterRequest(node=api.node(i, pool, **kw)), timeout=30)
            for i in ids]
    return [f.result() for f in futs]


def test_paging_exact_and_ordered(api, pb):
    ids = ["n%03d" % i for i in range(250)]
    register_many(api, pb, reversed(ids))
    sizes = []
    token = ""
    got = []
    while True:
        r = api.list(page_size=100, page_token=token)
        sizes.append(len(r.nodes))
        got += [n.id for n in r.nodes]
        token = r.next_page_token
        if not token:
            break
    assert sizes == [100, 100, 50] and got == ids
    assert api.list_all(page_size=7) == ids
    assert len(api.list().nodes) == 100                    # default page
    assert len(api.list(page_size=5000).nodes) == 250      # clamped to 1000
    code, msg = status_of(api.list, page_token="%%%")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in msg


def test_paging_stable_under_change(api, pb):
    ids = ["n%03d" % i for i in range(100)]
    tokens = {r.node.id: r.lease_token for r in register_many(api, pb, ids)}
    first = api.list(page_size=30)
    seen = [n.id for n in first.nodes]
    # change the pool between pages: remove seen and unseen nodes, add new ones
    for gone in ("n005", "n050", "n099"):
        api.Deregister(pb.DeregisterRequest(pool="devnet", node_id=gone,
                                            lease_token=tokens[gone]), timeout=5)
    register_many(api, pb, ["n0105", "a-first", "n050x"])
    token = first.next_page_token
    while token:
        r = api.list(page_size=30, page_token=token)
        seen += [n.id for n in r.nodes]
        token = r.next_page_token
    stayed = [i for i in ids if i not in ("n005", "n050", "n099")]
    for i in stayed:
        assert seen.count(i) == 1
    assert seen == sorted(seen)


def test_filters(api, pb):
    api.register("a", specs=["storage"], labels={"region": "eu", "gpu": "yes"})
    api.register("b", specs=["storage", "developer"], labels={"region": "us"})
    r = api.register("c", specs=["analytics"], labels={"region": "eu"})
    api.Drain(pb.DrainRequest(pool="devnet", node_id="c"), timeout=5)
    assert [n.id for n in api.list(specialization="storage").nodes] == ["a", "b"]
    assert [n.id for n in api.list(labels={"region": "eu"}).nodes] == ["a", "c"]
    assert [n.id for n in api.list(labels={"region": "eu", "gpu": "yes"}).nodes] == ["a"]
    assert [n.id for n in api.list(states=[pb.NODE_STATE_DRAINING]).nodes] == ["c"]
    assert [n.id for n in api.list(states=[pb.NODE_STATE_HEALTHY,
                                           pb.NODE_STATE_DRAINING]).nodes] == ["a", "b", "c"]
    assert api.list_all(page_size=1, specialization="storage") == ["a", "b"]
    code, msg = status_of(api.list, states=[9])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "states" in msg
    code, msg = status_of(api.list, specialization="Bad!")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "specialization" in msg
    code, msg = status_of(api.list, pool="")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "pool" in msg
    assert api.list().revision > 0 and r.lease_token


# ---------------------------------------------------------------- durability

def test_restart_keeps_everything(make_server, pb):
    s = make_server()
    ids = ["node-%04d" % i for i in range(1000)]
    with s.channel() as ch:
        api = Api(ch, pb)
        api.create_pool("acme", visibility=pb.VISIBILITY_PUBLIC, tier="enterprise")
        api.DeletePool(pb.DeletePoolRequest(name="testnet"), timeout=5)
        regs = register_many(api, pb, ids, labels={"rack": "r1"})
        token = {r.node.id: r.lease_token for r in regs}
        api.Drain(pb.DrainRequest(pool="devnet", node_id="node-0007"), timeout=5)
        api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="node-0009",
                                            lease_token=token["node-0009"]), timeout=5)
    assert s.stop() == 0
    s.start()
    with s.channel() as ch:
        api = Api(ch, pb)
        names = sorted(p.name for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools)
        assert names == ["acme", "devnet", "mainnet"]
        got = api.list_all(page_size=1000)
        assert got == [i for i in ids if i != "node-0009"]
        n = api.get("node-0500")
        assert dict(n.labels) == {"rack": "r1"} and n.state == pb.NODE_STATE_HEALTHY
        assert api.get("node-0007").state == pb.NODE_STATE_DRAINING
        assert api.heartbeat("node-0500", token["node-0500"]).state == pb.NODE_STATE_HEALTHY
        code, _ = status_of(api.register, "node-0500")
        assert code == grpc.StatusCode.ALREADY_EXISTS
        assert api.GetPool(pb.GetPoolRequest(name="devnet"), timeout=5).node_count == 999


def _raw_register(s, body):
    """Register with hand-made wire bytes (grpcio would refuse to encode bad UTF-8)."""
    from h2raw import H2Client, grpc_frame
    with H2Client(s.h2c) as c:
        return c.call(PKG + "NodeRegistry/Register", grpc_frame(body))


def _ld(field, payload):
    """One length-delimited protobuf field."""
    n, out = len(payload), b""
    while True:
        b = n & 0x7f
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            break
    return bytes([field << 3 | 2]) + out + payload


def test_register_refuses_invalid_utf8(make_server, pb):
    s = make_server(tls=False)
    good = _ld(1, b"u1") + _ld(2, b"devnet") + _ld(3, b"developer")
    for bad, field in [(_ld(4, _ld(1, b"k") + _ld(2, b"\xff\xfe")), "labels[k]"),
                       (_ld(6, b"v\xc0\x80"), "version"),          # overlong NUL
                       (_ld(5, b"h\xed\xa0\x80:1"), "address")]:   # a surrogate
        r = _raw_register(s, _ld(1, good + bad))
        assert r.status == 3, r
        assert field in r.message and "UTF-8" in r.message, r.message
    with s.channel() as ch:
        api = Api(ch, pb)
        code, _ = status_of(api.GetNode, pb.GetNodeRequest(pool="devnet", node_id="u1"), timeout=5)
        assert code == grpc.StatusCode.NOT_FOUND
        ok = _raw_register(s, _ld(1, good + _ld(6, "v☺".encode())))
        assert ok.status == 0, ok
        assert api.GetNode(pb.GetNodeRequest(pool="devnet", node_id="u1"), timeout=5).version == "v☺"

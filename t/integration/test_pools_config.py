# SPDX-License-Identifier: MIT
"""The `pools:` section: the pools a new data directory starts with, created
once on its first start (later starts leave the store alone), refused with
file:line when a private pool has nobody to keep it private."""
import importlib

import pytest

from gxapi import Api, with_key

ADMIN = "pools-admin-0123456789abcdef0123456789"
POOLS = """pools:
  - name: acme
    visibility: public
    tier: enterprise
    description: "ACME's compute"
    heartbeat_interval_ms: 2000
    max_nodes: 7
    specializations: [gpu, storage]
  - name: lab
    visibility: public
"""


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def pools_of(server, pb, key=None):
    with server.channel() as ch:
        api = Api(with_key(ch, key) if key else ch, pb)
        return {p.name: p for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools}


def test_configured_pools_replace_the_builtin_ones(make_server, pb):
    s = make_server(tls=False, config="server:\n  log_level: info\n" + POOLS)
    pools = pools_of(s, pb)
    assert sorted(pools) == ["acme", "lab"]
    acme = pools["acme"]
    assert acme.visibility == pb.VISIBILITY_PUBLIC and acme.tier == "enterprise"
    assert acme.description == "ACME's compute" and acme.max_nodes == 7
    assert acme.heartbeat_interval_ms == 2000 and acme.node_ttl_ms == 6000
    assert acme.routing_policy == "least_loaded"
    assert list(acme.specializations) == ["gpu", "storage"]
    assert pools["lab"].heartbeat_interval_ms == 10000
    # the pool's limits hold for registrations like any other pool's
    with s.channel() as ch:
        api = Api(ch, pb)
        api.register("n1", pool="acme", specs=("gpu",))
        with pytest.raises(Exception) as e:
            api.register("n2", pool="acme", specs=("developer",))
        assert "specializations" in e.value.details()


def test_pools_are_made_once(make_server, pb):
    s = make_server(tls=False, config="server:\n  log_level: info\n" + POOLS)
    with s.channel() as ch:
        Api(ch, pb).DeletePool(pb.DeletePoolRequest(name="lab"), timeout=5)
    assert s.stop() == 0
    # another list on the same data directory: the store decides, not the file
    again = make_server(tls=False, data_dir=s.data_dir,
                        config="server:\n  log_level: info\npools:\n"
                               "  - name: other\n    visibility: public\n")
    assert sorted(pools_of(again, pb)) == ["acme"]


def test_empty_pools_section_starts_without_pools(make_server, pb):
    s = make_server(tls=False, config="server:\n  log_level: info\npools: []\n")
    assert pools_of(s, pb) == {}


def test_private_configured_pool_needs_access_modules(make_server, pb, tmp_path):
    conf = "server:\n  log_level: info\npools:\n  - name: vault\n    visibility: private\n"
    from conftest import Server
    d = tmp_path / "refused"
    d.mkdir()
    refused = Server(str(d), None, config=conf, tls=False)
    with pytest.raises(RuntimeError) as e:
        refused.start()
    assert refused.proc.wait(5) == 1
    refused.logf.close()
    refused.proc = None
    assert "galaxy-poold.yaml:4: pool \"vault\" is private" in str(e.value)
    # with the access modules it is made, and hidden from anonymous callers
    s = make_server(tls=False, config=conf, modules=("auth_apikey", "rbac"),
                    env={"GALAXY_ADMIN_KEY": ADMIN})
    assert "vault" not in pools_of(s, pb)
    assert pools_of(s, pb, ADMIN)["vault"].visibility == pb.VISIBILITY_PRIVATE

# SPDX-License-Identifier: MIT
"""Access control over the real binary (auth_apikey, auth_mtls and rbac
loaded): every cell of API.md's access table for a public and a private pool,
callers with and without keys that cover the private pool; a private pool is
NOT_FOUND to outsiders with exactly the status and message of a pool that
does not exist, whatever else is wrong with the request; wrong, malformed and
revoked keys are UNAUTHENTICATED on every call; Node.owner; lists and watches
never show a private pool to outsiders; mTLS identities and their mapping;
the admin key bootstrap; keys across a restart; a server without an
authentication module refuses private pools."""
import contextlib
import hashlib
import importlib
import itertools
import os
import queue
import re
import secrets
import stat
import threading
import time

import grpc
import pytest

from conftest import Server
from gxapi import Api, status_of, with_authorization, with_key

PUB, PRIV, OTHER, FULL, GHOST = "acc-pub", "acc-priv", "acc-other", "acc-full", "acc-gone"
ADMIN_SECRET = "acc-admin-" + secrets.token_hex(16)          # 42 characters
AUTH = ("auth_apikey", "rbac")
OK, NF, PD, UA = "OK", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED"
NO_EVENT_WAIT = 0.3
WORLD_INTERVAL = 60000
SECRET_RE = re.compile(r"^gxk_[0-9a-f]{64}$")
ID_RE = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@contextlib.contextmanager
def running(workdir, pki, **kw):
    """A started server that must exit 0 with a clean log at the end."""
    s = Server(str(workdir), pki, **kw)
    s.env.pop("GALAXY_ADMIN_KEY", None)
    s.env.update(kw.get("env") or {})
    s.start()
    try:
        yield s
    finally:
        if s.proc is not None:
            rc = s.stop()
            assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, s.log())
        s.assert_clean()


@pytest.fixture
def new_server(tmp_path, pki):
    """Factory of servers that are not started yet (no GALAXY_ADMIN_KEY from the
    test's environment unless @env sets it); each is checked at the end."""
    made = []

    def make(**kw):
        d = tmp_path / ("s%d" % len(made))
        d.mkdir()
        s = Server(str(d), pki, **kw)
        s.env.pop("GALAXY_ADMIN_KEY", None)
        s.env.update(kw.get("env") or {})
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc is not None:
            rc = s.stop()
            assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, s.log())
        s.assert_clean()


def code_of(fn, *a, **kw):
    """(status name, details) of a call; ("OK", result) when it succeeds."""
    try:
        return OK, fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code().name, e.details()


def check_stub(ch, health_pb2):
    return ch.unary_unary("/grpc.health.v1.Health/Check",
                          request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                          response_deserializer=health_pb2.HealthCheckResponse.FromString)


def watch_until_synced(api, pool, timeout=5, limit=5000, **kw):
    """The events of a Watch up to SYNCED (the call is cancelled after)."""
    call = api.Watch(api.pb.WatchRequest(pool=pool, **kw), timeout=timeout)
    out = []
    try:
        for ev in call:
            out.append(ev)
            if ev.type == api.pb.WATCH_EVENT_TYPE_SYNCED or len(out) >= limit:
                break
    finally:
        call.cancel()
    assert out and out[-1].type == api.pb.WATCH_EVENT_TYPE_SYNCED, out[-3:]
    return out


def reflection_services(ch):
    """The service names grpc.reflection.v1 lists."""
    refl = importlib.import_module("grpc.reflection.v1.reflection_pb2")
    stub = ch.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=refl.ServerReflectionRequest.SerializeToString,
        response_deserializer=refl.ServerReflectionResponse.FromString)
    out = list(stub(iter([refl.ServerReflectionRequest(list_services="")]), timeout=5))
    return {s.name for s in out[0].list_services_response.service}


def heartbeat_stream(api, pool, node_id, token):
    req = api.pb.HeartbeatRequest(pool=pool, node_id=node_id, lease_token=token, load=0.1)
    return list(api.HeartbeatStream(iter([req]), timeout=5))


# ---------------------------------------------------------------- the shared world

# name: (role, pools the key covers); None is anonymous, "bootstrap" the admin key
# of GALAXY_ADMIN_KEY.  The "-out" keys cover the public pool and another private
# pool, not PRIV; admin-out shows that an admin key's pool list does not limit it.
CALLERS = {
    "anon": None,
    "viewer": ("ROLE_VIEWER", [PUB, PRIV]),
    "node": ("ROLE_NODE", [PUB, PRIV]),
    "submitter": ("ROLE_SUBMITTER", [PUB, PRIV]),
    "operator": ("ROLE_OPERATOR", [PUB, PRIV]),
    "admin": "bootstrap",
    "viewer-all": ("ROLE_VIEWER", []),
    "viewer-out": ("ROLE_VIEWER", [PUB, OTHER]),
    "node-out": ("ROLE_NODE", [PUB, OTHER]),
    "submitter-out": ("ROLE_SUBMITTER", [PUB, OTHER]),
    "operator-out": ("ROLE_OPERATOR", [PUB, OTHER]),
    "admin-out": ("ROLE_ADMIN", [PUB]),
}


class World:
    """One server with auth_apikey + rbac, the pools, a key per caller and an
    Api per caller over one shared connection."""

    def __init__(self, s, pb):
        self.s = s
        self.pb = pb
        self.base = s.channel()
        self.admin = Api(with_key(self.base, ADMIN_SECRET), pb)
        self.n = itertools.count()
        self.secret = {"admin": ADMIN_SECRET}
        self.key_id = {}
        self.api = {}
        for name, spec in CALLERS.items():
            if isinstance(spec, tuple):
                r = self.admin.CreateApiKey(pb.CreateApiKeyRequest(
                    name="acc " + name, role=getattr(pb, spec[0]), pools=spec[1]), timeout=5)
                self.secret[name] = r.secret
                self.key_id[name] = r.key.id
            self.api[name] = Api(with_key(self.base, self.secret.get(name)), pb)
        self.key_id["admin"] = next(k.id for k in self.admin.ListApiKeys(
            pb.ListApiKeysRequest(), timeout=5).keys if k.role == pb.ROLE_ADMIN
            and k.id not in self.key_id.values())
        # long TTLs: no node of the world lapses (and wakes a watcher) during the tests
        hb = dict(heartbeat_interval_ms=WORLD_INTERVAL)
        self.admin.create_pool(PUB, visibility=pb.VISIBILITY_PUBLIC, **hb)
        self.admin.create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE,
                               specializations=["developer", "storage"], **hb)
        self.admin.create_pool(OTHER, visibility=pb.VISIBILITY_PRIVATE, **hb)
        self.admin.create_pool(FULL, visibility=pb.VISIBILITY_PRIVATE, max_nodes=1, **hb)
        self.token = {}
        for pool in (PUB, PRIV, OTHER, FULL):
            self.token[pool] = self.admin.register("base", pool=pool).lease_token
        # a revoked key for the UNAUTHENTICATED cases
        r = self.admin.CreateApiKey(pb.CreateApiKeyRequest(name="acc revoked",
                                                           role=pb.ROLE_ADMIN), timeout=5)
        self.admin.RevokeApiKey(pb.RevokeApiKeyRequest(id=r.key.id), timeout=5)
        self.revoked_secret = r.secret

    def tag(self):
        return "t%d" % next(self.n)


@pytest.fixture(scope="module")
def world(tmp_path_factory, pki, pb):
    with running(tmp_path_factory.mktemp("access"), pki, modules=AUTH,
                 env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}) as s:
        w = World(s, pb)
        yield w
        w.base.close()


# ---------------------------------------------------------------- the access table

# Callers whose keys cover the pool (a private pool: PRIV) by role.  API.md:
# anonymous callers register/heartbeat their own nodes and discover public
# pools; every key discovers the pools it covers; ROLE_NODE adds registering
# nodes, ROLE_SUBMITTER submitting jobs, ROLE_OPERATOR both plus Drain, ROLE_ADMIN
# everything on every pool; on public pools every caller also has the anonymous
# rights; a call that needs a role is UNAUTHENTICATED without credentials and
# PERMISSION_DENIED with too low a role; a private pool the caller cannot see is
# NOT_FOUND before either.  PoolAdmin is admin-only unless noted (GetPool,
# ListPools).
ACCESS_TABLE = """
rpc              pool      anon  viewer node  submitter operator admin
GetPool          public    OK    OK     OK    OK        OK       OK
GetPool          private   NF    OK     OK    OK        OK       OK
GetNode          public    OK    OK     OK    OK        OK       OK
GetNode          private   NF    OK     OK    OK        OK       OK
ListNodes        public    OK    OK     OK    OK        OK       OK
ListNodes        private   NF    OK     OK    OK        OK       OK
Watch            public    OK    OK     OK    OK        OK       OK
Watch            private   NF    OK     OK    OK        OK       OK
Register         public    OK    OK     OK    OK        OK       OK
Register         private   NF    PD     OK    PD        OK       OK
Heartbeat        public    OK    OK     OK    OK        OK       OK
Heartbeat        private   NF    PD     OK    PD        OK       OK
HeartbeatStream  public    OK    OK     OK    OK        OK       OK
HeartbeatStream  private   NF    PD     OK    PD        OK       OK
Deregister       public    OK    OK     OK    OK        OK       OK
Deregister       private   NF    PD     OK    PD        OK       OK
Drain            public    UA    PD     PD    PD        OK       OK
Drain            private   NF    PD     PD    PD        OK       OK
UpdatePool       public    UA    PD     PD    PD        PD       OK
UpdatePool       private   NF    PD     PD    PD        PD       OK
DeletePool       public    UA    PD     PD    PD        PD       OK
DeletePool       private   NF    PD     PD    PD        PD       OK
CreatePool       -         UA    PD     PD    PD        PD       OK
ListPools        -         OK    OK     OK    OK        OK       OK
CreateApiKey     -         UA    PD     PD    PD        PD       OK
ListApiKeys      -         UA    PD     PD    PD        PD       OK
RevokeApiKey     -         UA    PD     PD    PD        PD       OK
ListModules      -         UA    PD     PD    PD        PD       OK
"""
ABBREV = {"OK": OK, "NF": NF, "PD": PD, "UA": UA}


def _table():
    lines = [l.split() for l in ACCESS_TABLE.strip().splitlines()]
    roles = lines[0][2:]
    return {(row[0], row[1]): dict(zip(roles, (ABBREV[c] for c in row[2:])))
            for row in lines[1:]}


def _cases():
    table = _table()
    out = []
    for (rpc, kind), by_role in table.items():
        for caller in CALLERS:
            role = caller.split("-")[0]
            expect = by_role[role]
            if caller.endswith("-out") and kind == "private" and role != "admin":
                expect = NF
            out.append(pytest.param(rpc, kind, caller, expect,
                                    id="%s-%s-%s" % (rpc, kind, caller)))
    return out


def _pool(kind):
    return {"public": PUB, "private": PRIV, "-": None}[kind]


class Case:
    """What one call of the table needs: setup() through the admin (or the
    caller where it must own the node), act() by the caller on a pool (also
    run on GHOST to compare), after() checks what the outcome left behind."""

    def __init__(self, w, api, pool, kind, expect):
        self.w, self.api, self.pool, self.kind, self.expect = w, api, pool, kind, expect
        self.pb = w.pb
        self.tag = w.tag()
        self.node_id = None
        self.token = None
        self.target = None

    # registering nodes: by the caller when the call must succeed (its own node)
    def own_node(self):
        reg = self.api if self.expect == OK else self.w.admin
        r = reg.register("n-" + self.tag, pool=self.pool)
        self.node_id, self.token = r.node.id, r.lease_token

    def admin_node(self):
        r = self.w.admin.register("n-" + self.tag, pool=self.pool)
        self.node_id, self.token = r.node.id, r.lease_token

    def node_state(self):
        code, n = code_of(self.w.admin.get, self.node_id, self.pool)
        return n.state if code == OK else None


def _act_get_pool(c, api, pool):
    return api.GetPool(c.pb.GetPoolRequest(name=pool), timeout=5)


def _act_get_node(c, api, pool):
    return api.get("base", pool)


def _act_list_nodes(c, api, pool):
    return api.list(pool)


def _act_watch(c, api, pool):
    return watch_until_synced(api, pool)


def _act_register(c, api, pool):
    c.node_id = "n-" + c.tag
    return api.register(c.node_id, pool=pool)


def _act_heartbeat(c, api, pool):
    return api.heartbeat(c.node_id, c.token, pool=pool)


def _act_heartbeat_stream(c, api, pool):
    return heartbeat_stream(api, pool, c.node_id, c.token)


def _act_deregister(c, api, pool):
    return api.Deregister(c.pb.DeregisterRequest(pool=pool, node_id=c.node_id,
                                                 lease_token=c.token), timeout=5)


def _act_drain(c, api, pool):
    return api.Drain(c.pb.DrainRequest(pool=pool, node_id=c.node_id), timeout=5)


def _act_update_pool(c, api, pool):
    return api.UpdatePool(c.pb.UpdatePoolRequest(
        pool=c.pb.Pool(name=pool, description="by " + c.tag)), timeout=5)


def _act_delete_pool(c, api, pool):
    # a caller that must fail gets a pool with nodes and no force: a server that
    # wrongly lets it through says FAILED_PRECONDITION instead of deleting it
    return api.DeletePool(c.pb.DeletePoolRequest(name=c.target or pool), timeout=5)


def _setup_delete_pool(c):
    if c.expect == OK:
        c.target = "del-" + c.tag
        vis = c.pb.VISIBILITY_PRIVATE if c.kind == "private" else c.pb.VISIBILITY_PUBLIC
        c.w.admin.create_pool(c.target, visibility=vis)


def _act_create_pool(c, api, pool):
    return api.create_pool("new-" + c.tag)


def _act_list_pools(c, api, pool):
    return api.ListPools(c.pb.ListPoolsRequest(), timeout=5)


def _act_create_key(c, api, pool):
    return api.CreateApiKey(c.pb.CreateApiKeyRequest(name="k " + c.tag,
                                                     role=c.pb.ROLE_VIEWER), timeout=5)


def _act_list_keys(c, api, pool):
    return api.ListApiKeys(c.pb.ListApiKeysRequest(), timeout=5)


def _setup_revoke(c):
    r = c.w.admin.CreateApiKey(c.pb.CreateApiKeyRequest(name="victim " + c.tag,
                                                        role=c.pb.ROLE_VIEWER), timeout=5)
    c.target, c.token = r.key.id, r.secret


def _act_revoke(c, api, pool):
    return api.RevokeApiKey(c.pb.RevokeApiKeyRequest(id=c.target), timeout=5)


def _act_list_modules(c, api, pool):
    return api.ListModules(c.pb.ListModulesRequest(), timeout=5)


def _after_register(c, ok):
    assert (c.node_state() is not None) == ok


def _after_deregister(c, ok):
    assert (c.node_state() is None) == ok


def _after_drain(c, ok):
    want = c.pb.NODE_STATE_DRAINING if ok else c.pb.NODE_STATE_HEALTHY
    assert c.node_state() == want


def _after_update(c, ok):
    p = c.w.admin.GetPool(c.pb.GetPoolRequest(name=c.pool), timeout=5)
    assert (p.description == "by " + c.tag) == ok


def _after_delete(c, ok):
    code, _ = code_of(c.w.admin.GetPool, c.pb.GetPoolRequest(name=c.target or c.pool),
                      timeout=5)
    assert code == (NF if ok else OK)


def _after_create_pool(c, ok):
    code, _ = code_of(c.w.admin.GetPool, c.pb.GetPoolRequest(name="new-" + c.tag), timeout=5)
    assert code == (OK if ok else NF)


def _after_create_key(c, ok):
    keys = c.w.admin.ListApiKeys(c.pb.ListApiKeysRequest(), timeout=5).keys
    assert any(k.name == "k " + c.tag for k in keys) == ok


def _after_revoke(c, ok):
    keys = {k.id: k for k in c.w.admin.ListApiKeys(c.pb.ListApiKeysRequest(), timeout=5).keys}
    assert keys[c.target].revoked == ok
    code, _ = code_of(Api(with_key(c.w.base, c.token), c.pb).ListPools,
                      c.pb.ListPoolsRequest(), timeout=5)
    assert code == (UA if ok else OK)


# rpc: (setup, act, after)
OPS = {
    "GetPool": (None, _act_get_pool, None),
    "GetNode": (None, _act_get_node, None),
    "ListNodes": (None, _act_list_nodes, None),
    "Watch": (None, _act_watch, None),
    "Register": (None, _act_register, _after_register),
    "Heartbeat": (Case.own_node, _act_heartbeat, None),
    "HeartbeatStream": (Case.own_node, _act_heartbeat_stream, None),
    "Deregister": (Case.own_node, _act_deregister, _after_deregister),
    "Drain": (Case.admin_node, _act_drain, _after_drain),
    "UpdatePool": (None, _act_update_pool, _after_update),
    "DeletePool": (_setup_delete_pool, _act_delete_pool, _after_delete),
    "CreatePool": (None, _act_create_pool, _after_create_pool),
    "ListPools": (None, _act_list_pools, None),
    "CreateApiKey": (None, _act_create_key, _after_create_key),
    "ListApiKeys": (None, _act_list_keys, None),
    "RevokeApiKey": (_setup_revoke, _act_revoke, _after_revoke),
    "ListModules": (None, _act_list_modules, None),
}


def same_as_ghost(got, ghost, pool):
    """A private pool's answer equals the one for GHOST, its name put back."""
    return got[0] == ghost[0] and got[1].replace(pool, GHOST) == ghost[1]


@pytest.mark.parametrize("rpc,kind,caller,expect", _cases())
def test_access_table(world, rpc, kind, caller, expect):
    setup, act, after = OPS[rpc]
    pool = _pool(kind)
    c = Case(world, world.api[caller], pool, kind, expect)
    if setup:
        setup(c)
    got = code_of(act, c, c.api, pool)
    assert got[0] == expect, "%s by %s on %s: %s %s" % (rpc, caller, pool, got[0], got[1])
    if expect == NF and kind == "private":
        # exactly as for a pool that does not exist: same status, same message
        ghost = code_of(act, c, c.api, GHOST)
        assert ghost[0] == NF, ghost
        assert same_as_ghost(got, ghost, pool), (got, ghost)
    if after:
        after(c, expect == OK)


def test_access_table_covers_every_method(pb):
    """Every NodeRegistry, Discovery and PoolAdmin method has rows in the table."""
    names = set()
    for svc in ("NodeRegistry", "Discovery", "PoolAdmin"):
        names |= {m.name for m in pb.DESCRIPTOR.services_by_name[svc].methods}
    assert names == {rpc for rpc, _ in _table()}


# ---------------------------------------------------------------- never revealed

# Requests on a private pool that are wrong in a way only the pool's content
# could tell (taken id, disallowed specialization, full pool, wrong lease token,
# nodes left, visibility change ...): an outsider must still get exactly the
# answer for a pool that does not exist.
PROBES = {
    "register-spec-not-allowed": lambda api, pool: api.register("p1", pool=pool, specs=["gpu"]),
    "register-taken-id": lambda api, pool: api.register("base", pool=pool),
    "register-pool-full": lambda api, pool: api.register(
        "p2", pool=FULL if pool == PRIV else pool),
    "heartbeat-wrong-token": lambda api, pool: api.heartbeat("base", "x" * 43, pool=pool),
    "heartbeat-unknown-node": lambda api, pool: api.heartbeat("nope", "x" * 43, pool=pool),
    "stream-wrong-token": lambda api, pool: heartbeat_stream(api, pool, "base", "x" * 43),
    "deregister-wrong-token": lambda api, pool: api.Deregister(api.pb.DeregisterRequest(
        pool=pool, node_id="base", lease_token="x" * 43), timeout=5),
    "get-unknown-node": lambda api, pool: api.get("nope", pool),
    "drain-unknown-node": lambda api, pool: api.Drain(api.pb.DrainRequest(
        pool=pool, node_id="nope"), timeout=5),
    "list-bad-page-token": lambda api, pool: api.list(pool, page_token="%%%"),
    "list-filtered": lambda api, pool: api.list(pool, specialization="developer",
                                                states=[api.pb.NODE_STATE_HEALTHY]),
    "watch-old-revision": lambda api, pool: watch_until_synced(api, pool, start_revision=1),
    "update-visibility": lambda api, pool: api.UpdatePool(api.pb.UpdatePoolRequest(
        pool=api.pb.Pool(name=pool, visibility=api.pb.VISIBILITY_PUBLIC)), timeout=5),
    "update-bad-interval": lambda api, pool: api.UpdatePool(api.pb.UpdatePoolRequest(
        pool=api.pb.Pool(name=pool, heartbeat_interval_ms=1)), timeout=5),
    "update-interval-above-stored-ttl": lambda api, pool: api.UpdatePool(
        api.pb.UpdatePoolRequest(pool=api.pb.Pool(name=pool,
                                                  heartbeat_interval_ms=4 * WORLD_INTERVAL)),
        timeout=5),
    "delete-with-nodes": lambda api, pool: api.DeletePool(api.pb.DeletePoolRequest(
        name=pool), timeout=5),
    "delete-force": lambda api, pool: api.DeletePool(api.pb.DeletePoolRequest(
        name=pool, force=True), timeout=5),
    "create-existing-name": lambda api, pool: api.create_pool(pool),
    # requests that are bad whatever the pool
    "register-bad-spec-format": lambda api, pool: api.register("p1", pool=pool, specs=["Bad!"]),
    "register-bad-label": lambda api, pool: api.register("p1", pool=pool, labels={"": "v"}),
    "register-no-spec": lambda api, pool: api.register("p1", pool=pool, specs=[]),
    "heartbeat-bad-load": lambda api, pool: api.heartbeat("base", "x" * 43, pool=pool,
                                                          load=-1),
    "heartbeat-no-token": lambda api, pool: api.heartbeat("base", "", pool=pool),
    "stream-no-token": lambda api, pool: heartbeat_stream(api, pool, "base", ""),
    "get-no-node-id": lambda api, pool: api.get("", pool),
    "drain-no-node-id": lambda api, pool: api.Drain(api.pb.DrainRequest(pool=pool),
                                                    timeout=5),
    "list-bad-states": lambda api, pool: api.list(pool, states=[9]),
    "list-bad-spec": lambda api, pool: api.list(pool, specialization="Bad!"),
    "watch-bad-spec": lambda api, pool: watch_until_synced(api, pool, specialization="Bad!"),
    "update-bad-label": lambda api, pool: api.UpdatePool(api.pb.UpdatePoolRequest(
        pool=api.pb.Pool(name=pool, labels={"": "v"})), timeout=5),
}


@pytest.mark.parametrize("caller", ["anon", "viewer-out", "operator-out"])
@pytest.mark.parametrize("probe", sorted(PROBES))
def test_private_pool_answers_like_a_missing_one(world, pb, probe, caller):
    api = world.api[caller]
    pool = FULL if probe == "register-pool-full" else PRIV
    got = code_of(PROBES[probe], api, PRIV)
    ghost = code_of(PROBES[probe], api, GHOST)
    assert got[0] != OK and ghost[0] != OK, (got, ghost)
    assert same_as_ghost(got, ghost, pool), (got, ghost)
    # and nothing changed
    admin = world.admin
    p = admin.GetPool(pb.GetPoolRequest(name=pool), timeout=5)
    assert p.visibility == pb.VISIBILITY_PRIVATE and p.heartbeat_interval_ms == WORLD_INTERVAL
    n = admin.get("base", pool)
    assert n.state == pb.NODE_STATE_HEALTHY
    code, _ = code_of(admin.get, "p1", PRIV)
    assert code == NF


def _stream_answers(api, reqs):
    """The responses of one HeartbeatStream and the status it ended with."""
    out = []
    call = api.HeartbeatStream(iter(reqs), timeout=5)
    try:
        for r in call:
            out.append(r)
    except grpc.RpcError as e:
        return out, (e.code().name, e.details())
    return out, (OK, "")


@pytest.mark.parametrize("caller", ["anon", "viewer-out", "node-out"])
def test_heartbeat_stream_checks_every_message(world, pb, caller):
    """A stream that starts in a public pool and then names a private pool the
    caller cannot see ends NOT_FOUND exactly as for a missing pool, and the
    private node is untouched."""
    api = world.api[caller]
    mine = api.register("hs-" + world.tag(), pool=PUB)
    first = pb.HeartbeatRequest(pool=PUB, node_id=mine.node.id, lease_token=mine.lease_token)
    before = world.admin.get("base", PRIV)

    def reqs(pool):
        return [first, pb.HeartbeatRequest(pool=pool, node_id="base",
                                           lease_token=world.token[PRIV], load=0.75), first]

    out, end = _stream_answers(api, reqs(PRIV))
    ghost_out, ghost_end = _stream_answers(api, reqs(GHOST))
    assert len(out) == len(ghost_out) == 1
    assert end[0] == NF and same_as_ghost(end, ghost_end, PRIV), (end, ghost_end)
    after = world.admin.get("base", PRIV)
    assert after.load == before.load and after.last_heartbeat_unix_ms == \
        before.last_heartbeat_unix_ms
    # a node key that covers the pool may switch
    out, end = _stream_answers(world.api["node"], reqs(PRIV))
    assert end == (OK, "") and len(out) == 3
    assert world.admin.get("base", PRIV).load == 0.75


@pytest.mark.parametrize("caller", list(CALLERS))
def test_list_pools_shows_private_pools_only_to_callers_with_access(world, pb, caller):
    pools = {p.name: p for p in world.api[caller].ListPools(pb.ListPoolsRequest(),
                                                            timeout=5).pools}
    spec = CALLERS[caller]
    admin = caller.startswith("admin")
    covers = spec is not None and (admin or not spec[1] or PRIV in spec[1])
    covers_other = spec is not None and (admin or not spec[1] or OTHER in spec[1])
    assert {"mainnet", "testnet", "devnet", PUB} <= set(pools)
    assert (PRIV in pools) == covers
    assert (OTHER in pools) == covers_other
    assert (FULL in pools) == (admin or caller == "viewer-all")
    for p in pools.values():
        assert p.visibility in (pb.VISIBILITY_PUBLIC, pb.VISIBILITY_PRIVATE)
    if covers:
        assert pools[PRIV].visibility == pb.VISIBILITY_PRIVATE
        assert pools[PRIV] == world.api[caller].GetPool(pb.GetPoolRequest(name=PRIV),
                                                        timeout=5)


def test_a_key_covers_only_its_pools_even_public_ones(world, pb):
    """An operator key for another pool has only the anonymous rights on a public
    pool it does not list: it discovers and registers there but does not drain
    (API.md: "every key may discover the pools it covers; ... ROLE_OPERATOR has
    both plus Drain"; "on public pools every caller ... also has the anonymous
    rights")."""
    k = world.admin.CreateApiKey(pb.CreateApiKeyRequest(name="elsewhere",
                                                        role=pb.ROLE_OPERATOR,
                                                        pools=[OTHER]), timeout=5)
    api = Api(with_key(world.base, k.secret), pb)
    tag = world.tag()
    assert api.GetPool(pb.GetPoolRequest(name=PUB), timeout=5).name == PUB
    assert api.register("e-" + tag, pool=PUB).node.owner == "key:" + k.key.id
    code, _ = status_of(api.Drain, pb.DrainRequest(pool=PUB, node_id="e-" + tag), timeout=5)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    n = world.admin.register("e2-" + tag, pool=OTHER)
    assert api.Drain(pb.DrainRequest(pool=OTHER, node_id="e2-" + tag),
                     timeout=5).state == pb.NODE_STATE_DRAINING
    assert n.lease_token


class Watcher:
    """A Watch read by a thread into a queue."""

    def __init__(self, api, pool):
        self.pb = api.pb
        self.q = queue.Queue()
        self.call = api.Watch(api.pb.WatchRequest(pool=pool), timeout=30)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for ev in self.call:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.q.put(e)

    def get(self, timeout=5):
        item = self.q.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        return item

    def until_synced(self):
        out = []
        for _ in range(10000):
            out.append(self.get())
            if out[-1].type == self.pb.WATCH_EVENT_TYPE_SYNCED:
                return out
        raise AssertionError("no SYNCED")

    def none(self):
        time.sleep(NO_EVENT_WAIT)
        assert self.q.empty(), "unexpected event: %r" % (self.q.queue[0],)

    def close(self):
        self.call.cancel()
        self.t.join(5)


def test_watch_of_a_public_pool_shows_nothing_of_a_private_one(world, pb):
    outsider = Watcher(world.api["anon"], PUB)
    insider = Watcher(world.api["viewer"], PRIV)
    try:
        assert all(ev.node.pool == PUB for ev in outsider.until_synced()[:-1])
        insider.until_synced()
        a = world.admin
        tag = world.tag()
        r = a.register("w-" + tag, pool=PRIV)
        a.Drain(pb.DrainRequest(pool=PRIV, node_id="w-" + tag), timeout=5)
        a.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name=PRIV, description=tag)), timeout=5)
        a.Deregister(pb.DeregisterRequest(pool=PRIV, node_id="w-" + tag,
                                          lease_token=r.lease_token), timeout=5)
        evs = [insider.get() for _ in range(3)]
        assert [e.node.id for e in evs] == ["w-" + tag] * 3
        assert evs[-1].type == pb.WATCH_EVENT_TYPE_REMOVED
        outsider.none()
        # the outsider's watch is alive: a public change arrives
        a.register("w-" + tag, pool=PUB)
        ev = outsider.get()
        assert ev.node.id == "w-" + tag and ev.node.pool == PUB
        insider.none()
    finally:
        outsider.close()
        insider.close()


# ---------------------------------------------------------------- UNAUTHENTICATED

def _bad_headers(w):
    return {
        "unknown-key": "Bearer gxk_" + "0" * 64,
        "garbage-key": "Bearer not-a-key",
        "valid-key-plus-one": "Bearer " + ADMIN_SECRET + "x",
        "valid-key-truncated": "Bearer " + ADMIN_SECRET[:-1],
        "basic": "Basic x",
        "bearer-alone": "Bearer",
        "empty": "",
        "revoked": "Bearer " + w.revoked_secret,
    }


BAD_HEADERS = ["unknown-key", "garbage-key", "valid-key-plus-one", "valid-key-truncated",
               "basic", "bearer-alone", "empty", "revoked"]
# ("Bearer " with its trailing space is not a valid HTTP/2 field value: nghttp2
# resets such a stream before any gRPC code sees it)


def _calls(pb, health_pb2):
    return {
        "Health.Check": lambda ch, api: check_stub(ch, health_pb2)(
            health_pb2.HealthCheckRequest(), timeout=5),
        "ListPools": lambda ch, api: api.ListPools(pb.ListPoolsRequest(), timeout=5),
        "GetPool-public": lambda ch, api: api.GetPool(pb.GetPoolRequest(name=PUB), timeout=5),
        "GetPool-devnet": lambda ch, api: api.GetPool(pb.GetPoolRequest(name="devnet"),
                                                      timeout=5),
        "Register-public": lambda ch, api: api.register("ua", pool=PUB),
        "ListNodes-public": lambda ch, api: api.list(PUB),
        "Watch-public": lambda ch, api: watch_until_synced(api, PUB),
        "HeartbeatStream-public": lambda ch, api: heartbeat_stream(api, PUB, "base", "x" * 43),
        "CreatePool": lambda ch, api: api.create_pool("ua-pool"),
        "ListModules": lambda ch, api: api.ListModules(pb.ListModulesRequest(), timeout=5),
        "Reflection": lambda ch, api: reflection_services(ch),
    }


UA_CALLS = ["Health.Check", "ListPools", "GetPool-public", "GetPool-devnet", "Register-public",
            "ListNodes-public", "Watch-public", "HeartbeatStream-public", "CreatePool",
            "ListModules", "Reflection"]


@pytest.mark.parametrize("header", BAD_HEADERS)
@pytest.mark.parametrize("call", UA_CALLS)
def test_bad_credentials_are_unauthenticated(world, pb, health_pb2, header, call):
    ch = with_authorization(world.base, _bad_headers(world)[header])
    got = code_of(_calls(pb, health_pb2)[call], ch, Api(ch, pb))
    assert got[0] == UA, got
    assert code_of(world.admin.get, "ua", PUB)[0] == NF
    assert code_of(world.admin.GetPool, pb.GetPoolRequest(name="ua-pool"), timeout=5)[0] == NF


def _raw_call(s, path, body, auth):
    """One call with hand-made headers: a list of authorization values."""
    from h2raw import H2Client, grpc_frame
    with H2Client(s.h2c) as c:
        return c.call(path, grpc_frame(body), extra=[("authorization", v) for v in auth])


@pytest.mark.parametrize("auth", [["good", "bad"], ["bad", "good"], ["good", ""]],
                         ids="-".join)
def test_more_than_one_authorization_header_is_unauthenticated(world, auth):
    """Two credentials, one of them wrong, are not a good one: UNAUTHENTICATED
    whichever comes first (the wrong one is never silently ignored)."""
    values = {"good": "Bearer " + ADMIN_SECRET, "bad": "Bearer gxk_" + "0" * 64, "": ""}
    path = "/galaxy.pool.v1.PoolAdmin/ListApiKeys"
    assert _raw_call(world.s, path, b"", [values["good"]]).status == 0
    r = _raw_call(world.s, path, b"", [values[a] for a in auth])
    assert r.status == grpc.StatusCode.UNAUTHENTICATED.value[0], r


@pytest.mark.parametrize("path", ["/galaxy.pool.v1.PoolAdmin/ListPools",
                                  "/galaxy.pool.v1.PoolAdmin/CreatePool",
                                  "/galaxy.pool.v1.NodeRegistry/Register",
                                  "/grpc.health.v1.Health/Check"])
def test_bad_key_with_an_undecodable_request_is_unauthenticated(world, path):
    """A wrong key is UNAUTHENTICATED whatever the call, also one whose request
    does not decode (INVALID_ARGUMENT is for callers the server knows)."""
    r = _raw_call(world.s, path, b"\xff\xff", ["Bearer gxk_" + "0" * 64])
    assert r.status == grpc.StatusCode.UNAUTHENTICATED.value[0], r
    r = _raw_call(world.s, path, b"\xff\xff", [])
    assert r.status == grpc.StatusCode.INVALID_ARGUMENT.value[0], r


def test_refusals_are_counted(world, pb):
    before = world.s.metrics()
    bad = Api(with_key(world.base, "gxk_" + "0" * 64), pb)
    assert code_of(bad.ListPools, pb.ListPoolsRequest(), timeout=5)[0] == UA
    assert code_of(world.api["anon"].GetPool, pb.GetPoolRequest(name=PRIV), timeout=5)[0] == NF
    assert code_of(world.api["viewer"].register, "cnt", pool=PRIV)[0] == PD
    after = world.s.metrics()
    assert after["galaxy_auth_failed_total"] - before["galaxy_auth_failed_total"] == 1
    assert after["galaxy_access_denied_total"] - before["galaxy_access_denied_total"] == 2


def test_health_and_reflection_need_no_credentials(world, pb, health_pb2, protos):
    r = check_stub(world.base, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    assert "galaxy.pool.v1.PoolAdmin" in reflection_services(world.base)


def test_revocation_takes_effect_on_an_open_connection(world, pb, health_pb2):
    r = world.admin.CreateApiKey(pb.CreateApiKeyRequest(name="short-lived",
                                                        role=pb.ROLE_OPERATOR), timeout=5)
    ch = with_key(world.base, r.secret)
    api = Api(ch, pb)
    assert PRIV in {p.name for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools}
    watch = Watcher(api, PRIV)
    watch.until_synced()
    world.admin.RevokeApiKey(pb.RevokeApiKeyRequest(id=r.key.id), timeout=5)
    for fn in (lambda: api.ListPools(pb.ListPoolsRequest(), timeout=5),
               lambda: api.GetPool(pb.GetPoolRequest(name=PUB), timeout=5),
               lambda: check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5)):
        assert code_of(fn)[0] == UA
    keys = {k.id: k for k in world.admin.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys}
    assert keys[r.key.id].revoked
    watch.close()


# ---------------------------------------------------------------- owner

def test_owner_is_the_registering_identity(world, pb):
    tag = world.tag()
    cases = [("anon", PUB, ""), ("viewer", PUB, "key:" + world.key_id["viewer"]),
             ("node", PRIV, "key:" + world.key_id["node"]),
             ("operator-out", PUB, "key:" + world.key_id["operator-out"]),
             ("admin", PRIV, "key:" + world.key_id["admin"])]
    for caller, pool, owner in cases:
        nid = "o-%s-%s" % (tag, caller)
        for forged in ("", "key:0000000000000000", "cert:spiffe://galaxy.test/admin"):
            api = world.api[caller]
            r = api.Register(pb.RegisterRequest(node=api.node(nid, pool, owner=forged)),
                             timeout=5)
            assert r.node.owner == owner, (caller, forged)
            token = r.lease_token
            assert api.get(nid, pool).owner == owner
            listed = {n.id: n for n in world.admin.list(pool, page_size=1000).nodes}
            assert listed[nid].owner == owner
            api.Deregister(pb.DeregisterRequest(pool=pool, node_id=nid, lease_token=token),
                           timeout=5)
    for k, v in world.key_id.items():
        assert ID_RE.match(v), (k, v)


# ---------------------------------------------------------------- keys

def test_create_api_key_answer_and_listing(world, pb):
    a = world.admin
    r = a.CreateApiKey(pb.CreateApiKeyRequest(name="ci runner", role=pb.ROLE_SUBMITTER,
                                              pools=[PUB, PRIV]), timeout=5)
    assert SECRET_RE.match(r.secret), r.secret
    assert ID_RE.match(r.key.id), r.key.id
    assert (r.key.name, r.key.role, list(r.key.pools), r.key.revoked) == \
        ("ci runner", pb.ROLE_SUBMITTER, [PUB, PRIV], False)
    assert abs(r.key.created_unix_ms - time.time() * 1000) < 60000
    keys = {k.id: k for k in a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys}
    assert keys[r.key.id] == r.key
    assert len(keys) == len(set(keys))
    for name, kid in world.key_id.items():
        assert kid in keys
    # secrets (and their hashes) never leave the server again
    body = with_key(world.base, ADMIN_SECRET).unary_unary(
        "/galaxy.pool.v1.PoolAdmin/ListApiKeys",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=lambda b: b)(pb.ListApiKeysRequest(), timeout=5)
    assert body
    for secret in list(world.secret.values()) + [r.secret, world.revoked_secret]:
        for form in (secret.encode(), secret[4:].encode(),
                     hashlib.sha256(secret.encode()).digest(),
                     hashlib.sha256(secret.encode()).hexdigest().encode()):
            assert form not in body
    # every secret differs
    assert len(set(world.secret.values())) == len(world.secret)


@pytest.mark.parametrize("req,field", [
    (dict(name="", role=1), "name"),
    (dict(name="x" * 129, role=1), "name"),
    (dict(name="k", role=0), "role"),
    (dict(name="k", role=6), "role"),
    (dict(name="k", role=1, pools=["Bad_Name"]), "pools"),
    (dict(name="k", role=1, pools=[""]), "pools"),
    (dict(name="k", role=1, pools=["p%d" % i for i in range(65)]), "pools"),
])
def test_create_api_key_validation(world, pb, req, field):
    a = world.admin
    before = len(a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys)
    code, msg = status_of(a.CreateApiKey, pb.CreateApiKeyRequest(**req), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and field in msg, (code, msg)
    assert len(a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys) == before


def test_create_api_key_limits_are_inclusive(world, pb):
    r = world.admin.CreateApiKey(pb.CreateApiKeyRequest(
        name="x" * 128, role=pb.ROLE_VIEWER, pools=["p%d" % i for i in range(64)]), timeout=5)
    assert len(r.key.pools) == 64 and r.key.name == "x" * 128


def test_revoke_unknown_key(world, pb):
    code, _ = status_of(world.admin.RevokeApiKey, pb.RevokeApiKeyRequest(id="0" * 16),
                        timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND


def test_keys_survive_a_restart_and_the_last_admin_key_stays(new_server, pb):
    s = new_server(modules=AUTH, env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}, tls=False).start()
    with s.channel() as ch:
        a = Api(with_key(ch, ADMIN_SECRET), pb)
        keys = a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys
        assert [k.role for k in keys] == [pb.ROLE_ADMIN] and not keys[0].revoked
        boot = keys[0].id
        code, _ = status_of(a.RevokeApiKey, pb.RevokeApiKeyRequest(id=boot), timeout=5)
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        a.create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE)
        keep = a.CreateApiKey(pb.CreateApiKeyRequest(name="keep", role=pb.ROLE_VIEWER,
                                                     pools=[PRIV]), timeout=5)
        gone = a.CreateApiKey(pb.CreateApiKeyRequest(name="gone", role=pb.ROLE_NODE),
                              timeout=5)
        admin2 = a.CreateApiKey(pb.CreateApiKeyRequest(name="admin2", role=pb.ROLE_ADMIN),
                                timeout=5)
        a.RevokeApiKey(pb.RevokeApiKeyRequest(id=gone.key.id), timeout=5)
        # another admin key exists: the first may go; then the second is the last
        a.RevokeApiKey(pb.RevokeApiKeyRequest(id=boot), timeout=5)
        assert code_of(a.ListApiKeys, pb.ListApiKeysRequest(), timeout=5)[0] == UA
        a = Api(with_key(ch, admin2.secret), pb)
        code, _ = status_of(a.RevokeApiKey, pb.RevokeApiKeyRequest(id=admin2.key.id),
                            timeout=5)
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        before = sorted(a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys,
                        key=lambda k: k.id)
    assert s.stop() == 0
    s.start()
    with s.channel() as ch:
        a = Api(with_key(ch, admin2.secret), pb)
        after = sorted(a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys,
                       key=lambda k: k.id)
        assert after == before
        revoked = {k.id for k in after if k.revoked}
        assert revoked == {boot, gone.key.id}
        keep_api = Api(with_key(ch, keep.secret), pb)
        assert keep_api.GetPool(pb.GetPoolRequest(name=PRIV), timeout=5).name == PRIV
        for secret in (gone.secret, ADMIN_SECRET):
            api = Api(with_key(ch, secret), pb)
            assert code_of(api.ListPools, pb.ListPoolsRequest(), timeout=5)[0] == UA
        # still the last active admin key
        assert code_of(a.RevokeApiKey, pb.RevokeApiKeyRequest(id=admin2.key.id),
                       timeout=5)[0] == "FAILED_PRECONDITION"


# ---------------------------------------------------------------- admin key bootstrap

BOOT_RE = re.compile(r"admin API key created id=([0-9a-f]{16}) file=(\S+)")


def test_admin_key_bootstrap_file(new_server, pb):
    s = new_server(modules=AUTH, tls=False).start()
    path = os.path.join(s.data_dir, "admin.key")
    lines = BOOT_RE.findall(s.log())
    assert len(lines) == 1, s.log()
    kid, logged = lines[0]
    assert os.path.realpath(logged) == os.path.realpath(path)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    content = open(path).read()
    assert content.endswith("\n") and content.count("\n") == 1
    secret = content[:-1]
    assert len(secret) >= 32 and secret.strip() == secret
    with s.channel() as ch:
        a = Api(with_key(ch, secret), pb)
        keys = a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys
        assert [(k.id, k.role, k.revoked) for k in keys] == [(kid, pb.ROLE_ADMIN, False)]
        a.create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE)
        assert code_of(Api(ch, pb).GetPool, pb.GetPoolRequest(name=PRIV), timeout=5)[0] == NF
    assert s.stop() == 0
    # the second start reuses the key and the file
    s.start()
    assert len(BOOT_RE.findall(s.log())) == 1, s.log()
    assert open(path).read() == content and os.stat(path).st_ino == st.st_ino
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with s.channel() as ch:
        a = Api(with_key(ch, secret), pb)
        keys = a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys
        assert [(k.id, k.role, k.revoked) for k in keys] == [(kid, pb.ROLE_ADMIN, False)]
        assert a.GetPool(pb.GetPoolRequest(name=PRIV), timeout=5).name == PRIV


def test_admin_key_from_the_environment(new_server, pb):
    secret = "e" * 32                                   # the shortest allowed
    s = new_server(modules=AUTH, tls=False, env={"GALAXY_ADMIN_KEY": secret}).start()
    assert not os.path.exists(os.path.join(s.data_dir, "admin.key"))
    assert not BOOT_RE.search(s.log())
    assert secret not in s.log()
    with s.channel() as ch:
        a = Api(with_key(ch, secret), pb)
        keys = a.ListApiKeys(pb.ListApiKeysRequest(), timeout=5).keys
        assert [(k.role, k.revoked) for k in keys] == [(pb.ROLE_ADMIN, False)]
        a.create_pool("envpool")
    assert s.stop() == 0
    # on a data directory that has keys the variable changes nothing
    s.env["GALAXY_ADMIN_KEY"] = "f" * 40
    s.start()
    with s.channel() as ch:
        assert Api(with_key(ch, secret), pb).GetPool(pb.GetPoolRequest(name="envpool"),
                                                     timeout=5).name == "envpool"
        code = code_of(Api(with_key(ch, "f" * 40), pb).ListPools, pb.ListPoolsRequest(),
                       timeout=5)[0]
        assert code == UA
        assert len(Api(with_key(ch, secret), pb).ListApiKeys(pb.ListApiKeysRequest(),
                                                             timeout=5).keys) == 1


def test_admin_key_from_the_environment_too_short(new_server):
    s = new_server(modules=AUTH, tls=False, env={"GALAXY_ADMIN_KEY": "s" * 31})
    rc, log = s.start_refused()
    assert rc == 1, log
    assert "GALAXY_ADMIN_KEY" in log, log
    assert "s" * 31 not in log
    assert not os.path.exists(os.path.join(s.data_dir, "admin.key"))


def test_admin_key_created_when_auth_comes_to_an_existing_data_dir(new_server, pb):
    """A data directory first used without authentication has no keys: the
    first start with auth_apikey creates the admin key (API.md: "on a data
    directory without keys")."""
    plain = new_server(tls=False).start()
    with plain.channel() as ch:
        Api(ch, pb).create_pool("early")
    assert plain.stop() == 0
    s = new_server(modules=AUTH, tls=False, data_dir=plain.data_dir).start()
    assert len(BOOT_RE.findall(s.log())) == 1, s.log()
    secret = open(os.path.join(s.data_dir, "admin.key")).read().strip()
    with s.channel() as ch:
        a = Api(with_key(ch, secret), pb)
        assert a.GetPool(pb.GetPoolRequest(name="early"), timeout=5).name == "early"
        assert code_of(Api(ch, pb).create_pool, "late")[0] == UA


# ---------------------------------------------------------------- no authentication module

def test_without_authentication_private_pools_are_refused(new_server, pb):
    s = new_server(tls=False).start()
    with s.channel() as ch:
        api = Api(ch, pb)
        code, msg = status_of(api.create_pool, "secret", visibility=pb.VISIBILITY_PRIVATE)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, msg
        assert code_of(api.GetPool, pb.GetPoolRequest(name="secret"), timeout=5)[0] == NF
        # everything else is open as before
        api.create_pool("open")
        api.register("n1", pool="open")
        api.Drain(pb.DrainRequest(pool="open", node_id="n1"), timeout=5)
        assert api.get("n1", "open").owner == ""


def test_data_with_a_private_pool_needs_an_authentication_module(new_server, pb):
    s = new_server(modules=AUTH, tls=False, env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}).start()
    with s.channel() as ch:
        Api(with_key(ch, ADMIN_SECRET), pb).create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE)
    assert s.stop() == 0
    plain = new_server(tls=False, data_dir=s.data_dir)
    rc, log = plain.start_refused()
    assert rc == 1, log
    assert PRIV in log or "private" in log, log
    # with the modules back, it starts and the pool is there
    s.start()
    with s.channel() as ch:
        a = Api(with_key(ch, ADMIN_SECRET), pb)
        assert a.GetPool(pb.GetPoolRequest(name=PRIV), timeout=5).visibility == \
            pb.VISIBILITY_PRIVATE


def test_authentication_without_policy_refuses_private_pools(new_server, pb):
    """Authentication without a policy is not access control: everything stays
    open as without modules, and no private pool may be created, nor kept."""
    full = new_server(modules=AUTH, tls=False, env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}).start()
    with full.channel() as ch:
        Api(with_key(ch, ADMIN_SECRET), pb).create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE)
    assert full.stop() == 0
    rc, log = new_server(modules=("auth_apikey",), tls=False,
                         data_dir=full.data_dir).start_refused()
    assert rc == 1 and PRIV in log and "private" in log, log
    s = new_server(modules=("auth_apikey",), tls=False,
                   env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}).start()
    with s.channel() as ch:
        api = Api(with_key(ch, ADMIN_SECRET), pb)
        code, msg = status_of(api.create_pool, "secret", visibility=pb.VISIBILITY_PRIVATE)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, msg
        api.create_pool("open")
    with s.channel() as ch:  # no credentials needed: nothing enforces roles
        Api(ch, pb).create_pool("open-too")


def test_policy_without_authentication_refuses_to_start(new_server):
    """rbac alone would see every caller as anonymous and lock out every role:
    a configuration error, not a server nobody can administer."""
    rc, log = new_server(modules=("rbac",), tls=False).start_refused()
    assert rc == 1, log
    assert "rbac" in log and "auth_apikey or auth_mtls" in log, log


@pytest.mark.parametrize("config,word", [
    ('  - path: auth_mtls\n    config:\n      "spiffe://x/a": root\n', "root"),
    ('  - path: auth_mtls\n    config:\n      "spiffe://x/a": "node:Bad_Pool"\n', "pools must"),
    ('  - path: auth_mtls\n    config:\n      "spiffe://x/a": ""\n', "spiffe://x/a"),
    ('  - path: auth_mtls\n    config:\n      "spiffe://x/a": "node:"\n', "spiffe://x/a"),
    ('  - path: rbac\n    config:\n      strict: "yes"\n', "strict"),
    ('  - path: auth_apikey\n    config:\n      keys: "none"\n', "keys"),
], ids=["mtls-bad-role", "mtls-bad-pool", "mtls-empty", "mtls-empty-pools", "rbac-setting",
        "apikey-setting"])
def test_module_configuration_errors_refuse_start(new_server, config, word):
    s = new_server(tls=False, config="server:\n  log_level: info\nmodules:\n" + config)
    rc, log = s.start_refused()
    assert rc == 1, log
    assert word in log, log


# ---------------------------------------------------------------- mTLS

MTLS_MAP = {
    "spiffe://galaxy.test/acc-admin": "admin",
    "spiffe://galaxy.test/acc-node": "node:%s" % PRIV,
    "spiffe://galaxy.test/acc-viewer": "viewer:%s,%s" % (PUB, PRIV),
    "acc-node.galaxy.test": "node:%s" % PRIV,
}


def _mtls_config():
    text = "server:\n  log_level: debug\nmodules:\n  - path: auth_apikey\n  - path: auth_mtls\n" \
           "    config:\n"
    for ident, role in MTLS_MAP.items():
        text += '      "%s": "%s"\n' % (ident, role)
    return text + "  - path: rbac\n"


class Mtls:
    """A server with the three modules and --tls-client-ca, and the certificates."""

    def __init__(self, s, pki, pb):
        self.s, self.pki, self.pb = s, pki, pb
        self.certs = {
            "admin": pki.client("acc-admin"),
            "node": pki.client("acc-node"),
            "viewer": pki.client("acc-viewer"),
            "dns-node": pki.client("acc-dns-node", san="DNS:acc-node.galaxy.test"),
            "stranger": pki.client("acc-stranger"),
            "uri-first": pki.client("acc-uri-first", san="URI:spiffe://galaxy.test/acc-x,"
                                    "DNS:acc-node.galaxy.test"),
            "cn-only": pki.client_without_san("acc-cn-only", "acc-node.galaxy.test"),
            "rogue": pki.client("acc-rogue", san="URI:spiffe://galaxy.test/acc-admin",
                                ca="rogue-ca"),
        }
        self.channels = []
        self.secrets = [ADMIN_SECRET]
        self.admin = self.api(None, ADMIN_SECRET)
        self.admin.create_pool(PUB)
        self.admin.create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE)
        self.admin.create_pool(OTHER, visibility=pb.VISIBILITY_PRIVATE)

    def channel(self, cert=None, secret=None):
        if cert is None:
            ch = self.s.channel("tls")
        else:
            crt, key = self.certs[cert]
            ch = self.s.channel("tls", private_key=key, certificate_chain=crt)
        self.channels.append(ch)
        return with_key(ch, secret)

    def api(self, cert=None, secret=None):
        return Api(self.channel(cert, secret), self.pb)

    def key(self, role, pools=()):
        r = self.admin.CreateApiKey(self.pb.CreateApiKeyRequest(
            name="mtls " + str(role), role=role, pools=list(pools)), timeout=5)
        self.secrets.append(r.secret)
        return r

    def close(self):
        for ch in self.channels:
            ch.close()


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, pki, pb):
    with running(tmp_path_factory.mktemp("mtls"), pki, config=_mtls_config(),
                 args=["--tls-client-ca", pki.ca_cert],
                 env={"GALAXY_ADMIN_KEY": ADMIN_SECRET}) as s:
        m = Mtls(s, pki, pb)
        yield m
        m.close()


def _register_owner(api, pool, nid):
    r = api.register(nid, pool=pool)
    owner = api.get(nid, pool).owner
    assert r.node.owner == owner
    api.Deregister(api.pb.DeregisterRequest(pool=pool, node_id=nid, lease_token=r.lease_token),
                   timeout=5)
    return owner


def test_mtls_admin_certificate(mtls, pb):
    api = mtls.api("admin")
    assert api.GetPool(pb.GetPoolRequest(name=PRIV), timeout=5).name == PRIV
    api.create_pool("by-cert")
    assert {PRIV, OTHER, "by-cert"} <= {p.name for p in api.ListPools(
        pb.ListPoolsRequest(), timeout=5).pools}
    r = api.CreateApiKey(pb.CreateApiKeyRequest(name="from cert", role=pb.ROLE_VIEWER),
                         timeout=5)
    assert SECRET_RE.match(r.secret)
    api.Drain(pb.DrainRequest(pool=PRIV, node_id=mtls.admin.register("d1", pool=PRIV)
                              .node.id), timeout=5)
    assert _register_owner(api, OTHER, "a1") == "cert:spiffe://galaxy.test/acc-admin"


def test_mtls_node_certificate_gets_its_role_and_pools(mtls, pb):
    api = mtls.api("node")
    assert _register_owner(api, PRIV, "c1") == "cert:spiffe://galaxy.test/acc-node"
    assert _register_owner(api, PUB, "c1") == "cert:spiffe://galaxy.test/acc-node"
    n = mtls.admin.register("c2", pool=PRIV)
    code, _ = status_of(api.Drain, pb.DrainRequest(pool=PRIV, node_id="c2"), timeout=5)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = status_of(api.create_pool, "nope")
    assert code == grpc.StatusCode.PERMISSION_DENIED
    got = code_of(api.GetPool, pb.GetPoolRequest(name=OTHER), timeout=5)
    ghost = code_of(api.GetPool, pb.GetPoolRequest(name=GHOST), timeout=5)
    assert got[0] == NF and same_as_ghost(got, ghost, OTHER)
    names = {p.name for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools}
    assert PRIV in names and OTHER not in names
    mtls.admin.Deregister(pb.DeregisterRequest(pool=PRIV, node_id="c2",
                                               lease_token=n.lease_token), timeout=5)


def test_mtls_viewer_certificate_discovers_but_does_not_register(mtls, pb):
    api = mtls.api("viewer")
    assert api.GetPool(pb.GetPoolRequest(name=PRIV), timeout=5).name == PRIV
    watch_until_synced(api, PRIV)
    code, _ = status_of(api.register, "v1", pool=PRIV)
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_mtls_identity_from_the_dns_san(mtls, pb):
    api = mtls.api("dns-node")
    assert _register_owner(api, PRIV, "dn1") == "cert:acc-node.galaxy.test"


@pytest.mark.parametrize("cert", ["stranger", "uri-first", "cn-only", None])
def test_mtls_unmapped_or_no_certificate_is_anonymous(mtls, pb, cert):
    """A verified certificate whose identity is not mapped (the URI SAN comes
    before a mapped DNS SAN; the CN is never the identity), or none at all."""
    api = mtls.api(cert)
    got = code_of(api.GetPool, pb.GetPoolRequest(name=PRIV), timeout=5)
    ghost = code_of(api.GetPool, pb.GetPoolRequest(name=GHOST), timeout=5)
    assert got[0] == NF and same_as_ghost(got, ghost, PRIV)
    assert code_of(api.register, "u1", pool=PRIV)[0] == NF
    assert _register_owner(api, PUB, "u1") == ""
    assert code_of(api.create_pool, "nope")[0] == UA
    assert code_of(api.Drain, pb.DrainRequest(pool=PUB, node_id="u1"), timeout=5)[0] == UA
    assert PRIV not in {p.name for p in api.ListPools(pb.ListPoolsRequest(), timeout=5).pools}


def test_mtls_untrusted_certificate_fails_the_handshake(mtls, pb, health_pb2):
    ch = mtls.channel("rogue")
    code, _ = status_of(check_stub(ch, health_pb2), health_pb2.HealthCheckRequest(), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE
    code, _ = status_of(Api(ch, pb).ListPools, pb.ListPoolsRequest(), timeout=5)
    assert code == grpc.StatusCode.UNAVAILABLE


def test_mtls_without_certificate_a_key_works(mtls, pb):
    k = mtls.key(pb.ROLE_NODE, [PRIV])
    api = mtls.api(None, k.secret)
    assert _register_owner(api, PRIV, "k1") == "key:" + k.key.id


def test_mtls_certificate_and_key_the_key_decides(mtls, pb):
    viewer = mtls.key(pb.ROLE_VIEWER, [PRIV])
    node = mtls.key(pb.ROLE_NODE, [PRIV])
    # a node certificate with a viewer key: the viewer key decides
    api = mtls.api("node", viewer.secret)
    assert code_of(api.register, "ck1", pool=PRIV)[0] == PD
    # an admin certificate with a viewer key: no administration
    api = mtls.api("admin", viewer.secret)
    assert code_of(api.create_pool, "ck-pool")[0] == PD
    assert code_of(api.GetPool, pb.GetPoolRequest(name=OTHER), timeout=5)[0] == NF
    # an unmapped certificate with the admin key: administration
    api = mtls.api("stranger", ADMIN_SECRET)
    api.create_pool("ck-pool")
    # the owner is the key, not the certificate
    api = mtls.api("node", node.secret)
    assert _register_owner(api, PRIV, "ck2") == "key:" + node.key.id
    # a bad key next to a good certificate is UNAUTHENTICATED, not the certificate
    for header in ("Bearer gxk_" + "0" * 64, "Basic x", ""):
        ch = with_authorization(mtls.channel("admin"), header)
        assert code_of(Api(ch, pb).ListPools, pb.ListPoolsRequest(), timeout=5)[0] == UA


def test_list_modules_shows_the_access_modules(mtls, pb):
    mods = {m.name: m for m in mtls.admin.ListModules(pb.ListModulesRequest(),
                                                      timeout=5).modules}
    for name in ("auth_apikey", "auth_mtls", "rbac"):
        m = mods[name]
        assert m.path.endswith("/%s.so" % name) and m.version
        assert m.edition in ("community", "enterprise")
    assert "authn" in mods["auth_apikey"].phases
    assert "authn" in mods["auth_mtls"].phases
    assert "access" in mods["rbac"].phases
    for builtin in ("health", "reflection", "registry", "discovery", "pooladmin"):
        assert builtin in mods


# ---------------------------------------------------------------- secrets stay secret

def test_no_secret_in_the_logs(world, mtls):
    """Neither server wrote an API key secret into its log (the mTLS server
    logs at debug level)."""
    logs = world.s.log() + mtls.s.log()
    assert "refused" in mtls.s.log()           # debug lines are there
    for secret in list(world.secret.values()) + [world.revoked_secret] + mtls.secrets:
        assert secret not in logs
        assert secret[4:] not in logs

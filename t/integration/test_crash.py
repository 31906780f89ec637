# SPDX-License-Identifier: MIT
"""Durability of the registry store across crashes and restarts.

test_crash_under_load: a client keeps 64 Register calls in flight while the
server is killed with SIGKILL at random moments and restarted on the same data
directory; every Register that was acknowledged must survive, whole.

test_recovery: a populated registry (pools with settings, nodes with labels,
specializations, drains, deregistrations, a re-registration) stopped with
SIGTERM or SIGKILL comes back identical, its lease tokens still work and its
nodes start HEALTHY with a fresh grace period.

Environment (bench/crash_soak.sh sets these for the long runs):
  GX_CRASH_SEED      seed of the kill schedule (default: random, printed)
  GX_CRASH_KILLS     kills in test_crash_under_load (default 20)
  GX_CRASH_SECONDS   time bound of that test's kill loop (default 30)
  GX_RECOVERY_NODES  nodes registered by test_recovery (default 10000)
  GX_CRASH_REPORT    file to which the measured times are appended
"""
import importlib
import os
import random
import signal
import subprocess
import threading
import time
import urllib.request
import zlib

import grpc
import pytest

from conftest import Server, wait_for
from test_registry import Api, status_of

INFLIGHT = 64


def env_int(name, default):
    return int(os.environ.get(name) or default)


def report(line):
    print(line)
    path = os.environ.get("GX_CRASH_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def start_timed(make_server, **kw):
    """make_server(**kw) and the seconds from process start to the ready file."""
    t0 = time.monotonic()
    s = make_server(**kw)
    return s, time.monotonic() - t0


def list_nodes(api, pool):
    """Every node of the pool, paging through it, as {id: Node}."""
    out, token = {}, ""
    for _ in range(10000):
        r = api.ListNodes(api.pb.ListNodesRequest(pool=pool, page_size=1000, page_token=token),
                          timeout=30)
        for n in r.nodes:
            assert n.id not in out, "node %s listed twice" % n.id
            out[n.id] = n
        token = r.next_page_token
        if not token:
            return out
    raise AssertionError("paging does not end")


def assert_healthy(s, health_pb2):
    with s.channel() as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                               response_deserializer=health_pb2.HealthCheckResponse.FromString)
        r = check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen("http://%s%s" % (s.admin, path), timeout=5) as r:
            assert r.status == 200


def crash_labels(node_id):
    """Labels made from the id, so that a record cut short or holding another
    node's bytes cannot match: the id at both ends of the label map, and 0 to
    5 padding labels in between (records from ~200 bytes to past half a page,
    where LMDB moves them to overflow pages)."""
    h = zlib.crc32(node_id.encode())
    labels = {"a-self": node_id, "z-check": node_id[::-1] + "/" + str(len(node_id))}
    for k in range(h % 6):
        labels["pad%d" % k] = (node_id * 40)[:(h >> (8 + k)) % 500 + 1]
    return labels


# ---------------------------------------------------------------- crash under load

class Loader(threading.Thread):
    """Registers fresh nodes with INFLIGHT calls in flight until stopped;
    .acked maps every id whose Register returned OK to its lease token."""

    def __init__(self, api, prefix, acked, sent, errors):
        super().__init__(daemon=True)
        self.api = api
        self.prefix = prefix
        self.acked, self.sent, self.errors = acked, sent, errors
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(INFLIGHT)
        self.halt = threading.Event()
        self.first_ok = threading.Event()
        self.seq = 0

    def _done(self, node_id, fut):
        try:
            r = fut.result()
            with self.lock:
                self.acked[node_id] = r.lease_token
            self.first_ok.set()
        except grpc.RpcError as e:
            with self.lock:
                self.errors[e.code()] = self.errors.get(e.code(), 0) + 1
        finally:
            self.slots.release()

    def run(self):
        api, pb = self.api, self.api.pb
        deadline = time.monotonic() + 60
        while not self.halt.is_set() and time.monotonic() < deadline:
            if not self.slots.acquire(timeout=0.2):
                continue
            node_id = "%s-%06d" % (self.prefix, self.seq)
            self.seq += 1
            self.sent.add(node_id)
            req = pb.RegisterRequest(node=api.node(node_id, specs=("developer", "storage"),
                                                   labels=crash_labels(node_id)))
            fut = api.Register.future(req, timeout=10)
            fut.add_done_callback(lambda f, i=node_id: self._done(i, f))

    def stop(self, timeout=20):
        """Stops issuing calls and waits until every call in flight has ended."""
        self.halt.set()
        self.join(timeout)
        deadline = time.monotonic() + timeout
        got = 0
        while got < INFLIGHT and time.monotonic() < deadline:
            if self.slots.acquire(timeout=0.2):
                got += 1
        assert not self.is_alive() and got == INFLIGHT, "Register calls did not end"


def kill_while_starting(pki, workdir, data_dir, delay):
    """Starts a server on data_dir and kills it after `delay` seconds, ready or
    not (a crash while recovering; the first one, while making the defaults)."""
    os.makedirs(workdir)
    s = Server(workdir, pki, data_dir=data_dir)
    with open(s.log_path, "ab") as log:
        proc = subprocess.Popen(s.args, stdout=log, stderr=subprocess.STDOUT, env=s.env)
        time.sleep(delay)
        proc.kill()
        proc.wait(10)
    s.assert_clean()


def test_crash_under_load(make_server, pb, health_pb2, pki, tmp_path):
    seed = env_int("GX_CRASH_SEED", random.SystemRandom().randrange(1 << 32))
    kills = env_int("GX_CRASH_KILLS", 20)
    budget = env_int("GX_CRASH_SECONDS", 30)
    rng = random.Random(seed)
    report("crash seed=%d kills=%d (rerun with GX_CRASH_SEED=%d)" % (seed, kills, seed))
    acked, sent, errors = {}, set(), {}
    data_dir = str(tmp_path / "data")
    history = []        # (run, load ms or start-up kill ms, acked so far, node_count)
    t_end = time.monotonic() + budget
    for run in range(kills):
        if time.monotonic() > t_end:
            break
        if run == 0 or rng.random() < 0.2:
            delay = rng.uniform(0, 0.05)
            kill_while_starting(pki, str(tmp_path / ("start%03d" % run)), data_dir, delay)
            history.append((run, "start-up %.3f" % delay))
        s = make_server(data_dir=data_dir)
        with s.channel() as ch:
            api = Api(ch, pb)
            count = api.GetPool(pb.GetPoolRequest(name="devnet"), timeout=10).node_count
            if count < len(acked):
                missing = sorted(set(acked) - set(list_nodes(api, "devnet")))
                raise AssertionError(
                    "seed %d, run %d: %d nodes after the restart, %d acknowledged before it; "
                    "lost %s\nruns %s\n%s" % (seed, run, count, len(acked), missing[:10],
                                              history, s.log()[-4000:]))
            loader = Loader(api, "r%03d" % run, acked, sent, errors)
            loader.start()
            # the load has started once the first call is acknowledged
            assert loader.first_ok.wait(10), "seed %d, run %d: no Register acknowledged" % (
                seed, run)
            load_ms = rng.randint(50, 300)
            time.sleep(load_ms / 1000)
            s.kill()
            s.assert_clean()
            loader.stop()
        history.append((run, load_ms, len(acked), count))
    loaded = len([h for h in history if len(h) == 4])
    report("crash: %d kills under load, %d while starting, %d Register sent, %d acknowledged, "
           "errors after the kills %s" % (loaded, len(history) - loaded, len(sent), len(acked),
                                          {c.name: n for c, n in errors.items()}))
    assert loaded >= min(kills, 5), "too few kills in %ss" % budget

    s = make_server(data_dir=data_dir)
    with s.channel() as ch:
        api = Api(ch, pb)
        nodes = list_nodes(api, "devnet")
        missing = sorted(set(acked) - set(nodes))
        assert not missing, (
            "seed %d: %d acknowledged registrations lost, e.g. %s\nruns %s\n%s"
            % (seed, len(missing), missing[:10], history, s.log()[-4000:]))
        stray = sorted(set(nodes) - sent)
        assert not stray, "seed %d: nodes never sent: %s" % (seed, stray[:10])
        for node_id, n in nodes.items():
            # acknowledged or not, nothing half-written
            assert dict(n.labels) == crash_labels(node_id), (seed, n)
            assert list(n.specializations) == ["developer", "storage"], (seed, n)
            assert n.version == "1.0", (seed, n)
            assert n.pool == "devnet" and n.address == "10.0.0.1:7000", (seed, n)
            assert n.state == pb.NODE_STATE_HEALTHY, (seed, n)
        assert api.GetPool(pb.GetPoolRequest(name="devnet"),
                           timeout=10).node_count == len(nodes)
        # the acknowledged tokens are the stored ones
        sample = rng.sample(sorted(acked), min(200, len(acked)))
        futs = [api.Heartbeat.future(pb.HeartbeatRequest(pool="devnet", node_id=i,
                                                         lease_token=acked[i]), timeout=10)
                for i in sample]
        assert all(f.result().state == pb.NODE_STATE_HEALTHY for f in futs)
        # and the server still takes writes
        api.register("after-crash", labels=crash_labels("after-crash"))
        assert dict(api.get("after-crash").labels) == crash_labels("after-crash")
    assert_healthy(s, health_pb2)
    report("crash: %d nodes present after the last restart (%d acknowledged)" % (
        len(nodes), len(acked)))


# ---------------------------------------------------------------- recovery

POOLS = [
    # name, CreatePool fields
    ("rec-main", dict(tier="enterprise", description="recovery: limited pool",
                      heartbeat_interval_ms=5000, node_ttl_ms=20000, max_nodes=200000,
                      specializations=["storage", "analytics", "gpu"],
                      labels={"org": "acme", "zone": "eu-1"})),
    ("rec-fast", dict(tier="test", heartbeat_interval_ms=500, node_ttl_ms=1500,
                      labels={"speed": "fast"})),
]
FAST_NODES = 9  # below self_preservation_min_nodes: they lapse like any node
FAST_IDS = ["rec-fast.n%06d" % i for i in range(FAST_NODES)]


def rec_node(api, i, pool):
    specs = [("storage",), ("analytics", "gpu"), ("storage", "analytics")][i % 3]
    if pool == "devnet":
        specs = ("developer",) + specs[:1]
    node_id = "%s.n%06d" % (pool, i)
    return api.node(node_id, pool, specs=specs,
                    labels={"self": node_id, "rack": "r%d" % (i % 17), "parity": str(i % 2)},
                    address="10.%d.%d.%d:7000" % (i >> 16, (i >> 8) & 255, i & 255),
                    version="2.%d" % (i % 5), load=(i % 100) / 100,
                    capacity=api.pb.Resources(cpu_millis=1000 + i % 8000, memory_bytes=i << 20,
                                              gpus=i % 3, max_jobs=i % 9))


def register_bounded(api, nodes, inflight=INFLIGHT):
    """Registers the nodes with `inflight` calls in flight; returns {id: lease token}."""
    tokens, pending = {}, []
    for n in nodes:
        pending.append((n.id, api.Register.future(api.pb.RegisterRequest(node=n), timeout=60)))
        if len(pending) >= inflight:
            node_id, f = pending.pop(0)
            tokens[node_id] = f.result().lease_token
    for node_id, f in pending:
        tokens[node_id] = f.result().lease_token
    return tokens


def populate(api, pb, total):
    """Pools and nodes; returns the lease tokens and what changed on purpose."""
    for name, kw in POOLS:
        api.create_pool(name, **kw)
    api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(
        name="devnet", description="updated", labels={"env": "dev"},
        specializations=["developer", "storage", "analytics", "gpu"])), timeout=10)
    api.DeletePool(pb.DeletePoolRequest(name="testnet"), timeout=10)
    # the short-lived nodes last: DOWN ones are removed after 10 TTLs
    nodes = [rec_node(api, i, "rec-main" if i % 2 else "devnet")
             for i in range(total - FAST_NODES)]
    nodes += [rec_node(api, i, "rec-fast") for i in range(FAST_NODES)]
    tokens = register_bounded(api, nodes)
    ids = sorted(tokens)
    drained = ids[10:13]
    for node_id in drained:
        api.Drain(pb.DrainRequest(pool=node_id.partition(".")[0], node_id=node_id), timeout=10)
    gone = ids[20:23]
    for node_id in gone:
        api.Deregister(pb.DeregisterRequest(pool=node_id.partition(".")[0], node_id=node_id,
                                            lease_token=tokens.pop(node_id)), timeout=10)
    # the holder re-registers with new labels: the update must be what comes back
    upd = ids[30]
    n = [x for x in nodes if x.id == upd][0]
    n.labels["updated"] = "yes"
    r = api.Register(pb.RegisterRequest(node=n, lease_token=tokens[upd]), timeout=10)
    assert r.lease_token == tokens[upd]
    return tokens, drained, gone, upd


def snapshot(api, pb):
    pools = {p.name: p for p in api.ListPools(pb.ListPoolsRequest(), timeout=10).pools}
    nodes = {}
    for name in pools:
        nodes.update(list_nodes(api, name))
    return pools, nodes


def stored(n):
    """The node without the fields that are not expected to survive a restart."""
    c = type(n)()
    c.CopyFrom(n)
    c.ClearField("state")
    c.ClearField("flap_count")
    c.ClearField("last_heartbeat_unix_ms")
    c.ClearField("revision")  # test_revision_after_restart
    return c


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_recovery(make_server, pb, health_pb2, sig):
    total = env_int("GX_RECOVERY_NODES", 10000)
    s, t_empty = start_timed(make_server)
    t0 = time.monotonic()
    with s.channel() as ch:
        api = Api(ch, pb)
        tokens, drained, gone, upd = populate(api, pb, total)
        t_reg = time.monotonic() - t0
        # the fast pool's nodes lapse (no heartbeats)
        assert wait_for(lambda: all(api.get(i, "rec-fast").state in (
            pb.NODE_STATE_SUSPECT, pb.NODE_STATE_DOWN) for i in FAST_IDS), 5)
        before_pools, before = snapshot(api, pb)
    assert len(before) == total - len(gone)
    if sig == signal.SIGTERM:
        assert s.stop() == 0, s.log()[-4000:]
    else:
        s.kill()
    s.assert_clean()

    s, t_recover = start_timed(make_server, data_dir=s.data_dir)
    report("recovery (%s): %d nodes registered in %.2fs; ready in %.3fs on an empty store, "
           "%.3fs on the populated one" % (signal.Signals(sig).name, total, t_reg, t_empty,
                                           t_recover))
    with s.channel() as ch:
        api = Api(ch, pb)
        # a fresh grace period: the lapsed nodes are HEALTHY again (checked first,
        # before their short TTL runs out again)
        for i in FAST_IDS:
            assert api.get(i, "rec-fast").state == pb.NODE_STATE_HEALTHY
        after_pools, after = snapshot(api, pb)
        assert sorted(after_pools) == ["devnet", "mainnet", "rec-fast", "rec-main"]
        for name, p in before_pools.items():
            p.ClearField("self_preservation")
            q = after_pools[name]
            q.ClearField("self_preservation")
            assert q == p, name
        assert after_pools["rec-main"].max_nodes == 200000
        assert list(after_pools["rec-main"].specializations) == ["storage", "analytics", "gpu"]
        assert dict(after_pools["devnet"].labels) == {"env": "dev"}
        assert sorted(after) == sorted(before)
        for node_id, n in after.items():
            assert stored(n) == stored(before[node_id]), node_id
            want = pb.NODE_STATE_DRAINING if node_id in drained else pb.NODE_STATE_HEALTHY
            if not node_id.startswith("rec-fast."):
                assert n.state == want, n
        assert dict(after[upd].labels)["updated"] == "yes"
        for node_id in gone:
            code, _ = status_of(api.get, node_id, node_id.partition(".")[0])
            assert code == grpc.StatusCode.NOT_FOUND
        # lease tokens: every 10th node and the fast ones keep theirs
        sample = sorted(tokens)[::10] + FAST_IDS
        futs = [api.Heartbeat.future(pb.HeartbeatRequest(
            pool=i.partition(".")[0], node_id=i, lease_token=tokens[i], load=0.5), timeout=30)
            for i in sample]
        for f in futs:
            assert f.result().state in (pb.NODE_STATE_HEALTHY, pb.NODE_STATE_DRAINING)
        some = sorted(tokens)[-1]
        pool = some.partition(".")[0]
        code, msg = status_of(api.heartbeat, some, "0" * 48, pool=pool)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "lease_token" in msg
        code, _ = status_of(api.Register, pb.RegisterRequest(node=after[some]), timeout=10)
        assert code == grpc.StatusCode.ALREADY_EXISTS
        # the pool settings still apply
        code, msg = status_of(api.register, "bad-spec", pool="rec-main", specs=["developer"])
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "specializations" in msg
    assert_healthy(s, health_pb2)



# ---------------------------------------------------------------- revisions

def test_revision_after_restart(make_server, pb):
    """Revisions never go backwards across a restart, and a Watch resume with a
    revision from before the restart gets RESET (API.md: watch history lives
    in memory), even once the new server has made that many changes again."""
    s = make_server()
    with s.channel() as ch:
        api = Api(ch, pb)
        register_bounded(api, [api.node("a%03d" % i) for i in range(50)])
        rev = api.list(page_size=1).revision
    assert rev >= 50
    assert s.stop() == 0
    s = make_server(data_dir=s.data_dir)
    with s.channel() as ch:
        api = Api(ch, pb)
        register_bounded(api, [api.node("b%03d" % i) for i in range(60)])
        events = []
        call = api.Watch(pb.WatchRequest(pool="devnet", start_revision=rev), timeout=10)
        for ev in call:
            events.append(ev)
            if ev.type == pb.WATCH_EVENT_TYPE_SYNCED or len(events) > 200:
                break
        call.cancel()
        after = api.list(page_size=1).revision
        assert after >= rev + 60, (rev, after)
        assert events[0].type == pb.WATCH_EVENT_TYPE_RESET, events[:3]
        assert api.get("a049").revision > 0

# SPDX-License-Identifier: MIT
"""The Jobs service over the real binary (API.md, "service Jobs"): routing to
the one matching node and delivery in its heartbeats until it reports
RUNNING, PENDING jobs routed when a matching node appears or capacity comes
free, least_loaded, the hash and p2c routing modules, re-routing when a node
goes DOWN, leaves or does not acknowledge in time (and FAILED after
max_attempts), CancelJob and what the node hears of it, the visibility rules
of private and public pools, who may report on a job, validation, ListJobs
filters and paging, ExplainJob, pushes on an open HeartbeatStream, the
queue bound, durability across kill -9, retention, jobs_max, flapping nodes,
capacity accounting on every path a job leaves its node, concurrent churn,
and the /metrics counters."""
import importlib
import queue
import re
import secrets
import threading
import time
import types

import grpc
import pytest

from conftest import wait_for
from gxapi import Api, Heartbeater, page_ids, status_of, with_key

JOB_ID_RE = re.compile(r"^[0-9a-f]+$")
ADMIN_SECRET = "jobs-admin-" + secrets.token_hex(16)
AUTH = ("auth_apikey", "rbac")
GiB = 1 << 30


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def conf(**jobs):
    """A configuration with a `jobs:` section holding @jobs."""
    text = "server:\n  log_level: info\n"
    if jobs:
        text += "jobs:\n" + "".join("  %s: %s\n" % kv for kv in jobs.items())
    return text


class JobsApi(Api):
    """Api plus short names for the Jobs calls."""

    def job(self, pool, spec="gpu", **kw):
        return self.pb.Job(pool=pool, specialization=spec, **kw)

    def submit(self, pool, spec="gpu", **kw):
        return self.SubmitJob(self.pb.SubmitJobRequest(job=self.job(pool, spec, **kw)),
                              timeout=10)

    def explain(self, pool, spec="gpu", **kw):
        return self.ExplainJob(self.pb.SubmitJobRequest(job=self.job(pool, spec, **kw)),
                               timeout=10)

    def get_job(self, id):
        return self.GetJob(self.pb.GetJobRequest(id=id), timeout=5)

    def cancel(self, id):
        return self.CancelJob(self.pb.CancelJobRequest(id=id), timeout=10)

    def update(self, id, node_id, token, state, message=""):
        return self.UpdateJobStatus(self.pb.UpdateJobStatusRequest(
            id=id, node_id=node_id, lease_token=token, state=state, message=message),
            timeout=10)

    def list_jobs(self, pool, **kw):
        return self.ListJobs(self.pb.ListJobsRequest(pool=pool, **kw), timeout=10)

    def list_ids(self, pool, page_size=0, **kw):
        """Every job id of a listing, page after page, and the page lengths."""
        return page_ids(lambda token: self.list_jobs(pool, page_size=page_size,
                                                     page_token=token, **kw), "jobs")

    def deliveries(self, id, token, pool, load=0.5):
        """The jobs of one heartbeat of node @id: {job id: Job}."""
        r = self.heartbeat(id, token, pool=pool, load=load)
        return {j.id: j for j in r.assigned_jobs}

    def state_of_job(self, id):
        return self.get_job(id).state


@pytest.fixture
def connect(pb):
    """connect(server, secret=None) → JobsApi on a channel closed at the end."""
    chans = []

    def make(server, secret=None):
        ch = server.channel()
        chans.append(ch)
        return JobsApi(with_key(ch, secret), pb)

    yield make
    for ch in chans:
        ch.close()


class Stream:
    """A HeartbeatStream: requests from a queue, answers read into a queue by a thread."""

    def __init__(self, api, timeout=30):
        self.reqs = queue.Queue()
        self.answers = queue.Queue()
        self.call = api.HeartbeatStream(self._requests(), timeout=timeout)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _requests(self):
        while True:
            r = self.reqs.get()
            if r is None:
                return
            yield r

    def _read(self):
        try:
            for a in self.call:
                self.answers.put(a)
        except grpc.RpcError as e:
            self.answers.put(e)

    def send(self, req):
        self.reqs.put(req)

    def next(self, timeout=5):
        try:
            a = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no HeartbeatResponse within %ss" % timeout)
        if isinstance(a, Exception):
            raise a
        return a

    def close(self):
        self.reqs.put(None)
        self.call.cancel()
        self.thread.join(5)


def job_on(api, id, node):
    """wait_for predicate: job @id is ASSIGNED to @node."""
    def pred():
        j = api.get_job(id)
        return j if j.state == api.pb.JOB_STATE_ASSIGNED and j.node_id == node else None
    return pred


# ---------------------------------------------------------------- 1. route and deliver

def test_routed_to_the_only_matching_node_and_delivered_until_running(make_server, connect,
                                                                      pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-one")
    api.create_pool("j-one-b")
    gpu = api.register("n1", pool="j-one", specs=["gpu"]).lease_token
    cpu = api.register("n2", pool="j-one", specs=["cpu"]).lease_token
    # a node of the same id and specialization in another pool
    twin = api.register("n1", pool="j-one-b", specs=["gpu"]).lease_token
    payload = bytes(range(256)) * 40 + b"\x00end"
    j = api.submit("j-one", "gpu", payload=payload, routing_key="rk-1")
    assert JOB_ID_RE.match(j.id), j.id
    assert j.state == pb.JOB_STATE_ASSIGNED and j.node_id == "n1" and j.attempts == 1
    assert j.pool == "j-one" and j.specialization == "gpu" and j.payload == payload
    assert j.submitter == "" and j.created_unix_ms > 0 and j.updated_unix_ms >= j.created_unix_ms
    assert api.get_job(j.id) == j           # the reply is the job as stored
    # repeated in every heartbeat of n1 until it reports RUNNING
    for _ in range(3):
        got = api.deliveries("n1", gpu, "j-one")
        assert list(got) == [j.id]
        d = got[j.id]
        assert d.payload == payload and d.state == pb.JOB_STATE_ASSIGNED
        assert d.node_id == "n1" and d.routing_key == "rk-1" and d.specialization == "gpu"
        # never to another node, nor to the node of the same id in another pool
        assert api.deliveries("n2", cpu, "j-one") == {}
        assert api.deliveries("n1", twin, "j-one-b") == {}
    r = api.update(j.id, "n1", gpu, pb.JOB_STATE_RUNNING, "started")
    assert r.state == pb.JOB_STATE_RUNNING and r.message == "started" and r.node_id == "n1"
    g = api.get_job(j.id)
    assert g.state == pb.JOB_STATE_RUNNING and g.message == "started" and g.attempts == 1
    assert api.deliveries("n1", gpu, "j-one") == {}
    r = api.update(j.id, "n1", gpu, pb.JOB_STATE_SUCCEEDED, "done")
    assert r.state == pb.JOB_STATE_SUCCEEDED
    g = api.get_job(j.id)
    assert g.state == pb.JOB_STATE_SUCCEEDED and g.message == "done" and g.payload == payload
    assert g.attempts == 1 and g.updated_unix_ms >= j.updated_unix_ms
    assert api.deliveries("n1", gpu, "j-one") == {}
    assert api.deliveries("n2", cpu, "j-one") == {}


# ---------------------------------------------------------------- 2. pending until a match

def test_pending_until_a_matching_node_registers(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-pend")
    R = pb.Resources
    api.register("small", pool="j-pend", specs=["gpu"], labels={"zone": "a"},
                 capacity=R(cpu_millis=1000, memory_bytes=GiB, gpus=1, max_jobs=2))
    filler = api.submit("j-pend", "gpu")          # takes one of the two job slots
    assert filler.state == pb.JOB_STATE_ASSIGNED and filler.node_id == "small"
    cases = {
        "specialization": dict(spec="tpu"),
        "label": dict(node_selector={"zone": "b"}),
        "label-missing": dict(node_selector={"rack": "r1"}),
        "cpu": dict(resources=R(cpu_millis=1001)),
        "memory": dict(resources=R(memory_bytes=GiB + 1)),
        "gpus": dict(resources=R(gpus=2)),
    }
    pending = {}
    for name, kw in cases.items():
        spec = kw.pop("spec", "gpu")
        j = api.submit("j-pend", spec, **kw)
        assert j.state == pb.JOB_STATE_PENDING and j.node_id == "" and j.attempts == 0, name
        pending[name] = j.id
    # a job that fits takes the second slot; the next one finds max_jobs reached
    fits = api.submit("j-pend", "gpu", node_selector={"zone": "a"},
                      resources=R(cpu_millis=1000, memory_bytes=GiB, gpus=1))
    assert fits.state == pb.JOB_STATE_ASSIGNED and fits.node_id == "small"
    j = api.submit("j-pend", "gpu")
    assert j.state == pb.JOB_STATE_PENDING and j.node_id == "", "max_jobs 2 not enforced"
    pending["max_jobs"] = j.id
    time.sleep(0.3)        # a pass over the queue or two changes nothing
    for name, id in pending.items():
        g = api.get_job(id)
        assert g.state == pb.JOB_STATE_PENDING and g.node_id == "", name
    # a node that matches all of them (0 = unlimited): they go to it by themselves
    api.register("big", pool="j-pend", specs=["gpu", "tpu"],
                 labels={"zone": "b", "rack": "r1"},
                 capacity=R(cpu_millis=0, memory_bytes=0, gpus=0, max_jobs=0))
    for name, id in pending.items():
        g = wait_for(job_on(api, id, "big"), 5)
        assert g, (name, api.get_job(id))
        assert g.attempts == 1


def test_freed_capacity_routes_a_pending_job(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-cap")
    R = pb.Resources
    tok = api.register("w", pool="j-cap", specs=["gpu"],
                       capacity=R(cpu_millis=2000, gpus=1)).lease_token
    a = api.submit("j-cap", resources=R(cpu_millis=1500, gpus=1))
    assert a.state == pb.JOB_STATE_ASSIGNED and a.node_id == "w"
    b = api.submit("j-cap", resources=R(cpu_millis=1500))
    assert b.state == pb.JOB_STATE_PENDING
    api.update(a.id, "w", tok, pb.JOB_STATE_RUNNING)
    time.sleep(0.3)
    assert api.get_job(b.id).state == pb.JOB_STATE_PENDING      # RUNNING still takes it
    api.update(a.id, "w", tok, pb.JOB_STATE_SUCCEEDED)
    g = wait_for(job_on(api, b.id, "w"), 5)
    assert g and g.attempts == 1, api.get_job(b.id)
    assert b.id in api.deliveries("w", tok, "j-cap")
    # a FAILED job frees its capacity too
    c = api.submit("j-cap", resources=R(cpu_millis=1000))
    assert c.state == pb.JOB_STATE_PENDING
    api.update(b.id, "w", tok, pb.JOB_STATE_RUNNING)
    api.update(b.id, "w", tok, pb.JOB_STATE_FAILED, "oom")
    assert wait_for(job_on(api, c.id, "w"), 5), api.get_job(c.id)
    assert api.get_job(b.id).message == "oom"


# ---------------------------------------------------------------- 3. least_loaded

def test_least_loaded(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-ll")
    tok = {n: api.register(n, pool="j-ll", specs=["gpu"]).lease_token for n in "abc"}
    for n, load in (("a", 0.7), ("b", 0.2), ("c", 0.5)):
        api.heartbeat(n, tok[n], pool="j-ll", load=load)
    assert api.submit("j-ll").node_id == "b"
    assert api.submit("j-ll").node_id == "b"      # load first, whatever b holds
    for n, load in (("a", 0.4), ("b", 0.9), ("c", 0.1)):
        api.heartbeat(n, tok[n], pool="j-ll", load=load)
    assert api.submit("j-ll").node_id == "c"
    # equal loads: the node with fewer assigned jobs (b 2, c 1, a 0)
    for n in "abc":
        api.heartbeat(n, tok[n], pool="j-ll", load=0.3)
    assert api.submit("j-ll").node_id == "a"      # a 1, b 2, c 1
    got = api.submit("j-ll").node_id              # a or c (1 each), never b
    assert got in ("a", "c")
    other = "c" if got == "a" else "a"
    assert api.submit("j-ll").node_id == other    # now a 2, b 2, c 2
    seen = [api.submit("j-ll").node_id for _ in range(3)]
    assert sorted(seen) == ["a", "b", "c"]


# ---------------------------------------------------------------- 4. routing modules

def submit_many(api, reqs, batch=50):
    out = []
    for i in range(0, len(reqs), batch):
        fs = [api.SubmitJob.future(api.pb.SubmitJobRequest(job=r), timeout=20)
              for r in reqs[i:i + batch]]
        out += [f.result() for f in fs]
    return out


def test_hash_routing_is_sticky_and_moves_about_1_in_n(make_server, connect, pb):
    s = make_server(config=conf(), tls=False, modules=["route_hash", "route_p2c"])
    api = connect(s)
    p = api.create_pool("j-hash", routing_policy="hash")
    assert p.routing_policy == "hash"
    nodes = ["h%02d" % i for i in range(10)]
    tok = {n: api.register(n, pool="j-hash", specs=["gpu"]).lease_token for n in nodes}
    keys = ["key-%03d" % i for i in range(200)]
    first = submit_many(api, [api.job("j-hash", routing_key=k) for k in keys])
    before = {}
    for k, j in zip(keys, first):
        assert j.state == pb.JOB_STATE_ASSIGNED and j.routing_key == k
        before[k] = j.node_id
    assert len(set(before.values())) >= 8, "200 keys on 10 nodes should spread"
    # the same key goes to the same node, whatever the loads say
    for i, n in enumerate(nodes):
        api.heartbeat(n, tok[n], pool="j-hash", load=i / 10)
    again = submit_many(api, [api.job("j-hash", routing_key=k) for k in keys[:60] * 2])
    for k, j in zip(keys[:60] * 2, again):
        assert j.node_id == before[k], (k, before[k], j.node_id)
    # ExplainJob agrees with where the key lives
    for k in keys[:5]:
        assert api.explain("j-hash", routing_key=k).chosen_node_id == before[k]
    # an 11th node takes about 1/11 of the keys, from everyone, and nothing else moves
    api.register("h10", pool="j-hash", specs=["gpu"])
    after_jobs = submit_many(api, [api.job("j-hash", routing_key=k) for k in keys])
    after = {k: j.node_id for k, j in zip(keys, after_jobs)}
    moved = [k for k in keys if after[k] != before[k]]
    assert 0.02 * len(keys) <= len(moved) <= 0.25 * len(keys), len(moved)
    assert all(after[k] == "h10" for k in moved), {k: (before[k], after[k]) for k in moved}
    assert len({before[k] for k in moved}) >= 3, "moved keys came from few nodes"
    # a drained node's keys move (each to one other node), and no other key does
    api.Drain(pb.DrainRequest(pool="j-hash", node_id="h03"), timeout=5)
    drained = submit_many(api, [api.job("j-hash", routing_key=k) for k in keys])
    final = {k: j.node_id for k, j in zip(keys, drained)}
    for k in keys:
        if after[k] == "h03":
            assert final[k] != "h03", k
        else:
            assert final[k] == after[k], (k, after[k], final[k])
    assert any(after[k] == "h03" for k in keys)


def test_p2c_routing_and_unknown_policies(make_server, connect, pb):
    s = make_server(config=conf(), tls=False, modules=["route_hash", "route_p2c"])
    api = connect(s)
    mods = {m.name for m in api.ListModules(pb.ListModulesRequest(), timeout=5).modules}
    assert {"route_hash", "route_p2c"} <= mods, mods
    assert api.create_pool("j-p2c", routing_policy="p2c").routing_policy == "p2c"
    one = api.register("solo", pool="j-p2c", specs=["gpu"]).lease_token
    j = api.submit("j-p2c")
    assert j.state == pb.JOB_STATE_ASSIGNED and j.node_id == "solo"
    assert j.id in api.deliveries("solo", one, "j-p2c", load=0.9)
    fresh = api.register("fresh", pool="j-p2c", specs=["gpu"]).lease_token
    api.heartbeat("fresh", fresh, pool="j-p2c", load=0.1)
    # two eligible nodes: both are drawn every time, the less busy one wins
    got = [api.submit("j-p2c").node_id for _ in range(10)]
    assert got == ["fresh"] * 10, got
    # a policy nobody loaded, at CreatePool and at UpdatePool
    for name in ("nope", "least-loaded", "hash2"):
        code, msg = status_of(api.create_pool, "j-bad", routing_policy=name)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(
            "pool.routing_policy"), (name, code, msg)
        code, msg = status_of(api.UpdatePool, pb.UpdatePoolRequest(
            pool=pb.Pool(name="j-p2c", routing_policy=name)), timeout=5)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(
            "pool.routing_policy"), (name, code, msg)
    assert api.GetPool(pb.GetPoolRequest(name="j-p2c"), timeout=5).routing_policy == "p2c"
    code, _ = status_of(api.GetPool, pb.GetPoolRequest(name="j-bad"), timeout=5)
    assert code == grpc.StatusCode.NOT_FOUND
    u = api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name="j-p2c", routing_policy="hash")),
                       timeout=5)
    assert u.routing_policy == "hash"
    # a pool may name the module instead of the policy; "route_" alone names nothing
    m = api.create_pool("j-mod", routing_policy="route_p2c")
    assert m.routing_policy == "route_p2c"
    api.register("m1", pool="j-mod", specs=["gpu"])
    assert api.submit("j-mod").node_id == "m1"
    code, msg = status_of(api.create_pool, "j-bad", routing_policy="route_")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("pool.routing_policy")


def test_p2c_samples_a_big_pool_and_keeps_to_eligible_nodes(make_server, connect, pb):
    # 24 nodes (p2c draws 2 of them instead of judging all 24): half lack the selector's
    # label, and the most loaded labelled node can never win a draw
    s = make_server(config=conf(), tls=False, modules=["route_p2c"])
    api = connect(s)
    api.create_pool("j-p2cs", routing_policy="p2c")
    labelled = []
    for i in range(24):
        zone = "a" if i % 2 == 0 else "b"
        tok = api.register("s%02d" % i, pool="j-p2cs", specs=["gpu"],
                           labels={"zone": zone}).lease_token
        api.heartbeat("s%02d" % i, tok, pool="j-p2cs", load=i / 24)
        if zone == "a":
            labelled.append("s%02d" % i)
    busiest = labelled[-1]
    got = submit_many(api, [api.job("j-p2cs", node_selector={"zone": "a"})
                            for _ in range(120)])
    nodes = [j.node_id for j in got]
    assert all(j.state == pb.JOB_STATE_ASSIGNED for j in got)
    assert set(nodes) <= set(labelled), set(nodes) - set(labelled)
    assert busiest not in nodes
    assert len(set(nodes)) >= 5, "p2c should spread over the less loaded nodes"
    # with the label on one node only, random draws rarely meet it: every node is judged
    api.register("lonely", pool="j-p2cs", specs=["gpu"], labels={"zone": "c"})
    for _ in range(5):
        assert api.submit("j-p2cs", node_selector={"zone": "c"}).node_id == "lonely"


def test_routing_modules_not_loaded_means_unknown_policy(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    for name in ("hash", "p2c"):
        code, msg = status_of(api.create_pool, "j-x", routing_policy=name)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith(
            "pool.routing_policy"), (code, msg)
    api.create_pool("j-x")
    code, msg = status_of(api.UpdatePool, pb.UpdatePoolRequest(
        pool=pb.Pool(name="j-x", routing_policy="hash")), timeout=5)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("pool.routing_policy")
    assert api.create_pool("j-y", routing_policy="least_loaded").routing_policy == \
        "least_loaded"


# ---------------------------------------------------------------- 5. node lost

def test_node_down_and_deregister_reroute_then_fail(make_server, connect, pb):
    s = make_server(config=conf(max_attempts=2, ack_timeout_ms=60000), tls=False)
    api = connect(s)
    api.create_pool("j-down", heartbeat_interval_ms=100, node_ttl_ms=300)
    hb = Heartbeater(connect(s), "j-down", period=0.04, limit=60)
    try:
        tok = {}
        for n in ("a", "b"):
            tok[n] = api.register(n, pool="j-down", specs=["gpu"]).lease_token
            hb.add(n, tok[n])
        j = api.submit("j-down")
        first = j.node_id
        assert j.state == pb.JOB_STATE_ASSIGNED and first in tok and j.attempts == 1
        second = "b" if first == "a" else "a"
        api.update(j.id, first, tok[first], pb.JOB_STATE_RUNNING)
        # the node stops heartbeating: DOWN after 2 TTLs, its RUNNING job moves on
        hb.drop(first)
        t0 = time.monotonic()
        g = wait_for(job_on(api, j.id, second), 5)
        assert g, api.get_job(j.id)
        assert time.monotonic() - t0 >= 0.4
        assert g.attempts == 2, g
        assert api.get(first, "j-down").state == pb.NODE_STATE_DOWN
        v = {x.node_id: x for x in api.explain("j-down").verdicts}
        assert not v[first].eligible and any("state" in r for r in v[first].reasons), v
        assert j.id in api.deliveries(second, tok[second], "j-down")
        # the first node may not report on it any more
        code, _ = status_of(api.update, j.id, first, tok[first], pb.JOB_STATE_SUCCEEDED)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        # the second node dies too: max_attempts 2 reached, FAILED with a message
        hb.drop(second)
        assert wait_for(lambda: api.state_of_job(j.id) == pb.JOB_STATE_FAILED, 5), \
            api.get_job(j.id)
        g = api.get_job(j.id)
        assert g.attempts == 2 and g.message and "2" in g.message, g
        # Deregister re-routes at once
        for n in ("c", "d"):
            tok[n] = api.register(n, pool="j-down", specs=["gpu"]).lease_token
            hb.add(n, tok[n])
        k = api.submit("j-down")
        assert k.node_id in ("c", "d") and k.attempts == 1, k
        other = "d" if k.node_id == "c" else "c"
        hb.drop(k.node_id)
        api.Deregister(pb.DeregisterRequest(pool="j-down", node_id=k.node_id,
                                            lease_token=tok[k.node_id]), timeout=5)
        g = wait_for(job_on(api, k.id, other), 3)
        assert g and g.attempts == 2, api.get_job(k.id)
        assert k.id in api.deliveries(other, tok[other], "j-down")
        api.update(k.id, other, tok[other], pb.JOB_STATE_RUNNING)
        api.update(k.id, other, tok[other], pb.JOB_STATE_SUCCEEDED)
        assert api.get_job(k.id).state == pb.JOB_STATE_SUCCEEDED
        # a job whose only node leaves waits PENDING (attempts left) for the next one
        m = api.submit("j-down", "solo-spec")
        assert m.state == pb.JOB_STATE_PENDING
        tok["e"] = api.register("e", pool="j-down", specs=["solo-spec"]).lease_token
        hb.add("e", tok["e"])
        assert wait_for(job_on(api, m.id, "e"), 3)
        hb.drop("e")
        api.Deregister(pb.DeregisterRequest(pool="j-down", node_id="e",
                                            lease_token=tok["e"]), timeout=5)
        g = wait_for(lambda: api.get_job(m.id).state == pb.JOB_STATE_PENDING and
                     api.get_job(m.id), 3)
        assert g and g.node_id == "" and g.attempts == 1, api.get_job(m.id)
    finally:
        hb.stop()


# ---------------------------------------------------------------- 6. ack timeout

def test_ack_timeout_reroutes_then_fails(make_server, connect, pb):
    s = make_server(config=conf(ack_timeout_ms=1000, max_attempts=2), tls=False)
    api = connect(s)
    api.create_pool("j-ack")
    tok = {n: api.register(n, pool="j-ack", specs=["gpu"]).lease_token for n in ("a", "b")}
    api.create_pool("j-ack1")
    tsolo = api.register("solo", pool="j-ack1", specs=["gpu"]).lease_token
    solo = api.submit("j-ack1")
    j = api.submit("j-ack")
    first = j.node_id
    second = "b" if first == "a" else "a"
    t0 = time.monotonic()
    assert j.id in api.deliveries(first, tok[first], "j-ack")
    g = wait_for(job_on(api, j.id, second), 4)
    took = time.monotonic() - t0
    assert g, api.get_job(j.id)
    assert 0.8 <= took <= 3.5, took
    assert g.attempts == 2, g
    assert j.id not in api.deliveries(first, tok[first], "j-ack")
    assert j.id in api.deliveries(second, tok[second], "j-ack")
    code, _ = status_of(api.update, j.id, first, tok[first], pb.JOB_STATE_RUNNING)
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # with no other node, the job comes back to the same one, one attempt more
    g = wait_for(lambda: (lambda x: x.attempts == 2 and x)(api.get_job(solo.id)), 2)
    assert g and g.state == pb.JOB_STATE_ASSIGNED and g.node_id == "solo", api.get_job(solo.id)
    assert solo.id in api.deliveries("solo", tsolo, "j-ack1")
    api.update(solo.id, "solo", tsolo, pb.JOB_STATE_RUNNING)
    # acknowledged: no timeout any more
    api.update(j.id, second, tok[second], pb.JOB_STATE_RUNNING)
    # a second job is never acknowledged anywhere: two timeouts, then FAILED
    k = api.submit("j-ack")
    assert k.node_id == first       # the other node holds a RUNNING job
    assert wait_for(lambda: api.state_of_job(k.id) == pb.JOB_STATE_FAILED, 6), api.get_job(k.id)
    g = api.get_job(k.id)
    assert g.attempts == 2 and g.message, g
    time.sleep(0.3)
    r = api.get_job(j.id)
    assert r.state == pb.JOB_STATE_RUNNING and r.node_id == second and r.attempts == 2
    r = api.get_job(solo.id)
    assert r.state == pb.JOB_STATE_RUNNING and r.node_id == "solo" and r.attempts == 2
    m = s.metrics()
    assert m["galaxy_jobs_ack_timeouts_total"] >= 3, m


def test_many_ack_timeouts_at_once_cost_one_attempt_each(make_server, connect, pb):
    """300 jobs time out together: each is re-routed once (attempts 2) and
    waits a full ack_timeout_ms again on its new node; none is failed early,
    none disappears."""
    s = make_server(config=conf(ack_timeout_ms=1000, max_attempts=3), tls=False)
    api = connect(s)
    api.create_pool("j-ack-many")
    for n in ("a", "b"):
        api.register(n, pool="j-ack-many", specs=["gpu"])
    jobs = submit_many(api, [api.job("j-ack-many") for _ in range(300)], batch=100)
    t0 = time.monotonic()
    assert all(j.state == pb.JOB_STATE_ASSIGNED and j.attempts == 1 for j in jobs)
    # all re-routed once by 1 s + ticks; none may time out again before 2 s
    assert wait_for(lambda: all(code_of(api.get_job, j.id)[0] != "OK" or
                                api.get_job(j.id).attempts != 1 for j in jobs[-10:]), 3)
    time.sleep(max(0, 1.5 - (time.monotonic() - t0)))
    assert time.monotonic() - t0 < 1.9, "too slow to check in time"
    by = {}
    for j in jobs:
        code, g = code_of(api.get_job, j.id)
        key = ("missing",) if code != "OK" else (pb.JobState.Name(g.state), g.attempts)
        by.setdefault(key, []).append(j.id)
    assert list(by) == [("JOB_STATE_ASSIGNED", 2)], {k: len(v) for k, v in by.items()}


def test_ack_timeouts_while_jobs_are_listed(make_server, connect, pb):
    """Jobs never acknowledged, with ack_timeout_ms 100, while another client
    lists a pool of 1000 jobs: each is re-assigned at most once per 100 ms (an
    assignment is given its full ack_timeout_ms), so in 2 s none comes near
    max_attempts 1000, and none fails or disappears."""
    s = make_server(config=conf(ack_timeout_ms=100, max_attempts=1000), tls=False)
    api = connect(s)
    api.create_pool("j-tick")
    api.create_pool("j-bulk")
    for n in ("v1", "v2"):
        api.register(n, pool="j-tick", specs=["gpu"])
    submit_many(api, [api.job("j-bulk", "nobody") for _ in range(1000)], batch=200)
    stop = threading.Event()
    lister_api = connect(s)

    def lister():
        while not stop.is_set():
            lister_api.list_jobs("j-bulk", page_size=1000)

    t = threading.Thread(target=lister)
    t.start()
    try:
        t0 = time.monotonic()
        ids = [api.submit("j-tick").id for _ in range(20)]
        bad = None
        while bad is None and time.monotonic() - t0 < 2.0:
            time.sleep(0.1)
            limit = (time.monotonic() - t0) / 0.1 + 2
            for id in ids:
                code, g = code_of(api.get_job, id)
                if code != "OK" or g.state != pb.JOB_STATE_ASSIGNED or g.attempts > limit:
                    bad = (round(time.monotonic() - t0, 2), "attempts limit %.0f" % limit,
                           id, code, g if code != "OK" else
                           (pb.JobState.Name(g.state), g.attempts, g.message))
                    break
        assert bad is None, bad
    finally:
        stop.set()
        t.join(10)


# ---------------------------------------------------------------- 7. cancel

def test_cancel(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-can")
    tok = api.register("w", pool="j-can", specs=["gpu"],
                       capacity=pb.Resources(max_jobs=2)).lease_token
    # PENDING → CANCELLED
    p = api.submit("j-can", "nobody")
    c = api.cancel(p.id)
    assert c.state == pb.JOB_STATE_CANCELLED and c.id == p.id and c.message
    assert api.get_job(p.id).state == pb.JOB_STATE_CANCELLED
    assert p.id not in api.list_ids("j-can", states=[pb.JOB_STATE_PENDING])[0]
    # ASSIGNED → CANCELLED, and the node hears of it once
    a = api.submit("j-can")
    assert a.state == pb.JOB_STATE_ASSIGNED
    assert api.cancel(a.id).state == pb.JOB_STATE_CANCELLED
    got = api.deliveries("w", tok, "j-can")
    assert a.id in got and got[a.id].state == pb.JOB_STATE_CANCELLED, got
    assert a.id not in api.deliveries("w", tok, "j-can")
    # RUNNING → CANCELLED
    r = api.submit("j-can")
    api.update(r.id, "w", tok, pb.JOB_STATE_RUNNING)
    assert api.cancel(r.id).state == pb.JOB_STATE_CANCELLED
    got = api.deliveries("w", tok, "j-can")
    assert r.id in got and got[r.id].state == pb.JOB_STATE_CANCELLED, got
    # the node may not report on a cancelled job (heard of or not)
    code, msg = status_of(api.update, r.id, "w", tok, pb.JOB_STATE_SUCCEEDED)
    assert code == grpc.StatusCode.FAILED_PRECONDITION, (code, msg)
    x = api.submit("j-can")
    api.cancel(x.id)
    code, msg = status_of(api.update, x.id, "w", tok, pb.JOB_STATE_RUNNING)
    assert code == grpc.StatusCode.FAILED_PRECONDITION, (code, msg)
    assert api.get_job(x.id).state == pb.JOB_STATE_CANCELLED
    # finished jobs cannot be cancelled
    f = api.submit("j-can")
    api.update(f.id, "w", tok, pb.JOB_STATE_RUNNING)
    api.update(f.id, "w", tok, pb.JOB_STATE_SUCCEEDED)
    for id in (f.id, p.id, a.id):
        code, _ = status_of(api.cancel, id)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, id
    assert api.get_job(f.id).state == pb.JOB_STATE_SUCCEEDED
    # cancelling frees capacity: a job waiting for a slot gets routed
    h1, h2 = api.submit("j-can"), api.submit("j-can")
    assert h1.state == h2.state == pb.JOB_STATE_ASSIGNED
    q = api.submit("j-can")
    assert q.state == pb.JOB_STATE_PENDING
    api.cancel(h1.id)
    assert wait_for(job_on(api, q.id, "w"), 3), api.get_job(q.id)
    code, _ = status_of(api.cancel, "00000000000000000000ff")
    assert code == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------- 8. visibility

def code_of(fn, *a, **kw):
    """(status code, details) of a call, or ("OK", answer)."""
    try:
        return "OK", fn(*a, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()


def auth_world(make_server, connect, pb):
    """A server with auth_apikey + rbac, a private and a public pool, and keys
    for two submitters, an operator, two node keys and an outsider."""
    w = types.SimpleNamespace()
    w.s = make_server(config=conf(), tls=False, modules=AUTH,
                      env={"GALAXY_ADMIN_KEY": ADMIN_SECRET})
    w.admin = connect(w.s, ADMIN_SECRET)
    w.admin.create_pool("j-priv", visibility=pb.VISIBILITY_PRIVATE)
    w.admin.create_pool("j-pub", visibility=pb.VISIBILITY_PUBLIC)
    w.admin.create_pool("j-else", visibility=pb.VISIBILITY_PRIVATE)
    both = ["j-priv", "j-pub"]
    w.keys = {}
    for name, role, pools in (("sub1", pb.ROLE_SUBMITTER, both), ("sub2", pb.ROLE_SUBMITTER, both),
                              ("op", pb.ROLE_OPERATOR, both), ("node", pb.ROLE_NODE, both),
                              ("node2", pb.ROLE_NODE, both),
                              ("out", pb.ROLE_SUBMITTER, ["j-else", "j-pub"])):
        w.keys[name] = w.admin.CreateApiKey(pb.CreateApiKeyRequest(name=name, role=role,
                                                                   pools=pools), timeout=5)
    w.api = {n: connect(w.s, k.secret) for n, k in w.keys.items()}
    w.anon, w.anon2 = connect(w.s), connect(w.s)
    return w


def test_private_pool_job_visibility(make_server, connect, pb):
    w = auth_world(make_server, connect, pb)
    api, admin = w.api, w.admin
    NF, PD = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED
    reg = api["node"].register("w1", pool="j-priv", specs=["gpu"])
    tok = reg.lease_token
    assert reg.node.owner == "key:" + w.keys["node"].key.id
    j = api["sub1"].submit("j-priv", payload=b"secret")
    assert j.state == pb.JOB_STATE_ASSIGNED and j.node_id == "w1"
    assert j.submitter == "key:" + w.keys["sub1"].key.id
    pend = api["sub1"].submit("j-priv", "nobody")
    mine = api["sub2"].submit("j-priv", "nobody")
    # the submitter, an operator and the admin see it; so does its node
    for who in ("sub1", "op"):
        assert api[who].get_job(j.id).payload == b"secret", who
        assert j.id in api[who].list_ids("j-priv")[0], who
    assert admin.get_job(j.id).id == j.id
    assert api["node"].get_job(j.id).node_id == "w1"
    assert api["node"].list_ids("j-priv")[0] == [j.id]       # only what is on its node
    assert set(api["sub1"].list_ids("j-priv")[0]) == {j.id, pend.id}
    assert set(api["op"].list_ids("j-priv")[0]) == {j.id, pend.id, mine.id}
    assert set(admin.list_ids("j-priv")[0]) == {j.id, pend.id, mine.id}
    # another submitter, another node key: as if it did not exist
    for who in ("sub2", "node2"):
        code, msg = status_of(api[who].get_job, j.id)
        assert code == NF, (who, code, msg)
        assert j.id not in api[who].list_ids("j-priv")[0], who
    assert api["sub2"].list_ids("j-priv")[0] == [mine.id]
    assert api["sub2"].list_ids("j-priv", states=[pb.JOB_STATE_ASSIGNED])[0] == []
    code, msg_cancel = status_of(api["sub2"].cancel, j.id)
    assert code == NF, (code, msg_cancel)
    code, msg_missing = status_of(api["sub2"].cancel, "00000000000000000000ff")
    assert code == NF
    assert msg_cancel.replace(j.id, "X") == msg_missing.replace("00000000000000000000ff", "X")
    code, _ = status_of(api["node"].get_job, pend.id)   # not on its node
    assert code == NF
    # paging skips what the caller may not see and still fills every page
    more = []
    for i in range(5):
        more.append(api["sub1"].submit("j-priv", "nobody").id)
        more.append(api["sub2"].submit("j-priv", "nobody").id)
    ids, sizes = api["sub2"].list_ids("j-priv", page_size=2)
    assert ids == [mine.id] + more[1::2] and sizes == [2, 2, 2], (ids, sizes)
    ids, sizes = api["sub1"].list_ids("j-priv", page_size=3)
    assert ids == [j.id, pend.id] + more[0::2] and sizes == [3, 3, 1], (ids, sizes)
    # the submitter and an operator may cancel; the node's key may not
    assert api["sub1"].cancel(pend.id).state == pb.JOB_STATE_CANCELLED
    assert api["op"].cancel(mine.id).state == pb.JOB_STATE_CANCELLED
    code, _ = status_of(api["node"].cancel, j.id)       # it sees the job, may not cancel it
    assert code == PD, code
    assert api["sub1"].get_job(j.id).state == pb.JOB_STATE_ASSIGNED
    assert api["node"].update(j.id, "w1", tok, pb.JOB_STATE_RUNNING).state == \
        pb.JOB_STATE_RUNNING
    assert api["op"].cancel(j.id).state == pb.JOB_STATE_CANCELLED


def test_private_pool_is_not_found_to_outsiders_like_a_missing_pool(make_server, connect, pb):
    w = auth_world(make_server, connect, pb)
    NF = grpc.StatusCode.NOT_FOUND
    w.api["node"].register("w1", pool="j-priv", specs=["gpu"])
    j = w.api["sub1"].submit("j-priv")
    pend = w.api["sub1"].submit("j-priv", "nobody")
    calls = {"SubmitJob": lambda c, p: c.submit(p), "ListJobs": lambda c, p: c.list_jobs(p),
             "ExplainJob": lambda c, p: c.explain(p)}
    bad = []
    for who, caller in (("outsider", w.api["out"]), ("anonymous", w.anon)):
        for name, call in calls.items():
            got = code_of(call, caller, "j-priv")
            ghost = code_of(call, caller, "j-ghost")
            if not (got[0] == NF and ghost[0] == NF and
                    got[1].replace("j-priv", "j-ghost") == ghost[1]):
                bad.append((who, name, "j-priv:", got, "missing pool:", ghost))
        for id in (j.id, pend.id):
            for name, call in (("GetJob", caller.get_job), ("CancelJob", caller.cancel)):
                got = code_of(call, id)
                if got[0] != NF:
                    bad.append((who, name, got))
    assert not bad, bad
    assert w.api["sub1"].get_job(pend.id).state == pb.JOB_STATE_PENDING


def test_public_pool_job_visibility_and_cancel(make_server, connect, pb):
    w = auth_world(make_server, connect, pb)
    api, anon, anon2 = w.api, w.anon, w.anon2
    PD = grpc.StatusCode.PERMISSION_DENIED
    api["node"].register("w2", pool="j-pub", specs=["gpu"])
    a = anon.submit("j-pub", payload=b"open")
    assert a.submitter == "" and a.state == pb.JOB_STATE_ASSIGNED
    k1 = api["sub1"].submit("j-pub")
    k2 = api["sub1"].submit("j-pub")
    for caller in (anon2, api["sub2"], api["out"], api["node2"]):
        assert caller.get_job(a.id).payload == b"open"
        assert caller.get_job(k1.id).id == k1.id
        assert {a.id, k1.id, k2.id} <= set(caller.list_ids("j-pub")[0])
    # only the submitter or an operator may cancel
    for caller in (anon, api["sub2"], api["out"]):
        code, msg = status_of(caller.cancel, k1.id)
        assert code == PD, (code, msg)
    code, _ = status_of(api["sub2"].cancel, a.id)      # a key holder is not anonymous
    assert code == PD
    assert anon.get_job(k1.id).state == pb.JOB_STATE_ASSIGNED
    assert api["op"].cancel(k1.id).state == pb.JOB_STATE_CANCELLED
    assert api["sub1"].cancel(k2.id).state == pb.JOB_STATE_CANCELLED
    # anonymous callers share one identity
    assert anon2.cancel(a.id).state == pb.JOB_STATE_CANCELLED


def test_private_pool_update_status_on_an_invisible_job_is_not_found(make_server, connect,
                                                                     pb):
    """A job the caller may not see is NOT_FOUND to it, whatever the call: a
    node key whose own node does not hold the job, or a submitter key, gets
    from UpdateJobStatus on it what it gets for a job that does not exist."""
    w = auth_world(make_server, connect, pb)
    api = w.api
    tok = api["node"].register("w1", pool="j-priv", specs=["gpu"]).lease_token
    j = api["sub1"].submit("j-priv")
    assert j.node_id == "w1"
    tok3 = api["node2"].register("w3", pool="j-priv", specs=["cpu"]).lease_token
    missing = "00000000000000000000ff"
    bad = []
    for who, node, lease in (("node2", "w3", tok3), ("node2", "w1", tok3),
                             ("sub2", "w1", tok), ("out", "w1", tok)):
        got = code_of(api[who].update, j.id, node, lease, pb.JOB_STATE_RUNNING)
        ghost = code_of(api[who].update, missing, node, lease, pb.JOB_STATE_RUNNING)
        if got[0] != grpc.StatusCode.NOT_FOUND or \
                got[1].replace(j.id, missing) != ghost[1]:
            bad.append((who, node, "job:", got, "missing job:", ghost))
    assert not bad, bad
    assert api["sub1"].get_job(j.id).state == pb.JOB_STATE_ASSIGNED


# ---------------------------------------------------------------- 9. who reports

def test_update_job_status_checks_node_lease_and_state(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-upd")
    api.create_pool("j-upd2")
    ta = api.register("a", pool="j-upd", specs=["gpu"]).lease_token
    tb = api.register("b", pool="j-upd", specs=["cpu"]).lease_token
    tc = api.register("a", pool="j-upd2", specs=["gpu"]).lease_token   # same id elsewhere
    j = api.submit("j-upd")
    assert j.node_id == "a"
    PD, IA = grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT
    code, msg = status_of(api.update, j.id, "b", tb, pb.JOB_STATE_RUNNING)
    assert code == PD, (code, msg)
    for bad in (tb, tc, "x" * 43, "not-a-lease"):
        code, msg = status_of(api.update, j.id, "a", bad, pb.JOB_STATE_RUNNING)
        assert code == PD, (bad, code, msg)
    for st in (pb.JOB_STATE_PENDING, pb.JOB_STATE_ASSIGNED, pb.JOB_STATE_CANCELLED,
               pb.JOB_STATE_UNSPECIFIED, 42):
        code, msg = status_of(api.update, j.id, "a", ta, st)
        assert code == IA and msg.startswith("state"), (st, code, msg)
    code, msg = status_of(api.update, "00000000000000000000ff", "a", ta, pb.JOB_STATE_RUNNING)
    assert code == grpc.StatusCode.NOT_FOUND, (code, msg)
    g = api.get_job(j.id)
    assert g.state == pb.JOB_STATE_ASSIGNED and g.node_id == "a" and g.message == ""
    assert api.update(j.id, "a", ta, pb.JOB_STATE_RUNNING).state == pb.JOB_STATE_RUNNING
    code, _ = status_of(api.update, j.id, "b", tb, pb.JOB_STATE_SUCCEEDED)
    assert code == PD
    assert api.get_job(j.id).state == pb.JOB_STATE_RUNNING
    # RUNNING again is fine (a progress message); a finished job takes no report
    assert api.update(j.id, "a", ta, pb.JOB_STATE_RUNNING, "50%").message == "50%"
    assert api.update(j.id, "a", ta, pb.JOB_STATE_SUCCEEDED).state == pb.JOB_STATE_SUCCEEDED
    for st in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_RUNNING):
        code, _ = status_of(api.update, j.id, "a", ta, st)
        assert code == grpc.StatusCode.FAILED_PRECONDITION, st
    assert api.get_job(j.id).state == pb.JOB_STATE_SUCCEEDED


# ---------------------------------------------------------------- 10. validation

def test_validation(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-val")
    IA = grpc.StatusCode.INVALID_ARGUMENT
    bad_submits = [
        (pb.SubmitJobRequest(), "job"),
        (pb.SubmitJobRequest(job=pb.Job(pool="", specialization="gpu")), "job.pool"),
        (pb.SubmitJobRequest(job=pb.Job(pool="Bad_Pool", specialization="gpu")), "job.pool"),
        (pb.SubmitJobRequest(job=pb.Job(pool="j-val")), "job.specialization"),
        (pb.SubmitJobRequest(job=pb.Job(pool="j-val", specialization="Bad Spec")),
         "job.specialization"),
        (pb.SubmitJobRequest(job=pb.Job(pool="j-val", specialization="gpu",
                                        payload=b"\xab" * 1048577)), "job.payload"),
    ]
    for req, field in bad_submits:
        for call in (api.SubmitJob, api.ExplainJob):
            code, msg = status_of(call, req, timeout=10)
            assert code == IA and msg.startswith(field), (field, code, msg)
    # output-only fields sent by a client are ignored
    o = api.SubmitJob(pb.SubmitJobRequest(job=pb.Job(
        pool="j-val", specialization="gpu", id="mine", state=pb.JOB_STATE_SUCCEEDED,
        node_id="n9", submitter="key:forged", created_unix_ms=1, updated_unix_ms=2,
        attempts=7)), timeout=10)
    assert o.id != "mine" and JOB_ID_RE.match(o.id)
    assert o.state == pb.JOB_STATE_PENDING and o.node_id == "" and o.submitter == ""
    assert o.attempts == 0 and o.created_unix_ms > 1000 and o.updated_unix_ms > 1000
    assert api.get_job(o.id) == o
    api.cancel(o.id)
    # a specialization the pool does not allow
    api.create_pool("j-val-spec", specializations=["storage"])
    for call in (api.submit, api.explain):
        code, msg = status_of(call, "j-val-spec", "gpu")
        assert code == IA and msg.startswith("job.specialization"), (code, msg)
    assert api.submit("j-val-spec", "storage").state == pb.JOB_STATE_PENDING
    # UpdateJobStatus fields
    for kw, field in ((dict(id=""), "id"), (dict(node_id=""), "node_id"),
                      (dict(node_id="bad node"), "node_id"), (dict(lease_token=""), "lease_token"),
                      (dict(message="m" * 1025), "message")):
        req = dict(id=o.id, node_id="n1", lease_token="t", state=pb.JOB_STATE_RUNNING)
        req.update(kw)
        code, msg = status_of(api.UpdateJobStatus, pb.UpdateJobStatusRequest(**req), timeout=5)
        assert code == IA and msg.startswith(field), (kw, code, msg)
    # exactly 1 MiB is fine
    big = api.submit("j-val", payload=b"\xcd" * 1048576)
    assert big.state == pb.JOB_STATE_PENDING and len(big.payload) == 1048576
    assert api.get_job(big.id).payload == b"\xcd" * 1048576
    # unknown pool, unknown job
    code, msg = status_of(api.submit, "j-nosuch")
    assert code == grpc.StatusCode.NOT_FOUND and "j-nosuch" in msg, (code, msg)
    code, _ = status_of(api.explain, "j-nosuch")
    assert code == grpc.StatusCode.NOT_FOUND
    for call in (api.get_job, api.cancel):
        code, msg = status_of(call, "0123456789abcdef012345")
        assert code == grpc.StatusCode.NOT_FOUND, (code, msg)
        code, msg = status_of(call, "")
        assert code == IA and msg.startswith("id"), (code, msg)
    # ListJobs
    for kw, field in ((dict(pool=""), "pool"), (dict(pool="Bad_Pool"), "pool"),
                      (dict(pool="j-val", page_token="!!not a token!!"), "page_token"),
                      (dict(pool="j-val", page_token="Zm9v*"), "page_token"),
                      (dict(pool="j-val", states=[0]), "states"),
                      (dict(pool="j-val", states=[pb.JOB_STATE_PENDING, 99]), "states"),
                      (dict(pool="j-val", node_id="bad node"), "node_id")):
        code, msg = status_of(api.ListJobs, pb.ListJobsRequest(**kw), timeout=5)
        assert code == IA and msg.startswith(field), (kw, code, msg)
    # nothing but the jobs above was stored
    assert api.list_ids("j-val")[0] == [o.id, big.id]
    assert s.metrics()['galaxy_job_transitions_total{state="SUBMITTED"}'] == 3
    # ListJobs of a pool that does not exist
    got = code_of(api.list_jobs, "j-nosuch")
    assert got[0] == grpc.StatusCode.NOT_FOUND, got


# ---------------------------------------------------------------- 11. ListJobs

def test_list_jobs_filters_and_paging(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-list")
    api.create_pool("j-list2")
    ta = api.register("a", pool="j-list", specs=["x"]).lease_token
    api.register("b", pool="j-list", specs=["y"])
    ids = []
    for spec, n in (("x", 10), ("y", 8), ("z", 7)):
        for i in range(n):
            ids.append(api.submit("j-list", spec, payload=b"p%d" % i).id)
    ids_other = [api.submit("j-list2", "x").id for _ in range(3)]
    on_a = ids[:10]
    for id in on_a[:3]:
        api.update(id, "a", ta, pb.JOB_STATE_RUNNING)
    assert len(set(ids)) == 25 and ids == sorted(ids), "ids grow with time"
    everything, sizes = api.list_ids("j-list")
    assert everything == ids and sizes == [25]
    # pages of 7: exactly 7 but the last; in id order, no duplicate, no miss
    paged, sizes = api.list_ids("j-list", page_size=7)
    assert sizes == [7, 7, 7, 4], sizes
    assert paged == ids
    one = api.list_jobs("j-list", page_size=25)
    assert len(one.jobs) == 25 and one.next_page_token == ""
    # no payload in lists; GetJob has it
    assert all(j.payload == b"" and j.pool == "j-list" for j in one.jobs)
    assert api.get_job(ids[1]).payload == b"p1"
    # filters
    assert api.list_ids("j-list", states=[pb.JOB_STATE_RUNNING])[0] == on_a[:3]
    assert api.list_ids("j-list", states=[pb.JOB_STATE_PENDING])[0] == ids[18:]
    assert api.list_ids("j-list", states=[pb.JOB_STATE_PENDING, pb.JOB_STATE_RUNNING])[0] == \
        on_a[:3] + ids[18:]
    assert api.list_ids("j-list", states=[pb.JOB_STATE_ASSIGNED])[0] == ids[3:18]
    assert api.list_ids("j-list", states=[pb.JOB_STATE_SUCCEEDED])[0] == []
    assert api.list_ids("j-list", node_id="a")[0] == on_a
    assert api.list_ids("j-list", node_id="b")[0] == ids[10:18]
    assert api.list_ids("j-list", node_id="nobody")[0] == []
    assert api.list_ids("j-list", node_id="a", states=[pb.JOB_STATE_ASSIGNED])[0] == on_a[3:]
    got, sizes = api.list_ids("j-list", node_id="a", page_size=7)
    assert got == on_a and sizes == [7, 3], sizes
    got, sizes = api.list_ids("j-list", states=[pb.JOB_STATE_ASSIGNED], page_size=7)
    assert got == ids[3:18] and sizes == [7, 7, 1], sizes
    for j in api.list_jobs("j-list", node_id="b").jobs:
        assert j.node_id == "b" and j.state == pb.JOB_STATE_ASSIGNED
    # page_size is clamped to 1000
    api.create_pool("j-list3")
    many = submit_many(api, [api.job("j-list3", "z") for _ in range(1001)], batch=100)
    r = api.list_jobs("j-list3", page_size=5000)
    assert len(r.jobs) == 1000 and r.next_page_token
    r = api.list_jobs("j-list3", page_token=r.next_page_token, page_size=5000)
    assert [j.id for j in r.jobs] == [many[-1].id] and r.next_page_token == ""
    # other pools stay apart; an empty pool lists nothing
    assert api.list_ids("j-list2")[0] == ids_other
    assert api.list_ids("mainnet")[0] == []
    # a job finished while paging: the page after it still goes on from there
    first = api.list_jobs("j-list", page_size=7)
    api.cancel(first.jobs[-1].id)
    nxt = api.list_jobs("j-list", page_size=7, page_token=first.next_page_token)
    assert [j.id for j in nxt.jobs] == ids[7:14]


# ---------------------------------------------------------------- 12. ExplainJob

def test_explain_job(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-exp")
    R = pb.Resources
    want = dict(node_selector={"zone": "a"}, resources=R(cpu_millis=500))
    tok = {}
    for n, specs, labels, cap in (
            ("e-cap", ["gpu"], {"zone": "a"}, R(cpu_millis=100)),
            ("e-drain", ["gpu"], {"zone": "a"}, None),
            ("e-label", ["gpu"], {"zone": "b"}, None),
            ("e-ok1", ["gpu"], {"zone": "a"}, R(cpu_millis=4000)),
            ("e-ok2", ["gpu", "cpu"], {"zone": "a", "x": "y"}, None),
            ("e-spec", ["cpu"], {"zone": "a"}, None)):
        kw = dict(capacity=cap) if cap is not None else {}
        tok[n] = api.register(n, pool="j-exp", specs=specs, labels=labels, **kw).lease_token
    for n, load in (("e-ok1", 0.6), ("e-ok2", 0.3), ("e-cap", 0.0), ("e-drain", 0.0),
                    ("e-label", 0.0), ("e-spec", 0.0)):
        api.heartbeat(n, tok[n], pool="j-exp", load=load)
    api.Drain(pb.DrainRequest(pool="j-exp", node_id="e-drain"), timeout=5)
    before = api.list_jobs("j-exp")
    m0 = s.metrics()
    e = api.explain("j-exp", payload=b"dry", **want)
    v = {x.node_id: x for x in e.verdicts}
    assert set(v) == set(tok), v.keys()
    expect = {"e-cap": "capacity", "e-drain": "draining", "e-label": "label",
              "e-spec": "specialization"}
    for n, word in expect.items():
        assert not v[n].eligible, v[n]
        assert any(word in r for r in v[n].reasons), (n, list(v[n].reasons))
    assert v["e-ok1"].eligible and v["e-ok2"].eligible
    assert list(v["e-ok1"].reasons) == [] and list(v["e-ok2"].reasons) == []
    assert e.chosen_node_id == "e-ok2"
    assert v["e-ok2"].score >= v["e-ok1"].score
    # it stored nothing, counted nothing
    assert api.list_jobs("j-exp") == before
    m1 = s.metrics()
    for k in ('galaxy_job_transitions_total{state="SUBMITTED"}',
              'galaxy_job_transitions_total{state="ASSIGNED"}'):
        assert m1[k] == m0[k], k
    # SubmitJob routes the same job where ExplainJob said
    j = api.submit("j-exp", payload=b"dry", **want)
    assert j.node_id == e.chosen_node_id
    # now the other one is less loaded: explain and submit agree again
    api.heartbeat("e-ok2", tok["e-ok2"], pool="j-exp", load=0.9)
    e2 = api.explain("j-exp", **want)
    assert e2.chosen_node_id == "e-ok1"
    assert api.submit("j-exp", **want).node_id == "e-ok1"
    # nobody eligible: no choice, and every node says why
    e3 = api.explain("j-exp", "tpu")
    assert e3.chosen_node_id == "" and len(e3.verdicts) == len(tok)
    assert all(not x.eligible and x.reasons for x in e3.verdicts)


def test_draining_node_keeps_its_jobs_and_takes_no_new_ones(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-drain")
    tok = api.register("d", pool="j-drain", specs=["gpu"]).lease_token
    j = api.submit("j-drain")
    assert j.node_id == "d"
    assert api.Drain(pb.DrainRequest(pool="j-drain", node_id="d"),
                     timeout=5).state == pb.NODE_STATE_DRAINING
    # what it holds is still delivered and still its to report on
    assert j.id in api.deliveries("d", tok, "j-drain")
    k = api.submit("j-drain")
    assert k.state == pb.JOB_STATE_PENDING and k.node_id == ""
    time.sleep(0.3)
    assert api.get_job(k.id).state == pb.JOB_STATE_PENDING
    assert api.get_job(j.id).state == pb.JOB_STATE_ASSIGNED
    api.update(j.id, "d", tok, pb.JOB_STATE_RUNNING)
    # registering again clears the drain: the waiting job comes to it
    api.register("d", pool="j-drain", token=tok, specs=["gpu"])
    assert wait_for(job_on(api, k.id, "d"), 3), api.get_job(k.id)
    assert api.get_job(j.id).state == pb.JOB_STATE_RUNNING


# ---------------------------------------------------------------- 13. HeartbeatStream

def test_heartbeat_stream_gets_jobs_pushed(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    node_api = connect(s)
    client = connect(s)
    client.create_pool("j-push")
    tok = node_api.register("sw", pool="j-push", specs=["gpu"]).lease_token
    st = Stream(node_api)
    try:
        st.send(pb.HeartbeatRequest(pool="j-push", node_id="sw", lease_token=tok, load=0.2))
        first = st.next(5)
        assert first.state == pb.NODE_STATE_HEALTHY and len(first.assigned_jobs) == 0
        t0 = time.monotonic()
        j = client.submit("j-push", payload=b"pushed")
        pushed = st.next(5)
        took = time.monotonic() - t0
        assert [x.id for x in pushed.assigned_jobs] == [j.id], pushed
        assert pushed.assigned_jobs[0].payload == b"pushed"
        assert pushed.assigned_jobs[0].state == pb.JOB_STATE_ASSIGNED
        assert took < 3, took
        # a second job, pushed too; both repeated on the next heartbeat until RUNNING
        k = client.submit("j-push")
        pushed = st.next(5)
        assert k.id in [x.id for x in pushed.assigned_jobs]
        st.send(pb.HeartbeatRequest(pool="j-push", node_id="sw", lease_token=tok, load=0.2))
        again = st.next(5)
        assert {x.id for x in again.assigned_jobs} == {j.id, k.id}
        node_api.update(j.id, "sw", tok, pb.JOB_STATE_RUNNING)
        node_api.update(k.id, "sw", tok, pb.JOB_STATE_RUNNING)
        # a cancellation is pushed too
        client.cancel(k.id)
        told = st.next(5)
        assert [(x.id, x.state) for x in told.assigned_jobs] == [(k.id, pb.JOB_STATE_CANCELLED)]
    finally:
        st.close()


# ---------------------------------------------------------------- 14. queue bound

def test_queue_bound(make_server, connect, pb):
    s = make_server(config=conf(queue_max=3), tls=False)
    api = connect(s)
    api.create_pool("j-q")
    api.create_pool("j-q2")
    held = [api.submit("j-q", "nobody") for _ in range(3)]
    assert all(j.state == pb.JOB_STATE_PENDING for j in held)
    code, msg = status_of(api.submit, "j-q", "nobody")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
    code, _ = status_of(api.submit, "j-q", "other")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert api.list_ids("j-q")[0] == [j.id for j in held]
    # the bound is per pool, and a job that can be routed is not queued
    assert api.submit("j-q2", "nobody").state == pb.JOB_STATE_PENDING
    api.register("w", pool="j-q", specs=["gpu"])
    assert api.submit("j-q", "gpu").state == pb.JOB_STATE_ASSIGNED
    # room again once one leaves the queue
    api.cancel(held[0].id)
    assert api.submit("j-q", "nobody").state == pb.JOB_STATE_PENDING
    code, _ = status_of(api.submit, "j-q", "nobody")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # refused submissions are not counted as submitted ("SUBMITTED: accepted")
    m = s.metrics()
    got = {k: v for k, v in m.items() if k.startswith("galaxy_job")}
    assert m['galaxy_job_transitions_total{state="SUBMITTED"}'] == 6, got
    assert m['galaxy_jobs{state="PENDING"}'] == 4, got


# ---------------------------------------------------------------- 15. durability

def test_jobs_survive_kill_9(make_server, connect, pb):
    config = conf(ack_timeout_ms=60000)
    s = make_server(config=config, tls=False)
    api = connect(s)
    api.create_pool("j-dur")
    tok = api.register("w", pool="j-dur", specs=["gpu"],
                       capacity=pb.Resources(cpu_millis=4000)).lease_token
    pending = api.submit("j-dur", "nobody", payload=b"\x01" * 1000, routing_key="rk",
                         node_selector={"k": "v"})
    assigned = api.submit("j-dur", payload=b"assigned", resources=pb.Resources(cpu_millis=1000))
    running = api.submit("j-dur", payload=b"running", resources=pb.Resources(cpu_millis=2000))
    api.update(running.id, "w", tok, pb.JOB_STATE_RUNNING, "on it")
    done = api.submit("j-dur")
    api.update(done.id, "w", tok, pb.JOB_STATE_RUNNING)
    api.update(done.id, "w", tok, pb.JOB_STATE_SUCCEEDED, "ok")
    ids = [pending.id, assigned.id, running.id, done.id]
    before = {id: api.get_job(id) for id in ids}
    assert before[running.id].state == pb.JOB_STATE_RUNNING
    assert before[assigned.id].state == pb.JOB_STATE_ASSIGNED
    s.kill()
    s2 = make_server(config=config, tls=False, data_dir=s.data_dir)
    api2 = connect(s2)
    for id in ids:
        assert api2.get_job(id) == before[id], id
    assert api2.list_ids("j-dur")[0] == ids
    # the node goes on where it was: the assigned job is still delivered, capacity still taken
    assert set(api2.deliveries("w", tok, "j-dur")) == {assigned.id}
    assert api2.submit("j-dur", resources=pb.Resources(cpu_millis=1001)).state == \
        pb.JOB_STATE_PENDING
    assert api2.update(running.id, "w", tok, pb.JOB_STATE_SUCCEEDED).state == \
        pb.JOB_STATE_SUCCEEDED
    new = api2.submit("j-dur", "nobody")
    assert new.id > max(ids) and new.id not in ids


def test_cancellation_is_told_to_the_node_after_a_restart(make_server, connect, pb):
    """A cancelled job the node has not heard of yet is still told after kill -9."""
    config = conf()
    s = make_server(config=config, tls=False)
    api = connect(s)
    api.create_pool("j-dur2")
    tok = api.register("w", pool="j-dur2", specs=["gpu"]).lease_token
    j = api.submit("j-dur2")
    api.update(j.id, "w", tok, pb.JOB_STATE_RUNNING)
    c = api.cancel(j.id)
    assert c.state == pb.JOB_STATE_CANCELLED
    s.kill()
    s2 = make_server(config=config, tls=False, data_dir=s.data_dir)
    api2 = connect(s2)
    assert api2.get_job(j.id) == c
    got = api2.deliveries("w", tok, "j-dur2")
    assert j.id in got and got[j.id].state == pb.JOB_STATE_CANCELLED, got


def test_retention_forgets_finished_jobs(make_server, connect, pb):
    config = conf(retention_ms=1000)
    s = make_server(config=config, tls=False)
    api = connect(s)
    api.create_pool("j-ret")
    tok = api.register("w", pool="j-ret", specs=["gpu"]).lease_token
    jobs = [api.submit("j-ret") for _ in range(6)]
    ids = [j.id for j in jobs]
    api.update(ids[1], "w", tok, pb.JOB_STATE_SUCCEEDED)
    api.update(ids[2], "w", tok, pb.JOB_STATE_FAILED)
    api.cancel(ids[3])
    page = api.list_jobs("j-ret", page_size=2)           # ends at ids[1]
    assert [j.id for j in page.jobs] == ids[:2]
    t0 = time.monotonic()
    assert wait_for(lambda: code_of(api.get_job, ids[3])[0] == grpc.StatusCode.NOT_FOUND, 4)
    assert time.monotonic() - t0 >= 0.5
    for id in ids[1:4]:
        assert code_of(api.get_job, id)[0] == grpc.StatusCode.NOT_FOUND, id
    live = [ids[0]] + ids[4:]
    assert api.list_ids("j-ret")[0] == live
    # a page token whose job was forgotten goes on after it
    nxt = api.list_jobs("j-ret", page_size=2, page_token=page.next_page_token)
    assert [j.id for j in nxt.jobs] == ids[4:6]
    # and they stay forgotten after a restart
    s.kill()
    s2 = make_server(config=config, tls=False, data_dir=s.data_dir)
    api2 = connect(s2)
    assert api2.list_ids("j-ret")[0] == live
    assert code_of(api2.get_job, ids[1])[0] == grpc.StatusCode.NOT_FOUND


def test_retention_forgets_a_cancelled_job_whose_node_left(make_server, connect, pb):
    s = make_server(config=conf(retention_ms=1000), tls=False)
    api = connect(s)
    api.create_pool("j-ret2")
    tok = api.register("w", pool="j-ret2", specs=["gpu"]).lease_token
    told = api.submit("j-ret2")
    untold = api.submit("j-ret2")
    api.cancel(told.id)
    assert told.id in api.deliveries("w", tok, "j-ret2")
    api.cancel(untold.id)               # the node leaves before it hears of this one
    waiting = api.submit("j-ret2", "nobody")     # some job is still active meanwhile
    assert waiting.state == pb.JOB_STATE_PENDING
    api.Deregister(pb.DeregisterRequest(pool="j-ret2", node_id="w", lease_token=tok), timeout=5)
    gone = lambda id: code_of(api.get_job, id)[0] == grpc.StatusCode.NOT_FOUND
    assert wait_for(lambda: gone(told.id), 4)
    assert wait_for(lambda: gone(untold.id), 2), api.get_job(untold.id)
    assert api.list_ids("j-ret2")[0] == [waiting.id]


# ---------------------------------------------------------------- more edges

def test_jobs_max(make_server, connect, pb):
    s = make_server(config=conf(jobs_max=4), tls=False)
    api = connect(s)
    api.create_pool("j-max")
    tok = api.register("w", pool="j-max", specs=["gpu"]).lease_token
    held = [api.submit("j-max") for _ in range(3)] + [api.submit("j-max", "nobody")]
    code, msg = status_of(api.submit, "j-max")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
    # finished jobs are held too (until their retention ends)
    api.update(held[0].id, "w", tok, pb.JOB_STATE_SUCCEEDED)
    code, _ = status_of(api.submit, "j-max")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(api.list_ids("j-max")[0]) == 4


def test_max_payload(make_server, connect, pb):
    """jobs.max_payload_mb bounds the payload bytes of the jobs held, finished
    ones included until their retention ends, and counts what a restart loads:
    a submission past it is RESOURCE_EXHAUSTED naming job.payload, counted and
    logged, and stores nothing."""
    s = make_server(config=conf(max_payload_mb=1, retention_ms=1000), tls=False)
    api = connect(s)
    api.create_pool("j-pay")
    big = b"p" * 300000
    held = [api.submit("j-pay", "nobody", payload=big) for _ in range(3)]
    code, msg = status_of(api.submit, "j-pay", "nobody", payload=big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
    assert "job.payload" in msg and "jobs.max_payload_mb" in msg, msg
    # a job without payload still fits, and the bound holds across a restart
    small = api.submit("j-pay", "nobody", payload=b"x" * 1000)
    assert api.list_ids("j-pay")[0] == [j.id for j in held] + [small.id]
    m = s.metrics()
    assert m["galaxy_jobs_payload_bytes"] == 901000 and m["galaxy_jobs_full_total"] == 1
    assert "jobs full: submission refused" in s.log()
    assert s.stop() == 0
    s.start()
    api = connect(s)
    assert s.metrics()["galaxy_jobs_payload_bytes"] == 901000
    code, _ = status_of(api.submit, "j-pay", "nobody", payload=big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # a cancelled job holds its payload until its retention ends
    api.cancel(held[0].id)
    code, _ = status_of(api.submit, "j-pay", "nobody", payload=big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert wait_for(lambda: s.metrics()["galaxy_jobs_payload_bytes"] == 601000, 5)
    api.submit("j-pay", "nobody", payload=big)


def test_reregistering_with_new_labels_routes_pending_jobs(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-rereg")
    tok = api.register("w", pool="j-rereg", specs=["gpu"], labels={"zone": "a"}).lease_token
    held = api.submit("j-rereg", node_selector={"zone": "a"})
    assert held.node_id == "w"
    j = api.submit("j-rereg", node_selector={"zone": "b"})
    k = api.submit("j-rereg", "tpu")
    assert j.state == k.state == pb.JOB_STATE_PENDING
    api.register("w", pool="j-rereg", token=tok, specs=["gpu", "tpu"], labels={"zone": "b"})
    assert wait_for(job_on(api, j.id, "w"), 3), api.get_job(j.id)
    assert wait_for(job_on(api, k.id, "w"), 3), api.get_job(k.id)
    # the job it held before stays where it was
    h = api.get_job(held.id)
    assert h.state == pb.JOB_STATE_ASSIGNED and h.node_id == "w" and h.attempts == 1, h
    assert set(api.deliveries("w", tok, "j-rereg")) == {held.id, j.id, k.id}


def test_capacity_is_given_back_on_every_path(make_server, connect, pb):
    """Whatever way a job leaves a node, the node's capacity comes back whole."""
    s = make_server(config=conf(ack_timeout_ms=300, max_attempts=5), tls=False)
    api = connect(s)
    api.create_pool("j-acct")
    R = pb.Resources
    tok = api.register("w", pool="j-acct", specs=["gpu"],
                       capacity=R(cpu_millis=1000, gpus=2, max_jobs=3)).lease_token
    anchor = api.submit("j-acct")                 # keeps a job on the node throughout
    api.update(anchor.id, "w", tok, pb.JOB_STATE_RUNNING)
    full = dict(resources=R(cpu_millis=1000, gpus=2))

    def free_whole():
        v = {x.node_id: x for x in api.explain("j-acct", **full).verdicts}["w"]
        return v.eligible and list(v.reasons) == []

    def job():
        j = api.submit("j-acct", resources=R(cpu_millis=600, gpus=1))
        assert j.state == pb.JOB_STATE_ASSIGNED and j.node_id == "w", j
        assert not free_whole()
        return j

    RUN, OK, FAIL = pb.JOB_STATE_RUNNING, pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED

    def cancel_assigned_told(j):
        api.cancel(j.id)
        assert j.id in api.deliveries("w", tok, "j-acct")

    def cancel_running_reported(j):
        api.update(j.id, "w", tok, RUN)
        api.cancel(j.id)
        assert code_of(api.update, j.id, "w", tok, OK)[0] == grpc.StatusCode.FAILED_PRECONDITION

    def running_succeeded(j):
        api.update(j.id, "w", tok, RUN)
        api.update(j.id, "w", tok, OK)

    def running_failed(j):
        api.update(j.id, "w", tok, RUN)
        api.update(j.id, "w", tok, FAIL, "crashed")

    def assigned_failed(j):
        api.update(j.id, "w", tok, FAIL, "no start")

    def assigned_succeeded(j):
        api.update(j.id, "w", tok, OK)

    def ack_timeout_then_done(j):
        g = wait_for(lambda: (lambda x: x.attempts >= 2 and x)(api.get_job(j.id)), 3)
        assert g and g.node_id == "w" and g.state == pb.JOB_STATE_ASSIGNED, g
        api.update(j.id, "w", tok, RUN)
        assert not free_whole()
        api.update(j.id, "w", tok, OK)

    assert free_whole()
    for path in (cancel_assigned_told, cancel_running_reported, running_succeeded,
                 running_failed, assigned_failed, assigned_succeeded, ack_timeout_then_done):
        path(job())
        assert free_whole(), path.__name__
    # finally: exactly two more jobs fit beside the anchor (max_jobs 3)
    a, b = api.submit("j-acct"), api.submit("j-acct")
    assert a.node_id == b.node_id == "w"
    assert api.submit("j-acct").state == pb.JOB_STATE_PENDING


def test_flapping_node_takes_no_new_jobs(make_server, connect, pb):
    # default flap_threshold: 4 HEALTHY<->SUSPECT flaps in the last 10 TTLs
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-flap", heartbeat_interval_ms=100, node_ttl_ms=250)
    hb = Heartbeater(connect(s), "j-flap", period=0.04, limit=60)
    try:
        tf = api.register("f", pool="j-flap", specs=["gpu"]).lease_token
        tg = api.register("g", pool="j-flap", specs=["gpu"]).lease_token
        hb.add("g", tg)
        for _ in range(2):
            assert wait_for(lambda: api.get("f", "j-flap").state == pb.NODE_STATE_SUSPECT, 3)
            v = {x.node_id: x for x in api.explain("j-flap").verdicts}["f"]
            assert not v.eligible and any("state" in r for r in v.reasons), v
            api.heartbeat("f", tf, pool="j-flap", load=0.0)
        hb.add("f", tf)
        n = api.get("f", "j-flap")
        assert n.flap_count >= 4 and n.state == pb.NODE_STATE_HEALTHY, n
        e = api.explain("j-flap")
        v = {x.node_id: x for x in e.verdicts}
        assert not v["f"].eligible and any("flapping" in r for r in v["f"].reasons), v["f"]
        assert v["g"].eligible and e.chosen_node_id == "g"
        assert api.submit("j-flap").node_id == "g"
        # the flaps age out of the window (10 TTLs): eligible again
        assert wait_for(lambda: api.get("f", "j-flap").flap_count < 4, 5)
        assert wait_for(lambda: {x.node_id: x.eligible
                                 for x in api.explain("j-flap").verdicts}["f"], 2)
    finally:
        hb.stop()


def test_large_payloads_are_delivered_in_bounded_responses(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-big")
    tok = api.register("w", pool="j-big", specs=["gpu"]).lease_token
    want = {}
    for i in range(6):
        payload = bytes([i]) * (1 << 20)
        want[api.submit("j-big", payload=payload).id] = payload
    seen = {}
    for _ in range(10):
        got = api.deliveries("w", tok, "j-big")         # the client takes at most 4 MiB
        for id, j in got.items():
            assert j.payload == want[id]
            seen[id] = True
            api.update(id, "w", tok, pb.JOB_STATE_RUNNING)
        if len(seen) == len(want):
            break
    assert set(seen) == set(want)


def test_heartbeat_stream_pushes_to_the_latest_stream_of_a_node(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    node_api = connect(s)
    client = connect(s)
    client.create_pool("j-push2")
    tok = node_api.register("sw", pool="j-push2", specs=["gpu"]).lease_token
    tok2 = node_api.register("sx", pool="j-push2", specs=["cpu"]).lease_token
    old, new = Stream(node_api), Stream(connect(s))
    try:
        hb = pb.HeartbeatRequest(pool="j-push2", node_id="sw", lease_token=tok, load=0.2)
        old.send(hb)
        old.next(5)
        new.send(hb)
        new.next(5)
        j = client.submit("j-push2")
        pushed = new.next(5)
        assert [x.id for x in pushed.assigned_jobs] == [j.id]
        time.sleep(0.3)
        assert old.answers.empty(), "the node's older stream got the push"
        # a stream that now speaks for another node gets that node's jobs only
        new.send(pb.HeartbeatRequest(pool="j-push2", node_id="sx", lease_token=tok2))
        assert len(new.next(5).assigned_jobs) == 0
        k = client.submit("j-push2", "cpu")
        pushed = new.next(5)
        assert [x.id for x in pushed.assigned_jobs] == [k.id]
        client.submit("j-push2", "gpu")
        time.sleep(0.3)
        assert new.answers.empty() and old.answers.empty()
    finally:
        old.close()
        new.close()


def test_concurrent_churn_keeps_jobs_and_capacity_consistent(make_server, connect, pb):
    """Submitters, cancellers and nodes that report, die and come back, all at
    once for a few seconds; then every job is in a coherent state and every
    node's capacity comes back whole once the jobs are gone."""
    import random
    s = make_server(config=conf(ack_timeout_ms=400, max_attempts=3, flap_threshold=0),
                    tls=False)
    api = connect(s)
    api.create_pool("j-churn", heartbeat_interval_ms=100, node_ttl_ms=250)
    R = pb.Resources
    hb = Heartbeater(connect(s), "j-churn", period=0.04, limit=60)
    nodes = ["n%d" % i for i in range(4)]
    tokens, lock = {}, threading.Lock()
    streams = []
    for n in nodes:
        tokens[n] = api.register(n, pool="j-churn", specs=["gpu"],
                                 capacity=R(cpu_millis=5000)).lease_token
        hb.add(n, tokens[n])
        st = Stream(connect(s))      # keeps the node's job record alive between jobs
        st.send(pb.HeartbeatRequest(pool="j-churn", node_id=n, lease_token=tokens[n]))
        streams.append(st)
    ids, errors = [], []
    stop = time.monotonic() + 3.0
    ok_refusals = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION)

    def worker(seed):
        c = connect(s)
        rnd = random.Random(seed)
        for _ in range(150):
            if time.monotonic() > stop:
                return
            time.sleep(0.01)
            try:
                j = c.submit("j-churn", payload=b"%d" % seed, resources=R(cpu_millis=1000))
                ids.append(j.id)
                op = rnd.random()
                if op < 0.25:
                    c.cancel(j.id)
                elif op < 0.8 and j.node_id:
                    with lock:
                        t = tokens[j.node_id]
                    c.update(j.id, j.node_id, t, pb.JOB_STATE_RUNNING)
                    if rnd.random() < 0.6:
                        c.update(j.id, j.node_id, t, rnd.choice(
                            [pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED]))
                    elif rnd.random() < 0.5:
                        c.cancel(j.id)
            except grpc.RpcError as e:
                if e.code() not in ok_refusals:
                    errors.append((e.code(), e.details()))

    def chaos():
        rnd = random.Random(7)
        while time.monotonic() < stop - 0.5:
            n = rnd.choice(nodes)
            if rnd.random() < 0.5:
                hb.drop(n)                       # lapses: SUSPECT, then DOWN
                time.sleep(0.6)
                hb.add(n, tokens[n])             # and comes back
            else:
                hb.drop(n)
                try:
                    api.Deregister(pb.DeregisterRequest(pool="j-churn", node_id=n,
                                                        lease_token=tokens[n]), timeout=5)
                    t = api.register(n, pool="j-churn", specs=["gpu"],
                                     capacity=R(cpu_millis=5000)).lease_token
                except grpc.RpcError as e:
                    errors.append(("chaos", e.code(), e.details()))
                    continue
                with lock:
                    tokens[n] = t
                hb.add(n, t)
                time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=chaos))
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not errors, errors[:5]
        assert len(ids) > 30 and len(set(ids)) == len(ids)
        assert wait_for(lambda: all(api.get(n, "j-churn").state == pb.NODE_STATE_HEALTHY
                                    for n in nodes), 3)
        live = (pb.JOB_STATE_ASSIGNED, pb.JOB_STATE_RUNNING)
        jobs = {}
        for id in ids:
            code, j = code_of(api.get_job, id)
            assert code == "OK", ("job vanished", id, code, j)
            jobs[id] = j
            assert j.state != pb.JOB_STATE_UNSPECIFIED and 0 <= j.attempts <= 3, j
            if j.state in live:
                assert j.node_id in nodes, j
            if j.state == pb.JOB_STATE_PENDING:
                assert j.node_id == "", j
        listed = api.list_ids("j-churn", page_size=50)[0]
        assert listed == sorted(ids)
        for id in ids:
            if jobs[id].state in live + (pb.JOB_STATE_PENDING,):
                try:
                    api.cancel(id)
                except grpc.RpcError as e:      # finished meanwhile (ack timeouts)
                    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
        for n in nodes:
            api.heartbeat(n, tokens[n], pool="j-churn")
        v = {x.node_id: x for x in api.explain("j-churn",
                                               resources=R(cpu_millis=5000)).verdicts}
        bad = {n: list(v[n].reasons) for n in nodes if not v[n].eligible}
        assert not bad, bad
    finally:
        for st in streams:
            st.close()
        hb.stop()
    assert s.alive()


# ---------------------------------------------------------------- 16. metrics

def test_metrics_count_transitions(make_server, connect, pb):
    s = make_server(config=conf(), tls=False)
    api = connect(s)
    api.create_pool("j-met")
    tok = api.register("w", pool="j-met", specs=["gpu"]).lease_token

    def count(state):
        return s.metrics().get('galaxy_job_transitions_total{state="%s"}' % state)

    base = {st: count(st) for st in ("SUBMITTED", "ASSIGNED", "RUNNING", "SUCCEEDED",
                                     "FAILED", "CANCELLED")}
    assert all(v == 0 for v in base.values()), base
    a, b, c = api.submit("j-met"), api.submit("j-met"), api.submit("j-met")
    p = api.submit("j-met", "nobody")
    api.update(a.id, "w", tok, pb.JOB_STATE_RUNNING)
    api.update(a.id, "w", tok, pb.JOB_STATE_SUCCEEDED)
    api.update(b.id, "w", tok, pb.JOB_STATE_RUNNING)
    api.update(b.id, "w", tok, pb.JOB_STATE_FAILED, "boom")
    api.cancel(c.id)
    api.cancel(p.id)
    status_of(api.submit, "j-nosuch")              # refused: not counted
    m = s.metrics()
    got = {st: m['galaxy_job_transitions_total{state="%s"}' % st] for st in base}
    assert got == {"SUBMITTED": 4, "ASSIGNED": 3, "RUNNING": 2, "SUCCEEDED": 1, "FAILED": 1,
                   "CANCELLED": 2}, got
    assert m['galaxy_job_transitions_total{state="PENDING"}'] >= 1
    assert m['galaxy_jobs{state="SUCCEEDED"}'] == 1
    assert m['galaxy_jobs{state="FAILED"}'] == 1
    assert m['galaxy_jobs{state="CANCELLED"}'] == 2
    assert m['galaxy_jobs{state="ASSIGNED"}'] == 0 and m['galaxy_jobs{state="PENDING"}'] == 0
    assert m["galaxy_job_routings_total"] >= 3

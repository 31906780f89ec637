# SPDX-License-Identifier: MIT
"""Client helpers shared by the registry, watch, crash, access, liveness and
jobs tests: stubs for every galaxy.pool.v1 method by name, a status helper,
channels that send an `authorization` header with every call, and a thread
that keeps nodes alive."""
import collections
import threading
import time

import grpc
import pytest

PKG = "/galaxy.pool.v1."


class Api:
    """Unary stubs by method name: api.Register(req) → response."""

    def __init__(self, ch, pb):
        self.ch = ch
        self.pb = pb
        self.methods = {
            "NodeRegistry": [("Register", "RegisterRequest", "RegisterResponse"),
                             ("Heartbeat", "HeartbeatRequest", "HeartbeatResponse"),
                             ("Deregister", "DeregisterRequest", "DeregisterResponse"),
                             ("Drain", "DrainRequest", "Node")],
            "Discovery": [("GetNode", "GetNodeRequest", "Node"),
                          ("ListNodes", "ListNodesRequest", "ListNodesResponse")],
            "PoolAdmin": [("CreatePool", "CreatePoolRequest", "Pool"),
                          ("GetPool", "GetPoolRequest", "Pool"),
                          ("ListPools", "ListPoolsRequest", "ListPoolsResponse"),
                          ("UpdatePool", "UpdatePoolRequest", "Pool"),
                          ("DeletePool", "DeletePoolRequest", "DeletePoolResponse"),
                          ("CreateApiKey", "CreateApiKeyRequest", "CreateApiKeyResponse"),
                          ("ListApiKeys", "ListApiKeysRequest", "ListApiKeysResponse"),
                          ("RevokeApiKey", "RevokeApiKeyRequest", "RevokeApiKeyResponse"),
                          ("ListModules", "ListModulesRequest", "ListModulesResponse")],
            "Jobs": [("SubmitJob", "SubmitJobRequest", "Job"),
                     ("GetJob", "GetJobRequest", "Job"),
                     ("ListJobs", "ListJobsRequest", "ListJobsResponse"),
                     ("CancelJob", "CancelJobRequest", "Job"),
                     ("UpdateJobStatus", "UpdateJobStatusRequest", "Job"),
                     ("ExplainJob", "SubmitJobRequest", "ExplainJobResponse")],
        }
        for svc, rows in self.methods.items():
            for name, req, resp in rows:
                setattr(self, name, ch.unary_unary(
                    PKG + svc + "/" + name,
                    request_serializer=getattr(pb, req).SerializeToString,
                    response_deserializer=getattr(pb, resp).FromString))
        self.HeartbeatStream = ch.stream_stream(
            PKG + "NodeRegistry/HeartbeatStream",
            request_serializer=pb.HeartbeatRequest.SerializeToString,
            response_deserializer=pb.HeartbeatResponse.FromString)
        self.Watch = ch.unary_stream(
            PKG + "Discovery/Watch", request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchEvent.FromString)

    def node(self, id, pool="devnet", specs=("developer",), labels=None, **kw):
        kw.setdefault("address", "10.0.0.1:7000")
        kw.setdefault("version", "1.0")
        return self.pb.Node(id=id, pool=pool, specializations=list(specs),
                            labels=labels or {}, **kw)

    def register(self, id, pool="devnet", token="", **kw):
        return self.Register(self.pb.RegisterRequest(node=self.node(id, pool, **kw),
                                                     lease_token=token), timeout=10)

    def heartbeat(self, id, token, pool="devnet", load=0.5, jobs=0):
        return self.Heartbeat(self.pb.HeartbeatRequest(pool=pool, node_id=id, lease_token=token,
                                                       load=load, running_jobs=jobs), timeout=5)

    def get(self, id, pool="devnet"):
        return self.GetNode(self.pb.GetNodeRequest(pool=pool, node_id=id), timeout=5)

    def list(self, pool="devnet", **kw):
        return self.ListNodes(self.pb.ListNodesRequest(pool=pool, **kw), timeout=10)

    def list_all(self, pool="devnet", page_size=100, **kw):
        return page_ids(lambda token: self.list(pool, page_size=page_size, page_token=token,
                                                **kw), "nodes")[0]

    def create_pool(self, name, **kw):
        kw.setdefault("visibility", self.pb.VISIBILITY_PUBLIC)
        return self.CreatePool(self.pb.CreatePoolRequest(pool=self.pb.Pool(name=name, **kw)),
                               timeout=10)


def page_ids(fetch, field, token=""):
    """Every page of a listing from @token, fetch(token) giving one: the ids of
    the items in its repeated field @field, and the page lengths.  Bounded."""
    ids, sizes = [], []
    for _ in range(10000):
        r = fetch(token)
        items = getattr(r, field)
        ids += [x.id for x in items]
        sizes.append(len(items))
        token = r.next_page_token
        if not token:
            return ids, sizes
    raise AssertionError("paging does not end")


def status_of(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details()


# ---------------------------------------------------------------- credentials

class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata",
                                                   "credentials", "wait_for_ready",
                                                   "compression")),
               grpc.ClientCallDetails):
    pass


class _Header(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
              grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds one metadata pair to every call."""

    def __init__(self, key, value):
        self.pair = (key, value)

    def _details(self, d):
        md = list(d.metadata or ()) + [self.pair]
        return _Details(d.method, d.timeout, md, d.credentials, d.wait_for_ready,
                        d.compression)

    def intercept_unary_unary(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_unary_stream(self, cont, d, req):
        return cont(self._details(d), req)

    def intercept_stream_unary(self, cont, d, reqs):
        return cont(self._details(d), reqs)

    def intercept_stream_stream(self, cont, d, reqs):
        return cont(self._details(d), reqs)


def with_authorization(ch, value):
    """@ch with `authorization: @value` on every call (None: @ch itself).
    The channels share @ch's connection."""
    if value is None:
        return ch
    return grpc.intercept_channel(ch, _Header("authorization", value))


def with_key(ch, secret):
    """@ch with `authorization: Bearer @secret` (None: anonymous)."""
    return with_authorization(ch, None if secret is None else "Bearer " + secret)


class Heartbeater:
    """Heartbeats the nodes in .alive ({id: token}) of one pool every
    `period` seconds from a thread, until stop() or `limit` seconds.  A
    failed heartbeat is an error (stop() asserts there were none) unless the
    node was dropped or given another token meanwhile."""

    def __init__(self, api, pool, period=0.05, limit=40):
        self.api, self.pool, self.period = api, pool, period
        self.alive = {}
        self.lock = threading.Lock()
        self.errors = []
        self.done = threading.Event()
        self.deadline = time.monotonic() + limit
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                nodes = list(self.alive.items())
            for id, token in nodes:
                try:
                    self.api.heartbeat(id, token, pool=self.pool)
                except grpc.RpcError as e:
                    with self.lock:
                        current = self.alive.get(id)
                    if current == token:
                        self.errors.append((id, e.code()))
            self.done.wait(self.period)

    def set(self, nodes):
        with self.lock:
            self.alive = dict(nodes)

    def add(self, id, token):
        with self.lock:
            self.alive[id] = token

    def drop(self, id):
        with self.lock:
            self.alive.pop(id, None)

    def stop(self):
        self.done.set()
        self.thread.join(5)
        assert not self.errors, self.errors

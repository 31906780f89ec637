# SPDX-License-Identifier: MIT
"""Discovery.Watch over the real binary: snapshot, SYNCED and live changes,
the specialization filter, resumes from a revision inside and outside the
history window, liveness transitions, isolation between pools, fan-out to
many watchers, a reader that stops reading (RESET instead of memory growth),
shutdown (UNAVAILABLE) and the statuses of bad requests."""
import importlib
import os
import queue
import threading
import time

import grpc
import pytest

from conftest import rss_kib, wait_for
from h2raw import H2Client, grpc_frame, grpc_messages
from test_registry import Api

WATCH = "/galaxy.pool.v1.Discovery/Watch"
NO_EVENT_WAIT = 0.3  # long enough for a poll (5 ms) and a keeper round (100 ms)


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@pytest.fixture
def api(server, pb):
    with server.channel() as ch:
        yield Api(ch, pb)


class Watcher:
    """One Watch call read by a thread into a queue, so that tests can wait
    for events with a timeout and check that none came."""

    def __init__(self, api, pb, pool, spec="", start=0, timeout=60):
        self.pb = pb
        self.q = queue.Queue()
        self.call = api.Watch(pb.WatchRequest(pool=pool, specialization=spec,
                                              start_revision=start), timeout=timeout)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for ev in self.call:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.q.put(e)
            return
        self.q.put(StopIteration())

    def get(self, timeout=5):
        item = self.q.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        return item

    def until_synced(self, limit=10000):
        """Events up to and including SYNCED."""
        out = []
        for _ in range(limit):
            ev = self.get()
            out.append(ev)
            if ev.type == self.pb.WATCH_EVENT_TYPE_SYNCED:
                return out
        raise AssertionError("no SYNCED in %d events" % limit)

    def none(self, wait=NO_EVENT_WAIT):
        time.sleep(wait)
        assert self.q.empty(), "unexpected event: %r" % (self.q.queue[0],)

    def end(self, timeout=10):
        """The status the call ended with (after any events still queued)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.q.get(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(item, grpc.RpcError):
                return item.code(), item.details()
            if isinstance(item, StopIteration):
                return grpc.StatusCode.OK, ""
        raise AssertionError("the watch did not end")

    def cancel(self):
        self.call.cancel()
        self.thread.join(5)


def types(pb, events):
    return [pb.WatchEventType.Name(e.type) for e in events]


def hb(api, pb, id, token, pool, load):
    return api.Heartbeat(pb.HeartbeatRequest(pool=pool, node_id=id, lease_token=token,
                                             load=load), timeout=5)


# ---------------------------------------------------------------- snapshot and live

def test_snapshot_synced_live(api, pb):
    ra = api.register("a")
    rb = api.register("b")
    rev = api.list().revision
    w = Watcher(api, pb, "devnet")
    evs = w.until_synced()
    assert types(pb, evs) == ["WATCH_EVENT_TYPE_UPSERT"] * 2 + ["WATCH_EVENT_TYPE_SYNCED"]
    assert [e.node.id for e in evs[:2]] == ["a", "b"]
    assert all(e.node.state == pb.NODE_STATE_HEALTHY and e.node.pool == "devnet"
               for e in evs[:2])
    assert evs[2].revision == rev and not evs[2].HasField("node")
    # live: a new node
    rc = api.register("c", labels={"zone": "z1"})
    e = w.get()
    assert (e.type, e.node.id, e.node.labels["zone"]) == (pb.WATCH_EVENT_TYPE_UPSERT, "c", "z1")
    assert e.revision == rev + 1 == e.node.revision == rc.node.revision
    # a heartbeat that changes only load is no revision and no event
    assert hb(api, pb, "a", ra.lease_token, "devnet", 0.9).revision == rev + 1
    w.none()
    # drain: UPSERT DRAINING
    api.Drain(pb.DrainRequest(pool="devnet", node_id="b"), timeout=5)
    e = w.get()
    assert (e.type, e.node.id, e.node.state) == (pb.WATCH_EVENT_TYPE_UPSERT, "b",
                                                 pb.NODE_STATE_DRAINING)
    assert e.revision == rev + 2
    # re-register with the lease: UPSERT with the new fields
    api.register("b", token=rb.lease_token, version="2.0")
    e = w.get()
    assert (e.node.id, e.node.version, e.revision) == ("b", "2.0", rev + 3)
    # deregister: REMOVED
    api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="c", lease_token=rc.lease_token),
                   timeout=5)
    e = w.get()
    assert (e.type, e.node.id, e.revision) == (pb.WATCH_EVENT_TYPE_REMOVED, "c", rev + 4)
    w.none()
    assert api.list().revision == rev + 4
    w.cancel()


def test_specialization_filter(api, pb):
    api.register("gpu1", specs=("gpu",))
    api.register("cpu1", specs=("cpu",))
    r = api.register("both", specs=("cpu", "gpu"))
    w = Watcher(api, pb, "devnet", spec="gpu")
    evs = w.until_synced()
    assert [e.node.id for e in evs[:-1]] == ["both", "gpu1"]
    api.register("cpu2", specs=("cpu",))
    w.none()
    api.register("gpu2", specs=("gpu",))
    assert w.get().node.id == "gpu2"
    # a node that drops the specialization leaves the filter: REMOVED for this watcher
    api.register("both", token=r.lease_token, specs=("cpu",))
    e = w.get()
    assert (e.type, e.node.id) == (pb.WATCH_EVENT_TYPE_REMOVED, "both")
    w.cancel()


# ---------------------------------------------------------------- resume

def collect(w, pb, n):
    return [w.get() for _ in range(n)]


def test_resume_inside_the_window_replays_exactly(api, pb):
    tokens = {}
    for i in range(5):
        tokens["n%d" % i] = api.register("n%d" % i).lease_token
    w = Watcher(api, pb, "devnet")
    synced = w.until_synced()[-1].revision
    # changes the resumed watcher must see, each exactly once and in order
    api.Drain(pb.DrainRequest(pool="devnet", node_id="n1"), timeout=5)
    api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="n2", lease_token=tokens["n2"]),
                   timeout=5)
    api.register("n9")
    api.register("n3", token=tokens["n3"], version="3")
    live = collect(w, pb, 4)
    w.cancel()
    assert [e.revision for e in live] == list(range(synced + 1, synced + 5))
    # resume from the SYNCED revision: the same four changes, then SYNCED, then live
    w2 = Watcher(api, pb, "devnet", start=synced)
    evs = w2.until_synced()
    assert [(e.type, e.revision, e.node.id) for e in evs[:-1]] == \
        [(e.type, e.revision, e.node.id) for e in live]
    assert evs[-1].revision == synced + 4
    # resume from the middle
    w3 = Watcher(api, pb, "devnet", start=synced + 2)
    evs = w3.until_synced()
    assert [e.revision for e in evs[:-1]] == [synced + 3, synced + 4]
    # resume from the head: SYNCED at once
    w4 = Watcher(api, pb, "devnet", start=synced + 4)
    assert types(pb, w4.until_synced()) == ["WATCH_EVENT_TYPE_SYNCED"]
    api.register("n10")
    for x in (w2, w3, w4):
        e = x.get()
        assert (e.node.id, e.revision) == ("n10", synced + 5)
        x.none(0.05)
        x.cancel()


def test_resume_too_old_or_future_is_reset(make_server, pb):
    s = make_server(env={"GALAXY_WATCH_HISTORY": "8"})
    with s.channel() as ch:
        api = Api(ch, pb)
        for i in range(12):
            api.register("n%02d" % i)
        head = api.list().revision
        for start in (1, head - 9, head + 1, 1 << 60):
            w = Watcher(api, pb, "devnet", start=start)
            evs = w.until_synced()
            assert types(pb, evs[:1]) == ["WATCH_EVENT_TYPE_RESET"], start
            assert [e.node.id for e in evs[1:-1]] == ["n%02d" % i for i in range(12)]
            assert evs[-1].revision == head
            w.cancel()
        # the last 8 changes are still there: no RESET
        w = Watcher(api, pb, "devnet", start=head - 8)
        evs = w.until_synced()
        assert [e.node.id for e in evs[:-1]] == ["n%02d" % i for i in range(4, 12)]
        w.cancel()


def test_resume_after_restart_is_reset(make_server, pb):
    s = make_server()
    with s.channel() as ch:
        api = Api(ch, pb)
        api.register("n1")
        api.register("n2")
        head = api.list().revision
    assert s.stop() == 0
    s.start()
    with s.channel() as ch:
        api = Api(ch, pb)
        w = Watcher(api, pb, "devnet", start=head)
        evs = w.until_synced()
        assert types(pb, evs) == ["WATCH_EVENT_TYPE_RESET"] + ["WATCH_EVENT_TYPE_UPSERT"] * 2 + \
            ["WATCH_EVENT_TYPE_SYNCED"]
        w.cancel()


# ---------------------------------------------------------------- liveness

def test_liveness_transitions_are_events(api, pb):
    api.create_pool("fast", heartbeat_interval_ms=100, node_ttl_ms=300)
    w = Watcher(api, pb, "fast")
    assert types(pb, w.until_synced()) == ["WATCH_EVENT_TYPE_SYNCED"]
    r = api.register("n1", pool="fast")
    assert w.get().node.state == pb.NODE_STATE_HEALTHY
    e = w.get(2)
    assert (e.type, e.node.state) == (pb.WATCH_EVENT_TYPE_UPSERT, pb.NODE_STATE_SUSPECT)
    e2 = w.get(2)
    assert (e2.type, e2.node.state) == (pb.WATCH_EVENT_TYPE_UPSERT, pb.NODE_STATE_DOWN)
    assert e2.revision == e.revision + 1 == e2.node.revision
    # a heartbeat brings it back at once (the worker wakes the keeper)
    t0 = time.monotonic()
    hb(api, pb, "n1", r.lease_token, "fast", 0.1)
    e = w.get(2)
    assert e.node.state == pb.NODE_STATE_HEALTHY and time.monotonic() - t0 < 1
    # then it lapses again, and is removed 10 x ttl after DOWN
    states = [w.get(2).node.state, w.get(2).node.state]
    assert states == [pb.NODE_STATE_SUSPECT, pb.NODE_STATE_DOWN]
    e = w.get(6)
    assert (e.type, e.node.id) == (pb.WATCH_EVENT_TYPE_REMOVED, "n1")
    w.cancel()


# ---------------------------------------------------------------- fan-out and isolation

def test_other_pools_never_reach_a_watcher(api, pb):
    api.create_pool("quiet")
    w = Watcher(api, pb, "quiet")
    assert types(pb, w.until_synced()) == ["WATCH_EVENT_TYPE_SYNCED"]
    for i in range(5):
        api.register("x%d" % i, pool="devnet")
        api.register("y%d" % i, pool="testnet")
    api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name="quiet", description="d")), timeout=5)
    w.none()
    api.register("q1", pool="quiet")
    assert w.get().node.id == "q1"
    w.cancel()


def test_fifty_watchers_get_the_same_events(api, pb):
    api.register("seed")
    ws = [Watcher(api, pb, "devnet") for _ in range(50)]
    for w in ws:
        assert [e.node.id for e in w.until_synced()[:-1]] == ["seed"]
    tokens = [api.register("m%02d" % i).lease_token for i in range(10)]
    api.Deregister(pb.DeregisterRequest(pool="devnet", node_id="m03", lease_token=tokens[3]),
                   timeout=5)
    want = None
    for w in ws:
        got = [(e.type, e.revision, e.node.id) for e in collect(w, pb, 11)]
        want = want or got
        assert got == want
        assert len(set(r for _, r, _ in got)) == 11
    for w in ws:
        w.cancel()


# ---------------------------------------------------------------- a reader that stops

CHANGES = 600


def test_stalled_watcher_is_reset_not_buffered(make_server, pb):
    """A raw HTTP/2 client watches and never opens its flow-control window.
    Big changes (about 40 KB each) go on for a while: the server holds at most
    the feed's window for them, so its RSS stays bounded, and once the client
    reads again it gets RESET, the snapshot and SYNCED."""
    s = make_server(tls=False, env={"GALAXY_WATCH_HISTORY": "32",
                                    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                                                    "quarantine_size_mb=1"})
    labels = {"k%02d" % i: "v" * 500 for i in range(64)}
    bound = 12 << 10  # KiB
    if os.environ.get("GX_SERVER_WRAP"):
        # valgrind keeps 20 MB of freed blocks from reuse (--freelist-vol): that much more
        bound += 20 << 10
    with s.channel() as ch:
        api = Api(ch, pb)
        r = api.register("big", labels=labels)
        for i in range(20):  # warm up the paths and the allocator
            api.register("big", token=r.lease_token, labels=labels, version="w%d" % i)
        pid = s.proc.pid
        req = pb.WatchRequest(pool="devnet").SerializeToString()
        with H2Client(s.h2c, window_updates=False) as c:
            sid = c.request(WATCH, grpc_frame(req))
            c.wait_until(lambda: len(c.response(sid).data) > 0, 5)
            base = rss_kib(pid)
            peak = base
            rev0 = api.list().revision
            for i in range(CHANGES):
                api.register("big", token=r.lease_token, labels=labels, version="v%d" % i)
                if i % 16 == 0:
                    c.pump(0)
                    peak = max(peak, rss_kib(pid))
            assert api.list().revision == rev0 + CHANGES
            # 600 x 40 KB = 24 MB of changes went by; the server keeps the last 32
            assert peak - base < bound, "RSS grew from %d to %d KiB" % (base, peak)
            resp = c.response(sid)
            assert not resp.done and len(resp.data) <= 65535
            c.set_window_updates(True)

            def events():
                return [pb.WatchEvent.FromString(m) for _, m in grpc_messages(resp.data)]

            def synced_after_reset():
                evs = events()
                resets = [i for i, e in enumerate(evs) if e.type == pb.WATCH_EVENT_TYPE_RESET]
                return resets and any(e.type == pb.WATCH_EVENT_TYPE_SYNCED
                                      for e in evs[resets[0]:])

            c.wait_until(synced_after_reset, 10)
            evs = events()
            tail = evs[[e.type for e in evs].index(pb.WATCH_EVENT_TYPE_RESET):]
            assert [e.type for e in tail[:3]] == [pb.WATCH_EVENT_TYPE_RESET,
                                                  pb.WATCH_EVENT_TYPE_UPSERT,
                                                  pb.WATCH_EVENT_TYPE_SYNCED]
            assert tail[1].node.id == "big" and tail[1].node.revision <= tail[2].revision
            c.reset(sid)
    assert rss_kib(pid) - base < bound


# ---------------------------------------------------------------- end and errors

def test_drain_ends_watch_with_unavailable(make_server, pb):
    s = make_server()
    with s.channel() as ch:
        api = Api(ch, pb)
        w = Watcher(api, pb, "devnet")
        w.until_synced()
        t0 = time.monotonic()
        assert s.stop() == 0
        code, _ = w.end()
        assert code == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - t0 < 4  # well inside the 5 s drain timeout


def test_pool_deleted_ends_watch(api, pb):
    """The pool's last changes (its nodes' removals), then NOT_FOUND."""
    api.create_pool("gone")
    api.register("g1", pool="gone")
    w = Watcher(api, pb, "gone")
    w.until_synced()
    api.DeletePool(pb.DeletePoolRequest(name="gone", force=True), timeout=5)
    e = w.get()
    assert (e.type, e.node.id) == (pb.WATCH_EVENT_TYPE_REMOVED, "g1")
    code, msg = w.end()
    assert code == grpc.StatusCode.NOT_FOUND and "gone" in msg


@pytest.mark.parametrize("req,code,field", [
    (dict(pool="nosuch"), grpc.StatusCode.NOT_FOUND, "pool"),
    (dict(pool=""), grpc.StatusCode.INVALID_ARGUMENT, "pool"),
    (dict(pool="Bad_Name"), grpc.StatusCode.INVALID_ARGUMENT, "pool"),
    (dict(pool="devnet", spec="No Way"), grpc.StatusCode.INVALID_ARGUMENT,
     "specialization"),
    (dict(pool="devnet", spec="x" * 33), grpc.StatusCode.INVALID_ARGUMENT,
     "specialization"),
])
def test_bad_requests(api, pb, req, code, field):
    w = Watcher(api, pb, **req)
    got, msg = w.end()
    assert got == code and field in msg

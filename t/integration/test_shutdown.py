# SPDX-License-Identifier: MIT
"""Graceful shutdown: SIGTERM and SIGINT drain the server.  Unary calls in
flight (parked by test_hooks, t/modules/hooks) finish, new calls are refused,
an open Health/Watch stream is told NOT_SERVING and ends with UNAVAILABLE,
/readyz answers 503 while draining, and drain_timeout_ms bounds it all."""
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import BUILDDIR, Server, wait_for

HOOKS_SO = os.path.join(BUILDDIR, "t/modules/.libs/hooks.so")
CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"

# call timers may fire one tick of libevent's coarse clock early (test_phase_chain.py,
# test_park_timer_never_early)
TIMER_SLACK = 0.005
DRAIN_300 = "server:\n  log_level: info\nlimits:\n  drain_timeout_ms: 300\n"

pytestmark = pytest.mark.skipif(not os.path.exists(HOOKS_SO),
                                reason="t/modules/.libs/hooks.so is built by `make check`")


def check_stub(ch, pb):
    return ch.unary_unary(CHECK, request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)


def watch_stub(ch, pb):
    return ch.unary_stream(WATCH, request_serializer=pb.HealthCheckRequest.SerializeToString,
                           response_deserializer=pb.HealthCheckResponse.FromString)


def readyz(server):
    """(HTTP status, body) of the admin port's /readyz."""
    try:
        with urllib.request.urlopen("http://%s/readyz" % server.admin, timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def park_calls(ch, pb, n, ms, tag):
    stub = check_stub(ch, pb)
    return [stub.future(pb.HealthCheckRequest(),
                        metadata=(("x-test-park-ms", str(ms)), ("x-test-tag", "%s-%d" % (tag, i))),
                        timeout=20)
            for i in range(n)]


def wait_exit(server, timeout):
    """Seconds until the process exits (AssertionError after @timeout)."""
    t0 = time.monotonic()
    try:
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("galaxy-poold still running %.1f s after the signal:\n%s"
                             % (timeout, server.log()))
    return time.monotonic() - t0


# ---------------------------------------------------------------- in-flight calls

@pytest.mark.parametrize("sig,transport", [(signal.SIGTERM, "h2c"), (signal.SIGINT, "tls")],
                         ids=["SIGTERM-h2c", "SIGINT-tls"])
def test_calls_in_flight_finish(make_server, health_pb2, sig, transport):
    s = make_server(modules=(HOOKS_SO,))
    assert readyz(s) == (200, "ready\n")
    n = 20
    with s.channel(transport) as ch:
        stub = check_stub(ch, health_pb2)
        assert stub(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING
        t0 = time.monotonic()
        futs = park_calls(ch, health_pb2, n, 500, "inflight")
        ended = []
        for f in futs:
            f.add_done_callback(lambda f: ended.append(time.monotonic() - t0))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
        s.proc.send_signal(sig)
        t_sig = time.monotonic()

        # draining: not ready, new connections refused, the parked calls go on
        assert wait_for(lambda: readyz(s)[0] == 503, 2), "readyz never 503 while draining"
        assert readyz(s) == (503, "draining\n")
        with s.channel(transport) as fresh:
            with pytest.raises(grpc.RpcError) as e:
                check_stub(fresh, health_pb2)(health_pb2.HealthCheckRequest(), timeout=2)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        host, _, port = (s.h2c if transport == "h2c" else s.tls).rpartition(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=2).close()

        results = [f.result() for f in futs]
    # the handlers ran during the drain: the server already says NOT_SERVING
    assert [r.status for r in results] == [health_pb2.HealthCheckResponse.NOT_SERVING] * n
    # nothing was cut short
    assert wait_for(lambda: len(ended) == n)
    assert min(ended) >= 0.5 - TIMER_SLACK, "a call parked 500 ms ended after %.3f s" % min(ended)
    wait_exit(s, 5)
    exited = time.monotonic() - t_sig
    assert s.stop() == 0
    # the drain ended with its last call, long before drain_timeout_ms (5 s)
    assert 0.4 - TIMER_SLACK <= exited < 2.5, "exited %.2f s after the signal" % exited
    log = s.log()
    assert "signal %s: draining" % ("TERM" if sig == signal.SIGTERM else "INT") in log
    assert "drain timeout" not in log
    assert log.count("status=0 tag=inflight-") == n
    assert "galaxy-poold stopped" in log


def test_same_connection_after_goaway(make_server, health_pb2):
    """A client that keeps its channel gets UNAVAILABLE for new calls, not a hang."""
    s = make_server(modules=(HOOKS_SO,), tls=False)
    with s.channel() as ch:
        stub = check_stub(ch, health_pb2)
        stub(health_pb2.HealthCheckRequest(), timeout=5)
        fut = park_calls(ch, health_pb2, 1, 600, "goaway")[0]
        time.sleep(0.1)
        s.proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: readyz(s)[0] == 503, 2)
        time.sleep(0.05)  # the GOAWAY reaches the client
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            stub(health_pb2.HealthCheckRequest(), timeout=3)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - t0 < 2
        assert fut.result().status == health_pb2.HealthCheckResponse.NOT_SERVING
    wait_exit(s, 5)
    assert s.stop() == 0


# ---------------------------------------------------------------- streams

def test_watch_ends_unavailable_while_calls_finish(make_server, health_pb2):
    s = make_server(modules=(HOOKS_SO,), tls=False)
    with s.channel() as ch:
        stream = watch_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=10)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        fut = park_calls(ch, health_pb2, 1, 800, "watch")[0]
        time.sleep(0.1)
        s.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as e:
            next(stream)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in e.value.details()
        # the stream ends at the start of the drain, not when the drain ends
        assert time.monotonic() - t0 < 0.5
        assert not fut.done()
        assert fut.result().status == health_pb2.HealthCheckResponse.NOT_SERVING
    wait_exit(s, 5)
    assert s.stop() == 0


# ---------------------------------------------------------------- drain timeout

def drain_past_timeout(s, pb):
    """Parks a call for 5 s, SIGTERMs @s (drain_timeout_ms: 300) and checks
    that the drain gives up in time.  @return the exit code."""
    with s.channel() as ch:
        stub = check_stub(ch, pb)
        stub(pb.HealthCheckRequest(), timeout=5)
        fut = stub.future(pb.HealthCheckRequest(),
                          metadata=(("x-test-park-ms", "5000"), ("x-test-tag", "stuck")),
                          timeout=20)
        time.sleep(0.1)
        s.proc.send_signal(signal.SIGTERM)
        took = wait_exit(s, 3)
        # the client sees its connection go
        with pytest.raises(grpc.RpcError) as e:
            fut.result(timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert 0.3 - TIMER_SLACK <= took < 1.0, "exited %.2f s after SIGTERM" % took
    rc = s.stop()
    log = s.log()
    assert "drain timeout: closing connections" in log
    # the cut call still went through LOG (and test_hooks resumed it there)
    assert "status=1 tag=stuck" in log
    assert "galaxy-poold stopped" in log
    return rc


def test_drain_timeout_bounds_shutdown(make_server, health_pb2):
    # leaks are test_drain_timeout_frees_parked_calls' business
    s = make_server(config=DRAIN_300, modules=(HOOKS_SO,), tls=False,
                    env={"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"})
    assert drain_past_timeout(s, health_pb2) == 0


def test_drain_timeout_frees_parked_calls(tmp_path, pki, health_pb2):
    s = Server(str(tmp_path), pki, config=DRAIN_300, modules=(HOOKS_SO,), tls=False).start()
    try:
        rc = drain_past_timeout(s, health_pb2)
    finally:
        s.stop()
    s.assert_clean()
    assert rc == 0


def test_idle_server_exits_at_once(make_server):
    s = make_server()
    s.proc.send_signal(signal.SIGTERM)
    assert wait_exit(s, 5) < 1.0
    assert s.stop() == 0


# ---------------------------------------------------------------- ready file

def test_ready_file_lists_listeners(make_server, health_pb2):
    s = make_server(modules=(HOOKS_SO,))
    with open(s.ready_path) as f:
        lines = f.read().splitlines()
    keys = [l.partition("=")[0] for l in lines]
    assert keys == ["h2c", "tls", "admin"]
    ports = set()
    for k in keys:
        host, _, port = s.addr[k].rpartition(":")
        assert host == "127.0.0.1" and 0 < int(port) < 65536
        ports.add(port)
        socket.create_connection((host, int(port)), timeout=2).close()
    assert len(ports) == 3
    assert readyz(s) == (200, "ready\n")
    for transport in ("h2c", "tls"):
        with s.channel(transport) as ch:
            assert check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5).status \
                == health_pb2.HealthCheckResponse.SERVING


def test_ready_file_without_tls(make_server):
    s = make_server(tls=False)
    with open(s.ready_path) as f:
        assert [l.partition("=")[0] for l in f.read().splitlines()] == ["h2c", "admin"]


# ---------------------------------------------------------------- thread names

@pytest.mark.skipif(bool(os.environ.get("GX_SERVER_WRAP")),
                    reason="the wrapper (valgrind) runs the threads as its own")
def test_threads_are_named(make_server):
    s = make_server(config="server:\n  workers: 3\n")
    task = "/proc/%d/task" % s.proc.pid
    names = sorted(open("%s/%s/comm" % (task, t)).read().strip() for t in os.listdir(task))
    # the main thread and liburcu's hash-table resizer keep the process's name
    assert names == ["galaxy-poold", "galaxy-poold", "gx-keeper", "gx-rcu", "gx-store",
                     "gx-worker-0", "gx-worker-1", "gx-worker-2"], names
    assert s.stop() == 0

# SPDX-License-Identifier: MIT
"""Hostile peers against the transport's limits (src/transport/gx_limits.h):
each test plays one misbehaving client with h2raw (or a bare socket), checks
what it gets (RST_STREAM, GOAWAY, a closed socket), the counter in /metrics
and the log line, and that the server still serves everybody else, including
a client that was connected all along."""
import importlib
import os
import socket
import time

import grpc
import h2.settings
import pytest

from conftest import wait_for
from gxapi import Api
from h2raw import (CANCEL, ENHANCE_YOUR_CALM, INTERNAL_ERROR, NO_ERROR, PROTOCOL_ERROR,
                   REFUSED_STREAM, H2Client, grpc_frame, grpc_headers, raw_frame)

CHECK = "/grpc.health.v1.Health/Check"
# libevent's coarse monotonic clock may fire a timer one 4 ms tick early
TIMER_SLACK = 0.005


def limits_conf(log_level="info", **limits):
    return ("server:\n  log_level: %s\nlimits:\n" % log_level
            + "".join("  %s: %s\n" % kv for kv in limits.items()))


def counter(server, name):
    return server.metrics().get("galaxy_" + name, 0)


def check(ch, pb, timeout=5):
    stub = ch.unary_unary(CHECK, request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)
    return stub(pb.HealthCheckRequest(), timeout=timeout)


class Bystander:
    """A well-behaved grpc client connected before the attack and checked after it."""

    def __init__(self, server, pb):
        self.server, self.pb = server, pb
        self.ch = server.channel()
        assert check(self.ch, pb).status == pb.HealthCheckResponse.SERVING

    def assert_served(self):
        assert self.server.alive()
        assert check(self.ch, self.pb).status == self.pb.HealthCheckResponse.SERVING
        with self.server.channel() as fresh:
            assert check(fresh, self.pb).status == self.pb.HealthCheckResponse.SERVING
        with H2Client(self.server.h2c) as c:
            r = c.call(CHECK, grpc_frame(b""))
            assert (r.http_status, r.status) == (200, 0), r
        self.ch.close()


@pytest.fixture
def bystander(health_pb2):
    made = []

    def make(server):
        b = Bystander(server, health_pb2)
        made.append(b)
        return b

    yield make
    for b in made:
        b.ch.close()


def fresh_ok(server, pb):
    """A new connection's Health Check answers SERVING."""
    try:
        with server.channel() as ch:
            return check(ch, pb, timeout=2).status == pb.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def wait_log(server, text, timeout=3):
    assert wait_for(lambda: text in server.log(), timeout), \
        "no %r in the log:\n%s" % (text, server.log())


def recv_until_eof(sock, timeout):
    """Reads until the peer closes; (bytes, seconds).  AssertionError when it does not."""
    sock.settimeout(timeout)
    t0 = time.monotonic()
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the server did not close the connection in %s s" % timeout)
    return data, time.monotonic() - t0


# ---------------------------------------------------------------- streams

def test_header_list_too_large(make_server, bystander):
    s = make_server(tls=False)
    b = bystander(s)
    with H2Client(s.h2c) as c:
        pad = [("x-pad-%02d" % i, "p" * 1000) for i in range(20)]  # ~20 KiB > 16 KiB
        sid = c.request(CHECK, grpc_frame(b""), extra=pad)
        r = c.wait(sid)
        assert r.reset is not None, r
        assert r.headers is None
        # only the stream paid: the connection goes on
        r = c.call(CHECK, grpc_frame(b""))
        assert (r.http_status, r.status) == (200, 0), r
        assert c.goaway is None
    assert counter(s, "h2_header_list_too_large_total") == 1
    wait_log(s, 'reason="header list over max_header_list_bytes"')
    b.assert_served()


def test_header_list_just_under_limit_passes(make_server):
    s = make_server(tls=False)
    with H2Client(s.h2c) as c:
        pad = [("x-pad-%02d" % i, "p" * 1000) for i in range(12)]  # ~12.5 KiB
        r = c.call(CHECK, grpc_frame(b""), extra=pad)
        assert (r.http_status, r.status) == (200, 0), r
    assert counter(s, "h2_header_list_too_large_total") == 0


def open_too_many(c, n_ok, n_extra):
    """Opens n_ok + n_extra streams (request headers without END_STREAM keep
    them open); h2 has not read the server's SETTINGS yet, so it lets us.
    @return their ids, after the extra ones were reset."""
    sids = [c.request(CHECK, end_stream=False) for _ in range(n_ok + n_extra)]
    c.wait_until(lambda: all(c.response(x).reset is not None for x in sids[n_ok:]), 3)
    return sids


def test_max_concurrent_streams(make_server, bystander):
    s = make_server(config=limits_conf(max_concurrent_streams=4), tls=False)
    b = bystander(s)
    with H2Client(s.h2c) as c:
        sids = open_too_many(c, 4, 2)
        assert [c.response(x).reset for x in sids[4:]] == [REFUSED_STREAM] * 2
        # the first four are still open and can finish
        for x in sids[:4]:
            assert not c.response(x).done
            c.send_data(x, grpc_frame(b""), end_stream=True)
        for x in sids[:4]:
            r = c.wait(x)
            assert (r.http_status, r.status) == (200, 0), r
        assert c.goaway is None
        # and their places are free again
        sids = [c.request(CHECK, grpc_frame(b"")) for _ in range(4)]
        assert [c.wait(x).status for x in sids] == [0] * 4
    b.assert_served()


def test_refused_streams_counted(make_server):
    s = make_server(config=limits_conf(max_concurrent_streams=4), tls=False)
    with H2Client(s.h2c) as c:
        open_too_many(c, 4, 2)
    assert counter(s, "h2_streams_refused_total") == 2
    assert counter(s, "h2_invalid_frames_total") == 0
    wait_log(s, 'reason="over max_concurrent_streams"')


def test_max_calls(make_server):
    """limits.max_calls bounds the streams open on all connections together
    (each worker takes its share; one worker here): past it a new stream is
    refused with REFUSED_STREAM, which tells a gRPC client it was not
    processed, and is counted and logged; the open ones finish, and their
    places are free again."""
    s = make_server(config=limits_conf(max_calls=5), args=("--workers", "1"), tls=False)
    with H2Client(s.h2c) as a, H2Client(s.h2c) as b:
        held = [(a, a.request(CHECK, end_stream=False)) for _ in range(3)]
        held += [(b, b.request(CHECK, end_stream=False)) for _ in range(2)]
        assert wait_for(lambda: counter(s, "calls_open") == 5, 3)
        extra = b.request(CHECK, end_stream=False)
        b.wait_until(lambda: b.response(extra).reset is not None, 3)
        assert b.response(extra).reset == REFUSED_STREAM
        with H2Client(s.h2c) as c:
            assert c.call(CHECK, grpc_frame(b""), timeout=3).reset == REFUSED_STREAM
        assert counter(s, "calls_refused_total") == 2
        wait_log(s, 'reason="over max_calls" limit=5 worker_share=5')
        for c, x in held:
            assert not c.response(x).done
            c.send_data(x, grpc_frame(b""), end_stream=True)
        for c, x in held:
            r = c.wait(x, 3)
            assert (r.http_status, r.status) == (200, 0), r
        assert wait_for(lambda: counter(s, "calls_open") == 0, 3)
        sids = [a.request(CHECK, grpc_frame(b"")) for _ in range(5)]
        assert [a.wait(x, 3).status for x in sids] == [0] * 5
        assert a.goaway is None and b.goaway is None


def test_rapid_reset(make_server, bystander):
    s = make_server(config=limits_conf(stream_reset_burst=50, stream_reset_rate=10), tls=False)
    b = bystander(s)
    with H2Client(s.h2c) as c:
        # 100 streams opened and reset, sent in one write: the server reads it
        # all at once, so it closes after its GOAWAY without unread bytes (an
        # unread rest would turn its close into a TCP reset that can eat the
        # GOAWAY) and without us writing into a closed socket
        headers = [(k.encode(), v.encode()) for k, v in grpc_headers(CHECK)]
        for _ in range(100):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, headers)
            c.conn.reset_stream(sid, CANCEL)
        c.send_raw(b"")
        assert c.wait_until(lambda: c.goaway is not None or c.closed, 3)
        assert c.goaway is not None, "no GOAWAY after 100 resets"
        assert c.goaway[0] in (INTERNAL_ERROR, ENHANCE_YOUR_CALM), c.goaway
        assert c.wait_closed(3)
    assert counter(s, "h2_rapid_reset_total") + counter(s, "h2_protocol_errors_total") == 1
    assert counter(s, "h2_rapid_reset_total") == 1
    wait_log(s, "resets=")
    b.assert_served()


def test_resets_under_the_burst_are_fine(make_server):
    s = make_server(config=limits_conf(stream_reset_burst=50, stream_reset_rate=10), tls=False)
    with H2Client(s.h2c) as c:
        for _ in range(40):
            c.reset(c.request(CHECK, end_stream=False))
        r = c.call(CHECK, grpc_frame(b""))
        assert (r.http_status, r.status) == (200, 0), r
        assert c.goaway is None
    assert counter(s, "h2_rapid_reset_total") == 0


# ---------------------------------------------------------------- frames

def ping_flood(s, n):
    with H2Client(s.h2c) as c:
        # all pings in one write: the server may close before a later write
        for i in range(n):
            c.conn.ping(b"flood%03d" % i)
        c.send_raw(b"")
        assert c.wait_until(lambda: c.goaway is not None or c.closed, 3)
        assert c.goaway is not None
        assert c.goaway[0] == ENHANCE_YOUR_CALM
        assert c.goaway[2] == b"too_many_pings"
        assert c.wait_closed(3)


def test_ping_flood(make_server, bystander):
    s = make_server(tls=False)  # ping_min_interval_ms 300000, ping_max_strikes 2
    b = bystander(s)
    # the first ping sets the clock, the next two are strikes, the fourth is one too many
    ping_flood(s, 4)
    assert counter(s, "h2_ping_flood_total") == 1
    wait_log(s, 'reason="too many pings"')
    b.assert_served()


def test_ping_flood_counts_connections(make_server):
    s = make_server(tls=False)
    ping_flood(s, 10)
    assert counter(s, "h2_ping_flood_total") == 1


def test_few_pings_are_fine(make_server):
    s = make_server(tls=False)
    with H2Client(s.h2c) as c:
        for i in range(3):  # the first sets the clock, then two strikes: allowed
            c.ping(b"ok%06d" % i)
        c.wait_until(lambda: c.pings_acked == 3, 3)
        r = c.call(CHECK, grpc_frame(b""))
        assert (r.http_status, r.status) == (200, 0), r
        assert c.goaway is None
    assert counter(s, "h2_ping_flood_total") == 0


def test_invalid_frames(make_server, bystander):
    limit = 10
    s = make_server(config=limits_conf(max_invalid_frames=limit), tls=False)
    b = bystander(s)
    with H2Client(s.h2c) as c:
        # an upper-case header name is a malformed request (RFC 9113 8.2.1):
        # a stream error each time, which nghttp2 reports as an invalid frame.
        # Each one waits for the server's answer to the one before: a request
        # written after the server closed would make its kernel answer with a
        # TCP reset, which can discard the GOAWAY before we read it.
        for i in range(limit + 1):
            sid = c.request(CHECK, grpc_frame(b""), extra=[("X-Upper", "1")])
            c.wait_until(lambda: c.response(sid).reset is not None or c.goaway is not None
                         or c.closed, 3)
            if c.goaway is not None or c.closed:
                break
        assert c.wait_until(lambda: c.goaway is not None or c.closed, 3)
        assert c.goaway is not None
        assert c.goaway[0] == ENHANCE_YOUR_CALM
        assert c.goaway[2] == b"too many invalid frames"
        assert c.wait_closed(3)
        reset = [r for r in c.responses.values() if r.reset == PROTOCOL_ERROR]
        assert len(reset) >= limit
        assert not any(r.status == 0 for r in c.responses.values())
    assert counter(s, "h2_invalid_frames_total") == limit + 1
    assert counter(s, "h2_invalid_frames_goaway_total") == 1
    wait_log(s, 'reason="too many invalid frames"')
    b.assert_served()


def test_data_on_closed_stream(make_server, bystander):
    """DATA after the stream ended is ignored, and its bytes go back to the connection's window.

    The server keeps no state for a closed stream (SETTINGS_NO_RFC7540_PRIORITIES: no priority
    tree, so nghttp2 frees a stream when it closes), and RFC 9113 5.1 lets an endpoint without
    that state ignore such frames.  The ignored bytes still count against the connection's flow
    control window; unless the server hands them back, a client sending 16 windows of them would
    end in FLOW_CONTROL_ERROR.  The connection goes on serving and nothing counts as a protocol
    error."""
    s = make_server(config=limits_conf(connection_window_bytes=65535,
                                       initial_window_bytes=65535), tls=False)
    b = bystander(s)
    with H2Client(s.h2c) as c:
        r = c.call(CHECK, grpc_frame(b""))
        assert r.status == 0
        before = counter(s, "h2_protocol_errors_total")
        junk = raw_frame(0x0, 0x0, r.stream_id, b"\0" * 16384)
        for _ in range(64):  # 1 MiB
            c.send_raw(junk)
        r = c.call(CHECK, grpc_frame(b""))
        assert r.status == 0, r
        assert c.goaway is None and not c.closed
    assert counter(s, "h2_protocol_errors_total") == before
    b.assert_served()


def test_bad_client_preface(make_server, bystander):
    s = make_server(tls=False)
    b = bystander(s)
    host, _, port = s.h2c.rpartition(":")
    junks = (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                   # HTTP/1.1
             b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 32,          # a broken preface
             b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 64)  # TLS on h2c
    for junk in junks:
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            sock.sendall(junk)
            data, took = recv_until_eof(sock, 3)
            assert took < 1.5
    assert counter(s, "h2_protocol_errors_total") == 3
    wait_log(s, "connection closed")
    b.assert_served()


# ---------------------------------------------------------------- timeouts

def test_first_request_timeout(make_server, bystander):
    s = make_server(config=limits_conf(first_request_timeout_ms=300), tls=False)
    b = bystander(s)
    host, _, port = s.h2c.rpartition(":")
    # a bare TCP connection that never says anything
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        data, _ = recv_until_eof(sock, 3)
    took = time.monotonic() - t0
    assert 0.3 - TIMER_SLACK <= took < 1.5, took
    # the server said SETTINGS then GOAWAY (type 7) before closing
    assert b"\x07\x00" in data
    # an HTTP/2 client that sends its preface and SETTINGS but no request
    t0 = time.monotonic()
    with H2Client(s.h2c) as c:
        assert c.wait_closed(3)
        assert 0.3 - TIMER_SLACK <= time.monotonic() - t0 < 1.5
        assert c.goaway is not None and c.goaway[0] == NO_ERROR
    assert counter(s, "connections_first_request_timeout_total") == 2
    wait_log(s, 'reason="no request within first_request_timeout"')
    b.assert_served()


def test_idle_timeout(make_server, bystander):
    s = make_server(config=limits_conf(log_level="debug", idle_timeout_ms=300), tls=False)
    with H2Client(s.h2c) as c:
        r = c.call(CHECK, grpc_frame(b""))
        assert r.status == 0
        t0 = time.monotonic()
        assert c.wait_closed(3)
        took = time.monotonic() - t0
        assert c.goaway is not None and c.goaway[0] == NO_ERROR
    assert 0.3 - TIMER_SLACK - 0.05 <= took < 1.5, took
    assert counter(s, "connections_idle_closed_total") >= 1
    wait_log(s, "reason=idle")
    # a connection in use is not idle: calls 100 ms apart keep it for 0.6 s
    with H2Client(s.h2c) as c:
        for _ in range(6):
            r = c.call(CHECK, grpc_frame(b""))
            assert r.status == 0, r
            c.pump(0.1)
        assert c.goaway is None and not c.closed
    b = bystander(s)
    b.assert_served()


def test_idle_timeout_spares_open_streams(make_server):
    """idle means no open stream: a stream left open keeps the connection."""
    s = make_server(config=limits_conf(idle_timeout_ms=300), tls=False)
    with H2Client(s.h2c) as c:
        sid = c.request(CHECK, end_stream=False)
        c.pump(0.8)
        assert c.goaway is None and not c.closed
        c.send_data(sid, grpc_frame(b""), end_stream=True)
        assert c.wait(sid).status == 0
        assert c.wait_closed(3)
    assert counter(s, "connections_idle_closed_total") == 1


def test_tls_handshake_timeout(make_server, bystander):
    s = make_server(config=limits_conf(tls_handshake_timeout_ms=300))
    b = bystander(s)
    host, _, port = s.tls.rpartition(":")
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        data, _ = recv_until_eof(sock, 3)
    took = time.monotonic() - t0
    assert data == b""
    assert 0.3 - TIMER_SLACK <= took < 1.5, took
    assert counter(s, "tls_handshake_timeout_total") == 1
    wait_log(s, 'reason="tls handshake timeout"')
    # a real TLS client still gets through
    with s.channel("tls") as ch:
        check(ch, b.pb)
    b.assert_served()


# ---------------------------------------------------------------- connections

def test_max_connections(make_server, health_pb2):
    s = make_server(config=limits_conf(max_connections=3), tls=False)
    clients = []
    try:
        for _ in range(3):
            c = H2Client(s.h2c)
            r = c.call(CHECK, grpc_frame(b""))
            assert r.status == 0, r
            clients.append(c)
        host, _, port = s.h2c.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=3) as sock:
            data, took = recv_until_eof(sock, 3)
        assert data == b"" and took < 0.5, (data, took)
        assert counter(s, "connections_rejected_total") == 1
        wait_log(s, 'reason="over max_connections"')
        # the three still work
        for c in clients:
            assert c.call(CHECK, grpc_frame(b"")).status == 0
    finally:
        for c in clients:
            c.close()
    # their places come free
    assert wait_for(lambda: fresh_ok(s, health_pb2), 5)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(bool(os.environ.get("GX_SERVER_WRAP")),
                    reason="a wrapper such as valgrind needs descriptors of its own")
def test_out_of_file_descriptors(make_server, health_pb2):
    """With every descriptor in use, accept() fails and the connection stays queued.
    Accepting pauses (no busy loop, one log line a second) and the queued
    connections, the admin port's included, are served once descriptors come free."""
    s = make_server(config=limits_conf(first_request_timeout_ms=30000), tls=False, nofile=64)
    # the hard limit is 64 too, so the server cannot raise it and says so
    wait_log(s, "open files limit 64 is below limits.max_connections 10000")
    host, _, port = s.h2c.rpartition(":")
    socks = []
    try:
        for _ in range(100):    # more than the server has descriptors; the backlog takes 1024
            socks.append(socket.create_connection((host, int(port)), timeout=3))
        wait_log(s, 'accept paused listener=h2c error="Too many open files"')
        ahost, _, aport = s.admin.rpartition(":")
        socks.append(socket.create_connection((ahost, int(aport)), timeout=3))
        socks[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_log(s, 'accept paused listener=admin error="Too many open files"')
        before, t0 = cpu_seconds(s.proc.pid), time.monotonic()
        lines0 = s.log().count("accept paused")
        time.sleep(2)
        used, took = cpu_seconds(s.proc.pid) - before, time.monotonic() - t0
        # a loop retrying accept() at once would burn a whole core and log every time
        assert used < 0.5, "%.2f s of CPU in %.2f s while out of descriptors" % (used, took)
        lines = s.log().count("accept paused") - lines0
        assert 1 <= lines <= 3 * (took + 1), s.log()[-2000:]
        assert s.alive()
        socks[-1].settimeout(0.2)
        with pytest.raises(socket.timeout):
            socks[-1].recv(100)     # not answered while no descriptor is free
        for sock in socks[:-1]:
            sock.close()
        # descriptors came free: the admin request that waited is answered
        socks[-1].settimeout(5)
        assert socks[-1].recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    assert wait_for(lambda: fresh_ok(s, health_pb2), 5)
    assert counter(s, "accept_paused_total") >= 2


# ---------------------------------------------------------------- unfinished messages

RECV_BUFFERS = dict(max_recv_message_bytes=32768, conn_recv_buffer_bytes=65536,
                    server_recv_buffer_bytes=131072)
RESOURCE_EXHAUSTED = 8


def health_body(pb):
    """A whole Health Check request of 30,005 bytes on the wire (a 30,000-byte message)."""
    body = grpc_frame(pb.HealthCheckRequest(service="s" * 29996).SerializeToString())
    assert len(body) == 30005
    return body


def held(server, n):
    """Waits until the server holds @n bytes of unfinished messages (its gauge)."""
    assert wait_for(lambda: server.metrics().get("galaxy_recv_held_bytes") == n, 5), \
        server.metrics().get("galaxy_recv_held_bytes")


def hold(c, body, n=25000):
    """Opens a Health Check and sends the first @n bytes of @body: an unfinished message."""
    sid = c.request(CHECK, end_stream=False)
    c.send_data(sid, body[:n])
    return sid


def finish(c, sid, body, n=25000):
    """Sends the rest of @body; the call must then be answered (not RESOURCE_EXHAUSTED)."""
    c.send_data(sid, body[n:], end_stream=True)
    r = c.wait(sid)
    assert r.http_status == 200 and r.status is not None, r
    assert r.status != RESOURCE_EXHAUSTED, r.message
    return r


def test_unfinished_messages_bounded_per_connection(make_server, health_pb2):
    """Bytes of unfinished messages go back to the client's windows, so flow control no
    longer bounds them: conn_recv_buffer_bytes does.  The stream that goes past it fails
    with RESOURCE_EXHAUSTED; the others on the connection go on."""
    s = make_server(config=limits_conf(**RECV_BUFFERS), tls=False)
    body = health_body(health_pb2)
    with H2Client(s.h2c) as c:
        kept = [hold(c, body), hold(c, body)]           # 50,000 held: within 65,536
        held(s, 50000)
        over = hold(c, body)                            # 75,000
        r = c.wait(over)
        assert r.status == RESOURCE_EXHAUSTED, r
        assert "conn_recv_buffer_bytes" in r.message and "65536" in r.message, r.message
        held(s, 50000)                                  # the refused stream's bytes dropped
        for sid in kept:
            finish(c, sid, body)
        held(s, 0)
        # what the streams held is given back: two more fit again
        again = [hold(c, body), hold(c, body)]
        for sid in again:
            finish(c, sid, body)
    assert counter(s, "grpc_recv_buffer_full_total") == 1
    wait_log(s, "(conn_recv_buffer_bytes)")


def test_unfinished_messages_bounded_per_server(make_server, health_pb2):
    """server_recv_buffer_bytes bounds what all connections hold together, and what a
    connection held is given back when it closes."""
    s = make_server(config=limits_conf(**RECV_BUFFERS), tls=False)
    body = health_body(health_pb2)
    conns = [H2Client(s.h2c) for _ in range(3)]
    try:
        sids = [[hold(c, body), hold(c, body)] for c in conns[:2]]  # 100,000 held
        third = hold(conns[2], body)                               # 125,000
        held(s, 125000)
        over = hold(conns[2], body)                                # 150,000 > 131,072
        r = conns[2].wait(over)
        assert r.status == RESOURCE_EXHAUSTED, r
        assert "server_recv_buffer_bytes" in r.message and "131072" in r.message, r.message
        conns[0].close()                                           # gives back 50,000
        held(s, 75000)
        late = hold(conns[2], body)                                # 100,000
        for sid in sids[1]:
            finish(conns[1], sid, body)
        for sid in (third, late):
            finish(conns[2], sid, body)
    finally:
        for c in conns:
            c.close()
    assert counter(s, "grpc_recv_buffer_full_total") == 1
    assert fresh_ok(s, health_pb2)


# ---------------------------------------------------------------- answers nobody reads

SEND_QUEUES = dict(conn_send_queue_bytes=65536, server_send_queue_bytes=131072)
LIST = "/galaxy.pool.v1.Discovery/ListNodes"


@pytest.fixture
def listing(make_server, protos):
    """A server with 20 nodes of ~2.5 KB in devnet, and a ListNodes body whose answer
    is ~50 KB."""
    pb = importlib.import_module("galaxy.pool.v1.pool_pb2")
    # one worker: each worker folds its count into the server's total 64 KiB at a time,
    # and these answers are smaller than that
    s = make_server(config=limits_conf(**SEND_QUEUES), tls=False, args=("--workers", "1"))
    with s.channel() as ch:
        api = Api(ch, pb)
        for i in range(20):
            api.register("n%02d" % i, labels={"k%d" % j: "v" * 200 for j in range(12)})
        answer = api.list(page_size=100)
    # two answers pass 65,536 (conn_send_queue_bytes), three pass 131,072
    assert 131072 / 3 < answer.ByteSize() < 65536, answer.ByteSize()
    return s, grpc_frame(pb.ListNodesRequest(pool="devnet", page_size=100).SerializeToString())


def test_answers_waiting_bounded_per_connection(listing):
    """A client that asks and does not read: the server keeps its answers only up to
    conn_send_queue_bytes (one answer always fits); the next call fails with
    RESOURCE_EXHAUSTED, and the kept ones arrive once the client reads."""
    s, body = listing
    with H2Client(s.h2c, window=0, window_updates=False) as c:    # no stream may send DATA
        first = c.request(LIST, body)
        second = c.request(LIST, body)
        r = c.wait(second)
        assert r.status == RESOURCE_EXHAUSTED and r.trailers_only, r
        assert "conn_send_queue_bytes" in r.message, r.message
        assert not c.response(first).done
        c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        c.set_window_updates(True)
        r = c.wait(first)
        assert (r.http_status, r.status) == (200, 0) and len(r.messages) == 1, r
    assert s.metrics()["galaxy_send_queued_bytes"] == 0
    assert counter(s, "grpc_send_queue_full_total") == 1
    wait_log(s, "limits.conn_send_queue_bytes (it does not read)")


def test_answers_waiting_bounded_per_server(listing, health_pb2):
    """server_send_queue_bytes bounds what waits for all clients together, even a
    connection's first answer; a closed connection's answers no longer count."""
    s, body = listing
    conns = [H2Client(s.h2c, window=0, window_updates=False) for _ in range(4)]
    try:
        # two connections' answers wait (~100 KB): their HEADERS come, DATA cannot
        for c in conns[:2]:
            sid = c.request(LIST, body)
            c.wait_until(lambda: c.response(sid).headers is not None, 5)
            assert not c.response(sid).done
        over = conns[2].request(LIST, body)                      # ~150 KB > 131,072
        r = conns[2].wait(over)
        assert r.status == RESOURCE_EXHAUSTED and r.trailers_only, r
        assert "server_send_queue_bytes" in r.message, r.message
        conns[0].close()                                         # its answer is dropped
        late = conns[3].request(LIST, body)
        conns[3].wait_until(lambda: conns[3].response(late).headers is not None, 5)
        conns[3].conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        conns[3].set_window_updates(True)
        r = conns[3].wait(late)
        assert (r.http_status, r.status) == (200, 0), r
    finally:
        for c in conns:
            c.close()
    assert counter(s, "grpc_send_queue_full_total") == 1
    assert fresh_ok(s, health_pb2)

# SPDX-License-Identifier: MIT
"""The gRPC layer's behaviour on calls that go wrong halfway or push it:
deadlines, client cancellation, metadata in and out, grpc-message escaping,
back-pressure against a client that does not read, and many calls at once.

grpcio where it can say what is needed, h2raw (a raw HTTP/2 client) where it
cannot.  The server-side effects are checked on the server's own counters
(/metrics) and access log, and each test ends with a Health/Check on the same
server; the make_server fixture checks that the server exits 0 with a clean log.
"""
import base64
import re
import time
import urllib.parse

import grpc
import pytest

from conftest import rss_kib, wait_for
from h2raw import CANCEL, MAX_WINDOW, H2Client, grpc_frame

CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
TEST_SERVICE = "/grpc.testing.TestService/"
SERVING = b"\x08\x01"

OK, CANCELLED, UNKNOWN, DEADLINE_EXCEEDED = 0, 1, 2, 4

SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"

INTEROP_CONF = """server:
  log_level: info
modules:
  - path: interop
    config:
      max_call_bytes: 4294967295
      max_responses: 100000
"""


# ---------------------------------------------------------------- helpers

def check_stub(ch, pb):
    return ch.unary_unary(CHECK, request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)


def watch_stub(ch, pb):
    return ch.unary_stream(WATCH, request_serializer=pb.HealthCheckRequest.SerializeToString,
                           response_deserializer=pb.HealthCheckResponse.FromString)


def interop(ch, kind, name, pb):
    m, e = pb.messages_pb2, pb.empty_pb2
    req, resp = {
        "EmptyCall": (e.Empty, e.Empty),
        "UnaryCall": (m.SimpleRequest, m.SimpleResponse),
        "StreamingOutputCall": (m.StreamingOutputCallRequest, m.StreamingOutputCallResponse),
        "FullDuplexCall": (m.StreamingOutputCallRequest, m.StreamingOutputCallResponse),
    }[name]
    return getattr(ch, kind)(TEST_SERVICE + name, request_serializer=req.SerializeToString,
                             response_deserializer=resp.FromString)


def assert_healthy(server, pb):
    assert server.alive()
    with server.channel() as ch:
        resp = check_stub(ch, pb)(pb.HealthCheckRequest(), timeout=5)
    assert resp.status == pb.HealthCheckResponse.SERVING


def counter(server, name):
    return server.metrics().get("galaxy_" + name, 0)


def access_lines(server, method, status):
    pat = re.compile(r" access method=%s status=%s " % (re.escape(method), status))
    return len(pat.findall(server.log()))


def out_request(pb, sizes, interval_us=0):
    m = pb.messages_pb2
    return m.StreamingOutputCallRequest(response_parameters=[
        m.ResponseParameters(size=s, interval_us=interval_us) for s in sizes])


@pytest.fixture
def iserver(make_server):
    """A server of its own with the interop module (raised call limits)."""
    return make_server(config=INTEROP_CONF, tls=False)


# ---------------------------------------------------------------- deadlines

def test_deadline_is_enforced_by_the_server(iserver, health_pb2, interop_pb):
    """No client timer involved: the raw client waits as long as it takes, so
    the DEADLINE_EXCEEDED it reads can only come from the server."""
    before = counter(iserver, "grpc_deadline_exceeded_total")
    method = TEST_SERVICE + "StreamingOutputCall"
    # first response at once, the second 5 s later: the deadline falls between
    m = interop_pb.messages_pb2
    req = m.StreamingOutputCallRequest(response_parameters=[
        m.ResponseParameters(size=7), m.ResponseParameters(size=7, interval_us=5000000)])
    with H2Client(iserver.h2c) as c:
        t0 = time.monotonic()
        r = c.call(method, grpc_frame(req.SerializeToString()), grpc_timeout="200m", timeout=4)
        took = time.monotonic() - t0
        assert r.status == DEADLINE_EXCEEDED, r
        assert r.message == "deadline exceeded"
        assert len(r.messages) == 1 and r.trailers is not None, r  # data, then trailers
        assert 0.15 < took < 2.0, took
        # and the connection goes on
        assert c.call(CHECK, grpc_frame(b"")).messages == [SERVING]
    assert wait_for(lambda: counter(iserver, "grpc_deadline_exceeded_total") == before + 1)
    assert wait_for(lambda: access_lines(iserver, method, "DEADLINE_EXCEEDED") == 1)
    assert_healthy(iserver, health_pb2)


def test_deadline_from_grpcio(iserver, health_pb2, interop_pb):
    """grpcio's own timer and the server's fire together: the client sees
    DEADLINE_EXCEEDED, and the server ends the call exactly once, by its
    deadline or by the client's RST_STREAM, whichever came first."""
    method = TEST_SERVICE + "StreamingOutputCall"
    names = ("grpc_deadline_exceeded_total", "grpc_peer_cancelled_total")
    before = sum(counter(iserver, n) for n in names)
    with iserver.channel() as ch:
        call = interop(ch, "unary_stream", "StreamingOutputCall", interop_pb)(
            out_request(interop_pb, [1], interval_us=3000000), timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            list(call)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - t0 < 2
        assert check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert wait_for(lambda: sum(counter(iserver, n) for n in names) == before + 1)
    assert wait_for(lambda: access_lines(iserver, method, "(DEADLINE_EXCEEDED|CANCELLED)") == 1)
    assert_healthy(iserver, health_pb2)


@pytest.mark.parametrize("method,body", [
    pytest.param(CHECK, b"", id="unary-no-message"),
    pytest.param(CHECK, grpc_frame(b""), id="unary-message-no-half-close"),
    pytest.param(TEST_SERVICE + "FullDuplexCall", b"", id="bidi-no-message"),
])
def test_deadline_on_a_stream_that_never_ends(iserver, health_pb2, method, body):
    before = counter(iserver, "grpc_deadline_exceeded_total")
    with H2Client(iserver.h2c) as c:
        t0 = time.monotonic()
        sid = c.request(method, body, end_stream=False, grpc_timeout="1m")
        r = c.wait(sid, timeout=3)
        assert time.monotonic() - t0 < 1.5
        assert r.http_status == 200 and r.status == DEADLINE_EXCEEDED, r
        assert c.call(CHECK, grpc_frame(b"")).messages == [SERVING]
    assert wait_for(lambda: counter(iserver, "grpc_deadline_exceeded_total") == before + 1)
    assert_healthy(iserver, health_pb2)


def test_zero_timeout_is_already_expired(server, health_pb2):
    """grpc-timeout 0 is a deadline already past, not 'no deadline'."""
    before = counter(server, "grpc_deadline_exceeded_total")
    with H2Client(server.h2c) as c:
        for timeout in ("0m", "0S", "0n"):
            sid = c.request(CHECK, b"", end_stream=False, grpc_timeout=timeout)
            r = c.wait(sid, timeout=1.0)
            assert r.status == DEADLINE_EXCEEDED, (timeout, r)
    assert wait_for(lambda: counter(server, "grpc_deadline_exceeded_total") == before + 3)
    assert_healthy(server, health_pb2)


def test_deadline_reaches_a_client_that_does_not_read(iserver, health_pb2, interop_pb):
    """Past its deadline, a call whose client stopped taking data must still end
    (trailers or RST_STREAM) instead of holding its stream and buffers."""
    before = counter(iserver, "grpc_deadline_exceeded_total")
    req = out_request(interop_pb, [1 << 20] * 64).SerializeToString()
    with H2Client(iserver.h2c, window_updates=False) as c:
        sid = c.request(TEST_SERVICE + "StreamingOutputCall", grpc_frame(req),
                        grpc_timeout="300m")
        assert wait_for(lambda: counter(iserver, "grpc_deadline_exceeded_total") == before + 1)
        r = c.wait(sid, timeout=2)
        assert r.reset is not None or r.status == DEADLINE_EXCEEDED, r
        c.set_window_updates(True)
        assert c.call(CHECK, grpc_frame(b"")).messages == [SERVING]
    assert_healthy(iserver, health_pb2)


# ---------------------------------------------------------------- cancellation

def test_client_cancel_frees_the_call(server, health_pb2):
    before = counter(server, "grpc_peer_cancelled_total")
    req = health_pb2.HealthCheckRequest()
    with server.channel() as ch:
        watch, check = watch_stub(ch, health_pb2), check_stub(ch, health_pb2)
        stream = watch(req, timeout=30)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()
        assert wait_for(lambda: counter(server, "grpc_peer_cancelled_total") == before + 1)
        assert wait_for(lambda: access_lines(server, WATCH, "CANCELLED") == 1)
        assert check(req, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        # twice max_concurrent_streams: the streams must be given back
        t0 = time.monotonic()
        for _ in range(200):
            stream = watch(req, timeout=30)
            assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
            stream.cancel()
            assert time.monotonic() - t0 < 30
        assert check(req, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    assert wait_for(lambda: counter(server, "grpc_peer_cancelled_total") == before + 201)
    assert wait_for(lambda: access_lines(server, WATCH, "CANCELLED") == 201)
    key = 'galaxy_grpc_calls_total{method="%s",code="CANCELLED"}' % WATCH
    assert server.metrics().get(key) == 201
    assert_healthy(server, health_pb2)


def test_raw_reset_of_a_running_stream(iserver, health_pb2, interop_pb):
    """RST_STREAM(CANCEL) in the middle of a bidi stream; the connection goes on."""
    before = counter(iserver, "grpc_peer_cancelled_total")
    with H2Client(iserver.h2c) as c:
        sid = c.request(TEST_SERVICE + "FullDuplexCall",
                        grpc_frame(out_request(interop_pb, [5]).SerializeToString()),
                        end_stream=False)
        c.wait_until(lambda: len(c.response(sid).messages) == 1)
        c.reset(sid, CANCEL)
        assert wait_for(lambda: counter(iserver, "grpc_peer_cancelled_total") == before + 1)
        assert c.call(CHECK, grpc_frame(b"")).messages == [SERVING]
    assert wait_for(lambda: access_lines(iserver, TEST_SERVICE + "FullDuplexCall",
                                         "CANCELLED") == 1)
    assert_healthy(iserver, health_pb2)


# ---------------------------------------------------------------- metadata

BIN_VALUES = [b"\x00", b"\xff", b"\x00\xff", b"\xff\x00\xff", b"\x00" * 4, bytes(range(256)),
              b"\xff" * 3000]


def test_custom_metadata_round_trip(iserver, health_pb2, interop_pb):
    m = interop_pb.messages_pb2
    with iserver.channel() as ch:
        unary = interop(ch, "unary_unary", "UnaryCall", interop_pb)
        empty = interop(ch, "unary_unary", "EmptyCall", interop_pb)
        for value in BIN_VALUES:
            md = [(ECHO_INITIAL, "initial value ~!@#$%^&*()"), (ECHO_TRAILING, value)]
            for stub, req in ((unary, m.SimpleRequest(response_size=3)),
                              (empty, interop_pb.empty_pb2.Empty())):
                _, call = stub.with_call(req, metadata=md, timeout=5)
                assert (ECHO_INITIAL, "initial value ~!@#$%^&*()") in call.initial_metadata()
                assert (ECHO_TRAILING, value) in call.trailing_metadata(), value
        # streaming: headers before the first response, trailer after the last
        md = [(ECHO_INITIAL, "streaming"), (ECHO_TRAILING, b"\x00\x01\xfe\xff")]
        call = interop(ch, "stream_stream", "FullDuplexCall", interop_pb)(
            iter([out_request(interop_pb, [1, 2])]), metadata=md, timeout=5)
        assert [len(r.payload.body) for r in call] == [1, 2]
        assert (ECHO_INITIAL, "streaming") in call.initial_metadata()
        assert (ECHO_TRAILING, b"\x00\x01\xfe\xff") in call.trailing_metadata()
        # an error status (Trailers-Only) carries them too
        req = m.SimpleRequest(response_status=m.EchoStatus(code=9, message="no"))
        with pytest.raises(grpc.RpcError) as e:
            unary.with_call(req, metadata=md, timeout=5)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert (ECHO_TRAILING, b"\x00\x01\xfe\xff") in e.value.trailing_metadata()
        assert (ECHO_INITIAL, "streaming") in e.value.initial_metadata() + \
            e.value.trailing_metadata()
    assert_healthy(iserver, health_pb2)


@pytest.mark.parametrize("sent", ["AP8", "AP8=", "AP8A/w", "AP8A/w=="])
def test_binary_metadata_base64_on_the_wire(iserver, health_pb2, sent):
    """Padded and unpadded base64 in; base64 out (padding optional for the client)."""
    expect = base64.b64decode(sent + "=" * (-len(sent) % 4))
    with H2Client(iserver.h2c) as c:
        r = c.call(TEST_SERVICE + "EmptyCall", grpc_frame(b""),
                   extra=[(ECHO_TRAILING, sent), (ECHO_INITIAL, "x")])
    assert r.status == OK, r
    assert r.header(ECHO_INITIAL) == b"x"
    echoed = r.trailer(ECHO_TRAILING).decode()
    assert re.fullmatch(r"[A-Za-z0-9+/]*=*", echoed), echoed
    assert base64.b64decode(echoed + "=" * (-len(echoed) % 4)) == expect
    assert_healthy(iserver, health_pb2)


# ---------------------------------------------------------------- grpc-message

def test_special_status_message_arrives_intact(iserver, health_pb2, interop_pb):
    m = interop_pb.messages_pb2
    for msg in (SPECIAL_MESSAGE, "100% sure: %41 stays %41", "%", "\x7f\x01 ctrl"):
        req = m.SimpleRequest(response_status=m.EchoStatus(code=UNKNOWN, message=msg))
        with iserver.channel() as ch:
            with pytest.raises(grpc.RpcError) as e:
                interop(ch, "unary_unary", "UnaryCall", interop_pb)(req, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNKNOWN
        assert e.value.details() == msg
        # the same on the wire: percent-encoded printable ASCII
        with H2Client(iserver.h2c) as c:
            r = c.call(TEST_SERVICE + "UnaryCall", grpc_frame(req.SerializeToString()))
        assert r.status == UNKNOWN, r
        raw = r.raw_message
        assert raw is not None and all(0x20 <= b <= 0x7e for b in raw), raw
        assert re.fullmatch(rb"([^%]|%[0-9A-Fa-f]{2})*", raw), raw
        assert urllib.parse.unquote_to_bytes(raw).decode("utf-8") == msg
        if msg == SPECIAL_MESSAGE:
            assert raw.startswith(b"%09%0A") and b"%E2%98%BA" in raw, raw
    assert_healthy(iserver, health_pb2)


def test_grpc_message_of_a_transport_error_is_encoded(server, health_pb2):
    """Errors the transport makes up itself (here: an unknown method whose
    path has non-ASCII bytes and a '%') are escaped too."""
    path = "/no.such/Meth\u00e9od%"
    with H2Client(server.h2c) as c:
        r = c.call(path.encode("utf-8").decode("latin-1"), grpc_frame(b""))
    assert r.status == 12, r
    raw = r.raw_message
    assert all(0x20 <= b <= 0x7e for b in raw), raw
    assert raw == b"unknown method /no.such/Meth%C3%A9od%25", raw
    assert urllib.parse.unquote_to_bytes(raw).decode("utf-8") == "unknown method " + path
    assert_healthy(server, health_pb2)


# ---------------------------------------------------------------- back-pressure

BIG_STREAM = [1 << 20] * 1000  # 1000 MiB asked for, far more than the server may hold


@pytest.mark.parametrize("stall", ["no-window-update", "no-read"])
def test_stalled_reader_does_not_grow_the_server(iserver, health_pb2, interop_pb, stall):
    """A server-streaming call asks for 1000 responses of 1 MiB.  The client
    either reads but never opens its 64 KiB window (no WINDOW_UPDATE), or opens
    a 2 GiB window and stops reading the socket.  Either way the server must
    stop producing: its RSS may not grow by more than 64 MiB in a second."""
    method = TEST_SERVICE + "StreamingOutputCall"
    with iserver.channel() as ch:  # warm up the paths the call will take
        assert len(list(interop(ch, "unary_stream", "StreamingOutputCall", interop_pb)(
            out_request(interop_pb, [1 << 20] * 4), timeout=10))) == 4
    pid = iserver.proc.pid
    base = rss_kib(pid)
    before = counter(iserver, "grpc_peer_cancelled_total")
    req = grpc_frame(out_request(interop_pb, BIG_STREAM).SerializeToString())
    if stall == "no-read":
        c = H2Client(iserver.h2c, window=MAX_WINDOW)
    else:
        c = H2Client(iserver.h2c, window_updates=False)
    with c:
        sid = c.request(method, req)
        peak, t_end = base, time.monotonic() + 1.0
        while time.monotonic() < t_end:
            if stall == "no-read":
                time.sleep(0.05)
            else:
                c.pump(0.05)
            peak = max(peak, rss_kib(pid))
        assert peak - base < 64 << 10, "RSS grew from %d to %d KiB" % (base, peak)
        assert not c.response(sid).done
        if stall == "no-window-update":
            assert 0 < len(c.response(sid).data) <= 65535
        c.reset(sid, CANCEL)
        c.set_window_updates(True)
        # the connection goes on: the client takes what was queued, then a new call
        assert c.call(CHECK, grpc_frame(b""), timeout=10).messages == [SERVING]
    assert wait_for(lambda: counter(iserver, "grpc_peer_cancelled_total") == before + 1)
    assert wait_for(lambda: access_lines(iserver, method, "CANCELLED") == 1)
    assert rss_kib(pid) - base < 64 << 10
    assert_healthy(iserver, health_pb2)


def test_client_frames_are_read_while_a_big_response_flows(iserver, health_pb2, interop_pb):
    """A client downloading a large stream as fast as it can still gets its
    other frames read: a Health/Check on the same connection is answered, and
    RST_STREAM stops the big stream, while it is still flowing."""
    method = TEST_SERVICE + "StreamingOutputCall"
    before = counter(iserver, "grpc_peer_cancelled_total")
    req = grpc_frame(out_request(interop_pb, BIG_STREAM).SerializeToString())
    with H2Client(iserver.h2c, window=MAX_WINDOW) as c:
        sid = c.request(method, req)
        big = c.response(sid)
        c.wait_until(lambda: len(big.data) > 4 << 20, timeout=10)
        t0 = time.monotonic()
        check = c.call(CHECK, grpc_frame(b""), timeout=1.0)
        assert check.messages == [SERVING] and not big.done, (time.monotonic() - t0, big)
        c.reset(sid, CANCEL)
        # read on meanwhile (what was queued still comes): the reset is taken at once
        c.wait_until(lambda: counter(iserver, "grpc_peer_cancelled_total") == before + 1,
                     timeout=1.0)
    assert wait_for(lambda: access_lines(iserver, method, "CANCELLED") == 1)
    assert_healthy(iserver, health_pb2)


def test_bidi_responses_beyond_the_send_buffer(iserver, health_pb2, interop_pb):
    """A FullDuplexCall whose responses outgrow send_buffer_bytes, so that the
    handler has to wait for on_writable and resume from its queued request
    (a use-after-free of that request once; the fixture checks the log)."""
    with iserver.channel() as ch:
        call = interop(ch, "stream_stream", "FullDuplexCall", interop_pb)(
            iter([out_request(interop_pb, [300000] * 4)]), timeout=10)
        assert [len(r.payload.body) for r in call] == [300000] * 4
    assert_healthy(iserver, health_pb2)


def test_slow_reader_gets_everything_in_order(iserver, health_pb2, interop_pb):
    """Back-pressure must not lose or reorder data: a client that reads in
    small steps still gets every response, then OK."""
    sizes = [(i * 7919) % 300000 for i in range(40)]
    with H2Client(iserver.h2c, window_updates=False) as c:
        sid = c.request(TEST_SERVICE + "StreamingOutputCall",
                        grpc_frame(out_request(interop_pb, sizes).SerializeToString()))
        r = c.response(sid)
        deadline = time.monotonic() + 20
        while not r.done:
            assert time.monotonic() < deadline, r
            c.pump(0.01)
            c.set_window_updates(True)   # hand back what came, then stop again
            c.set_window_updates(False)
        assert r.status == OK, r
        m = interop_pb.messages_pb2.StreamingOutputCallResponse
        assert [len(m.FromString(x).payload.body) for x in r.messages] == sizes
    assert_healthy(iserver, health_pb2)


# ---------------------------------------------------------------- concurrency

def test_many_concurrent_unary_calls_on_one_connection(server, health_pb2):
    key = 'galaxy_grpc_calls_total{method="%s",code="OK"}' % CHECK
    before = server.metrics().get(key, 0)
    conns = counter(server, "connections_accepted_total")  # the start-up probe's
    req = health_pb2.HealthCheckRequest()
    with server.channel() as ch:
        check = check_stub(ch, health_pb2)
        futures = [check.future(req, timeout=30) for _ in range(500)]
        results = [f.result() for f in futures]
    assert all(r.status == health_pb2.HealthCheckResponse.SERVING for r in results)
    assert wait_for(lambda: server.metrics().get(key) == before + 500)
    assert counter(server, "connections_accepted_total") == conns + 1
    assert_healthy(server, health_pb2)


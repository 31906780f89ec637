# SPDX-License-Identifier: MIT
"""The gRPC layer's answers to bad requests (API.md "Errors", PROTOCOL-HTTP2.md).

Requests grpcio will not make go through h2raw; the rest through grpcio.  Each
test asserts the exact HTTP status or grpc-status, the server's counter for the
reject where it has one, and that the same server still answers a
Health/Check afterwards; the make_server fixture then checks that it exits 0
after SIGTERM with no sanitizer report in its log.
"""
import gzip
import urllib.parse

import grpc
import pytest

from conftest import wait_for
from h2raw import H2Client, grpc_frame, grpc_headers

CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}

OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED = 0, 3, 8
UNIMPLEMENTED, INTERNAL = 12, 13


# ---------------------------------------------------------------- helpers

def check_stub(ch, pb):
    return ch.unary_unary(CHECK, request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)


def assert_healthy(server, pb):
    """A Health/Check on a fresh connection answers SERVING."""
    assert server.alive()
    with server.channel() as ch:
        resp = check_stub(ch, pb)(pb.HealthCheckRequest(), timeout=5)
    assert resp.status == pb.HealthCheckResponse.SERVING


def counter(server, name):
    return server.metrics().get("galaxy_" + name, 0)


def counted(server, name, before, n=1):
    """Waits for counter @name to reach @before + @n and stay there."""
    assert wait_for(lambda: counter(server, name) >= before + n), \
        "%s stayed at %s" % (name, counter(server, name))
    return counter(server, name) == before + n


def raw_call(server, body, timeout=5, **kw):
    """One request on a new h2c connection; the Response.  The connection
    must still serve a Health/Check afterwards."""
    with H2Client(server.h2c) as c:
        r = c.call(kw.pop("path", CHECK), body, timeout=timeout, **kw)
        again = c.call(CHECK, grpc_frame(b""), timeout=timeout)
        assert again.status == OK and again.messages == [SERVING], again
    return r


def assert_status(r, code, text=None):
    assert r.http_status == 200, r
    assert r.status == code, r
    if text is not None:
        assert text in r.message, r


# ---------------------------------------------------------------- HTTP-level rejects

@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/grpcx", None])
def test_wrong_content_type_is_http_415(server, health_pb2, ctype):
    before = counter(server, "grpc_bad_content_type_total")
    r = raw_call(server, grpc_frame(b""), content_type=ctype)
    assert r.http_status == 415, r
    assert r.messages == [], r
    assert counted(server, "grpc_bad_content_type_total", before)
    assert_healthy(server, health_pb2)


@pytest.mark.parametrize("ctype", ["application/grpc+proto", "application/grpc;charset=utf-8",
                                   "Application/GRPC"])
def test_grpc_content_type_variants_are_accepted(server, ctype):
    r = raw_call(server, grpc_frame(b""), content_type=ctype)
    assert_status(r, OK)
    assert r.messages == [SERVING]


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_non_post_is_http_405(server, health_pb2, method):
    before = counter(server, "grpc_bad_content_type_total")
    body = b"" if method == "GET" else grpc_frame(b"")
    r = raw_call(server, body, method=method)
    assert r.http_status == 405, r
    assert r.messages == [], r
    assert counted(server, "grpc_bad_content_type_total", before)
    assert_healthy(server, health_pb2)


def test_missing_te_trailers_is_internal(server, health_pb2):
    before = counter(server, "grpc_bad_request_total")
    r = raw_call(server, grpc_frame(b""), te=None)
    assert_status(r, INTERNAL, "te: trailers")
    assert counted(server, "grpc_bad_request_total", before)
    assert_healthy(server, health_pb2)


@pytest.mark.parametrize("timeout", ["abc", "1", "S", "123456789S", "10x", "-1S", "1.5S",
                                     "1 S"])
def test_malformed_grpc_timeout_is_internal(server, health_pb2, timeout):
    before = counter(server, "grpc_bad_request_total")
    r = raw_call(server, grpc_frame(b""), grpc_timeout=timeout)
    assert_status(r, INTERNAL, "grpc-timeout")
    assert counted(server, "grpc_bad_request_total", before)
    assert_healthy(server, health_pb2)


def test_well_formed_grpc_timeouts_are_accepted(server, health_pb2):
    for t in ("99999999H", "1M", "5S", "100m", "100000u", "99999999n"):
        r = raw_call(server, grpc_frame(b""), grpc_timeout=t)
        assert_status(r, OK)
        assert r.messages == [SERVING], (t, r)


# ---------------------------------------------------------------- routing

@pytest.mark.parametrize("path", ["/grpc.health.v1.Health/Nope", "/no.such.Service/Method"])
def test_unknown_method_or_service_is_unimplemented(server, health_pb2, path):
    with server.channel() as ch:
        pb = health_pb2
        stub = ch.unary_unary(path, request_serializer=pb.HealthCheckRequest.SerializeToString,
                              response_deserializer=pb.HealthCheckResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            stub(health_pb2.HealthCheckRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert path in e.value.details()
        # the same channel goes on serving
        assert check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    key = 'galaxy_grpc_calls_total{method="unknown",code="UNIMPLEMENTED"}'
    assert wait_for(lambda: server.metrics().get(key) == 1)
    assert_healthy(server, health_pb2)


@pytest.mark.parametrize("end_stream_on_headers", [False, True])
def test_error_before_any_message_is_trailers_only(server, health_pb2, end_stream_on_headers):
    body = b"" if end_stream_on_headers else grpc_frame(b"")
    r = raw_call(server, body, path="/grpc.health.v1.Health/Nope")
    # one HEADERS frame with END_STREAM: :status 200, content-type and grpc-status together
    assert r.trailers_only, r
    assert r.frames[:2] == ["headers", "end"], r
    assert r.trailers is None and len(r.data) == 0, r
    assert r.http_status == 200
    assert r.header("content-type").startswith(b"application/grpc")
    assert r.header("grpc-status") == b"12"
    assert_healthy(server, health_pb2)


# ---------------------------------------------------------------- broken framing

BROKEN_FRAMES = [
    pytest.param(grpc_frame(b"x" * 10, length=100), "truncated", id="length-past-data"),
    pytest.param(b"\x00\x00\x00", "truncated", id="truncated-prefix"),
    pytest.param(grpc_frame(b"", flag=2), "flag", id="flag-2"),
    pytest.param(grpc_frame(b"\x0a\x00", flag=0x80), "flag", id="flag-0x80"),
    pytest.param(grpc_frame(b"", compressed=True), "grpc-encoding", id="compressed-no-encoding"),
]


@pytest.mark.parametrize("body,text", BROKEN_FRAMES)
def test_broken_message_framing_is_internal(server, health_pb2, body, text):
    before = counter(server, "grpc_bad_frame_total")
    r = raw_call(server, body)
    assert_status(r, INTERNAL, text)
    assert counted(server, "grpc_bad_frame_total", before)
    assert_healthy(server, health_pb2)


def test_truncated_message_split_over_frames_is_internal(server, health_pb2):
    """The prefix and part of the body in separate DATA frames, then END_STREAM."""
    with H2Client(server.h2c) as c:
        sid = c.request(CHECK, end_stream=False)
        c.send_data(sid, b"\x00\x00\x00")
        c.send_data(sid, b"\x00\x08\x0a\x02")
        c.end_stream(sid)
        assert_status(c.wait(sid), INTERNAL, "truncated")
        assert c.call(CHECK, grpc_frame(b"")).messages == [SERVING]
    assert_healthy(server, health_pb2)


def test_message_split_over_frames_is_fine(server, health_pb2):
    req = health_pb2.HealthCheckRequest(service="grpc.health.v1.Health").SerializeToString()
    frame = grpc_frame(req)
    with H2Client(server.h2c) as c:
        sid = c.request(CHECK, end_stream=False)
        for i in range(len(frame)):
            c.send_data(sid, frame[i:i + 1])
        c.end_stream(sid)
        r = c.wait(sid)
    assert_status(r, OK)
    assert r.messages == [SERVING]


def test_request_trailers_end_the_request(server, health_pb2):
    """HEADERS, DATA, then a second HEADERS block with END_STREAM (request
    trailers): the call goes on as if the DATA had carried END_STREAM."""
    with H2Client(server.h2c) as c:
        sid = c.request(CHECK, grpc_frame(b""), end_stream=False)
        c.send_headers(sid, [("x-trailer", "1")], end_stream=True)
        r = c.wait(sid)
    assert_status(r, OK)
    assert r.messages == [SERVING]
    assert_healthy(server, health_pb2)


def test_unknown_long_path_gets_a_bounded_message(server, health_pb2):
    path = "/" + "a" * 8000 + ".Svc/M"
    with H2Client(server.h2c) as c:
        r = c.call(path, grpc_frame(b""))
    assert_status(r, UNIMPLEMENTED)
    assert r.message.startswith("unknown method /aaaa")
    assert 100 < len(r.raw_message) <= 4096, len(r.raw_message)
    assert_healthy(server, health_pb2)


def test_long_status_message_stays_utf8(server, health_pb2):
    """An unknown method whose path is 3000 two-byte characters: the status
    message that names it is cut somewhere, but must stay valid UTF-8."""
    path = "/" + "\u00e9" * 3000 + ".Svc/M"
    with server.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary(path)(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # grpcio shows a message that is not UTF-8 as latin-1: mojibake
    assert e.value.details().startswith("unknown method /\u00e9\u00e9"), e.value.details()
    with H2Client(server.h2c) as c:
        r = c.call(path.encode("utf-8").decode("latin-1"), grpc_frame(b""))
    assert_status(r, UNIMPLEMENTED)
    urllib.parse.unquote_to_bytes(r.raw_message).decode("utf-8")  # strict
    assert_healthy(server, health_pb2)


def test_undecodable_message_is_invalid_argument(server, health_pb2):
    r = raw_call(server, grpc_frame(b"\xff\xff\xff"))
    assert_status(r, INVALID_ARGUMENT, "grpc.health.v1.HealthCheckRequest")
    assert_healthy(server, health_pb2)


def test_two_messages_on_unary_is_internal(server, health_pb2):
    r = raw_call(server, grpc_frame(b"") + grpc_frame(b""))
    assert_status(r, INTERNAL, "more than one request message")
    assert_healthy(server, health_pb2)


def test_zero_messages_on_unary_is_internal(server, health_pb2):
    r = raw_call(server, b"")  # END_STREAM on the HEADERS frame
    assert_status(r, INTERNAL, "no request message")
    with H2Client(server.h2c) as c:  # END_STREAM on an empty DATA frame
        sid = c.request(CHECK, end_stream=False)
        c.end_stream(sid)
        assert_status(c.wait(sid), INTERNAL, "no request message")
    assert_healthy(server, health_pb2)


# ---------------------------------------------------------------- size limits

def test_oversize_message_default_limit_is_resource_exhausted(server, health_pb2):
    before = counter(server, "grpc_message_too_large_total")
    with server.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(service="s" * (5 << 20)),
                                       timeout=20)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "4194304" in e.value.details()
        assert check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert counted(server, "grpc_message_too_large_total", before)
    assert_healthy(server, health_pb2)


LIMIT_2K = "server:\n  log_level: info\nlimits:\n  max_recv_message_bytes: 2048\n"


def test_oversize_message_configured_limit_is_resource_exhausted(make_server, health_pb2):
    server = make_server(config=LIMIT_2K, tls=False)
    before = counter(server, "grpc_message_too_large_total")
    stub_req = health_pb2.HealthCheckRequest
    with server.channel() as ch:
        check = check_stub(ch, health_pb2)
        with pytest.raises(grpc.RpcError) as e:
            check(stub_req(service="s" * 4096), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert counted(server, "grpc_message_too_large_total", before)
        # 2049 bytes on the wire: over; 2048: at the limit, so it is decoded (and its
        # 2045-byte service name is refused by the handler, not by the transport)
        assert len(stub_req(service="s" * 2046).SerializeToString()) == 2049
        with pytest.raises(grpc.RpcError) as e:
            check(stub_req(service="s" * 2046), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert len(stub_req(service="s" * 2045).SerializeToString()) == 2048
        with pytest.raises(grpc.RpcError) as e:
            check(stub_req(service="s" * 2045), timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert check(stub_req(), timeout=5).status == 1
    assert counted(server, "grpc_message_too_large_total", before, 2)
    assert_healthy(server, health_pb2)


# ---------------------------------------------------------------- compression

def test_unsupported_encoding_is_unimplemented(server, health_pb2):
    before = counter(server, "grpc_bad_encoding_total")
    r = raw_call(server, grpc_frame(b""), encoding="snappy")
    assert_status(r, UNIMPLEMENTED, "grpc-encoding")
    accept = r.header("grpc-accept-encoding")
    assert accept is not None, r
    assert {e.strip() for e in accept.decode().split(",")} >= {"identity", "gzip"}, accept
    assert counted(server, "grpc_bad_encoding_total", before)
    assert_healthy(server, health_pb2)


def test_gzip_from_grpcio(server, health_pb2):
    with server.channel() as ch:
        check = check_stub(ch, health_pb2)
        for service in ("", "grpc.health.v1.Health"):
            resp = check(health_pb2.HealthCheckRequest(service=service), timeout=5,
                         compression=grpc.Compression.Gzip)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            check(health_pb2.HealthCheckRequest(service="x" * 400), timeout=5,
                  compression=grpc.Compression.Gzip)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND  # decoded: the name reached the handler
    assert_healthy(server, health_pb2)


def test_handler_sees_a_compressed_request(make_server, health_pb2, interop_pb):
    server = make_server(modules=("interop",), tls=False)
    m = interop_pb.messages_pb2
    req = m.SimpleRequest(response_size=10, payload=m.Payload(body=b"\0" * 1000),
                          expect_compressed=m.BoolValue(value=True))
    with server.channel() as ch:
        unary = ch.unary_unary("/grpc.testing.TestService/UnaryCall",
                               request_serializer=m.SimpleRequest.SerializeToString,
                               response_deserializer=m.SimpleResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:  # not compressed: refused, as it should
            unary(req, timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        resp = unary(req, timeout=5, compression=grpc.Compression.Gzip)
        assert len(resp.payload.body) == 10
    assert_healthy(server, health_pb2)


def test_gzip_raw_message(server, health_pb2):
    req = health_pb2.HealthCheckRequest(service="grpc.health.v1.Health").SerializeToString()
    r = raw_call(server, grpc_frame(gzip.compress(req), compressed=True), encoding="gzip")
    assert_status(r, OK)
    assert r.messages == [SERVING]
    # identity declared, message not compressed: fine too
    r = raw_call(server, grpc_frame(req), encoding="identity")
    assert_status(r, OK)
    # gzip declared but this message not compressed (flag 0): allowed per message
    r = raw_call(server, grpc_frame(req), encoding="gzip")
    assert_status(r, OK)
    assert_healthy(server, health_pb2)


def test_gzip_bomb_is_resource_exhausted(server, health_pb2):
    bomb = gzip.compress(b"\0" * (16 << 20), 9)
    assert len(bomb) < 64 << 10
    before = counter(server, "grpc_bad_frame_total")
    r = raw_call(server, grpc_frame(bomb, compressed=True), encoding="gzip")
    assert_status(r, RESOURCE_EXHAUSTED, "max_recv_message_bytes")
    assert counted(server, "grpc_bad_frame_total", before)
    assert_healthy(server, health_pb2)


def test_gzip_just_under_the_limit_decompresses(make_server, health_pb2):
    server = make_server(config=LIMIT_2K, tls=False)
    req = health_pb2.HealthCheckRequest(service="s" * 2045).SerializeToString()  # 2048 bytes
    r = raw_call(server, grpc_frame(gzip.compress(req), compressed=True), encoding="gzip")
    assert_status(r, INVALID_ARGUMENT, "service")
    req = health_pb2.HealthCheckRequest(service="s" * 2046).SerializeToString()  # 2049 bytes
    r = raw_call(server, grpc_frame(gzip.compress(req), compressed=True), encoding="gzip")
    assert_status(r, RESOURCE_EXHAUSTED)
    assert_healthy(server, health_pb2)


@pytest.mark.parametrize("payload", [
    pytest.param(b"\x1f\x8b\x08\x00garbage-not-deflate", id="garbage"),
    pytest.param(b"plain bytes", id="not-gzip"),
    pytest.param(gzip.compress(b"\x0a\x05hello" * 50)[:-12], id="truncated"),
    pytest.param(b"", id="empty"),
])
def test_corrupt_gzip_is_internal(server, health_pb2, payload):
    before = counter(server, "grpc_bad_frame_total")
    r = raw_call(server, grpc_frame(payload, compressed=True), encoding="gzip")
    assert_status(r, INTERNAL, "gzip")
    assert counted(server, "grpc_bad_frame_total", before)
    assert_healthy(server, health_pb2)


def test_reject_leaves_other_streams_alone(server, health_pb2):
    """A rejected stream and good ones interleaved on one connection."""
    with H2Client(server.h2c) as c:
        good = c.request(CHECK, grpc_frame(b""), end_stream=False)
        bad = c.request(CHECK, grpc_frame(b"\xff\xff\xff"))
        ctype = c.request(CHECK, grpc_frame(b""), content_type="application/json")
        c.end_stream(good)
        assert_status(c.wait(bad), INVALID_ARGUMENT)
        assert c.wait(ctype).http_status == 415
        r = c.wait(good)
        assert_status(r, OK)
        assert r.messages == [SERVING]
    assert_healthy(server, health_pb2)



def test_requests_and_a_reset_in_one_read(server, health_pb2):
    """Complete requests are handed up once the server has parsed the whole read: a stream
    the same read also resets is never answered, and those around it are."""
    with H2Client(server.h2c) as c:
        sids = []
        for i in range(40):
            sid = c.new_stream()
            c.conn.send_headers(sid, [(k.encode() if isinstance(k, str) else k,
                                       v.encode() if isinstance(v, str) else v)
                                      for k, v in grpc_headers(CHECK)])
            c.conn.send_data(sid, grpc_frame(b""), end_stream=True)
            sids.append(sid)
        reset = sids[17]
        c.conn.reset_stream(reset, 8)  # CANCEL
        c.response(reset).reset_sent = 8
        c._flush()  # one write: the server reads it whole (a few KiB on loopback)
        for sid in sids:
            if sid == reset:
                continue
            r = c.wait(sid)
            assert_status(r, OK)
            assert r.messages == [SERVING]
        c.ping()
        c.wait_until(lambda: c.pings_acked > 0)
        assert c.response(reset).frames == []
    assert_healthy(server, health_pb2)

# SPDX-License-Identifier: MIT
"""galaxy-cli and the client side of the gRPC layer (src/transport/gx_client.c).

The real galaxy-cli runs against the real server over h2c and TLS (health
check and watch, table and JSON output, exit codes), and against FakeServer, a
one-answer HTTP/2 server built on python3-h2 that says what galaxy-poold never
says: HTTP errors without grpc-status, Trailers-Only, gzip-compressed
responses, oversized messages and header lists, stream resets, silence.

Exit codes under test: 0 ok, 1 the server said no, 2 no usable answer, 64 bad usage.
"""
import gzip
import socket
import ssl
import struct
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

from clitool import CLI, NO, OK, UNAVAILABLE, USAGE, cli, free_port
from h2raw import REFUSED_STREAM, grpc_frame

SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}
NOT_SERVING = b"\x08\x02"


# ---------------------------------------------------------------- a fake server

class FakeServer:
    """Accepts connections on a free loopback port and answers every request
    with respond(conn, stream_id).  Request headers are kept in .requests."""

    def __init__(self, respond, tls_ctx=None):
        self.respond = respond
        self.tls_ctx = tls_ctx
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            try:
                s.settimeout(5)
                if self.tls_ctx is not None:
                    s = self.tls_ctx.wrap_socket(s, server_side=True)
                self._connection(s)
            except Exception:  # whatever the client did, serve the next one
                pass
            finally:
                s.close()

    def _connection(self, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        s.settimeout(0.1)
        headers = {}
        while not self.stopping:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    headers[ev.stream_id] = dict(ev.headers)
                    self.requests.append(dict(ev.headers))
                elif isinstance(ev, h2.events.StreamEnded):
                    self.respond(conn, ev.stream_id)
            s.sendall(conn.data_to_send())


GRPC_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


def http_error(code):
    def respond(conn, sid):
        conn.send_headers(sid, [(":status", str(code)), ("content-type", "text/plain")])
        conn.send_data(sid, b"not grpc", end_stream=True)
    return respond


def trailers_only(status, message=None, http=200):
    def respond(conn, sid):
        h = [(":status", str(http)), ("content-type", "application/grpc"),
             ("grpc-status", str(status))]
        if message is not None:
            h.append(("grpc-message", message))
        conn.send_headers(sid, h, end_stream=True)
    return respond


def messages(*frames, headers=(), status=0):
    def respond(conn, sid):
        conn.send_headers(sid, GRPC_HEADERS + list(headers))
        for f in frames:
            conn.send_data(sid, f)
        conn.send_headers(sid, [("grpc-status", str(status))], end_stream=True)
    return respond


def silent(conn, sid):
    pass


# ---------------------------------------------------------------- real server, h2c

def test_check_serving_table_and_json(server):
    assert cli("--addr", server.h2c, "health", "check") == (OK, "SERVING\n", "")
    rc, out, err = cli("--addr", server.h2c, "-o", "json", "health", "check",
                       "grpc.health.v1.Health")
    assert (rc, out, err) == (0, '{"status":"SERVING"}\n', "")
    # global options may also follow the command
    assert cli("health", "check", "-o", "json", "--addr", server.h2c)[:2] == \
        (0, '{"status":"SERVING"}\n')


def test_bare_health_is_the_probe(server):
    # exit 0 SERVING, 1 not (an unknown service), 2 unreachable: what CI and load balancers use
    assert cli("--addr", server.h2c, "health") == (OK, "SERVING\n", "")
    assert cli("--addr", server.h2c, "health", "no.such.Service")[0] == NO
    rc, out, err = cli("--addr", "127.0.0.1:%d" % free_port(), "health")
    assert rc == UNAVAILABLE == 2 and out == "" and "UNAVAILABLE" in err


def test_check_unknown_service_is_not_found(server):
    rc, out, err = cli("--addr", server.h2c, "health", "check", "no.such.Service")
    assert rc == 1 and out == ""
    assert err.startswith("galaxy-cli: NOT_FOUND: ") and "no.such.Service" in err


def test_watch_count(server):
    assert cli("--addr", server.h2c, "health", "watch", "--count", "1") == (0, "SERVING\n", "")
    rc, out, _ = cli("--addr", server.h2c, "health", "watch", "no.such.Service", "--count=1",
                     "-o", "json")
    assert (rc, out) == (0, '{"status":"SERVICE_UNKNOWN"}\n')


def test_watch_until_the_server_ends_it(server):
    """Without --count, watch prints each status until the trailers: on
    SIGTERM the server sends NOT_SERVING, then ends the stream UNAVAILABLE."""
    p = subprocess.Popen([CLI, "--addr", server.h2c, "health", "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "SERVING\n"
        server.proc.send_signal(15)
        out, err = p.communicate(timeout=15)
    finally:
        p.kill()
    assert out == "NOT_SERVING\n"
    assert p.returncode == NO and err.startswith("galaxy-cli: UNAVAILABLE: ")
    assert server.stop() == 0


def test_closed_port_is_unavailable():
    rc, out, err = cli("--addr", "127.0.0.1:%d" % free_port(), "health", "check")
    assert rc == UNAVAILABLE and out == ""
    assert "UNAVAILABLE" in err and "refused" in err


@pytest.mark.parametrize("args", [
    [],
    ["nosuchgroup", "check"],
    ["health", "a", "b"],
    ["health", "check", "a", "b"],
    ["health", "check", "--bogus"],
    ["-o", "xml", "health", "check"],
    ["--timeout", "abc", "health", "check"],
    ["--timeout", "0", "health", "check"],
    ["health", "check", "--timeout"],
    ["health", "watch", "--count", "0"],
    ["--cert", "/dev/null", "health", "check"],
    ["--addr", "nocolon", "health", "check"],
    ["--addr", "127.0.0.1:1", "--ca", "/nonexistent/ca.pem", "health", "check"],
    ["--key-secret", "two words", "--addr", "127.0.0.1:1", "health", "check"],
])
def test_bad_usage_exits_64(args):
    rc, out, err = cli(*args)
    assert rc == USAGE, (rc, out, err)
    assert out == "" and err.startswith("galaxy-cli: ")


def test_help():
    rc, out, _ = cli("--help")
    assert rc == 0 and "usage: galaxy-cli" in out and "health check [SERVICE]" in out
    rc, out, _ = cli("health", "--help")
    assert rc == 0 and "health watch [SERVICE] [--count N]" in out
    rc, out, _ = cli("health", "watch", "--help")
    assert rc == 0 and out.startswith("usage: galaxy-cli [options] health watch")


# ---------------------------------------------------------------- real server, TLS

def test_tls_with_ca(server, pki):
    assert cli("--addr", server.tls, "--tls", "--ca", pki.ca_cert, "health", "check") == \
        (0, "SERVING\n", "")
    rc, out, _ = cli("--addr", server.tls, "--ca", pki.ca_cert, "--server-name", "localhost",
                     "-o", "json", "health", "watch", "--count", "1")
    assert (rc, out) == (0, '{"status":"SERVING"}\n')


def test_tls_verification_failures(server, pki):
    # a name the certificate does not carry
    rc, _, err = cli("--addr", server.tls, "--ca", pki.ca_cert, "--server-name", "other.test",
                     "health", "check")
    assert rc == UNAVAILABLE and "certificate verify failed" in err
    # a CA that did not sign it
    rc, _, err = cli("--addr", server.tls, "--ca", pki.path("rogue-ca.crt"), "health", "check")
    assert rc == UNAVAILABLE and "certificate verify failed" in err
    # TLS to the cleartext port
    rc, _, err = cli("--addr", server.h2c, "--ca", pki.ca_cert, "health", "check")
    assert rc == UNAVAILABLE and "TLS handshake" in err


def test_mtls(make_server, pki, tmp_path):
    srv = make_server(args=["--tls-client-ca", pki.ca_cert])
    paths = {}
    for name, ca in (("good", "ca"), ("rogue", "rogue-ca")):
        crt, key = pki.client("cli-" + name, ca=ca)
        paths[name] = (str(tmp_path / (name + ".crt")), str(tmp_path / (name + ".key")))
        open(paths[name][0], "wb").write(crt)
        open(paths[name][1], "wb").write(key)
    base = ["--addr", srv.tls, "--ca", pki.ca_cert]
    rc, out, err = cli(*base, "--cert", paths["good"][0], "--key", paths["good"][1],
                       "health", "check")
    assert (rc, out) == (0, "SERVING\n"), err
    rc, _, err = cli(*base, "--cert", paths["rogue"][0], "--key", paths["rogue"][1],
                     "health", "check")
    # refused after a TLS 1.3 handshake: an alert, or a reset if it comes first
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: UNAVAILABLE: "), err
    # a key that is not the certificate's
    rc, _, err = cli(*base, "--cert", paths["good"][0], "--key", paths["rogue"][1],
                     "health", "check")
    assert rc == USAGE and err.startswith("galaxy-cli: key %s: " % paths["rogue"][1]), err


# ---------------------------------------------------------------- what galaxy-poold never says

@pytest.mark.parametrize("http,code", [(404, "UNIMPLEMENTED"), (503, "UNAVAILABLE"),
                                       (401, "UNAUTHENTICATED"), (415, "UNKNOWN"),
                                       (400, "INTERNAL")])
def test_http_status_without_grpc_status(http, code):
    with FakeServer(http_error(http)) as fake:
        rc, out, err = cli("--addr", fake.addr, "health", "check")
    assert (rc, out) == (1, "")
    assert err.startswith("galaxy-cli: %s: HTTP status %d" % (code, http)), err


def test_grpc_status_wins_over_http_status():
    with FakeServer(trailers_only(13, "bad content-type", http=415)) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert (rc, err) == (1, "galaxy-cli: INTERNAL: bad content-type\n")


def test_trailers_only_message_is_percent_decoded():
    with FakeServer(trailers_only(7, "no%20entry %E2%98%BA%zz")) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert (rc, err) == (1, "galaxy-cli: PERMISSION_DENIED: no entry \u263a%zz\n")


def test_gzip_response_is_inflated():
    frame = grpc_frame(gzip.compress(NOT_SERVING), compressed=True)
    with FakeServer(messages(frame, headers=[("grpc-encoding", "gzip")])) as fake:
        assert cli("--addr", fake.addr, "health", "check") == (1, "NOT_SERVING\n", "")
        assert fake.requests[0]["grpc-accept-encoding"] == "identity,gzip"


def test_compressed_without_encoding_is_internal():
    frame = grpc_frame(gzip.compress(SERVING), compressed=True)
    with FakeServer(messages(frame)) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: INTERNAL: compressed")


def test_oversized_message_is_resource_exhausted():
    with FakeServer(messages(grpc_frame(b"x" * 16, length=5 << 20))) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: RESOURCE_EXHAUSTED: "), err


def test_gzip_bomb_is_resource_exhausted():
    frame = grpc_frame(gzip.compress(b"\0" * (5 << 20)), compressed=True)
    with FakeServer(messages(frame, headers=[("grpc-encoding", "gzip")])) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: RESOURCE_EXHAUSTED: inflated"), err


def test_oversized_header_list_is_resource_exhausted():
    big = [("x-big", "v" * 20000)]
    with FakeServer(messages(grpc_frame(SERVING), headers=big)) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE, err
    assert err.startswith("galaxy-cli: RESOURCE_EXHAUSTED: response header"), err


def test_unary_cardinality():
    with FakeServer(messages(grpc_frame(SERVING), grpc_frame(SERVING))) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
        assert rc == UNAVAILABLE and "more than one response" in err
    with FakeServer(messages()) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
        assert rc == UNAVAILABLE and "no response message" in err


def test_truncated_message_is_internal():
    with FakeServer(messages(grpc_frame(SERVING)[:-1])) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert (rc, err) == (UNAVAILABLE, "galaxy-cli: INTERNAL: response ends inside a message\n")


def test_non_grpc_content_type():
    def html(conn, sid):
        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/html")])
        conn.send_data(sid, b"<html>", end_stream=True)
    with FakeServer(html) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and "content-type" in err, err


def test_connection_lost_is_unavailable():
    def hang_up(conn, sid):
        raise ConnectionAbortedError("the fake server hangs up")
    with FakeServer(hang_up) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: UNAVAILABLE: connection "), err


def test_stream_reset_refused_is_unavailable():
    def refuse(conn, sid):
        conn.reset_stream(sid, REFUSED_STREAM)
    with FakeServer(refuse) as fake:
        rc, _, err = cli("--addr", fake.addr, "health", "check")
    assert rc == UNAVAILABLE and err.startswith("galaxy-cli: UNAVAILABLE: stream reset"), err


def test_timeout_is_deadline_exceeded_and_sent_as_grpc_timeout():
    with FakeServer(silent) as fake:
        t0 = time.monotonic()
        rc, _, err = cli("--addr", fake.addr, "--timeout", "300", "health", "check")
        elapsed = time.monotonic() - t0
        assert rc == UNAVAILABLE and err == "galaxy-cli: DEADLINE_EXCEEDED: deadline exceeded\n"
        assert 0.25 < elapsed < 5
        tmo = fake.requests[0]["grpc-timeout"]
        assert tmo.endswith("m") and 0 < int(tmo[:-1]) <= 300
        # a stream, too
        rc, out, err = cli("--addr", fake.addr, "--timeout", "200", "health", "watch")
        assert (rc, out) == (UNAVAILABLE, "") and "DEADLINE_EXCEEDED" in err
    # nothing listening behind a black hole is beyond a test's reach; a
    # listener that never accepts is close: connect succeeds, nothing answers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        rc, _, err = cli("--addr", "127.0.0.1:%d" % s.getsockname()[1], "--timeout", "300",
                         "health", "check")
        assert rc == UNAVAILABLE and "DEADLINE_EXCEEDED" in err


def test_request_headers_and_api_key():
    with FakeServer(messages(grpc_frame(SERVING))) as fake:
        assert cli("--addr", fake.addr, "--key-secret", "s3cret", "health", "check")[0] == 0
        assert cli("--addr", fake.addr, "health", "check",
                   env={"GALAXY_API_KEY": "from-env"})[0] == 0
        assert cli("--addr", fake.addr, "health", "check")[0] == 0
        r = fake.requests
        assert [q.get("authorization") for q in r] == ["Bearer s3cret", "Bearer from-env", None]
        q = r[0]
        assert (q[":method"], q[":path"], q["te"], q["content-type"]) == \
            ("POST", "/grpc.health.v1.Health/Check", "trailers", "application/grpc")
        assert q[":authority"] == fake.addr and q[":scheme"] == "http"
        assert "grpc-timeout" in q  # the default 10 s deadline


def test_tls_fake_server_without_alpn_h2(pki, tmp_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.set_alpn_protocols(["http/1.1"])
    with FakeServer(messages(grpc_frame(SERVING)), tls_ctx=ctx) as fake:
        rc, _, err = cli("--addr", fake.addr, "--ca", pki.ca_cert, "health", "check")
    assert rc == UNAVAILABLE and "ALPN" in err, err

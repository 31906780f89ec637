# SPDX-License-Identifier: MIT
"""grpc.health.v1.Health over h2c and TLS, and the admin HTTP port."""
import os
import shutil
import signal
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import wait_for


def check(ch, pb, service="", timeout=5):
    stub = ch.unary_unary("/grpc.health.v1.Health/Check",
                          request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)
    return stub(pb.HealthCheckRequest(service=service), timeout=timeout)


def watch(ch, pb, service="", timeout=5):
    stub = ch.unary_stream("/grpc.health.v1.Health/Watch",
                           request_serializer=pb.HealthCheckRequest.SerializeToString,
                           response_deserializer=pb.HealthCheckResponse.FromString)
    return stub(pb.HealthCheckRequest(service=service), timeout=timeout)


@pytest.mark.parametrize("transport", ["h2c", "tls"])
def test_check_serving(server, health_pb2, transport):
    with server.channel(transport) as ch:
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING
        resp = check(ch, health_pb2, "grpc.health.v1.Health")
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_check_unknown_service_not_found(server, health_pb2):
    with server.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            check(ch, health_pb2, "no.such.Service")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "service" in e.value.details()


@pytest.mark.parametrize("method", ["Check", "Watch"])
def test_service_not_utf8_is_invalid_argument(server, method):
    """The name would come back in the error message, which must be UTF-8."""
    with server.channel() as ch:
        if method == "Check":
            call = ch.unary_unary("/grpc.health.v1.Health/Check")
            get = lambda: call(b"\x0a\x01\xff", timeout=5)  # noqa: E731
        else:
            call = ch.unary_stream("/grpc.health.v1.Health/Watch")
            get = lambda: next(call(b"\x0a\x03\xed\xa0\x80", timeout=5))  # noqa: E731
        with pytest.raises(grpc.RpcError) as e:
            get()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert e.value.details() == "service: not valid UTF-8"


def test_watch_sends_status_then_not_serving_on_drain(server, health_pb2):
    with server.channel() as ch:
        stream = watch(ch, health_pb2, "", timeout=20)
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        server.proc.send_signal(15)
        assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as e:
            next(stream)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.stop() == 0


def test_watch_unknown_service_is_service_unknown(server, health_pb2):
    with server.channel() as ch:
        stream = watch(ch, health_pb2, "no.such.Service")
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        stream.cancel()


def _get(url):
    try:
        r = urllib.request.urlopen(url, timeout=5)
        return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_admin_endpoints(server, health_pb2):
    key_ok = 'galaxy_grpc_calls_total{method="/grpc.health.v1.Health/Check",code="OK"}'
    key_nf = 'galaxy_grpc_calls_total{method="/grpc.health.v1.Health/Check",code="NOT_FOUND"}'
    ok0 = server.metrics().get(key_ok, 0)  # the start-up probe (galaxy-cli health)
    assert _get("http://%s/healthz" % server.admin)[0] == 200
    assert _get("http://%s/readyz" % server.admin)[0] == 200
    assert _get("http://%s/nope" % server.admin)[0] == 404
    with server.channel() as ch:
        check(ch, health_pb2)
        with pytest.raises(grpc.RpcError):
            check(ch, health_pb2, "x")
    assert wait_for(lambda: server.metrics().get(key_ok) == ok0 + 1)
    m = server.metrics()
    assert m[key_nf] == 1
    assert m["galaxy_connections_accepted_total"] >= 1
    assert "galaxy_h2_rapid_reset_total" in m
    assert "galaxy_h2_ping_flood_total" in m


def test_access_log_line_per_call(server, health_pb2):
    with server.channel() as ch:
        check(ch, health_pb2)
    assert wait_for(lambda: "method=/grpc.health.v1.Health/Check status=OK" in server.log())
    line = [l for l in server.log().splitlines() if "access method=/grpc.health" in l][0]
    assert "duration_us=" in line and "peer=127.0.0.1:" in line


def _misses(path):
    """The access log's NOT_FOUND Health/Check lines in the file at path (0 if there is
    none): calls of this test only, as the readiness probe's calls are all OK."""
    if not os.path.isfile(path):
        return 0
    with open(path) as f:
        return f.read().count("method=/grpc.health.v1.Health/Check status=NOT_FOUND")


def _miss(ch, pb):
    with pytest.raises(grpc.RpcError) as e:
        check(ch, pb, "no.such.Service")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_access_log_reopens_on_sigusr1(make_server, health_pb2, tmp_path):
    """What logrotate does: move the file, then SIGUSR1. Lines from then on go to a
    new file at the configured path, the earlier ones stay in the moved file. When the
    path cannot be opened, the log goes on in the file it was in, with a warning, and
    the next SIGUSR1 that can open it moves there."""
    path = str(tmp_path / "access.log")
    s = make_server(config='server:\n  log_level: info\n  access_log: "%s"\n' % path)
    usr1 = lambda: s.proc.send_signal(signal.SIGUSR1)
    with s.channel() as ch:
        _miss(ch, health_pb2)
        assert wait_for(lambda: _misses(path) == 1)
        os.rename(path, path + ".1")
        usr1()
        assert wait_for(lambda: "access log reopened path=%s" % path in s.log())
        for _ in range(2):
            _miss(ch, health_pb2)
        assert wait_for(lambda: _misses(path) == 2)
        assert _misses(path + ".1") == 1

        # a directory where the file should be: the open fails, the old file goes on
        os.rename(path, path + ".2")
        os.mkdir(path)
        usr1()
        assert wait_for(lambda: "cannot reopen access log path=%s" % path in s.log())
        _miss(ch, health_pb2)
        assert wait_for(lambda: _misses(path + ".2") == 3)

        os.rmdir(path)
        usr1()
        assert wait_for(lambda: s.log().count("access log reopened path=%s" % path) == 2)
        _miss(ch, health_pb2)
        assert wait_for(lambda: _misses(path) == 1)
        assert (_misses(path + ".1"), _misses(path + ".2")) == (1, 3)
    assert oct(os.stat(path).st_mode & 0o777) == "0o640"


def test_sigusr1_with_the_access_log_on_stderr(server, health_pb2):
    """Nothing to reopen: the server says so in its log and goes on serving."""
    server.proc.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: "signal USR1: reopening log files" in server.log())
    with server.channel() as ch:
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING


def _tls_channel(server, ca_pem):
    """A channel of its own (no subchannel shared with another), trusting ca_pem."""
    creds = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.secure_channel(server.tls, creds,
                               options=[("grpc.ssl_target_name_override", "localhost"),
                                        ("grpc.use_local_subchannel_pool", 1)])


def _serves(server, ca_pem, pb):
    """True if a new TLS connection that trusts ca_pem gets an answer; False if its
    handshake fails."""
    with _tls_channel(server, ca_pem) as ch:
        try:
            return check(ch, pb, timeout=3).status == pb.HealthCheckResponse.SERVING
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            return False


def test_tls_certificate_reloads_on_sighup(make_server, pki, health_pb2, tmp_path):
    """A renewed certificate written over the old files, then SIGHUP: connections
    from then on get the new one, an open connection keeps the one it has. Files
    that do not load (a key of another certificate, a file that is not PEM) leave
    the certificate in place, with a warning and a count."""
    cert, key = str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    s = make_server(tls=False, args=["--tls-listen", "127.0.0.1:0", "--tls-cert", cert,
                                     "--tls-key", key])
    with open(pki.path("rogue-ca.crt"), "rb") as f:
        other_ca = f.read()
    new_cert, new_key = pki._leaf("server-renewed", "rogue-ca",
                                  "subjectAltName=DNS:localhost,IP:127.0.0.1")
    hup = lambda: s.proc.send_signal(signal.SIGHUP)
    serving = health_pb2.HealthCheckResponse.SERVING

    open_ch = _tls_channel(s, pki.ca_pem)
    assert check(open_ch, health_pb2).status == serving
    assert _serves(s, pki.ca_pem, health_pb2)
    assert not _serves(s, other_ca, health_pb2)

    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    hup()
    assert wait_for(lambda: "TLS reloaded tls_cert=%s" % cert in s.log())
    assert _serves(s, other_ca, health_pb2)
    assert not _serves(s, pki.ca_pem, health_pb2)
    assert check(open_ch, health_pb2).status == serving
    open_ch.close()

    for bad in ("other key", "not PEM"):
        if bad == "other key":
            shutil.copy(pki.server_key, key)
        else:
            with open(key, "w") as f:
                f.write("not a key\n")
        n = s.log().count("TLS reload failed")
        hup()
        assert wait_for(lambda: s.log().count("TLS reload failed") == n + 1)
        assert _serves(s, other_ca, health_pb2)
    assert s.log().count("TLS reload failed: tls_key %s: " % key) == 2
    m = s.metrics()
    assert (m["galaxy_tls_reloads_total"], m["galaxy_tls_reload_failed_total"]) == (1, 2)


def test_sighup_without_tls(make_server, health_pb2):
    """No TLS listener: nothing to reload, and the server goes on serving."""
    s = make_server(tls=False)
    s.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "no TLS listener: no certificate to reload" in s.log())
    with s.channel() as ch:
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING

# SPDX-License-Identifier: MIT
"""The phase chain, watched through the test_hooks module (t/modules/hooks):
phase order and order within a phase, DECLINED, failing a call in each phase,
parking a call (timer and cross-thread resume, cancelled, past its deadline,
many at once), and start-up refusals of the module loader."""
import os
import re
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import BINARY, BUILDDIR, MODULE_DIR, SANITIZER_MARKS, Server, wait_for

HOOKS_SO = os.path.join(BUILDDIR, "t/modules/.libs/hooks.so")
CHECK = "/grpc.health.v1.Health/Check"
OK_KEY = 'galaxy_grpc_calls_total{method="%s",code="OK"}' % CHECK
CANCELLED_KEY = 'galaxy_grpc_calls_total{method="%s",code="CANCELLED"}' % CHECK

FULL = ["post_read", "authn", "access", "access2", "limit", "route", "handler", "log"]
# a parked hook resumes as if it had answered OK: the rest of ACCESS is skipped
PARKED = ["post_read", "authn", "access", "limit", "route", "handler", "log"]
TRACE_RE = re.compile(r"module=test_hooks trace method=(\S+) phases=(\S+) status=(\d+) "
                      r"tag=(\S+)")

pytestmark = pytest.mark.skipif(not os.path.exists(HOOKS_SO),
                                reason="t/modules/.libs/hooks.so is built by `make check`")

# libevent's coarse monotonic clock ticks every 4 ms (HZ=250); see test_park_timer_never_early
TIMER_SLACK = 0.005

_tags = iter(range(1, 1 << 30))


def new_tag(what):
    return "%s-%d" % (what, next(_tags))


@pytest.fixture(scope="module")
def hooks_server(tmp_path_factory, pki):
    """One server with test_hooks for the tests that only make calls."""
    s = Server(str(tmp_path_factory.mktemp("hooks")), pki, modules=(HOOKS_SO,), tls=False)
    s.start()
    yield s
    rc = s.stop()
    assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, s.log())
    s.assert_clean()


def check_stub(ch, pb):
    return ch.unary_unary(CHECK, request_serializer=pb.HealthCheckRequest.SerializeToString,
                          response_deserializer=pb.HealthCheckResponse.FromString)


def check(ch, pb, md=(), timeout=10):
    return check_stub(ch, pb)(pb.HealthCheckRequest(), metadata=tuple(md), timeout=timeout)


def traces(server, tag):
    return [m for m in TRACE_RE.finditer(server.log()) if m.group(4) == tag]


def trace_of(server, tag, timeout=5):
    """(phases, status) of the one call tagged @tag, once its LOG phase ran."""
    found = wait_for(lambda: traces(server, tag), timeout)
    assert len(found) == 1, "trace lines for tag %s: %r\n%s" % (tag, found, server.log())
    return found[0].group(2).split(","), int(found[0].group(3))


def metric(server, key):
    return server.metrics().get(key, 0)


# ---------------------------------------------------------------- order

def test_phase_order(hooks_server, health_pb2):
    tag = new_tag("order")
    with hooks_server.channel() as ch:
        resp = check(ch, health_pb2, [("x-test-tag", tag)])
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    # authn answers OK (authn2 skipped), access DECLINED (access2 runs),
    # handler DECLINED (the route's handler answers)
    assert trace_of(hooks_server, tag) == (FULL, 0)
    assert re.search(r"trace method=%s phases=\S+ status=0 tag=%s" % (re.escape(CHECK), tag),
                     hooks_server.log())


def test_declined_runs_next_hook_of_the_phase(hooks_server, health_pb2):
    tag = new_tag("declined")
    with hooks_server.channel() as ch:
        check(ch, health_pb2, [("x-test-tag", tag), ("x-test-declined", "1")])
    phases, status = trace_of(hooks_server, tag)
    assert phases == ["post_read", "authn", "authn2"] + FULL[2:]
    assert status == 0


DENY = ["post_read", "authn", "authn2", "access", "access2", "limit", "route", "handler"]


@pytest.mark.parametrize("phase", DENY)
def test_deny_in_phase(hooks_server, health_pb2, phase):
    tag = new_tag("deny")
    md = [("x-test-tag", tag), ("x-test-deny", phase)]
    if phase == "authn2":
        md.append(("x-test-declined", "1"))
    with hooks_server.channel() as ch:
        with pytest.raises(grpc.RpcError) as e:
            check(ch, health_pb2, md)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert e.value.details() == "denied in %s" % phase
    phases, status = trace_of(hooks_server, tag)
    full = ["post_read", "authn", "authn2"] + FULL[2:] if phase == "authn2" else FULL
    # nothing after the denying phase runs, except LOG
    assert phases == full[:full.index(phase) + 1] + ["log"]
    assert status == 7


def test_unknown_method_still_logs(hooks_server):
    """A call no route serves never walks the chain, but LOG sees it."""
    tag = new_tag("unknown")
    with hooks_server.channel() as ch:
        stub = ch.unary_unary("/no.such.Service/Method")
        with pytest.raises(grpc.RpcError) as e:
            stub(b"", metadata=(("x-test-tag", tag),), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert trace_of(hooks_server, tag) == (["log"], 12)


# ---------------------------------------------------------------- parking

@pytest.mark.parametrize("variant", ["x-test-park-ms", "x-test-park-thread-ms"])
def test_park_resumes(hooks_server, health_pb2, variant):
    tag = new_tag("park")
    ok_before = metric(hooks_server, OK_KEY)
    with hooks_server.channel() as ch:
        check(ch, health_pb2, [("x-test-tag", "warm-" + tag)])  # connect outside the timing
        ok_before += 1
        t0 = time.monotonic()
        resp = check(ch, health_pb2, [("x-test-tag", tag), (variant, "200")])
        elapsed = time.monotonic() - t0
    assert resp.status == health_pb2.HealthCheckResponse.SERVING
    # call timers may fire up to one coarse clock tick early: see
    # test_park_timer_never_early; a thread resume is never early
    early = TIMER_SLACK if variant == "x-test-park-ms" else 0
    assert elapsed >= 0.2 - early, "resumed after %.4f s" % elapsed
    assert elapsed < 3, "resumed after %.4f s" % elapsed
    assert trace_of(hooks_server, tag) == (PARKED, 0)
    assert wait_for(lambda: metric(hooks_server, OK_KEY) >= ok_before + 1), \
        hooks_server.metrics()
    if variant == "x-test-park-thread-ms":
        assert "thread resumes a call tag=%s" % tag in hooks_server.log()


def test_park_timer_never_early(hooks_server, health_pb2):
    """gx_call_timer runs its function after the given time, never before:
    40 calls parked 200 ms each, started at different moments of the clock
    tick; the client's view of a call is longer than the server's park."""
    n, park = 40, 0.2
    done = {}
    with hooks_server.channel() as ch:
        check(ch, health_pb2)
        stub = check_stub(ch, health_pb2)
        futs = []
        for i in range(n):
            t0 = time.monotonic()
            f = stub.future(health_pb2.HealthCheckRequest(),
                            metadata=(("x-test-park-ms", str(int(park * 1000))),), timeout=10)
            f.add_done_callback(lambda f, i=i, t0=t0: done.__setitem__(i, time.monotonic() - t0))
            futs.append(f)
            time.sleep(0.0007)
        for f in futs:
            f.result()
    assert wait_for(lambda: len(done) == n)
    shortest = min(done.values())
    assert shortest >= park, "a call parked %.0f ms came back after %.4f s" % (park * 1000,
                                                                                shortest)


def test_park_bad_value(hooks_server, health_pb2):
    with hooks_server.channel() as ch:
        for value in ("10001", "abc", "-1", ""):
            with pytest.raises(grpc.RpcError) as e:
                check(ch, health_pb2, [("x-test-park-ms", value)])
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, value


@pytest.mark.parametrize("variant", ["x-test-park-ms", "x-test-park-thread-ms"])
def test_park_then_client_cancels(hooks_server, health_pb2, variant):
    tag = new_tag("cancel")
    cancelled_before = metric(hooks_server, CANCELLED_KEY)
    with hooks_server.channel() as ch:
        check(ch, health_pb2)
        fut = check_stub(ch, health_pb2).future(
            health_pb2.HealthCheckRequest(), metadata=(("x-test-tag", tag), (variant, "600")),
            timeout=10)
        time.sleep(0.2)
        assert not fut.done()
        assert fut.cancel()
        # the stream is gone: LOG runs at once, while the call is still parked
        phases, status = trace_of(hooks_server, tag)
        assert phases == ["post_read", "authn", "access", "log"]
        assert status == 1
        assert wait_for(lambda: metric(hooks_server, CANCELLED_KEY) >= cancelled_before + 1)
        if variant == "x-test-park-thread-ms":
            # the thread resumes a call whose stream has ended: nothing may break
            assert wait_for(lambda: "thread resumes a call tag=%s" % tag in hooks_server.log(),
                            3)
        else:
            assert "parked call ended before its timer" in hooks_server.log()
        time.sleep(0.05)
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING
    assert hooks_server.alive()
    # only LOG ran after the cancel: the chain did not go on after the resume
    assert len(traces(hooks_server, tag)) == 1


def test_park_past_deadline(hooks_server, health_pb2):
    tag = new_tag("deadline")
    with hooks_server.channel() as ch:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as e:
            check(ch, health_pb2, [("x-test-tag", tag), ("x-test-park-ms", "3000")],
                  timeout=0.3)
        assert time.monotonic() - t0 < 2
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        phases, status = trace_of(hooks_server, tag)
        assert phases == ["post_read", "authn", "access", "log"]
        assert status in (1, 4)  # the server's deadline or the client's RST_STREAM
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING


def test_many_parked_calls(hooks_server, health_pb2):
    n = 100
    ok_before = metric(hooks_server, OK_KEY)
    tags = [new_tag("many") for _ in range(n)]
    with hooks_server.channel() as ch:
        check(ch, health_pb2)
        ok_before += 1
        stub = check_stub(ch, health_pb2)
        t0 = time.monotonic()
        futs = [stub.future(health_pb2.HealthCheckRequest(),
                            metadata=(("x-test-tag", t),
                                      ("x-test-park-thread-ms" if i % 2 else "x-test-park-ms",
                                       "100")),
                            timeout=15)
                for i, t in enumerate(tags)]
        results = [f.result() for f in futs]
        elapsed = time.monotonic() - t0
    assert all(r.status == health_pb2.HealthCheckResponse.SERVING for r in results)
    # parked side by side, not one after the other
    assert elapsed < 5, "100 calls parked 100 ms took %.2f s" % elapsed
    for t in tags:
        assert trace_of(hooks_server, t) == (PARKED, 0)
    assert wait_for(lambda: metric(hooks_server, OK_KEY) >= ok_before + n)


def test_parked_calls_from_many_connections(hooks_server, health_pb2):
    """Cross-thread resumes land on the right worker when calls come from
    several connections (spread over the workers)."""
    errors = []

    def one(i):
        try:
            with hooks_server.channel() as ch:
                for _ in range(3):
                    check(ch, health_pb2, [("x-test-park-thread-ms", "20")])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors


# ---------------------------------------------------------------- start-up refusals

def start_direct(tmp_path, config, timeout=15):
    """Runs galaxy-poold on @config as a plain subprocess that must refuse to
    start: (exit code, output).  A server that starts is stopped again and
    fails the test."""
    conf = tmp_path / "galaxy-poold.yaml"
    conf.write_text(config)
    ready = tmp_path / "ready"
    out_path = tmp_path / "out.log"
    args = [BINARY, "-c", str(conf), "--listen", "127.0.0.1:0", "--data-dir",
            str(tmp_path / "var"), "--module-dir", MODULE_DIR, "--ready-file", str(ready)]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    with open(str(out_path), "wb") as outf:
        p = subprocess.Popen(args, stdout=outf, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while p.poll() is None and not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        started = p.poll() is None
        if started:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    out = out_path.read_text(errors="replace")
    assert not started, "galaxy-poold started:\n" + out
    for mark in SANITIZER_MARKS:
        assert mark not in out, out
    return p.returncode, out


def module_conf(path, **config):
    text = "server:\n  log_level: info\nmodules:\n  - path: %s\n" % path
    if config:
        text += "    config:\n" + "".join('      %s: "%s"\n' % kv for kv in config.items())
    return text


def test_fail_init_refuses_start(tmp_path):
    rc, out = start_direct(tmp_path, module_conf(HOOKS_SO, fail_init="1"))
    assert rc == 1, out
    assert "test_hooks" in out
    # the module says why, the loader names the module and where it is configured
    assert re.search(r"module=test_hooks .*fail_init", out), out
    assert re.search(r"galaxy-poold\.yaml:\d+: module test_hooks failed to start", out), out


def test_fail_init_bad_value_refuses_start(tmp_path):
    rc, out = start_direct(tmp_path, module_conf(HOOKS_SO, fail_init="maybe"))
    assert rc == 1, out
    assert re.search(r"module=test_hooks .*key=fail_init", out), out


def test_fail_init_zero_starts(make_server, health_pb2, tmp_path):
    s = make_server(config=module_conf(HOOKS_SO, fail_init="0"), tls=False)
    with s.channel() as ch:
        assert check(ch, health_pb2).status == health_pb2.HealthCheckResponse.SERVING


def test_unknown_config_key_refuses_start(tmp_path):
    rc, out = start_direct(tmp_path, module_conf(HOOKS_SO, fail_inti="1"))
    assert rc == 1, out
    assert "fail_inti" in out


def test_missing_module_refuses_start(tmp_path):
    missing = str(tmp_path / "no" / "such-module.so")
    rc, out = start_direct(tmp_path, module_conf(missing))
    assert rc == 1, out
    assert "cannot load module" in out and missing in out, out


# ---------------------------------------------------------------- mTLS identity

def _trace_identity(s, tag):
    line = wait_for(lambda: next((l for l in s.log().splitlines()
                                  if "trace " in l and "tag=%s " % tag in l), None))
    assert line, s.log()
    return line.rpartition("tls_identity=")[2].strip()


def _mtls_server(make_server, pki):
    return make_server(modules=(HOOKS_SO,), args=("--tls-client-ca", pki.ca_cert))


def _mtls_channel(s, pki, cert, key):
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem, private_key=key,
                                         certificate_chain=cert)
    return grpc.secure_channel(s.tls, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def test_mtls_identity_is_the_uri_san(make_server, pki, health_pb2):
    s = _mtls_server(make_server, pki)
    cert, key = pki.client("node-7", san="URI:spiffe://galaxy.test/node-7,DNS:node7.example")
    with _mtls_channel(s, pki, cert, key) as ch:
        check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5,
                                   metadata=(("x-test-tag", "mtls-uri"),))
    assert _trace_identity(s, "mtls-uri") == "spiffe://galaxy.test/node-7"


def test_mtls_identity_falls_back_to_dns_san_never_cn(make_server, pki, health_pb2):
    s = _mtls_server(make_server, pki)
    cert, key = pki.client("dns-only", san="DNS:worker.example")
    with _mtls_channel(s, pki, cert, key) as ch:
        check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5,
                                   metadata=(("x-test-tag", "mtls-dns"),))
    assert _trace_identity(s, "mtls-dns") == "worker.example"


def test_mtls_without_certificate_has_no_identity(make_server, pki, health_pb2):
    s = _mtls_server(make_server, pki)
    with s.channel("tls") as ch:
        check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5,
                                   metadata=(("x-test-tag", "mtls-none"),))
    assert _trace_identity(s, "mtls-none") == "-"


def test_mtls_untrusted_certificate_fails_the_handshake(make_server, pki, health_pb2):
    s = _mtls_server(make_server, pki)
    cert, key = pki.client("rogue", ca="rogue-ca")
    with _mtls_channel(s, pki, cert, key) as ch:
        with pytest.raises(grpc.RpcError) as e:
            check_stub(ch, health_pb2)(health_pb2.HealthCheckRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert wait_for(lambda: s.metrics()["galaxy_tls_handshake_failed_total"] >= 1)

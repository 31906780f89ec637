# SPDX-License-Identifier: MIT
"""Fixtures for the integration tests: the real galaxy-poold binary on free
ports, test certificates made here with the openssl command, and the Python
protobuf modules compiled from proto/ with protoc at session start.

Run with Debian's interpreter: /usr/bin/python3 -m pytest t/integration
GX_BUILDDIR names the build directory (default: the source tree).
"""
import importlib
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import types

import grpc
import pytest

SRCDIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.path.abspath(os.environ.get("GX_BUILDDIR", SRCDIR))
BINARY = os.path.join(BUILDDIR, "galaxy-poold")
CLI = os.path.join(BUILDDIR, "galaxy-cli")
MODULE_DIR = os.path.join(BUILDDIR, "modules", ".libs")

# the sanitizers' reports, and the server's own word for a broken invariant
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "SUMMARY: UndefinedBehaviorSanitizer", " BUG: ")


# ---------------------------------------------------------------- protobuf

def _compile_protos(outdir):
    protos = []
    for root, _, files in os.walk(os.path.join(SRCDIR, "proto")):
        protos += [os.path.join(root, f) for f in files if f.endswith(".proto")]
    subprocess.run(["protoc", "-I", os.path.join(SRCDIR, "proto"), "--python_out", outdir]
                   + sorted(protos), check=True)
    # The generated modules live under grpc/… like the real ones: graft our
    # directory onto the grpc package so that "grpc.health.v1" resolves.
    grpc.__path__.append(os.path.join(outdir, "grpc"))
    if os.path.isdir(os.path.join(outdir, "galaxy")):
        sys.path.insert(0, outdir)


@pytest.fixture(scope="session")
def protos(tmp_path_factory):
    """A namespace with the compiled protobuf modules."""
    out = str(tmp_path_factory.mktemp("pb"))
    _compile_protos(out)
    ns = types.SimpleNamespace()
    ns.health_pb2 = importlib.import_module("grpc.health.v1.health_pb2")
    return ns


@pytest.fixture(scope="session")
def health_pb2(protos):
    return protos.health_pb2


@pytest.fixture(scope="session")
def interop_pb(protos):
    ns = types.SimpleNamespace()
    for name in ("empty_pb2", "messages_pb2", "test_pb2"):
        setattr(ns, name, importlib.import_module("grpc.testing." + name))
    return ns


# ---------------------------------------------------------------- certificates

def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True)


class Pki:
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and client
    certificates signed by the CA (and one by an untrusted CA)."""

    def __init__(self, d):
        self.dir = d
        self._ca("ca")
        self._ca("rogue-ca")
        self.server_cert, self.server_key = self._leaf(
            "server", "ca", "subjectAltName=DNS:localhost,IP:127.0.0.1")
        self.ca_pem = open(self.path("ca.crt"), "rb").read()
        self.ca_cert = self.path("ca.crt")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-days", "2", "-subj", "/CN=%s" % name, "-keyout", name + ".key",
                 "-out", name + ".crt", cwd=self.dir)

    def _leaf(self, name, ca, san):
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write(san + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".csr",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".crt",
                 cwd=self.dir)
        return self.path(name + ".crt"), self.path(name + ".key")

    def client(self, name, san="URI:spiffe://galaxy.test/%s", ca="ca"):
        """(cert_pem, key_pem) bytes of a client certificate."""
        if "%s" in san:
            san = san % name
        crt, key = self._leaf(name, ca, "subjectAltName=" + san)
        return open(crt, "rb").read(), open(key, "rb").read()

    def client_without_san(self, name, cn, ca="ca"):
        """(cert_pem, key_pem) of a client certificate whose subject CN is @cn and
        that has no subjectAltName at all (@name names its files)."""
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", "/CN=%s" % cn, "-keyout", name + ".key", "-out", name + ".csr",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".crt",
                 cwd=self.dir)
        return (open(self.path(name + ".crt"), "rb").read(),
                open(self.path(name + ".key"), "rb").read())


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(str(tmp_path_factory.mktemp("pki")))


# ---------------------------------------------------------------- the server

class Server:
    """One galaxy-poold process on free ports."""

    def __init__(self, workdir, pki, config="", args=(), tls=True, modules=(), env=None,
                 data_dir=None, nofile=None):
        self.workdir = workdir
        self.pki = pki
        self.conf_path = os.path.join(workdir, "galaxy-poold.yaml")
        self.ready_path = os.path.join(workdir, "ready")
        self.log_path = os.path.join(workdir, "server.log")
        # data_dir: another server's directory, to restart on the same store
        self.data_dir = data_dir or os.path.join(workdir, "var")
        text = config or "server:\n  log_level: info\n"
        if modules:
            text += "modules:\n" + "".join("  - path: %s\n" % m for m in modules)
        with open(self.conf_path, "w") as f:
            f.write(text)
        self.args = [BINARY, "-c", self.conf_path, "--listen", "127.0.0.1:0",
                     "--admin-listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                     "--module-dir", MODULE_DIR, "--ready-file", self.ready_path]
        if tls:
            self.args += ["--tls-listen", "127.0.0.1:0", "--tls-cert", pki.server_cert,
                          "--tls-key", pki.server_key]
        self.args += list(args)
        # GX_SERVER_WRAP="valgrind -q --error-exitcode=99 --leak-check=full
        # --suppressions=t/valgrind.supp" runs every server under that command (use a
        # build without sanitizers; the README has the whole line)
        self.args = os.environ.get("GX_SERVER_WRAP", "").split() + self.args
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        # nofile: the server's open-files limit, soft and hard
        self.nofile = nofile
        self.proc = None
        self.returncode = None
        self.addr = {}

    def start(self, timeout=60 if os.environ.get("GX_SERVER_WRAP") else 15):
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        self.logf = open(self.log_path, "ab")
        limit = None
        if self.nofile is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env, preexec_fn=limit)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.ready_path):
            if self.proc.poll() is not None:
                raise RuntimeError("galaxy-poold exited with %d:\n%s"
                                   % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("galaxy-poold not ready in %ss:\n%s" % (timeout, self.log()))
            time.sleep(0.02)
        with open(self.ready_path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.addr[k] = v
        self._probe(deadline)
        return self

    def _probe(self, deadline):
        """Readiness as CI and load balancers see it: `galaxy-cli health` exits 0."""
        env = {k: v for k, v in self.env.items() if not k.startswith("GALAXY_")}
        while True:
            rc = subprocess.run([CLI, "--addr", self.addr["h2c"], "--timeout", "2000", "health"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env).returncode
            if rc == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("galaxy-cli health exited %d, the server is not ready:\n%s"
                                   % (rc, self.log()))
            time.sleep(0.02)

    def start_refused(self, timeout=60 if os.environ.get("GX_SERVER_WRAP") else 15):
        """Starts the server expecting it to refuse: returns (exit code, log).
        A server that comes up is stopped again and fails the test."""
        try:
            self.start(timeout)
        except RuntimeError:
            rc = self.proc.wait(5) if self.proc is not None else None
            self.returncode = rc
            self.proc = None
            self.logf.close()
            return rc, self.log()
        rc = self.stop()
        raise AssertionError("galaxy-poold started (exit %s after SIGTERM):\n%s"
                             % (rc, self.log()))

    @property
    def h2c(self):
        return self.addr["h2c"]

    @property
    def tls(self):
        return self.addr["tls"]

    @property
    def admin(self):
        return self.addr["admin"]

    def channel(self, transport="h2c", **kw):
        if transport == "tls":
            creds = grpc.ssl_channel_credentials(root_certificates=self.pki.ca_pem, **kw)
            return grpc.secure_channel(self.tls, creds,
                                       options=[("grpc.ssl_target_name_override", "localhost")])
        return grpc.insecure_channel(self.h2c)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def metrics(self):
        """/metrics as {name{labels}: value}."""
        import urllib.request
        body = urllib.request.urlopen("http://%s/metrics" % self.admin, timeout=5).read()
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL (a crash: no clean exit to check); returns the exit status."""
        return self.stop(signal.SIGKILL)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signals the server and returns its exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("galaxy-poold did not stop in %ss:\n%s"
                                     % (timeout, self.log()))
        self.returncode = self.proc.returncode
        self.proc = None
        self.logf.close()
        return self.returncode

    def assert_clean(self):
        """No sanitizer report in the log."""
        log = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in log, "sanitizer report or BUG in server log:\n" + log


@pytest.fixture
def make_server(tmp_path, pki):
    """Factory: make_server(config="", args=(), tls=True, modules=()) → started Server.
    Every server is stopped at the end of the test; each must exit 0 with a
    clean log unless the test stopped it itself."""
    made = []

    def make(**kw):
        d = tempfile.mkdtemp(dir=str(tmp_path))
        s = Server(d, pki, **kw)
        made.append(s)
        return s.start()

    yield make
    for s in made:
        if s.proc is not None:
            rc = s.stop()
            assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, s.log())
        s.assert_clean()


@pytest.fixture
def server(make_server):
    """A default server with h2c, TLS and admin listeners."""
    return make_server()


@pytest.fixture(scope="session")
def interop_server(tmp_path_factory, pki):
    """One server for the whole session with the interop module loaded."""
    s = Server(str(tmp_path_factory.mktemp("interop")), pki, modules=("interop",)).start()
    s.ca_pem = pki.ca_pem
    s.grpc_target_tls_override = "localhost"
    yield s
    rc = s.stop()
    assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, s.log())
    s.assert_clean()


def rss_kib(pid):
    """VmRSS of process @pid in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def wait_for(pred, timeout=5.0, step=0.02):
    """Polls pred() until true or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)

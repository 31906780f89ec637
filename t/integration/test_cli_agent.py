# SPDX-License-Identifier: MIT
"""`galaxy-cli agent` end to end (src/cli/gx_cli_agent.c), against the real
server and, for what the real server never does, a small grpcio server.

Agents run as subprocesses with a hook script that writes the environment and
payload it got to a file and exits 0, 1 or sleeps according to the payload;
jobs are submitted and watched with the Python gRPC client.  Covered: jobs
run on the agent with their specialization, through the hook, once, and end
SUCCEEDED or FAILED with "exit N"; a job pushed over the HeartbeatStream
starts long before the next heartbeat; CancelJob kills the hook; an agent
killed with SIGKILL has its job routed to the other agent; SIGTERM
deregisters; the --config file; reconnection with growing back-off after the
server restarts; falling back to unary heartbeats when the stream is refused
and registering again (with the lease token) when the node is unknown; usage
errors.  Every wait is bounded.
"""
import concurrent.futures
import importlib
import os
import re
import secrets
import signal
import subprocess
import time

import grpc
import pytest

from conftest import BUILDDIR, SANITIZER_MARKS, wait_for
from gxapi import Api, with_key

CLI = os.path.join(BUILDDIR, "galaxy-cli")
POOL = "agents"

HOOK = r"""#!/bin/sh
# test hook: records what it got, then exits by payload
payload=$(cat)
out="$OUT_DIR/$GALAXY_JOB_ID.$GALAXY_JOB_ATTEMPTS"
{
  echo "node=$GALAXY_NODE_ID"
  echo "pool=$GALAXY_JOB_POOL"
  echo "spec=$GALAXY_JOB_SPECIALIZATION"
  echo "attempts=$GALAXY_JOB_ATTEMPTS"
  echo "key=$GALAXY_JOB_ROUTING_KEY"
  echo "id=$GALAXY_JOB_ID"
  echo "payload=$payload"
  echo "pid=$$"
} > "$out.tmp" && mv "$out.tmp" "$out"
echo "$GALAXY_JOB_ID $GALAXY_JOB_ATTEMPTS" >> "$OUT_DIR/runs.$GALAXY_NODE_ID"
case "$payload" in
  fail*) exit 1 ;;
  sleep*) if [ "$GALAXY_JOB_ATTEMPTS" = 1 ]; then exec sleep 60; fi ;;
esac
exit 0
"""


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


class Agent:
    """One `galaxy-cli agent` process; its stderr goes to a log file."""

    def __init__(self, tmp, addr, node_id, specs, hook, out_dir, extra=(), max_jobs=2):
        self.id = node_id
        self.log_path = os.path.join(tmp, "agent-%s.log" % node_id)
        args = [CLI, "--addr", addr, "agent", "--pool", POOL, "--id", node_id,
                "--hook", hook, "--max-jobs", str(max_jobs)]
        for s in specs:
            args += ["--spec", s]
        args += list(extra)
        env = dict(os.environ, OUT_DIR=out_dir, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
        env.pop("GALAXY_API_KEY", None)
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.logf, env=env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, pattern, timeout=10.0):
        """Waits for a log line matching @pattern; returns the match."""
        m = wait_for(lambda: re.search(pattern, self.log()), timeout)
        assert m, "agent %s: no /%s/ in %ss:\n%s" % (self.id, pattern, timeout, self.log())
        return m

    def wait_count(self, pattern, n, timeout=10.0):
        """Waits for @n log lines matching @pattern."""
        ok = wait_for(lambda: len(re.findall(pattern, self.log())) >= n, timeout)
        assert ok, "agent %s: fewer than %d /%s/ in %ss:\n%s" % (self.id, n, pattern, timeout,
                                                                 self.log())

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals the agent; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("agent %s did not stop:\n%s" % (self.id, self.log()))
        self.logf.close()
        return rc

    def assert_clean(self):
        log = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in log, "sanitizer report from agent %s:\n%s" % (self.id, log)


@pytest.fixture
def spawn():
    """Factory of agents outside `world`; any still running at the end is killed."""
    made = []

    def make(*args, **kw):
        a = Agent(*args, **kw)
        made.append(a)
        return a

    yield make
    for a in made:
        if a.proc.poll() is None:
            a.stop(signal.SIGKILL)


@pytest.fixture
def world(tmp_path, make_server, pb):
    """A server with a pool of short heartbeats and TTLs, a hook, and a
    factory of agents stopped at the end."""
    s = make_server(tls=False)
    ch = s.channel()
    api = Api(ch, pb)
    api.create_pool(POOL, heartbeat_interval_ms=200, node_ttl_ms=600)
    out = tmp_path / "out"
    out.mkdir()
    hook_path = tmp_path / "hook.sh"
    hook_path.write_text(HOOK)
    agents = []

    class World:
        server = s
        tmp = str(tmp_path)
        out_dir = str(out)
        hook = "sh " + str(hook_path)

        def agent(self, node_id, specs, **kw):
            a = Agent(self.tmp, s.h2c, node_id, specs, kw.pop("hook", self.hook), self.out_dir,
                      **kw)
            agents.append(a)
            return a

        def submit(self, spec, payload=b"", key=""):
            return api.SubmitJob(pb.SubmitJobRequest(job=pb.Job(
                pool=POOL, specialization=spec, payload=payload, routing_key=key)),
                timeout=10)

        def job(self, id):
            return api.GetJob(pb.GetJobRequest(id=id), timeout=5)

        def wait_state(self, id, states, timeout=15):
            j = wait_for(lambda: (lambda j: j if j.state in states else None)(self.job(id)),
                         timeout, step=0.05)
            assert j, "job %s never reached %s: %s" % (id, states, self.job(id))
            return j

        def node_state(self, node_id):
            try:
                return api.GetNode(pb.GetNodeRequest(pool=POOL, node_id=node_id),
                                   timeout=5).state
            except grpc.RpcError as e:
                return e.code()

        def wait_healthy(self, node_id, timeout=10):
            assert wait_for(lambda: self.node_state(node_id) == pb.NODE_STATE_HEALTHY,
                            timeout), "node %s not HEALTHY: %s" % (node_id,
                                                                   self.node_state(node_id))

        def record(self, id, attempts=1):
            p = os.path.join(self.out_dir, "%s.%d" % (id, attempts))
            assert wait_for(lambda: os.path.exists(p), 10), "hook never ran for %s" % id
            with open(p) as f:
                return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)

        def runs(self, node_id):
            try:
                with open(os.path.join(self.out_dir, "runs." + node_id)) as f:
                    return f.read().split("\n")[:-1]
            except FileNotFoundError:
                return []

    w = World()
    w.api = api
    yield w
    for a in agents:
        if a.proc.poll() is None:
            a.stop(signal.SIGKILL)
        a.assert_clean()
    # hooks orphaned by a SIGKILLed agent
    for name in os.listdir(str(out)):
        if re.match(r"^[0-9a-f]+\.\d+$", name):
            with open(os.path.join(str(out), name)) as f:
                m = re.search(r"^pid=(\d+)$", f.read(), re.M)
            if m:
                try:
                    os.kill(int(m.group(1)), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    ch.close()


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- jobs through hooks

def test_jobs_run_on_the_agent_with_their_specialization(world, pb):
    a = world.agent("alpha-1", ["alpha", "shared"])
    b = world.agent("beta-1", ["beta", "shared"])
    world.wait_healthy("alpha-1")
    world.wait_healthy("beta-1")

    ok = world.submit("alpha", b"hello alpha", key="rk-1")
    bad = world.submit("beta", b"fail please")
    j = world.wait_state(ok.id, (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED))
    assert (j.state, j.node_id, j.message) == (pb.JOB_STATE_SUCCEEDED, "alpha-1", "exit 0")
    j = world.wait_state(bad.id, (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED))
    assert (j.state, j.node_id, j.message) == (pb.JOB_STATE_FAILED, "beta-1", "exit 1")

    rec = world.record(ok.id)
    assert rec == {"node": "alpha-1", "pool": POOL, "spec": "alpha", "attempts": "1",
                   "key": "rk-1", "id": ok.id, "payload": "hello alpha", "pid": rec["pid"]}
    rec = world.record(bad.id)
    assert (rec["node"], rec["spec"], rec["payload"]) == ("beta-1", "beta", "fail please")

    # each ran once, on its own agent only, however often it was delivered
    time.sleep(0.6)  # a few more heartbeats
    assert world.runs("alpha-1") == ["%s 1" % ok.id]
    assert world.runs("beta-1") == ["%s 1" % bad.id]
    a.wait_log(r"job reported id=%s state=SUCCEEDED" % ok.id)
    b.wait_log(r"job reported id=%s state=FAILED" % bad.id)


def test_many_jobs_respect_max_jobs_and_all_finish(world, pb):
    world.agent("many-1", ["shared"], max_jobs=3)
    world.wait_healthy("many-1")
    ids = [world.submit("shared", b"ok %d" % i).id for i in range(12)]
    for id in ids:
        assert world.wait_state(id, (pb.JOB_STATE_SUCCEEDED,), timeout=30).node_id == "many-1"
    assert sorted(world.runs("many-1")) == sorted("%s 1" % id for id in ids)
    node = world.api.GetNode(pb.GetNodeRequest(pool=POOL, node_id="many-1"), timeout=5)
    assert node.capacity.max_jobs == 3


def test_a_pushed_job_starts_before_the_next_heartbeat(world, pb):
    """With 10 s heartbeats, only the stream's push can start a job within 3 s."""
    world.api.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(
        name=POOL, heartbeat_interval_ms=10000, node_ttl_ms=30000)), timeout=10)
    a = world.agent("push-1", ["alpha"])
    world.wait_healthy("push-1")
    a.wait_log(r"registered .*interval_ms=10000")
    time.sleep(0.3)  # the first heartbeat has bound the stream
    t0 = time.monotonic()
    job = world.submit("alpha", b"quick")
    world.wait_state(job.id, (pb.JOB_STATE_SUCCEEDED,), timeout=3)
    assert time.monotonic() - t0 < 3


def test_cancel_kills_the_hook(world, pb):
    a = world.agent("cancel-1", ["alpha"])
    world.wait_healthy("cancel-1")
    job = world.submit("alpha", b"sleep")
    world.wait_state(job.id, (pb.JOB_STATE_RUNNING,))
    pid = int(world.record(job.id)["pid"])
    assert pid_alive(pid)
    world.api.CancelJob(pb.CancelJobRequest(id=job.id), timeout=10)
    a.wait_log(r"job cancelled id=%s" % job.id)
    assert wait_for(lambda: not pid_alive(pid), 10), "the hook outlived its cancelled job"
    a.wait_log(r"job ended id=%s status=\"signal 15\" cancelled=1" % job.id)
    j = world.job(job.id)
    assert j.state == pb.JOB_STATE_CANCELLED
    # the agent takes new work afterwards
    again = world.submit("alpha", b"after")
    world.wait_state(again.id, (pb.JOB_STATE_SUCCEEDED,))


def test_sigkilled_agent_has_its_job_rerouted(world, pb):
    agents = {"kill-a": world.agent("kill-a", ["shared"]),
              "kill-b": world.agent("kill-b", ["shared"])}
    world.wait_healthy("kill-a")
    world.wait_healthy("kill-b")
    job = world.submit("shared", b"sleep")
    first = world.wait_state(job.id, (pb.JOB_STATE_RUNNING,)).node_id
    other = "kill-b" if first == "kill-a" else "kill-a"
    assert world.record(job.id)["node"] == first

    assert agents[first].stop(signal.SIGKILL) == -signal.SIGKILL
    # DOWN after 2 TTLs (1.2 s), then routed again: attempt 2 on the other agent
    j = world.wait_state(job.id, (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED), timeout=20)
    assert (j.state, j.node_id, j.attempts) == (pb.JOB_STATE_SUCCEEDED, other, 2)
    rec = world.record(job.id, attempts=2)
    assert (rec["node"], rec["attempts"]) == (other, "2")
    assert world.node_state(first) in (pb.NODE_STATE_DOWN, grpc.StatusCode.NOT_FOUND)


def test_sigterm_deregisters(world, pb):
    a = world.agent("term-1", ["alpha"])
    world.wait_healthy("term-1")
    assert a.stop(signal.SIGTERM) == 0
    assert world.node_state("term-1") == grpc.StatusCode.NOT_FOUND
    log = a.log()
    assert "stopping signal=TERM" in log and "deregistered pool=%s node=term-1" % POOL in log
    b = world.agent("int-1", ["alpha"])
    world.wait_healthy("int-1")
    assert b.stop(signal.SIGINT) == 0
    assert world.node_state("int-1") == grpc.StatusCode.NOT_FOUND


def test_sigterm_kills_running_hooks(world, pb):
    a = world.agent("term-2", ["alpha"])
    world.wait_healthy("term-2")
    job = world.submit("alpha", b"sleep")
    world.wait_state(job.id, (pb.JOB_STATE_RUNNING,))
    pid = int(world.record(job.id)["pid"])
    assert a.stop(signal.SIGTERM) == 0
    # the hook (sh, then exec sleep) is a grandchild in the job's process
    # group: the agent signals the group and reaps its own child, so the
    # grandchild may still be on its way out when the agent is gone
    assert wait_for(lambda: not pid_alive(pid), 5)


def test_config_file_and_flags_over_it(world, pb, tmp_path):
    conf = tmp_path / "agent.yaml"
    conf.write_text("pool: wrong-pool\n"
                    "id: conf-1\n"
                    "spec: [alpha, gamma]\n"
                    "labels: {zone: eu-1, rack: r7}\n"
                    "address: 10.1.2.3:7000\n"
                    "version: \"9.9\"\n"
                    "cpu-millis: 4000\n"
                    "memory_bytes: 17179869184\n"
                    "gpus: 2\n"
                    "max_jobs: 5\n")
    world.agent("ignored", [], extra=["--config", str(conf), "--pool", POOL, "--id", "conf-1"])
    world.wait_healthy("conf-1")
    n = world.api.GetNode(pb.GetNodeRequest(pool=POOL, node_id="conf-1"), timeout=5)
    assert list(n.specializations) == ["alpha", "gamma"]
    assert dict(n.labels) == {"zone": "eu-1", "rack": "r7"}
    assert (n.address, n.version) == ("10.1.2.3:7000", "9.9")
    # --max-jobs 2 (the Agent default) wins over the file's 5
    assert (n.capacity.cpu_millis, n.capacity.memory_bytes, n.capacity.gpus,
            n.capacity.max_jobs) == (4000, 17179869184, 2, 2)


# ---------------------------------------------------------------- credentials and TLS

def test_agent_over_tls(make_server, pb, pki, tmp_path, spawn):
    s = make_server()
    ch = s.channel()
    Api(ch, pb).create_pool(POOL, heartbeat_interval_ms=200, node_ttl_ms=600)
    (tmp_path / "hook.sh").write_text(HOOK)
    a = spawn(str(tmp_path), s.tls, "tls-1", ["alpha"], "sh %s" % (tmp_path / "hook.sh"),
              str(tmp_path), extra=["--cacert", pki.ca_cert, "--server-name", "localhost"])
    a.wait_log(r"registered pool=%s node=tls-1" % POOL)
    job = Api(ch, pb).SubmitJob(pb.SubmitJobRequest(job=pb.Job(
        pool=POOL, specialization="alpha", payload=b"tls")), timeout=10)
    a.wait_log(r"job reported id=%s state=SUCCEEDED" % job.id)
    assert a.stop() == 0
    a.assert_clean()
    # a CA that does not verify the server is a connection failure, retried
    b = spawn(str(tmp_path), s.tls, "tls-2", ["alpha"], "true", str(tmp_path),
              extra=["--cacert", pki.path("rogue-ca.crt"), "--server-name", "localhost"])
    b.wait_log(r"cannot connect .*certificate verify failed")
    assert b.stop() == 0
    b.assert_clean()
    ch.close()


def test_agent_with_an_api_key_in_a_private_pool(make_server, pb, tmp_path, spawn):
    admin_secret = "agent-admin-" + secrets.token_hex(16)
    s = make_server(tls=False, modules=("auth_apikey", "rbac"),
                    env={"GALAXY_ADMIN_KEY": admin_secret})
    ch = s.channel()
    admin = Api(with_key(ch, admin_secret), pb)
    admin.create_pool("secret-pool", visibility=pb.VISIBILITY_PRIVATE,
                      heartbeat_interval_ms=200, node_ttl_ms=600)
    key = admin.CreateApiKey(pb.CreateApiKeyRequest(name="agent", role=pb.ROLE_NODE,
                                                    pools=["secret-pool"]), timeout=10)
    (tmp_path / "hook.sh").write_text(HOOK)
    hook = "sh %s" % (tmp_path / "hook.sh")
    # without the key the pool does not exist for it: the first registration fails
    p = subprocess.run([CLI, "--addr", s.h2c, "agent", "--pool", "secret-pool", "--id", "k-0",
                        "--spec", "alpha", "--hook", "true"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, GALAXY_API_KEY=""))
    assert p.returncode == 1 and "register refused status=NOT_FOUND" in p.stderr
    a = spawn(str(tmp_path), s.h2c, "k-1", ["alpha"], hook, str(tmp_path),
              extra=["--pool", "secret-pool", "--api-key", key.secret])
    a.wait_log(r"registered pool=secret-pool node=k-1")
    job = admin.SubmitJob(pb.SubmitJobRequest(job=pb.Job(
        pool="secret-pool", specialization="alpha", payload=b"private")), timeout=10)
    a.wait_log(r"job reported id=%s state=SUCCEEDED" % job.id)
    n = admin.GetNode(pb.GetNodeRequest(pool="secret-pool", node_id="k-1"), timeout=5)
    assert n.owner == "key:" + key.key.id
    assert a.stop() == 0
    assert "deregistered pool=secret-pool node=k-1" in a.log()
    a.assert_clean()
    ch.close()


# ---------------------------------------------------------------- reconnecting

def test_reconnects_with_back_off_after_a_server_restart(tmp_path, make_server, pb, world):
    """The agent outlives its server: it retries with growing delays, then
    beats again on the restarted one (same data directory and port)."""
    a = world.agent("phoenix", ["alpha"])
    world.wait_healthy("phoenix")
    s = world.server
    port = s.h2c.rsplit(":", 1)[1]
    assert s.stop() == 0
    a.wait_log(r"disconnected addr=")
    a.wait_count(r"cannot connect ", 4)
    time.sleep(1.5)
    s2 = make_server(tls=False, data_dir=s.data_dir, args=("--listen", "127.0.0.1:" + port))
    delays = [int(d) for d in re.findall(r"retry_in_ms=(\d+)", a.log())]
    assert delays[0] <= 100 * 1.2 + 1
    assert all(d <= 30000 * 1.2 for d in delays)
    assert delays[3] > delays[0] * 3, delays  # doubling, give or take the jitter
    ch = s2.channel()
    api = Api(ch, pb)

    def healthy():
        try:
            return api.GetNode(pb.GetNodeRequest(pool=POOL, node_id="phoenix"),
                               timeout=5).state == pb.NODE_STATE_HEALTHY
        except grpc.RpcError as e:
            healthy.last = e
            return False
    assert wait_for(healthy, 15), (getattr(healthy, "last", None), s2.log(), a.log())
    a.wait_log(r"connected addr=127\.0\.0\.1:%s\n" % port, timeout=15)
    job = api.SubmitJob(pb.SubmitJobRequest(job=pb.Job(pool=POOL, specialization="alpha",
                                                       payload=b"back")), timeout=10)
    assert wait_for(lambda: api.GetJob(pb.GetJobRequest(id=job.id), timeout=5).state
                    == pb.JOB_STATE_SUCCEEDED, 15)
    assert a.stop() == 0
    ch.close()


def test_unreachable_server_at_start_is_retried(world, pb, tmp_path, spawn):
    """Started before anything listens, the agent keeps trying (bounded
    delays) and stops cleanly on SIGTERM without having registered."""
    a = spawn(str(tmp_path), "127.0.0.1:1", "early", ["alpha"], world.hook, world.out_dir)
    a.wait_count(r"cannot connect ", 3)
    assert a.stop() == 0
    assert "registered" not in a.log()
    a.assert_clean()


# ---------------------------------------------------------------- a registry that says what ours does not

class FakeRegistry:
    """NodeRegistry in grpcio: Register and Heartbeat work; HeartbeatStream is
    UNIMPLEMENTED; the first @unknown_beats unary heartbeats are NOT_FOUND."""

    def __init__(self, pb, unknown_beats=0):
        self.pb = pb
        self.registers = []
        self.beats = 0
        self.streams = 0
        self.unknown = unknown_beats
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        svc = "galaxy.pool.v1.NodeRegistry"
        handlers = {
            "Register": grpc.unary_unary_rpc_method_handler(
                self.register, request_deserializer=pb.RegisterRequest.FromString,
                response_serializer=pb.RegisterResponse.SerializeToString),
            "Heartbeat": grpc.unary_unary_rpc_method_handler(
                self.heartbeat, request_deserializer=pb.HeartbeatRequest.FromString,
                response_serializer=pb.HeartbeatResponse.SerializeToString),
            "HeartbeatStream": grpc.stream_stream_rpc_method_handler(
                self.stream, request_deserializer=pb.HeartbeatRequest.FromString,
                response_serializer=pb.HeartbeatResponse.SerializeToString),
            "Deregister": grpc.unary_unary_rpc_method_handler(
                lambda req, ctx: pb.DeregisterResponse(),
                request_deserializer=pb.DeregisterRequest.FromString,
                response_serializer=pb.DeregisterResponse.SerializeToString),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(svc,
                                                                                   handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def register(self, req, ctx):
        self.registers.append(req.lease_token)
        return self.pb.RegisterResponse(node=req.node, lease_token="tok-1234",
                                        heartbeat_interval_ms=100, ttl_ms=300)

    def heartbeat(self, req, ctx):
        assert req.lease_token == "tok-1234"
        self.beats += 1
        if self.unknown > 0:
            self.unknown -= 1
            ctx.abort(grpc.StatusCode.NOT_FOUND, "node_id: no node")
        return self.pb.HeartbeatResponse(state=self.pb.NODE_STATE_HEALTHY,
                                         heartbeat_interval_ms=100)

    def stream(self, it, ctx):
        self.streams += 1
        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "no streams here")
        yield  # pragma: no cover


def test_falls_back_to_unary_heartbeats_and_registers_again(pb, tmp_path, spawn):
    fake = FakeRegistry(pb, unknown_beats=1)
    try:
        a = spawn(str(tmp_path), "127.0.0.1:%d" % fake.port, "fake-1", ["alpha"], "true",
                  str(tmp_path))
        a.wait_log(r"stream ended, unary heartbeats for now reason=\"heartbeat stream: "
                   r"UNIMPLEMENTED: no streams here\"")
        a.wait_log(r"node unknown|heartbeat refused status=NOT_FOUND")
        assert wait_for(lambda: fake.beats >= 6, 10), fake.beats
        # registered first without a lease, then again with the one it was given
        assert fake.registers[:2] == ["", "tok-1234"], fake.registers
        assert fake.streams == 1  # not retried at every beat
        assert a.stop() == 0
        a.assert_clean()
    finally:
        fake.server.stop(0)


# ---------------------------------------------------------------- usage

@pytest.mark.parametrize("args,what", [
    (["--spec", "a", "--hook", "true"], "--pool: required"),
    (["--pool", "p", "--hook", "true"], "--spec: at least one"),
    (["--pool", "p", "--spec", "a"], "--hook: required"),
    (["--pool", "p", "--spec", "a", "--hook", "true", "--gpus", "x"], "--gpus"),
    (["--pool", "p", "--spec", "a", "--hook", "true", "--max-jobs", "0"], "--max-jobs"),
    (["--pool", "p", "--spec", "a,,b", "--hook", "true"], "--spec"),
    (["--config", "/nonexistent/agent.yaml"], "--config /nonexistent/agent.yaml"),
])
def test_usage_errors(args, what):
    p = subprocess.run([CLI, "agent"] + args, capture_output=True, text=True, timeout=20)
    assert p.returncode == 64, p.stderr
    assert what in p.stderr


def test_bad_config_file_names_file_and_line(tmp_path):
    conf = tmp_path / "bad.yaml"
    conf.write_text("pool: p\nspec: [a]\nhook: true\ncolour: blue\n")
    p = subprocess.run([CLI, "agent", "--config", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 64
    assert "%s:4: unknown key 'colour'" % conf in p.stderr
    conf.write_text("pool: [p\n")
    p = subprocess.run([CLI, "agent", "--config", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 64 and str(conf) + ":" in p.stderr
    conf.write_text("pool: p\nspec: [a]\nhook: true\ngpus: lots\n")
    p = subprocess.run([CLI, "agent", "--config", str(conf)], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode == 64 and "%s:4: gpus: expected a number" % conf in p.stderr


def test_a_node_id_held_by_another_lease_is_waited_for(world, pb):
    """Another lease holds the id (an agent that crashed, say): the agent
    retries until that lease lapses to DOWN, then takes the id over."""
    world.api.register("taken", pool=POOL, specs=("alpha",))
    a = world.agent("taken", ["alpha"])
    a.wait_log(r"register refused status=ALREADY_EXISTS")
    a.wait_log(r"registering again retry_in_ms=\d+")
    a.wait_log(r"registered pool=%s node=taken" % POOL, timeout=15)
    world.wait_healthy("taken")
    assert a.proc.poll() is None


def test_registration_refused_is_exit_1(world, pb):
    a = world.agent("bad id with spaces", ["alpha"])
    assert a.proc.wait(15) == 1
    assert "register refused status=INVALID_ARGUMENT" in a.log()

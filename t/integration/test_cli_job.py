# SPDX-License-Identifier: MIT
"""galaxy-cli job submit|show|list|cancel (and submit --explain) and galaxy-cli
watch against the real server (auth_apikey and rbac loaded).

Each job command in its three outputs: the table for people, `-o json` parsed
and compared field by field with what the server holds (read through the
python grpc client), `--quiet` ids; the payload from the line, a file and
standard input (base64 in JSON, its size only in tables); ListJobs filters and
--all paging; and the main errors with their exit codes: an unknown job 1
(NOT_FOUND), a job of another key in a private pool 1 (NOT_FOUND, as if it did
not exist), unreachable 2, bad flag 64.

watch runs as a subprocess while nodes register through the python client:
its events one per line (or one JSON document each) as they happen, --count,
--spec, --from-revision, and Ctrl-C (SIGINT) ending an open watch with exit 0."""
import base64
import importlib
import json
import queue
import re
import secrets
import signal
import subprocess
import threading
import time

import pytest

from clitool import (CLI, NO, OK, UNAVAILABLE, USAGE, CliWorld, as_json, cli, cli_env, error,
                     fields, free_port, no_sanitizer_report, table)
from conftest import Server
from gxapi import Api

ADMIN = "cli-job-admin-" + secrets.token_hex(16)
AUTH = ("auth_apikey", "rbac")
PRIVATE = "cj-private"
PAYLOAD_MAX = 1 << 20


class World(CliWorld):
    """One server, its admin key, two submitter keys of a private pool."""

    def __init__(self, s, pb):
        super().__init__(s, pb, ADMIN)
        self.admin.create_pool(PRIVATE, visibility=pb.VISIBILITY_PRIVATE,
                               heartbeat_interval_ms=60000)
        self.sub = {}
        for name in ("sub1", "sub2"):
            r = self.admin.CreateApiKey(pb.CreateApiKeyRequest(
                name=name, role=pb.ROLE_SUBMITTER, pools=[PRIVATE]), timeout=5)
            self.sub[name] = r.secret
        self.n = 0

    def pool(self, **kw):
        """A new public pool whose nodes never lapse during a test."""
        self.n += 1
        name = "cj-%d" % self.n
        kw.setdefault("heartbeat_interval_ms", 60000)
        self.admin.create_pool(name, **kw)
        return name

    def register(self, pool, id, specs=("gpu",), **kw):
        return self.admin.register(id, pool=pool, specs=specs, **kw)

    def get_job(self, id):
        return self.admin.GetJob(self.pb.GetJobRequest(id=id), timeout=5)

    def list_jobs(self, pool, **kw):
        """Every job of a listing, page after page, through the python client."""
        jobs, token = [], ""
        for _ in range(1000):
            r = self.admin.ListJobs(self.pb.ListJobsRequest(pool=pool, page_token=token, **kw),
                                    timeout=5)
            jobs += list(r.jobs)
            token = r.next_page_token
            if not token:
                return jobs
        raise AssertionError("paging does not end")



@pytest.fixture(scope="module")
def w(tmp_path_factory, pki, protos):
    pb = importlib.import_module("galaxy.pool.v1.pool_pb2")
    s = Server(str(tmp_path_factory.mktemp("cli-job")), pki, modules=AUTH, tls=False,
               env={"GALAXY_ADMIN_KEY": ADMIN})
    s.start()
    world = World(s, pb)
    yield world
    world.close()


# ---------------------------------------------------------------- submit

def test_submit_pending_without_a_node(w):
    pool = w.pool()
    got = w.json("job", "submit", pool, "--spec", "gpu", "--selector", "zone=eu",
                 "--selector", "disk=ssd", "--cpu-millis", "500", "--memory-bytes",
                 str(3 << 30), "--gpus", "2", "--routing-key", "user-7", "--payload", "hello")
    job = w.get_job(got["id"])
    assert got == as_json(job)
    assert got["state"] == "JOB_STATE_PENDING" and got["nodeId"] == "" and got["attempts"] == 0
    assert got["pool"] == pool and got["specialization"] == "gpu"
    assert got["nodeSelector"] == {"zone": "eu", "disk": "ssd"}
    assert got["resources"] == {"cpuMillis": 500, "memoryBytes": str(3 << 30), "gpus": 2,
                                "maxJobs": 0}
    assert got["routingKey"] == "user-7"
    assert got["payload"] == base64.b64encode(b"hello").decode() and job.payload == b"hello"
    assert got["submitter"].startswith("key:")
    assert int(got["createdUnixMs"]) > 0


def test_submit_assigned_to_the_registered_node(w):
    pool = w.pool()
    w.register(pool, "n1", specs=("gpu",), labels={"zone": "eu"})
    got = w.json("job", "submit", pool, "--spec", "gpu", "--selector", "zone=eu")
    assert got == as_json(w.get_job(got["id"]))
    assert got["state"] == "JOB_STATE_ASSIGNED" and got["nodeId"] == "n1"
    assert got["attempts"] == 1 and got["payload"] == ""
    assert "resources" not in got     # none asked for: the field is unset
    # the table for people
    f = fields(w.ok("job", "submit", pool, "--spec", "gpu", "--payload", "x" * 300))
    assert (f["Pool"], f["Specialization"], f["State"], f["Node"], f["Attempts"]) == \
        (pool, "gpu", "ASSIGNED", "n1", "1")
    assert f["Payload"] == "300 bytes" and "x" * 10 not in "".join(f.values())
    assert w.get_job(f["ID"]).payload == b"x" * 300
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(.+ ago\)$", f["Created"])
    assert f["Submitter"].startswith("key:") and f["Resources"] == "-"
    # --quiet: the id alone
    out = w.ok("-q", "job", "submit", pool, "--spec", "gpu")
    assert re.match(r"^[0-9a-f]+\n$", out)
    assert w.get_job(out.strip()).node_id == "n1"


def test_submit_payload_from_a_file_and_stdin(w, tmp_path):
    pool = w.pool()
    data = bytes(range(256)) * 10
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    got = w.json("job", "submit", pool, "--spec", "cpu", "--payload-file", str(path))
    assert base64.b64decode(got["payload"]) == data
    assert w.get_job(got["id"]).payload == data
    rc, out, err = w.run("-o", "json", "job", "submit", pool, "--spec", "cpu",
                         "--payload-file", "-", input=b"\x00from stdin\xff")
    assert rc == OK, err
    got = json.loads(out)
    assert w.get_job(got["id"]).payload == b"\x00from stdin\xff"
    # the largest payload passes, one byte more is refused before any call
    rc, out, err = w.run("-q", "job", "submit", pool, "--spec", "cpu", "--payload-file", "-",
                         input=b"p" * PAYLOAD_MAX)
    assert rc == OK, err
    assert len(w.get_job(out.strip()).payload) == PAYLOAD_MAX
    before = len(w.list_jobs(pool))
    rc, out, err = w.run("job", "submit", pool, "--spec", "cpu", "--payload-file", "-",
                         input=b"p" * (PAYLOAD_MAX + 1))
    assert rc == USAGE and out == "" and "--payload-file" in err
    assert len(w.list_jobs(pool)) == before


# ---------------------------------------------------------------- show, list, cancel

def test_show(w):
    pool = w.pool()
    w.register(pool, "n1")
    id = w.ok("-q", "job", "submit", pool, "--spec", "gpu", "--payload", "abc").strip()
    job = w.get_job(id)
    assert w.json("job", "show", id) == as_json(job)
    assert w.ok("-q", "job", "show", id) == id + "\n"
    f = fields(w.ok("job", "show", id))
    assert (f["ID"], f["Pool"], f["State"], f["Node"], f["Payload"], f["Node selector"]) == \
        (id, pool, "ASSIGNED", "n1", "3 bytes", "-")
    assert f["Message"] == "-" and f["Routing key"] == "-"


def test_list_filters_and_paging(w):
    pool = w.pool()
    w.register(pool, "n1", specs=("gpu",))
    w.register(pool, "n2", specs=("cpu",))
    ids = [w.ok("-q", "job", "submit", pool, "--spec", spec).strip()
           for spec in ("gpu", "cpu", "nobody", "gpu", "nobody", "cpu", "gpu")]
    w.ok("job", "cancel", ids[4])
    everything = w.list_jobs(pool)
    assert [j.id for j in everything] == ids
    assert w.json("job", "list", pool) == [as_json(j) for j in everything]
    assert w.ok("-q", "job", "list", pool).split() == ids
    # the table: one row per job, in id order
    rows = table(w.ok("job", "list", pool))
    assert [r["ID"] for r in rows] == ids
    first = rows[0]
    assert (first["POOL"], first["SPEC"], first["STATE"], first["NODE"], first["ATTEMPTS"]) == \
        (pool, "gpu", "ASSIGNED", "n1", "1")
    assert (rows[2]["STATE"], rows[2]["NODE"], rows[4]["STATE"]) == ("PENDING", "-", "CANCELLED")
    assert all(re.match(r"^\S+ ago$", r["UPDATED"]) for r in rows)
    # filters
    pb = w.pb
    pending = w.json("job", "list", pool, "--state", "pending")
    assert pending == [as_json(j) for j in w.list_jobs(pool, states=[pb.JOB_STATE_PENDING])]
    assert [j["id"] for j in pending] == [ids[2]]
    got = w.ok("-q", "job", "list", pool, "--state", "pending,cancelled")
    assert got.split() == [ids[2], ids[4]]
    got = w.ok("-q", "job", "list", pool, "--state", "PENDING", "--state", "job_state_cancelled")
    assert got.split() == [ids[2], ids[4]]
    on_n2 = w.json("job", "list", pool, "--node", "n2")
    assert on_n2 == [as_json(j) for j in w.list_jobs(pool, node_id="n2")]
    assert [j["id"] for j in on_n2] == [ids[1], ids[5]]
    assert w.ok("-q", "job", "list", pool, "--node", "n1", "--state", "assigned").split() == \
        [ids[0], ids[3], ids[6]]
    # one page, with a note on where the next starts; --all follows the tokens
    rc, out, err = w.run("-q", "job", "list", pool, "--page-size", "2")
    assert rc == OK and out.split() == ids[:2]
    token = re.search(r"--page-token (\S+)", err).group(1)
    assert "more jobs follow" in err
    assert w.ok("-q", "job", "list", pool, "--page-size", "2", "--page-token", token).split() \
        == ids[2:4]
    rc, out, err = w.run("-o", "json", "job", "list", pool, "--page-size", "2", "--all")
    assert rc == OK and err == ""
    assert json.loads(out) == [as_json(j) for j in everything]
    assert w.ok("-q", "job", "list", pool, "--page-size", "3", "--all").split() == ids
    # an empty listing: a header, an empty array, nothing
    empty = w.pool()
    assert w.ok("job", "list", empty).split() == ["ID", "POOL", "SPEC", "STATE", "NODE",
                                                  "ATTEMPTS", "UPDATED"]
    assert w.json("job", "list", empty) == []
    assert w.ok("-q", "job", "list", empty) == ""


def test_cancel(w):
    pool = w.pool()
    id = w.ok("-q", "job", "submit", pool, "--spec", "gpu").strip()
    got = w.json("job", "cancel", id)
    assert got == as_json(w.get_job(id))
    assert got["state"] == "JOB_STATE_CANCELLED" and got["message"] != ""
    id = w.ok("-q", "job", "submit", pool, "--spec", "gpu").strip()
    assert w.ok("-q", "job", "cancel", id) == id + "\n"
    assert w.get_job(id).state == w.pb.JOB_STATE_CANCELLED
    id = w.ok("-q", "job", "submit", pool, "--spec", "gpu").strip()
    f = fields(w.ok("job", "cancel", id))
    assert (f["ID"], f["State"]) == (id, "CANCELLED")


def test_private_pool_job_of_another_key_is_not_found(w):
    """sub2 may submit to the private pool but does not see sub1's job: show
    and cancel answer NOT_FOUND, exit 1, exactly as for a job that does not
    exist; the job is untouched."""
    sub1, sub2 = w.sub["sub1"], w.sub["sub2"]
    id = w.ok("-q", "job", "submit", PRIVATE, "--spec", "gpu", key=sub1).strip()
    assert w.json("job", "show", id, key=sub1)["state"] == "JOB_STATE_PENDING"
    missing = "00000000000000000000ff"
    for cmd in ("cancel", "show"):
        rc, out, err = w.run("job", cmd, id, key=sub2)
        assert (rc, out) == (NO, ""), (cmd, rc, err)
        assert error(err, "NOT_FOUND"), err
        rc2, _, err2 = w.run("job", cmd, missing, key=sub2)
        assert rc2 == NO and err.replace(id, "X") == err2.replace(missing, "X")
    assert w.ok("-q", "job", "list", PRIVATE, key=sub2) == ""
    assert w.ok("-q", "job", "list", PRIVATE, key=sub1).split() == [id]
    assert w.get_job(id).state == w.pb.JOB_STATE_PENDING
    # its submitter may cancel it
    assert w.json("job", "cancel", id, key=sub1)["state"] == "JOB_STATE_CANCELLED"
    # anonymous callers do not see the private pool at all
    rc, _, err = w.run("job", "list", PRIVATE, key=None)
    assert rc == NO and error(err, "NOT_FOUND"), err


# ---------------------------------------------------------------- explain

def test_explain(w):
    pool = w.pool()
    w.register(pool, "n1", specs=("gpu",), labels={"zone": "eu"})
    w.register(pool, "n2", specs=("cpu",), labels={"zone": "eu"})
    w.register(pool, "n3", specs=("gpu",), labels={"zone": "us"})
    w.register(pool, "n4", specs=("gpu",), labels={"zone": "eu"})
    w.admin.Drain(w.pb.DrainRequest(pool=pool, node_id="n4"), timeout=5)
    args = ("job", "submit", pool, "--spec", "gpu", "--selector", "zone=eu", "--explain")
    got = w.json(*args)
    want = w.admin.ExplainJob(w.pb.SubmitJobRequest(job=w.pb.Job(
        pool=pool, specialization="gpu", node_selector={"zone": "eu"})), timeout=5)
    assert got == as_json(want)
    assert got["chosenNodeId"] == "n1"
    verdicts = {v["nodeId"]: v for v in got["verdicts"]}
    assert list(verdicts) == ["n1", "n2", "n3", "n4"]
    assert [verdicts[n]["eligible"] for n in ("n1", "n2", "n3", "n4")] == \
        [True, False, False, False]
    # the table: a row per node, then the choice
    out = w.ok(*args)
    head, _, tail = out.partition("\n\n")
    rows = {r["NODE"]: r for r in table(head)}
    assert (rows["n1"]["ELIGIBLE"], rows["n1"]["REASONS"]) == ("yes", "-")
    assert rows["n2"]["ELIGIBLE"] == "no" and rows["n2"]["SCORE"] == "-"
    assert rows["n2"]["REASONS"] == "; ".join(verdicts["n2"]["reasons"])
    assert "specialization" in rows["n2"]["REASONS"] and "label" in rows["n3"]["REASONS"]
    assert "draining" in rows["n4"]["REASONS"]
    assert fields(tail) == {"Chosen node": "n1"}
    assert w.ok("-q", *args) == "n1\n"
    # nothing was stored
    assert w.list_jobs(pool) == []
    # no node can take it
    out = w.ok("job", "submit", pool, "--spec", "tpu", "--explain")
    assert fields(out.partition("\n\n")[2])["Chosen node"].startswith("none")
    assert w.ok("-q", "job", "submit", pool, "--spec", "tpu", "--explain") == ""
    assert w.json("job", "submit", pool, "--spec", "tpu", "--explain")["chosenNodeId"] == ""


# ---------------------------------------------------------------- errors

def test_unknown_job_and_pool_are_not_found(w):
    rc, out, err = w.run("job", "show", "0123456789abcdef")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    rc, out, err = w.run("-o", "json", "job", "cancel", "0123456789abcdef")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    rc, out, err = w.run("job", "submit", "no-such-pool", "--spec", "gpu")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    rc, out, err = w.run("job", "list", "no-such-pool")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    rc, out, err = w.run("job", "submit", "cj-1", "--spec", "Not_A_Spec")
    assert (rc, out) == (NO, "") and error(err, "INVALID_ARGUMENT"), err


@pytest.mark.parametrize("args", [
    ["job", "submit", "p"],                                    # --spec is required
    ["job", "submit", "p", "--spec", "gpu", "--cpu-millis", "x"],
    ["job", "submit", "p", "--spec", "gpu", "--memory-bytes", "-1"],
    ["job", "submit", "p", "--spec", "gpu", "--gpus", "99999999999"],
    ["job", "submit", "p", "--spec", "gpu", "--selector", "novalue"],
    ["job", "submit", "p", "--spec", "gpu", "--payload", "a", "--payload-file", "-"],
    ["job", "submit", "p", "--spec", "gpu", "--payload-file", "/nonexistent/payload"],
    ["job", "submit", "p", "--spec", "gpu", "--max-jobs", "1"],
    ["job", "show"],
    ["job", "show", "a", "b"],
    ["job", "cancel", "a", "--bogus"],
    ["job", "list", "p", "--state", "bogus"],
    ["job", "list", "p", "--page-size", "0"],
    ["job", "nosuch"],
    ["watch"],
    ["watch", "p", "--count", "0"],
    ["watch", "p", "--from-revision", "x"],
    ["watch", "p", "--bogus"],
])
def test_bad_usage(w, args):
    rc, out, err = w.run(*args)
    assert (rc, out) == (USAGE, ""), (args, rc, err)
    assert err.startswith("galaxy-cli: "), err


@pytest.mark.parametrize("args", [
    ["job", "submit", "p", "--spec", "gpu"],
    ["job", "submit", "p", "--spec", "gpu", "--explain"],
    ["job", "show", "abc"],
    ["job", "list", "p", "--all"],
    ["job", "cancel", "abc"],
    ["watch", "p"],
])
def test_unreachable(args):
    rc, out, err = cli("--addr", "127.0.0.1:%d" % free_port(), *args)
    assert (rc, out) == (UNAVAILABLE, ""), (args, rc, err)
    assert error(err, "UNAVAILABLE") and "refused" in err, err


# ---------------------------------------------------------------- watch

class Watch:
    """galaxy-cli watch as a subprocess; its lines read by a thread."""

    def __init__(self, w, *args, key=ADMIN):
        argv = [CLI, "--addr", w.s.h2c, "--api-key", key] + list(args)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=cli_env())
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout=10):
        """The next line printed (None at the end of the output)."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("galaxy-cli watch printed nothing in %ss" % timeout)

    def wait(self, timeout=10):
        """The exit code and stderr; kills the process if it does not end."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("galaxy-cli watch did not end in %ss" % timeout)
        self.reader.join(5)
        err = self.p.stderr.read()
        self.p.stderr.close()
        no_sanitizer_report(err)
        return self.p.returncode, err

    def rest(self):
        out = []
        while (line := self.line()) is not None:
            out.append(line)
        return out

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def watch(w):
    made = []

    def start(*args, **kw):
        made.append(Watch(w, *args, **kw))
        return made[-1]

    yield start
    for wt in made:
        wt.kill()


def test_watch_json_events_as_nodes_register(w, watch):
    pool = w.pool()
    wt = watch("watch", pool, "-o", "json", "--count", "3")
    # an empty pool: SYNCED at once, printed while the watch stays open
    synced = json.loads(wt.line())
    assert synced["type"] == "WATCH_EVENT_TYPE_SYNCED" and "node" not in synced
    assert wt.p.poll() is None
    w.register(pool, "n1", specs=("gpu",))
    first = json.loads(wt.line())
    assert wt.p.poll() is None or wt.p.returncode == 0
    w.register(pool, "n2", specs=("cpu",), labels={"zone": "eu"})
    second = json.loads(wt.line())
    assert wt.rest() == []
    assert wt.wait() == (OK, "")
    for ev, id in ((first, "n1"), (second, "n2")):
        node = w.admin.get(id, pool=pool)
        assert ev["type"] == "WATCH_EVENT_TYPE_UPSERT"
        assert ev["node"] == as_json(node)
        assert ev["node"]["state"] == "NODE_STATE_HEALTHY"
        assert ev["revision"] == str(node.revision)
    assert int(synced["revision"]) < int(first["revision"]) < int(second["revision"])


def test_watch_lines_spec_and_from_revision(w, watch):
    pool = w.pool()
    w.register(pool, "n1", specs=("gpu",))
    w.register(pool, "n2", specs=("cpu",))
    w.register(pool, "n3", specs=("gpu",))
    rev = {id: w.admin.get(id, pool=pool).revision for id in ("n1", "n2", "n3")}
    rc, out, err = w.run("watch", pool, "--count", "4")
    assert rc == OK, err
    lines = [line.split() for line in out.splitlines()]
    assert lines[:3] == [["UPSERT", id, "HEALTHY", str(rev[id])] for id in ("n1", "n2", "n3")]
    assert lines[3][:3] == ["SYNCED", "-", "-"] and int(lines[3][3]) >= rev["n3"]
    # only the nodes with the specialization
    rc, out, err = w.run("watch", pool, "--spec", "gpu", "--count", "3")
    assert rc == OK, err
    assert [line.split()[:2] for line in out.splitlines()] == \
        [["UPSERT", "n1"], ["UPSERT", "n3"], ["SYNCED", "-"]]
    # resume after n1's change: the later ones are replayed, then SYNCED
    rc, out, err = w.run("watch", pool, "--from-revision", str(rev["n1"]), "--count", "3")
    assert rc == OK, err
    assert [line.split()[:2] for line in out.splitlines()] == \
        [["UPSERT", "n2"], ["UPSERT", "n3"], ["SYNCED", "-"]]
    # --quiet: the node ids of the events that carry a node
    rc, out, err = w.run("-q", "watch", pool, "--count", "4")
    assert (rc, out) == (OK, "n1\nn2\nn3\n"), err
    # a drained node is an UPSERT with its new state, seen live
    wt = watch("watch", pool, "--from-revision", str(rev["n3"]), "--count", "2")
    assert wt.line().split()[0] == "SYNCED"
    w.admin.Drain(w.pb.DrainRequest(pool=pool, node_id="n2"), timeout=5)
    assert wt.line().split()[:3] == ["UPSERT", "n2", "DRAINING"]
    assert wt.wait() == (OK, "")


@pytest.mark.parametrize("out", [[], ["-o", "json"]])
def test_watch_ends_cleanly_on_sigint(w, watch, out):
    pool = w.pool()
    wt = watch(*out, "watch", pool)
    assert "SYNCED" in wt.line()
    time.sleep(0.2)
    assert wt.p.poll() is None
    wt.p.send_signal(signal.SIGINT)
    assert wt.wait() == (OK, "")
    assert wt.rest() == []
    # the server saw the call end: another watch and a call still work
    assert w.ok("-q", "job", "list", pool) == ""


def test_watch_sigint_before_any_event(w, watch):
    """A watch on a private pool the key may see but that holds nothing new:
    SIGINT while the call waits, before or after SYNCED, still exits 0."""
    wt = watch("watch", PRIVATE, "--from-revision", "999999999", key=w.sub["sub1"])
    wt.line()                         # RESET or SYNCED: the call is open
    wt.p.send_signal(signal.SIGINT)
    rc, err = wt.wait()
    assert (rc, err) == (OK, "")


def test_watch_errors(w, watch):
    rc, out, err = w.run("watch", "no-such-pool")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    # a private pool is not found to a caller it does not cover
    rc, out, err = w.run("watch", PRIVATE, key=None)
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND"), err
    # --timeout bounds a stream: no usable answer after the deadline
    rc, out, err = w.run("--timeout", "300", "watch", w.pool())
    assert rc == UNAVAILABLE and out.split()[0] == "SYNCED"
    assert error(err, "DEADLINE_EXCEEDED"), err


def test_watch_until_the_server_ends_it(make_server, protos):
    """A server that shuts down ends open watches with UNAVAILABLE: the
    server said no, exit 1, after the events it printed."""
    pb = importlib.import_module("galaxy.pool.v1.pool_pb2")
    s = make_server(tls=False)
    ch = s.channel()
    Api(ch, pb).create_pool("cj-end")
    p = subprocess.Popen([CLI, "--addr", s.h2c, "watch", "cj-end"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        assert p.stdout.readline().split()[0] == "SYNCED"
        ch.close()
        assert s.stop() == 0
        out, err = p.communicate(timeout=15)
    finally:
        p.kill()
        p.wait()
    no_sanitizer_report(err)
    assert out == "" and p.returncode == NO
    assert error(err, "UNAVAILABLE"), err

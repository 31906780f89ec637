# SPDX-License-Identifier: MIT
"""galaxy-cli's administration commands against the real server (auth_apikey
and rbac loaded): pool list|show|create|update|delete, node
list|show|drain|deregister, key create|list|revoke, module list, version.

Each command's success path in its three outputs: the table for people, `-o
json` parsed and compared field by field with what the server holds (read
through the python grpc client), `--quiet` ids or names; and its main errors
with their exit codes: not found and permission denied 1, unreachable 2, bad
flag 64.  Then the connection options: the GALAXY_* environment variables
without flags, flags over variables, API key files, bad values naming the flag
or variable."""
import importlib
import json
import os
import re
import secrets
import socket
import stat

import pytest

from clitool import (NO, OK, UNAVAILABLE, USAGE, CliWorld, as_json, cli, error, fields,
                     free_port, table)
from conftest import Server
from gxapi import status_of

ADMIN = "cli-admin-" + secrets.token_hex(16)
AUTH = ("auth_apikey", "rbac")
POOL = "cli-pool"          # long heartbeats: its nodes never lapse during the tests
SECRET_RE = re.compile(r"^gxk_[0-9a-f]{64}$")


class World(CliWorld):
    """One server, its admin and viewer keys, an Api per key."""

    def __init__(self, s, pb):
        super().__init__(s, pb, ADMIN)
        r = self.admin.CreateApiKey(pb.CreateApiKeyRequest(name="cli viewer",
                                                           role=pb.ROLE_VIEWER), timeout=5)
        self.viewer = r.secret
        self.admin.create_pool(POOL, visibility=pb.VISIBILITY_PUBLIC,
                               heartbeat_interval_ms=60000, specializations=["gpu", "cpu"])
        self.n = 0

    def name(self, prefix="p"):
        self.n += 1
        return "%s-%d" % (prefix, self.n)


@pytest.fixture(scope="module")
def w(tmp_path_factory, pki, protos):
    pb = importlib.import_module("galaxy.pool.v1.pool_pb2")
    s = Server(str(tmp_path_factory.mktemp("cli-admin")), pki, modules=AUTH,
               env={"GALAXY_ADMIN_KEY": ADMIN})
    s.start()
    world = World(s, pb)
    yield world
    world.close()


# ---------------------------------------------------------------- pool

def test_pool_list(w):
    pools = w.admin.ListPools(w.pb.ListPoolsRequest(), timeout=5).pools
    assert w.json("pool", "list") == [as_json(p) for p in pools]
    assert w.ok("-q", "pool", "list").split() == [p.name for p in pools]
    rows = table(w.ok("pool", "list"))
    assert [r["NAME"] for r in rows] == [p.name for p in pools]
    mine = next(r for r in rows if r["NAME"] == POOL)
    assert (mine["VISIBILITY"], mine["NODES"], mine["POLICY"], mine["HEARTBEAT/TTL"],
            mine["SPECIALIZATIONS"]) == ("PUBLIC", "0", "least_loaded", "1m00s/3m00s", "gpu,cpu")
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", mine["CREATED"])


def test_pool_create_show_update(w):
    name = w.name()
    got = w.json("pool", "create", name, "--visibility", "private", "--tier", "test",
                 "--description", "a pool for the CLI", "--interval-ms", "2000",
                 "--ttl-ms", "7000", "--routing-policy", "least_loaded", "--max-nodes", "4",
                 "--spec", "gpu,cpu", "--spec", "storage", "--label", "zone=a",
                 "--label", "team=x")
    held = w.admin.GetPool(w.pb.GetPoolRequest(name=name), timeout=5)
    assert got == as_json(held)
    assert (held.visibility, held.tier, held.description, held.heartbeat_interval_ms,
            held.node_ttl_ms, held.max_nodes, list(held.specializations), dict(held.labels)) == \
        (w.pb.VISIBILITY_PRIVATE, "test", "a pool for the CLI", 2000, 7000, 4,
         ["gpu", "cpu", "storage"], {"zone": "a", "team": "x"})
    # show: JSON, fields for people, the name alone
    assert w.json("pool", "show", name) == as_json(held)
    f = fields(w.ok("pool", "show", name))
    assert (f["Name"], f["Visibility"], f["Tier"], f["Max nodes"], f["Heartbeat"],
            f["Specializations"], f["Labels"]) == \
        (name, "PRIVATE", "test", "4", "2s (2000 ms)", "gpu,cpu,storage", "zone=a,team=x")
    assert w.ok("-q", "pool", "show", name) == name + "\n"
    # update: what is given changes, the rest stays
    out = w.ok("pool", "update", name, "--tier", "main", "--label", "zone=b", "-q")
    assert out == name + "\n"
    held = w.admin.GetPool(w.pb.GetPoolRequest(name=name), timeout=5)
    assert (held.tier, held.description, dict(held.labels), held.max_nodes) == \
        ("main", "a pool for the CLI", {"zone": "b"}, 4)
    assert w.json("pool", "update", name, "--max-nodes", "0") == \
        as_json(w.admin.GetPool(w.pb.GetPoolRequest(name=name), timeout=5))


def test_pool_errors(w):
    rc, out, err = w.run("pool", "show", "no-such-pool")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND") and "no-such-pool" in err
    rc, _, err = w.run("pool", "update", "no-such-pool", "--tier", "x")
    assert rc == NO and error(err, "NOT_FOUND")
    rc, _, err = w.run("pool", "create", POOL, "--visibility", "public")
    assert rc == NO and error(err, "ALREADY_EXISTS")
    rc, _, err = w.run("pool", "create", w.name(), "--visibility", "public", key=w.viewer)
    assert rc == NO and error(err, "PERMISSION_DENIED")
    rc, _, err = w.run("pool", "create", w.name(), "--visibility", "public", key=None)
    assert rc == NO and error(err, "UNAUTHENTICATED")
    rc, _, err = w.run("pool", "create", "Bad_Name", "--visibility", "public")
    assert rc == NO and error(err, "INVALID_ARGUMENT")


@pytest.mark.parametrize("args,says", [
    (["pool", "create", "x"], "--visibility is required"),
    (["pool", "create", "x", "--visibility", "secret"], "--visibility: expected one of public"),
    (["pool", "create", "x", "--visibility", "public", "--interval-ms", "soon"],
     "--interval-ms: expected a number"),
    (["pool", "create", "x", "--visibility", "public", "--label", "novalue"],
     "--label: expected KEY=VALUE"),
    (["pool", "create", "x", "--visibility", "public", "--spec", "a,,b"], "--spec: empty item"),
    (["pool", "update", "x", "--visibility", "public"], "invalid option"),
    (["pool", "update", "x", "--max-nodes", "-1"], "--max-nodes"),
    (["pool", "show"], "missing arguments"),
    (["pool", "list", "extra"], "too many arguments"),
    (["pool", "delete", "x", "--forced"], "invalid option"),
    (["pool", "frobnicate"], "unknown command"),
])
def test_pool_bad_usage(w, args, says):
    rc, out, err = w.run(*args)
    assert (rc, out) == (USAGE, "") and says in err, err


def test_pool_delete(w):
    name = w.name()
    w.admin.create_pool(name)
    w.admin.register("n1", pool=name)  # the pool allows any specialization
    rc, _, err = w.run("pool", "delete", name)
    assert rc == NO and error(err, "FAILED_PRECONDITION")
    assert w.ok("pool", "delete", name, "--force") == "pool %s deleted\n" % name
    assert status_of(w.admin.GetPool, w.pb.GetPoolRequest(name=name), timeout=5)[0].name == \
        "NOT_FOUND"
    rc, _, err = w.run("pool", "delete", name)
    assert rc == NO and error(err, "NOT_FOUND")
    other = w.name()
    w.admin.create_pool(other)
    assert w.json("pool", "delete", other) == {}
    w.admin.create_pool(other)
    assert w.ok("-q", "pool", "delete", other) == ""


# ---------------------------------------------------------------- node

@pytest.fixture(scope="module")
def nodes(w):
    """Five nodes in POOL: n0..n4, specializations and labels alternating."""
    tokens = {}
    for i in range(5):
        nid = "n%d" % i
        r = w.admin.register(nid, pool=POOL, specs=["gpu"] if i % 2 else ["cpu"],
                             labels={"rack": "r%d" % (i % 2)}, version="2.%d" % i,
                             capacity=w.pb.Resources(cpu_millis=1000 * (i + 1),
                                                     memory_bytes=1 << 30, max_jobs=4))
        tokens[nid] = r.lease_token
    return tokens


def test_node_list(w, nodes):
    held = w.admin.ListNodes(w.pb.ListNodesRequest(pool=POOL), timeout=5).nodes
    mine = [n for n in held if n.id in nodes]
    got = [n for n in w.json("node", "list", POOL) if n["id"] in nodes]
    assert got == [as_json(n) for n in mine]
    rows = [r for r in table(w.ok("node", "list", POOL)) if r["ID"] in nodes]
    assert [(r["ID"], r["STATE"], r["SPECIALIZATIONS"], r["ADDRESS"], r["JOBS"]) for r in rows] \
        == [(n.id, "HEALTHY", n.specializations[0], n.address, "0") for n in mine]
    # filters
    assert w.ok("-q", "node", "list", POOL, "--spec", "gpu", "--label", "rack=r1") == \
        "n1\nn3\n"
    assert w.ok("-q", "node", "list", POOL, "--label", "rack=r0", "--state", "healthy,down") \
        == "n0\nn2\nn4\n"
    assert w.ok("-q", "node", "list", POOL, "--state", "draining") == ""
    # pages: one page, and every page with --all
    rc, out, err = w.run("-q", "node", "list", POOL, "--page-size", "2")
    assert (rc, out.split()) == (OK, ["n0", "n1"]) and "more nodes follow" in err
    token = re.search(r"--page-token (\S+)", err).group(1)
    assert w.ok("-q", "node", "list", POOL, "--page-size", "2", "--page-token", token) == \
        "n2\nn3\n"
    rc, out, err = w.run("node", "list", POOL, "--page-size", "2", "--all", "-o", "json")
    assert (rc, err) == (OK, "")
    assert json.loads(out) == [as_json(n) for n in held]


def test_node_show(w, nodes):
    held = w.admin.get("n2", pool=POOL)
    assert w.json("node", "show", POOL, "n2") == as_json(held)
    f = fields(w.ok("node", "show", POOL, "n2"))
    assert (f["ID"], f["Pool"], f["State"], f["Specializations"], f["Labels"], f["Version"],
            f["Capacity"], f["Owner"]) == \
        ("n2", POOL, "HEALTHY", "cpu", "rack=r0", "2.2",
         "cpu 3000m, memory 1.0GiB, gpus -, max jobs 4", held.owner)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\S+ ago\)$", f["Registered"])
    assert w.ok("-q", "node", "show", POOL, "n2") == "n2\n"
    # anyone may discover a public pool
    assert w.json("node", "show", POOL, "n2", key=None)["id"] == "n2"
    rc, out, err = w.run("node", "show", POOL, "nope")
    assert (rc, out) == (NO, "") and error(err, "NOT_FOUND")
    rc, _, err = w.run("node", "show", "no-such-pool", "n2")
    assert rc == NO and error(err, "NOT_FOUND")
    rc, _, err = w.run("node", "list", "no-such-pool")
    assert rc == NO and error(err, "NOT_FOUND")


def test_node_drain(w, nodes):
    rc, _, err = w.run("node", "drain", POOL, "n3", key=w.viewer)
    assert rc == NO and error(err, "PERMISSION_DENIED")
    assert w.admin.get("n3", pool=POOL).state == w.pb.NODE_STATE_HEALTHY
    got = w.json("node", "drain", POOL, "n3")
    held = w.admin.get("n3", pool=POOL)
    assert held.state == w.pb.NODE_STATE_DRAINING and got == as_json(held)
    assert fields(w.ok("node", "drain", POOL, "n3"))["State"] == "DRAINING"
    assert w.ok("-q", "node", "list", POOL, "--state", "draining") == "n3\n"
    rc, _, err = w.run("node", "drain", POOL, "nope")
    assert rc == NO and error(err, "NOT_FOUND")


def test_node_deregister(w):
    r = w.admin.register("leaving", pool=POOL, specs=["cpu"])
    rc, _, err = w.run("node", "deregister", POOL, "leaving", "--lease-token", "wrong")
    assert rc == NO and error(err, "PERMISSION_DENIED")
    rc, _, err = w.run("node", "deregister", POOL, "leaving")
    assert rc == USAGE and "--lease-token is required" in err
    assert w.ok("node", "deregister", POOL, "leaving", "--lease-token", r.lease_token) == \
        "node leaving deregistered from pool %s\n" % POOL
    assert status_of(w.admin.get, "leaving", pool=POOL)[0].name == "NOT_FOUND"
    rc, _, err = w.run("node", "deregister", POOL, "leaving", "--lease-token", r.lease_token)
    assert rc == NO and error(err, "NOT_FOUND")
    # the token from the environment, JSON and quiet outputs
    r = w.admin.register("leaving", pool=POOL, specs=["cpu"])
    assert w.json("node", "deregister", POOL, "leaving",
                  env={"GALAXY_LEASE_TOKEN": r.lease_token}) == {}
    r = w.admin.register("leaving", pool=POOL, specs=["cpu"])
    assert w.ok("-q", "node", "deregister", POOL, "leaving", "--lease-token", r.lease_token) \
        == ""


@pytest.mark.parametrize("args,says", [
    (["node", "list", POOL, "--state", "sleepy"], "--state: expected one of healthy"),
    (["node", "list", POOL, "--page-size", "0"], "--page-size: expected a number"),
    (["node", "list", POOL, "--label", "=x"], "--label: expected KEY=VALUE"),
    (["node", "list"], "missing arguments"),
    (["node", "show", POOL], "missing arguments"),
    (["node", "drain", POOL, "a", "b"], "too many arguments"),
    (["node", "deregister", POOL, "a", "--token", "t"], "invalid option"),
])
def test_node_bad_usage(w, args, says):
    rc, out, err = w.run(*args)
    assert (rc, out) == (USAGE, "") and says in err, err


# ---------------------------------------------------------------- key

def test_key_create_list_revoke(w):
    # a table for people, with the secret and the warning
    out = w.ok("key", "create", "ops", "--role", "operator", "--pool", POOL)
    f = fields(out.split("\n\n")[0])
    assert (f["Name"], f["Role"], f["Pools"]) == ("ops", "OPERATOR", POOL)
    assert SECRET_RE.match(f["Secret"])
    assert out.endswith("\nThe secret is shown only this once: store it now.\n")
    # --quiet: the secret alone, and it works
    secret = w.ok("-q", "key", "create", "script", "--role", "admin").strip()
    assert SECRET_RE.match(secret)
    assert w.ok("-q", "pool", "show", POOL, key=secret) == POOL + "\n"
    # JSON: the whole response; the key is what the server lists
    got = w.json("key", "create", "multi", "--role", "viewer", "--pool", "devnet,testnet")
    assert SECRET_RE.match(got["secret"])
    held = {k.id: k for k in w.admin.ListApiKeys(w.pb.ListApiKeysRequest(), timeout=5).keys}
    assert got["key"] == as_json(held[got["key"]["id"]])
    assert got["key"]["pools"] == ["devnet", "testnet"] and got["key"]["role"] == "ROLE_VIEWER"
    # key list
    listed = w.json("key", "list")
    assert listed == [as_json(k) for k in
                      w.admin.ListApiKeys(w.pb.ListApiKeysRequest(), timeout=5).keys]
    assert "secret" not in json.dumps(listed).lower().replace('"secret"', "")
    assert w.ok("-q", "key", "list").split() == [k["id"] for k in listed]
    rows = {r["ID"]: r for r in table(w.ok("key", "list"))}
    row = rows[got["key"]["id"]]
    assert (row["NAME"], row["ROLE"], row["POOLS"], row["REVOKED"]) == \
        ("multi", "VIEWER", "devnet,testnet", "no")
    # revoke: the key is refused from now on
    kid = next(k["id"] for k in listed if k["name"] == "script")
    assert w.ok("key", "revoke", kid) == "key %s revoked\n" % kid
    rc, _, err = w.run("pool", "show", POOL, key=secret)
    assert rc == NO and error(err, "UNAUTHENTICATED")
    assert table(w.ok("key", "list"))[[k["id"] for k in listed].index(kid)]["REVOKED"] == "yes"
    assert w.json("key", "revoke", got["key"]["id"]) == {}


def test_key_errors(w):
    rc, _, err = w.run("key", "revoke", "0123456789abcdef")
    assert rc == NO and error(err, "NOT_FOUND")
    rc, _, err = w.run("key", "list", key=w.viewer)
    assert rc == NO and error(err, "PERMISSION_DENIED")
    rc, _, err = w.run("key", "create", "x", "--role", "admin", key=w.viewer)
    assert rc == NO and error(err, "PERMISSION_DENIED")
    rc, _, err = w.run("key", "create", "x", "--role", "admin", key=None)
    assert rc == NO and error(err, "UNAUTHENTICATED")
    rc, _, err = w.run("key", "create", "x")
    assert rc == USAGE and "--role is required" in err
    rc, _, err = w.run("key", "create", "x", "--role", "king")
    assert rc == USAGE and "--role: expected one of viewer, node, submitter, operator, admin" \
        in err
    rc, _, err = w.run("key", "revoke")
    assert rc == USAGE and "missing arguments" in err


# ---------------------------------------------------------------- module, version

def test_module_list(w):
    held = w.admin.ListModules(w.pb.ListModulesRequest(), timeout=5).modules
    assert {m.name for m in held} >= set(AUTH)
    assert w.json("module", "list") == [as_json(m) for m in held]
    assert w.ok("-q", "module", "list").split() == [m.name for m in held]
    rows = table(w.ok("module", "list"))
    assert [(r["NAME"], r["EDITION"], r["PHASES"]) for r in rows] == \
        [(m.name, m.edition or "-", ",".join(m.phases) or "-") for m in held]
    rc, _, err = w.run("module", "list", key=w.viewer)
    assert rc == NO and error(err, "PERMISSION_DENIED")


def test_version(w):
    out = w.ok("version")
    assert re.match(r"^client: galaxy-cli \d+\.\d+\.\d+\nserver: %s SERVING\n$"
                    % re.escape(w.s.h2c), out), out
    got = w.json("version")
    assert got["server"] == {"address": w.s.h2c, "status": "SERVING"}
    assert w.ok("-q", "version") == got["client"] + "\n"
    assert w.json("version", "--client") == {"client": got["client"]}
    # the client's version also when the server cannot be reached
    addr = "127.0.0.1:%d" % free_port()
    rc, out, err = cli("--addr", addr, "version")
    assert rc == UNAVAILABLE and out.endswith("\nserver: %s UNREACHABLE\n" % addr)
    assert out.startswith("client: galaxy-cli ") and error(err, "UNAVAILABLE")
    assert cli("--addr", addr, "version", "--client")[0] == OK


# ---------------------------------------------------------------- every command

EVERY = [
    ["pool", "list"], ["pool", "show", POOL], ["pool", "create", "x", "--visibility", "public"],
    ["pool", "update", "x", "--tier", "t"], ["pool", "delete", "x"],
    ["node", "list", POOL], ["node", "show", POOL, "n0"], ["node", "drain", POOL, "n0"],
    ["node", "deregister", POOL, "n0", "--lease-token", "t"],
    ["key", "create", "x", "--role", "viewer"], ["key", "list"], ["key", "revoke", "x"],
    ["module", "list"],
]


@pytest.mark.parametrize("args", EVERY, ids=[" ".join(a[:2]) for a in EVERY])
def test_unreachable_exits_2(args):
    rc, out, err = cli("--addr", "127.0.0.1:%d" % free_port(), "--api-key", "k", *args)
    assert (rc, out) == (UNAVAILABLE, "") and error(err, "UNAVAILABLE") and "refused" in err


@pytest.mark.parametrize("args", EVERY, ids=[" ".join(a[:2]) for a in EVERY])
def test_bad_flag_exits_64(args):
    rc, out, err = cli("--addr", "127.0.0.1:%d" % free_port(), *args, "--bogus")
    assert (rc, out) == (USAGE, "") and "invalid option '--bogus'" in err
    assert "usage: galaxy-cli [options] " + " ".join(args[:2]) in err


def test_help_lists_the_commands():
    rc, out, _ = cli("--help")
    assert rc == OK
    for line in ("pool create NAME --visibility public|private [--tier TIER]",
                 "node list POOL [--spec SPEC]", "key create NAME --role",
                 "module list [--local]", "version [--client]", "GALAXY_API_KEY_FILE",
                 "64  bad usage"):
        assert line in out, line
    rc, out, _ = cli("pool", "--help")
    assert rc == OK and "pool delete NAME [--force]" in out and "node list" not in out


# ---------------------------------------------------------------- environment

def test_environment_without_flags(w):
    env = {"GALAXY_ADDR": w.s.h2c, "GALAXY_API_KEY": ADMIN, "GALAXY_OUTPUT": "json"}
    rc, out, err = cli("key", "list", env=env)
    assert (rc, err) == (OK, "")
    assert json.loads(out) == [as_json(k) for k in
                               w.admin.ListApiKeys(w.pb.ListApiKeysRequest(), timeout=5).keys]
    # flags win over the variables
    rc, out, _ = cli("-o", "table", "--addr", w.s.h2c, "pool", "show", POOL,
                     env=dict(env, GALAXY_ADDR="127.0.0.1:%d" % free_port()))
    assert rc == OK and fields(out)["Name"] == POOL
    rc, _, err = cli("--api-key", w.viewer, "key", "list", env=env)
    assert rc == NO and error(err, "PERMISSION_DENIED")
    # GALAXY_TIMEOUT bounds a call to a listener that never answers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        rc, _, err = cli("pool", "list", env={"GALAXY_ADDR": "127.0.0.1:%d" % s.getsockname()[1],
                                              "GALAXY_TIMEOUT": "300"})
    assert rc == UNAVAILABLE and "DEADLINE_EXCEEDED" in err


def test_tls_from_the_environment(w, pki):
    env = {"GALAXY_ADDR": w.s.tls, "GALAXY_TLS": "1", "GALAXY_CACERT": pki.ca_cert,
           "GALAXY_SERVER_NAME": "localhost", "GALAXY_API_KEY": ADMIN}
    rc, out, err = cli("-q", "pool", "show", POOL, env=env)
    assert (rc, out, err) == (OK, POOL + "\n", "")
    # --ca is --cacert
    rc, out, _ = cli("--addr", w.s.tls, "--ca", pki.ca_cert, "--server-name", "localhost",
                     "-q", "pool", "show", POOL)
    assert (rc, out) == (OK, POOL + "\n")


@pytest.mark.parametrize("var,value", [
    ("GALAXY_TIMEOUT", "soon"), ("GALAXY_TIMEOUT", "0"), ("GALAXY_OUTPUT", "xml"),
    ("GALAXY_TLS", "maybe"), ("GALAXY_API_KEY", "two words"),
    ("GALAXY_API_KEY_FILE", "/nonexistent/key"),
])
def test_bad_environment_exits_64(var, value):
    rc, out, err = cli("pool", "list", env={"GALAXY_ADDR": "127.0.0.1:1", var: value})
    assert (rc, out) == (USAGE, "") and err.startswith("galaxy-cli: " + var), err


def test_a_flag_hides_a_bad_variable(w):
    rc, out, _ = cli("--addr", w.s.h2c, "-o", "table", "--timeout", "5000", "-q",
                     "pool", "show", POOL, env={"GALAXY_OUTPUT": "xml", "GALAXY_TIMEOUT": "x"})
    assert (rc, out) == (OK, POOL + "\n")


def test_api_key_file(w, tmp_path):
    path = tmp_path / "key"
    path.write_text("  %s  \nsecond line ignored\n" % ADMIN)
    os.chmod(path, 0o600)
    rc, out, err = cli("--addr", w.s.h2c, "--api-key-file", str(path), "-q", "key", "list")
    assert (rc, err) == (OK, "") and out.split()
    rc, out2, err = cli("--addr", w.s.h2c, "-q", "key", "list",
                        env={"GALAXY_API_KEY_FILE": str(path)})
    assert (rc, out2, err) == (OK, out, "")
    # a file others may read works, with a warning
    os.chmod(path, 0o644)
    rc, out2, err = cli("--addr", w.s.h2c, "--api-key-file", str(path), "-q", "key", "list")
    assert (rc, out2) == (OK, out)
    assert err == "galaxy-cli: warning: --api-key-file %s is accessible by group or others " \
        "(chmod 600 it)\n" % path
    # a wrong key in the file is the server's no
    bad = tmp_path / "bad"
    bad.write_text("gxk_" + "0" * 64 + "\n")
    os.chmod(bad, stat.S_IRUSR)
    rc, _, err = cli("--addr", w.s.h2c, "--api-key-file", str(bad), "key", "list")
    assert rc == NO and error(err, "UNAUTHENTICATED")
    # usage errors
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    os.chmod(empty, 0o600)
    for args, says in ((["--api-key-file", str(empty)], "no API key on the first line"),
                       (["--api-key-file", str(tmp_path / "none")], "No such file"),
                       (["--api-key-file", str(tmp_path)], "Is a directory"),
                       (["--api-key-file", str(path), "--api-key", ADMIN], "exclude each other")):
        rc, out, err = cli("--addr", w.s.h2c, *args, "key", "list")
        assert (rc, out) == (USAGE, "") and says in err, err


ADMIN_ONLY = [
    ["pool", "create", "x", "--visibility", "public"], ["pool", "update", POOL, "--tier", "t"],
    ["pool", "delete", POOL], ["node", "drain", POOL, "n0"],
    ["key", "create", "x", "--role", "viewer"], ["key", "list"], ["key", "revoke", "x"],
    ["module", "list"],
]


@pytest.mark.parametrize("args", ADMIN_ONLY, ids=[" ".join(a[:2]) for a in ADMIN_ONLY])
def test_viewer_is_permission_denied(w, nodes, args):
    rc, out, err = w.run(*args, key=w.viewer)
    assert (rc, out) == (NO, "") and error(err, "PERMISSION_DENIED"), err


def test_client_certificate_from_the_environment(w, pki, tmp_path):
    crt, key = pki.client("cli-env")
    (tmp_path / "c.crt").write_bytes(crt)
    (tmp_path / "c.key").write_bytes(key)
    env = {"GALAXY_ADDR": w.s.tls, "GALAXY_CACERT": pki.ca_cert,
           "GALAXY_SERVER_NAME": "localhost", "GALAXY_CERT": str(tmp_path / "c.crt"),
           "GALAXY_KEY": str(tmp_path / "c.key")}
    assert cli("-q", "pool", "show", POOL, env=env)[:2] == (OK, POOL + "\n")
    rc, _, err = cli("pool", "show", POOL, env=dict(env, GALAXY_KEY=""))
    assert rc == USAGE and "--cert and --key go together" in err
    rc, _, err = cli("pool", "show", POOL, env=dict(env, GALAXY_CERT=str(tmp_path / "none")))
    assert rc == USAGE and err.startswith("galaxy-cli: certificate %s: " % (tmp_path / "none")), err

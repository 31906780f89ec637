# SPDX-License-Identifier: MIT
"""galaxy-cli plugins (include/galaxy/gx_cli_plugin.h, src/cli/gx_cli_plugin.c):
module shared objects that add command groups.

The rbac module (also a server module) exports the `rbac` group; the
test-only plugins of t/modules/cli (built by `make check`) are a plain plugin
and one built for another ABI.  Covered: `module list --local` (table, JSON,
quiet), --module-dir / GALAXY_MODULE_DIR / an empty directory name, `rbac
roles`, `rbac can` and `rbac check` against a server with API keys and a
private pool, a server-only module skipped silently, a bogus file and a wrong
ABI skipped with a warning and never fatal, a plain plugin's helpers and
connection settings, and rbac.so still loading in galaxy-poold.
"""
import importlib
import json
import os
import secrets
import shutil
import subprocess

import pytest

from clitool import CLI, cli
from conftest import BUILDDIR, MODULE_DIR
from gxapi import Api, with_key

TEST_PLUGINS = os.path.join(BUILDDIR, "t", "modules", ".libs")
ADMIN_SECRET = "plugins-admin-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@pytest.fixture
def mixed_dir(tmp_path):
    """A module directory with rbac (plugin and server module), a server-only
    module, a bogus file, a file that is not a .so, and the test plugins when
    they are built."""
    d = tmp_path / "modules"
    d.mkdir()
    shutil.copy(os.path.join(MODULE_DIR, "rbac.so"), str(d))
    shutil.copy(os.path.join(MODULE_DIR, "route_p2c.so"), str(d))
    (d / "bogus.so").write_text("this is not an ELF file\n")
    (d / "README").write_text("not a module\n")
    for name in ("cli_hello.so", "cli_wrong_abi.so"):
        p = os.path.join(TEST_PLUGINS, name)
        if os.path.exists(p):
            shutil.copy(p, str(d))
    return str(d)


# ---------------------------------------------------------------- loading

def test_module_list_local_shows_rbac(tmp_path):
    rc, out, err = cli("--module-dir", MODULE_DIR, "module", "list", "--local")
    assert rc == 0, err
    assert err == ""  # the server-only modules are skipped silently
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "COMMANDS", "PATH"]
    rbac = [l for l in lines if l.startswith("rbac ")]
    assert len(rbac) == 1
    assert "rbac roles, rbac can, rbac check" in rbac[0]
    assert rbac[0].rstrip().endswith(os.path.join(MODULE_DIR, "rbac.so"))

    rc, out, err = cli("--module-dir=" + MODULE_DIR, "-o", "json", "module", "list", "--local")
    assert rc == 0, err
    doc = json.loads(out)
    assert [p["name"] for p in doc] == ["rbac"]
    assert doc[0]["commands"] == ["rbac roles", "rbac can", "rbac check"]
    assert doc[0]["path"] == os.path.join(MODULE_DIR, "rbac.so")
    assert doc[0]["version"]

    rc, out, _ = cli("module", "list", "--local", "-q", env={"GALAXY_MODULE_DIR": MODULE_DIR})
    assert (rc, out) == (0, "rbac\n")


def test_no_plugins_without_a_module_dir():
    rc, out, err = cli("--module-dir", "", "module", "list", "--local")
    assert (rc, out.split(), err) == (0, ["NAME", "VERSION", "COMMANDS", "PATH"], "")
    rc, _, err = cli("--module-dir", "", "rbac", "roles")
    assert rc == 64 and "unknown command group 'rbac'" in err
    # --module-dir is taken out of the line wherever it is
    rc, out, err = cli("rbac", "roles", "--module-dir", MODULE_DIR)
    assert rc == 0, err


def test_server_only_modules_skipped_bogus_ones_warned(mixed_dir):
    rc, out, err = cli("--module-dir", mixed_dir, "module", "list", "--local")
    assert rc == 0
    names = [l.split()[0] for l in out.splitlines()[1:]]
    assert "rbac" in names and "route_p2c" not in names and "bogus" not in names
    assert "galaxy-cli: warning: %s: cannot load:" % os.path.join(mixed_dir, "bogus.so") in err
    assert "route_p2c" not in err and "README" not in err
    # a warning never stops the command
    rc, out, err = cli("--module-dir", mixed_dir, "rbac", "can", "viewer", "discover")
    assert (rc, out) == (0, "allowed\n")
    assert "bogus.so" in err


def test_missing_module_dir_warns_but_runs(tmp_path):
    missing = str(tmp_path / "nope")
    rc, out, err = cli("--module-dir", missing, "module", "list", "--local")
    assert rc == 0
    assert "galaxy-cli: warning: %s: module directory:" % missing in err
    rc, out, err = cli("module", "list", "--local", env={"GALAXY_MODULE_DIR": missing})
    assert rc == 0 and "module directory" in err


@pytest.mark.skipif(not os.path.exists(os.path.join(TEST_PLUGINS, "cli_hello.so")),
                    reason="t/modules/.libs/cli_*.so are built by `make check`")
def test_plain_plugin_and_wrong_abi(mixed_dir, server, pb):
    rc, out, err = cli("--module-dir", mixed_dir, "module", "list", "--local")
    assert rc == 0
    names = [l.split()[0] for l in out.splitlines()[1:]]
    assert names == ["hello", "rbac"]  # in file name order
    assert ("galaxy-cli: warning: %s: plugin ABI 1001, galaxy-cli has 1: skipped"
            % os.path.join(mixed_dir, "cli_wrong_abi.so")) in err
    rc, _, err = cli("--module-dir", mixed_dir, "wrongabi", "run")
    assert rc == 64 and "unknown command group" in err

    rc, out, _ = cli("--module-dir", mixed_dir, "hello", "say", "bob", "--shout")
    assert (rc, out) == (0, "HELLO bob!\n")
    rc, out, _ = cli("--module-dir", mixed_dir, "hello", "say")
    assert (rc, out) == (0, "hello world\n")
    rc, _, err = cli("--module-dir", mixed_dir, "hello", "say", "a", "b")
    assert rc == 64 and "too many arguments" in err
    # the helpers use the command line's address, output format and exit codes
    rc, out, err = cli("--module-dir", mixed_dir, "--addr", server.h2c, "-o", "json",
                       "hello", "health")
    assert (rc, json.loads(out)) == (0, {"status": "SERVING"}), err
    rc, out, err = cli("--module-dir", mixed_dir, "--addr", "127.0.0.1:1", "hello", "health")
    assert rc == 2 and "UNAVAILABLE" in err
    rc, out, err = cli("--module-dir", mixed_dir, "hello", "--help")
    assert rc == 0 and "hello say [NAME] [--shout]" in out


# ---------------------------------------------------------------- rbac

def test_rbac_roles():
    rc, out, err = cli("--module-dir", MODULE_DIR, "rbac", "roles")
    assert rc == 0, err
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()[1:7]}
    assert rows["anonymous"] == ["-", "discover,node,submit"]
    assert rows["viewer"] == ["discover", "discover,node,submit"]
    assert rows["operator"] == ["discover,node,submit,operate", "discover,node,submit"]
    assert rows["admin"][0] == "discover,node,submit,operate,admin"
    rc, out, _ = cli("--module-dir", MODULE_DIR, "-o", "json", "rbac", "roles")
    doc = {r["role"]: r for r in json.loads(out)}
    assert doc["submitter"]["coveredPools"] == ["discover", "submit"]
    assert doc["anonymous"]["coveredPools"] == []
    rc, out, _ = cli("--module-dir", MODULE_DIR, "-q", "rbac", "roles")
    assert out.split() == ["anonymous", "viewer", "node", "submitter", "operator", "admin"]


@pytest.mark.parametrize("args,rc,out", [
    (["submitter", "submit"], 0, "allowed"),
    (["viewer", "submit", "--private"], 1, "PERMISSION_DENIED"),
    (["viewer", "submit"], 0, "allowed"),  # public pool: anyone submits
    (["operator", "operate", "--not-covered"], 1, "PERMISSION_DENIED"),
    (["operator", "operate", "--not-covered", "--private"], 1, "NOT_FOUND"),
    (["anonymous", "discover", "--private"], 1, "NOT_FOUND"),
    (["anonymous", "operate"], 1, "UNAUTHENTICATED"),
    (["admin", "admin", "--private", "--not-covered"], 0, "allowed"),
    (["NODE", "Node"], 0, "allowed"),
])
def test_rbac_can(args, rc, out):
    got = cli("--module-dir", MODULE_DIR, "rbac", "can", *args)
    assert got[:2] == (rc, out + "\n"), got


def test_rbac_can_usage():
    rc, _, err = cli("--module-dir", MODULE_DIR, "rbac", "can", "king", "submit")
    assert rc == 64 and "ROLE: expected anonymous" in err
    rc, _, err = cli("--module-dir", MODULE_DIR, "rbac", "can", "viewer", "fly")
    assert rc == 64 and "ACTION: expected discover" in err
    rc, out, _ = cli("--module-dir", MODULE_DIR, "-o", "json", "rbac", "can", "viewer", "node",
                     "--private")
    assert (rc, json.loads(out)) == (1, {"allowed": False, "status": "PERMISSION_DENIED"})


def test_rbac_check_against_the_server(make_server, pb):
    """rbac.so loads in galaxy-poold (its plugin helpers stay unresolved there)
    and `rbac check` sees what the credentials see."""
    s = make_server(tls=False, modules=("auth_apikey", "rbac"),
                    env={"GALAXY_ADMIN_KEY": ADMIN_SECRET})
    ch = s.channel()
    admin = Api(with_key(ch, ADMIN_SECRET), pb)
    admin.create_pool("hidden", visibility=pb.VISIBILITY_PRIVATE)
    base = ("--module-dir", MODULE_DIR, "--addr", s.h2c)

    rc, out, err = cli(*base, "rbac", "check", "hidden", env={"GALAXY_API_KEY": ADMIN_SECRET})
    assert rc == 0, err
    assert "Visibility:  PRIVATE" in out and "Visible:     yes" in out
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines() if l.startswith(
        ("anonymous ", "viewer ", "admin "))}
    assert rows["viewer"] == ["discover", "-", "(NOT_FOUND)"]
    assert rows["anonymous"] == ["-", "-", "(NOT_FOUND)"]

    rc, out, err = cli(*base, "rbac", "check", "hidden")
    assert rc == 1
    assert "NOT_FOUND" in err and "not visible to these credentials" in err
    rc, out, err = cli(*base, "rbac", "check", "no-such-pool")
    assert rc == 1 and "not visible to these credentials" in err

    rc, out, err = cli(*base, "-o", "json", "rbac", "check", "devnet")
    assert rc == 0, err
    assert json.loads(out)["visibility"] == "VISIBILITY_PUBLIC"
    rc, out, _ = cli(*base, "-q", "rbac", "check", "devnet")
    assert (rc, out) == (0, "devnet\n")
    rc, out, err = cli(*base, "rbac", "check", "devnet", env={"GALAXY_API_KEY": "gxk_" + "0" * 64})
    assert rc == 1 and "UNAUTHENTICATED" in err
    ch.close()


# ---------------------------------------------------------------- bash completion

COMPLETION = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "bash-completion",
                          "galaxy-cli")


def complete(*words):
    """What contrib/bash-completion/galaxy-cli offers for the line @words (the
    last one being completed), with rbac.so in the module directory."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              'COMPREPLY=(); _galaxy_cli; printf "%s\\n" "${COMPREPLY[@]}"')
    e = dict(os.environ, GALAXY_MODULE_DIR=MODULE_DIR,
             ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    p = subprocess.run(["bash", "-c", script, "bash", COMPLETION, CLI] + list(words),
                       capture_output=True, text=True, env=e, timeout=30)
    assert p.returncode == 0, p.stderr
    return sorted(w for w in p.stdout.split("\n") if w)


def test_bash_completion():
    groups = complete("")
    assert {"pool", "node", "key", "module", "health", "agent", "rbac"} <= set(groups)
    assert complete("po") == ["pool"]
    assert complete("--addr", "127.0.0.1:1", "rb") == ["rbac"]
    assert complete("rbac", "") == ["can", "check", "roles"]
    assert "create" in complete("pool", "")
    assert complete("rbac", "can", "--pr") == ["--private"]
    assert complete("agent", "--max") == ["--max-jobs"]
    assert complete("-o", "") == ["json", "table"]
    assert "--timeout" in complete("health", "check", "--ti")

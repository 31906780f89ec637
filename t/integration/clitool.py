# SPDX-License-Identifier: MIT
"""What the galaxy-cli tests share: running the real binary (its exit codes,
the environment it gets, no sanitizer report allowed), a port nothing listens
on, readers of its output (aligned tables, "Field: value" lines, the proto3
JSON mapping it prints), and CliWorld, one server with an admin key for a
module's tests."""
import json
import os
import re
import socket
import subprocess

from google.protobuf import json_format

from conftest import BUILDDIR, SANITIZER_MARKS
from gxapi import Api, with_key

CLI = os.path.join(BUILDDIR, "galaxy-cli")
# galaxy-cli's exit codes (gx_cli.h GX_CLI_EXIT_*)
OK, NO, UNAVAILABLE, USAGE = 0, 1, 2, 64


def cli_env(extra=None):
    """The test's environment without GALAXY_* settings, plus @extra."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("GALAXY_")}
    e["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    e.update(extra or {})
    return e


def no_sanitizer_report(err):
    for mark in SANITIZER_MARKS:
        assert mark not in err, "sanitizer report from galaxy-cli:\n" + err


def cli(*args, env=None, timeout=20, input=None):
    """Runs galaxy-cli (@input: bytes for its standard input); returns (exit
    code, stdout, stderr).  GX_CLI_WRAP prefixes the command
    (GX_CLI_WRAP="valgrind -q --error-exitcode=99 --leak-check=full" on a
    build without sanitizers)."""
    wrap = os.environ.get("GX_CLI_WRAP", "").split()
    p = subprocess.run(wrap + [CLI] + list(args), input=input, capture_output=True,
                       env=cli_env(env), timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    no_sanitizer_report(err)
    return p.returncode, out, err


def free_port():
    """A loopback port that nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_json(msg):
    """The proto3 JSON mapping of @msg as galaxy-cli prints it: every field."""
    return json_format.MessageToDict(msg, including_default_value_fields=True)


def table(out):
    """A table's rows as dicts by header (cells are split at 2+ spaces)."""
    lines = out.rstrip("\n").split("\n")
    head = re.split(r"\s{2,}", lines[0])
    return [dict(zip(head, re.split(r"\s{2,}", line))) for line in lines[1:]]


def fields(out):
    """A show command's "Field:  value" lines as a dict."""
    return dict(re.match(r"^([^:]+):\s+(.*)$", line).groups()
                for line in out.rstrip("\n").split("\n"))


def error(err, code):
    return err.startswith("galaxy-cli: %s: " % code)


ADMIN = object()  # run()'s default key: the world's admin key


class CliWorld:
    """One started server for a module's tests, and an Api with its admin key."""

    def __init__(self, s, pb, admin_key):
        self.s = s
        self.pb = pb
        self.admin_key = admin_key
        self.ch = s.channel()
        self.admin = Api(with_key(self.ch, admin_key), pb)

    def run(self, *args, key=ADMIN, env=None, input=None):
        """galaxy-cli against this server with @key (None: anonymous)."""
        key = self.admin_key if key is ADMIN else key
        pre = ["--addr", self.s.h2c] + (["--api-key", key] if key is not None else [])
        return cli(*(pre + list(args)), env=env, input=input)

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        assert rc == OK, (args, rc, out, err)
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok("-o", "json", *args, **kw))

    def close(self):
        """Closes the channel and stops the server, which must exit 0 with a clean log."""
        self.ch.close()
        rc = self.s.stop()
        assert rc == 0, "galaxy-poold exited %s:\n%s" % (rc, self.s.log())
        self.s.assert_clean()

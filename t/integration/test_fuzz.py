# SPDX-License-Identifier: MIT
"""Bounded, seeded mutation fuzzing of the real galaxy-poold (API.md "Errors":
no bad input may crash the server, and every answer is a proper status).

1. Protobuf level: every method of every compiled service the server serves
   (found in the descriptors, so a method added later is fuzzed too) gets
   seed requests (an empty message, one filled in from the field names, and
   realistic ones for the main methods) mutated at the byte and at the wire
   format level, sent as raw bytes by grpcio under several identities (the
   admin key mostly, so that calls reach validation and the handlers) to a
   server with auth_apikey + rbac and a private pool.  Every status must be
   one API.md allows for the method, with a non-empty UTF-8 message.
2. HTTP/2 level: raw connections send the preface and SETTINGS, then random
   and malformed frames; and valid request byte streams are mutated at
   random positions.  After each, the server is alive and a call on a fresh
   connection works.

Reproducible: GX_FUZZ_SEED (default below) and GX_FUZZ_COUNT (inputs per
method, and the scale of the HTTP/2 runs) set the run; every input has its
own generator seeded by (seed, what, index), and a failure prints the seed,
the index and the input in hex.  GX_FUZZ_TIME bounds each test's loop in
seconds (what is left is skipped, and said so on stdout).  One input replays
by hand: grpc.insecure_channel(addr).unary_unary(path)(bytes.fromhex(hex))
with the caller's authorization metadata, or its bytes on a socket for the
HTTP/2 inputs.  pytest -s shows the statuses seen per method.
"""
import binascii
import collections
import importlib
import logging
import os
import random
import secrets
import socket
import struct
import time

import grpc
import hpack
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor as FD

from conftest import SANITIZER_MARKS, SRCDIR
from gxapi import Api, with_authorization, with_key
from h2raw import H2Client, grpc_frame, grpc_headers, raw_frame

SEED = int(os.environ.get("GX_FUZZ_SEED", "1377"))
COUNT = int(os.environ.get("GX_FUZZ_COUNT", "120"))
TIME_BUDGET = float(os.environ.get("GX_FUZZ_TIME", "120"))

ADMIN = "fuzz-admin-" + "5eed" * 8
PRIV, PUB = "fz-priv", "fz-pub"
CONFIG = """server:
  log_level: info
pools:
  - name: devnet
    visibility: public
  - name: %s
    visibility: public
    heartbeat_interval_ms: 60000
  - name: %s
    visibility: private
    heartbeat_interval_ms: 60000
    specializations: [developer, gpu]
""" % (PUB, PRIV)
MODULES = ("auth_apikey", "rbac", "interop")

CHECK = "/grpc.health.v1.Health/Check"
SERVING = b"\x08\x01"
UNARY_DEADLINE = 10.0
STREAM_DEADLINE = 2.0       # the backstop; endless streams are cut after one message
MAX_FAILURES = 20           # collected before a test gives up
CHANNEL_CALLS = 250         # calls per grpcio channel (cancels count as resets)
REPAIR_ROUNDS = 10          # rounds of inputs between World.repair()


def fuzz_server(make_server):
    return make_server(config=CONFIG, modules=MODULES, tls=False,
                       env={"GALAXY_ADMIN_KEY": ADMIN})


def input_rng(*what):
    """The generator of one input: the same (seed, what) gives the same input."""
    return random.Random("%d/%s" % (SEED, "/".join(str(w) for w in what)))


def hexdump(data, limit=4096):
    h = binascii.hexlify(bytes(data)).decode()
    if len(h) <= limit:
        return h
    return "%s… (%d bytes; regenerate it from the seed and index)" % (h[:limit], len(data))


class LogWatch:
    """Sanitizer reports that the server's log gained since the last look,
    so that a report that does not kill the server (UBSan) is pinned on the
    input that caused it."""

    def __init__(self, server):
        self.path = server.log_path
        self.offset = os.path.getsize(self.path)

    def new_report(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        text = data.decode("utf-8", "replace")
        for mark in SANITIZER_MARKS:
            at = text.find(mark)
            if at >= 0:
                return text[max(0, at - 200):at + 3000]
        return None


class Budget:
    """Stops a loop after TIME_BUDGET seconds (saying how far it got)."""

    def __init__(self, name):
        self.name = name
        self.end = time.monotonic() + TIME_BUDGET

    def over(self, done, total):
        if time.monotonic() < self.end:
            return False
        print("%s: time budget of %ss spent after %d of %d inputs"
              % (self.name, TIME_BUDGET, done, total))
        return True


# ---------------------------------------------------------------- protobuf wire format

def varint(n):
    """Base-128 varint; a negative @n takes ten bytes as int64 does."""
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number, wire):
    return varint(number << 3 | wire)


def ld(number, payload):
    """A length-delimited field."""
    return tag(number, 2) + varint(len(payload)) + payload


WIRE = {FD.TYPE_DOUBLE: 1, FD.TYPE_FIXED64: 1, FD.TYPE_SFIXED64: 1,
        FD.TYPE_FLOAT: 5, FD.TYPE_FIXED32: 5, FD.TYPE_SFIXED32: 5,
        FD.TYPE_STRING: 2, FD.TYPE_BYTES: 2, FD.TYPE_MESSAGE: 2, FD.TYPE_GROUP: 3}

VARINTS = [0, 1, 2, 6, 7, 127, 128, 1000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53,
           2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -1, -2, -2 ** 31, -2 ** 63]
LENGTHS = [0, 1, 2 ** 16, 2 ** 24, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32 + 1,
           2 ** 63, -1]
NUMBERS = [0, 1, 2, 3, 15, 16, 19000, 2 ** 29 - 1, 2 ** 29, 2 ** 32]
# not UTF-8 (lone, cut, overlong, surrogate, past U+10FFFF), and a NUL, which
# is UTF-8 but ends a C string early
BAD_UTF8 = [b"\xff", b"\xc3", b"\xc3(", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"ok\xe2\x82", b"\x80abc",
            b"a\x00b", b"\xfe\xff"]
DEPTHS = [2, 16, 100, 1000, 3000]
LONG = [255, 256, 4096, 65536, 1 << 20]


def wire_of(f):
    return WIRE.get(f.type, 0)


def paths(desc, pred, depth=3, prefix=()):
    """(field numbers from the top, field) of the fields under @desc that
    satisfy @pred, through message fields (map entries too) @depth deep."""
    out = []
    for f in desc.fields:
        if pred(f):
            out.append((prefix + (f.number,), f))
        if f.type == FD.TYPE_MESSAGE and depth > 1:
            out += paths(f.message_type, pred, depth - 1, prefix + (f.number,))
    return out


def wrap(numbers, leaf):
    """@leaf (a complete field) inside the messages of the field numbers @numbers."""
    for n in reversed(numbers):
        leaf = ld(n, leaf)
    return leaf


def random_value(rng, wire):
    if wire == 0:
        return varint(rng.choice(VARINTS))
    if wire == 1:
        return bytes(rng.getrandbits(8) for _ in range(8))
    if wire == 5:
        return bytes(rng.getrandbits(8) for _ in range(4))
    if wire == 2:
        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(12)))
        length = len(body) if rng.random() < 0.5 else rng.choice(LENGTHS)
        return varint(length) + body
    if wire == 3:  # a group start, sometimes closed
        return tag(rng.randrange(1, 20), 4) if rng.random() < 0.5 else b""
    return b""  # wire types 4, 6, 7: the tag alone


# ---------------------------------------------------------------- mutators
# Each takes (rng, data, the Method) and returns the new bytes.

def m_flip_bit(rng, data, m):
    if not data:
        return b"\x80"
    b = bytearray(data)
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def m_insert(rng, data, m):
    i = rng.randint(0, len(data))
    junk = bytes(rng.choice([0, 0x7F, 0x80, 0xFF, rng.getrandbits(8)])
                 for _ in range(rng.randint(1, 8)))
    return data[:i] + junk + data[i:]


def m_delete(rng, data, m):
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 8):]


def m_overwrite(rng, data, m):
    if not data:
        return bytes([rng.getrandbits(8)])
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        b[rng.randrange(len(b))] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.getrandbits(8)])
    return bytes(b)


def m_truncate(rng, data, m):
    return data[:rng.randint(0, max(len(data) - 1, 0))]


def m_splice(rng, data, m):
    other = rng.choice(m.seeds)
    return data[:rng.randint(0, len(data))] + other[rng.randint(0, len(other)):]


def m_duplicate(rng, data, m):
    if rng.random() < 0.5:
        return data + data  # proto merge: scalars overwrite, repeated ones grow
    i = rng.randint(0, len(data))
    j = rng.randint(i, len(data))
    return data[:j] + data[i:j] * rng.randint(2, 50) + data[j:]


def m_random_field(rng, data, m):
    """A field of a random number and wire type (0..7) with an extreme value,
    at the start, at the end, or at a random offset (inside another field)."""
    known = [f.number for f in m.desc.fields]
    number = rng.choice(known) if known and rng.random() < 0.5 else rng.choice(NUMBERS)
    wire = rng.randrange(8)
    field = tag(number, wire) + random_value(rng, wire)
    if rng.random() < 0.1:
        field = tag(number, 0) + b"\xff" * rng.choice([10, 11, 20])  # overlong varint
    where = rng.choice([0, len(data), rng.randint(0, len(data))])
    return data[:where] + field + data[where:]


def m_known_field(rng, data, m):
    """A known field, anywhere in the tree, with an extreme value or the wrong wire type."""
    found = paths(m.desc, lambda f: True)
    if not found:
        return m_random_field(rng, data, m)
    numbers, f = rng.choice(found)
    wire = wire_of(f) if rng.random() < 0.8 else rng.randrange(6)
    return data + wrap(numbers[:-1], tag(numbers[-1], wire) + random_value(rng, wire))


def m_nest(rng, data, m):
    """Length-delimited fields nested deep, following the message fields
    while there are some, then any numbers."""
    numbers, d = [], m.desc
    for _ in range(rng.choice(DEPTHS)):
        msgs = [f for f in d.fields if f.type == FD.TYPE_MESSAGE] if d is not None else []
        if msgs and rng.random() < 0.9:
            f = rng.choice(msgs)
            numbers.append(f.number)
            d = f.message_type
        else:
            numbers.append(rng.choice([1, 2, 3, 7, 9]))
            d = None
    nested = wrap(numbers, data if rng.random() < 0.5 else b"")
    return data + nested if rng.random() < 0.5 else nested


def m_long_string(rng, data, m):
    found = paths(m.desc, lambda f: f.type in (FD.TYPE_STRING, FD.TYPE_BYTES))
    n = rng.choice(LONG)
    text = (b"a" * n) if rng.random() < 0.5 else ("\u00e9\u4e2d" * (n // 5 + 1)).encode()[:n]
    if not found:
        return data + ld(rng.randrange(1, 20), text)
    numbers, _ = rng.choice(found)
    return data + wrap(numbers[:-1], ld(numbers[-1], text))


def m_bad_utf8(rng, data, m):
    found = paths(m.desc, lambda f: f.type == FD.TYPE_STRING)
    bad = rng.choice(BAD_UTF8)
    text = rng.choice([bad, b"fz-" + bad, b"x" * rng.randrange(300) + bad])
    if not found:
        return data + ld(1, text)
    numbers, _ = rng.choice(found)
    return data + wrap(numbers[:-1], ld(numbers[-1], text))


def m_packed(rng, data, m):
    """Packed garbage for a repeated scalar field (enum lists such as states)."""
    found = paths(m.desc, lambda f: f.label == FD.LABEL_REPEATED and f.type not in WIRE)
    blob = b"".join(varint(rng.choice(VARINTS)) for _ in range(rng.randint(0, 40)))
    if rng.random() < 0.3:
        blob += b"\x80"  # a varint cut short at the end of the packed run
    if not found:
        return data + ld(rng.randrange(1, 10), blob)
    numbers, _ = rng.choice(found)
    return data + wrap(numbers[:-1], ld(numbers[-1], blob))


def m_plausible(rng, data, m):
    """A known field set to a value that makes sense (a name of the world, a
    small number, an odd double): other paths of the handlers than extremes."""
    found = paths(m.desc, lambda f: True)
    if not found:
        return data
    numbers, f = rng.choice(found)
    if f.type == FD.TYPE_STRING:
        leaf = ld(numbers[-1], rng.choice(m.words).encode())
    elif f.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        x = rng.choice([0.0, 1.0, 0.99, -0.5, 2.0, float("nan"), float("inf"), -float("inf")])
        if f.type == FD.TYPE_DOUBLE:
            leaf = tag(numbers[-1], 1) + struct.pack("<d", x)
        else:
            leaf = tag(numbers[-1], 5) + struct.pack("<f", x)
    elif wire_of(f) == 0:
        leaf = tag(numbers[-1], 0) + varint(rng.choice([0, 1, 2, 3, 4, 5, 6, 100, 1000, 60000]))
    else:
        return m_known_field(rng, data, m)
    return data + wrap(numbers[:-1], leaf)


# Byte-level mutations break the wire format more often than not; the field
# level ones keep most inputs decodable, so that they reach the handlers.
MUTATORS = [m_flip_bit, m_insert, m_delete, m_overwrite, m_truncate, m_splice, m_duplicate,
            m_plausible, m_plausible, m_plausible, m_plausible, m_known_field, m_known_field,
            m_random_field, m_random_field, m_nest, m_long_string, m_bad_utf8, m_bad_utf8,
            m_packed]


def mutate(rng, m):
    """A seed with one to four mutations (mostly one), or (one time in ten) a
    seed as it is: most inputs should still decode, to get past decoding."""
    data = rng.choice(m.seeds)
    if rng.random() < 0.1:
        return data
    for _ in range(rng.choice([1, 1, 1, 1, 2, 2, 3, 4])):
        data = rng.choice(MUTATORS)(rng, data, m)
        if len(data) > 3 << 20:  # stay under the 4 MiB message limit, mostly
            data = data[:rng.randrange(3 << 20)]
    return data


# ---------------------------------------------------------------- the methods and their seeds

class Method:
    def __init__(self, service, m):
        self.path = "/%s/%s" % (service.full_name, m.name)
        self.name = m.name
        self.desc = m.input_type
        self.cls = message_class(m.input_type)
        self.out_cls = message_class(m.output_type)
        self.client_streaming = m.client_streaming
        self.server_streaming = m.server_streaming
        self.seeds = [b""]
        self.words = [""]  # strings m_plausible puts in string fields

    @property
    def streaming(self):
        return self.client_streaming or self.server_streaming


def compiled_modules():
    """Every _pb2 module that conftest compiled from proto/ (imported)."""
    root = os.path.join(SRCDIR, "proto")
    mods = []
    for d, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            if f.endswith(".proto"):
                rel = os.path.relpath(os.path.join(d, f[:-len(".proto")]), root)
                mods.append(importlib.import_module(rel.replace(os.sep, ".") + "_pb2"))
    return mods


def served_services(ch):
    """The service names grpc.reflection.v1 lists."""
    refl = importlib.import_module("grpc.reflection.v1.reflection_pb2")
    stub = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                            request_serializer=refl.ServerReflectionRequest.SerializeToString,
                            response_deserializer=refl.ServerReflectionResponse.FromString)
    out = list(stub(iter([refl.ServerReflectionRequest(list_services="")]), timeout=5))
    return {s.name for s in out[0].list_services_response.service}


def all_methods(ch):
    """A Method for every method of every compiled service that the server
    serves (grpc.testing's services only come with the interop module)."""
    served = served_services(ch)
    methods = []
    for mod in compiled_modules():
        for service in mod.DESCRIPTOR.services_by_name.values():
            if service.full_name not in served:
                continue
            methods += [Method(service, m) for m in service.methods]
    for i, m in enumerate(methods):
        m.index = i
    return methods


def message_class(desc):
    get = getattr(message_factory, "GetMessageClass", None)  # protobuf >= 4.22
    return get(desc) if get else message_factory.MessageFactory().GetPrototype(desc)


def autofill(cls, values, depth=4):
    """A message of class @cls with every field set: from @values by field
    name where it has one, else a plausible value of the field's type."""
    msg = cls()
    for f in msg.DESCRIPTOR.fields:
        v = values.get(f.name)
        if f.type == FD.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            if vf.type != FD.TYPE_MESSAGE:
                getattr(msg, f.name)[scalar(kf, {"key": "zone"})] = scalar(vf, {"value": "a"})
        elif f.type == FD.TYPE_MESSAGE:
            if depth > 0:
                sub = autofill(message_class(f.message_type), values,
                               depth - 1)
                if f.label == FD.LABEL_REPEATED:
                    getattr(msg, f.name).add().CopyFrom(sub)
                else:
                    getattr(msg, f.name).CopyFrom(sub)
        elif f.label == FD.LABEL_REPEATED:
            getattr(msg, f.name).extend(v if isinstance(v, list) else [scalar(f, values)])
        else:
            setattr(msg, f.name, scalar(f, values))
    return msg


def scalar(f, values):
    v = values.get(f.name)
    if f.type == FD.TYPE_STRING:
        return v if isinstance(v, str) else "fz"
    if f.type == FD.TYPE_BYTES:
        return b"fz"
    if f.type == FD.TYPE_BOOL:
        return False  # force, revoked: do not delete what the other seeds use
    if f.type == FD.TYPE_ENUM:
        vals = f.enum_type.values
        return vals[1].number if len(vals) > 1 else vals[0].number
    if f.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return 0.5
    return v if isinstance(v, int) else 7


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def job_open(api, job_id):
    """The job exists and is not finished."""
    try:
        job = api.GetJob(api.pb.GetJobRequest(id=job_id), timeout=5)
    except grpc.RpcError:
        return False
    return job.state < api.pb.JOB_STATE_SUCCEEDED


class World:
    """The fuzz server's pools, nodes, a job and keys, made through the admin
    key before the batch; the seeds refer to them so that mutated requests
    reach the handlers' paths for things that exist."""

    def __init__(self, server, pb):
        self.pb = pb
        self.ch = server.channel()
        self.admin = Api(with_key(self.ch, ADMIN), pb)
        self.auth = dict(BAD_AUTH, admin="Bearer " + ADMIN, anon=None)
        for name, role in (("node", pb.ROLE_NODE), ("viewer", pb.ROLE_VIEWER),
                           ("submitter", pb.ROLE_SUBMITTER), ("revoked", pb.ROLE_ADMIN)):
            r = self.admin.CreateApiKey(pb.CreateApiKeyRequest(name="fz " + name, role=role,
                                                               pools=[PRIV]), timeout=5)
            self.auth[name] = "Bearer " + r.secret
            if name == "revoked":
                self.admin.RevokeApiKey(pb.RevokeApiKeyRequest(id=r.key.id), timeout=5)
        self.spare_key = self.admin.CreateApiKey(pb.CreateApiKeyRequest(
            name="fz spare", role=pb.ROLE_VIEWER), timeout=5).key.id
        self.pub_token = self.admin.register("fz-n2", pool=PUB).lease_token
        self.nodes_made, self.node, self.token, self.job = 0, None, None, None
        self.repair()
        self.channels = {}

    def repair(self):
        """Puts back what the fuzz took away, as an admin may (the private pool,
        a node in it, an unfinished job), so that a long run goes on reaching
        things that exist.  @return whether anything was put back."""
        pb, admin, done = self.pb, self.admin, False
        settings = dict(heartbeat_interval_ms=60000, node_ttl_ms=180000, max_nodes=1 << 30,
                        specializations=["developer", "gpu"], routing_policy="least_loaded")
        if code_of(admin.GetPool, pb.GetPoolRequest(name=PRIV), timeout=5) == "NOT_FOUND":
            admin.create_pool(PRIV, visibility=pb.VISIBILITY_PRIVATE, **settings)
            done = True
        else:  # undo what an UpdatePool may have done
            admin.UpdatePool(pb.UpdatePoolRequest(pool=pb.Pool(name=PRIV, **settings)), timeout=5)
        if self.token is None or code_of(admin.heartbeat, self.node, self.token, PRIV) != "OK":
            self.nodes_made += 1  # a new id: the old one may be held under another lease
            self.node = "fz-n%d" % self.nodes_made
            self.token = admin.register(self.node, pool=PRIV, labels={"zone": "a"},
                                        capacity=pb.Resources(cpu_millis=4000, max_jobs=8)
                                        ).lease_token
            done = True
        if self.job is None or not job_open(admin, self.job):
            try:
                self.job = admin.SubmitJob(pb.SubmitJobRequest(job=pb.Job(
                    pool=PRIV, specialization="developer", payload=b"fz")), timeout=5).id
                done = True
            except grpc.RpcError as e:  # a queue the fuzz filled: go on with the old one
                if self.job is None or e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
        self.values = {"pool": PRIV, "node_id": self.node, "lease_token": self.token,
                       "id": self.job, "name": PRIV, "specialization": "developer",
                       "specializations": ["developer"], "address": "10.0.0.1:7000",
                       "version": "1.0", "service": "", "page_token": "",
                       "routing_policy": "least_loaded", "heartbeat_interval_ms": 60000,
                       "page_size": 2}
        self.words = [PRIV, PUB, "devnet", "fz-new", self.node, "fz-n2", "fz-r1", self.job,
                      self.token, self.spare_key, "developer", "gpu", "", "a" * 63, "a" * 64,
                      "Fz", "least_loaded", "p2c", "hash", "galaxy.pool.v1.Node",
                      "galaxy.pool.v1.Jobs", "grpc.health.v1.Health"]
        return done

    def close(self):
        self.ch.close()

    def seeds(self, method):
        out = [b"", autofill(method.cls, self.values).SerializeToString()]
        make = getattr(self, "seeds_" + method.name, None)
        if make is not None and method.desc.full_name.startswith("galaxy.pool.v1."):
            out += [m.SerializeToString() for m in make(self.pb)]
        elif method.desc.full_name.startswith("grpc.reflection."):
            out += [m.SerializeToString() for m in self.seeds_reflection(method.cls)]
        elif method.desc.full_name.startswith("grpc.health."):
            out += [method.cls(service=s).SerializeToString()
                    for s in ("", "galaxy.pool.v1.NodeRegistry", "no.such.Service")]
        return out

    # Realistic requests of the methods that matter most (API.md's examples).
    def node_msg(self, pb, id="fz-r1", pool=PRIV):
        return pb.Node(id=id, pool=pool, specializations=["developer", "gpu"],
                       labels={"zone": "a", "rack": "r1"}, address="10.0.0.9:7000",
                       version="2.1", capacity=pb.Resources(cpu_millis=2000,
                                                            memory_bytes=1 << 30, gpus=1,
                                                            max_jobs=4), load=0.25)

    def seeds_Register(self, pb):
        return [pb.RegisterRequest(node=self.node_msg(pb)),
                pb.RegisterRequest(node=self.node_msg(pb, self.node), lease_token=self.token),
                pb.RegisterRequest(node=self.node_msg(pb, "fz-p1", PUB))]

    def seeds_Heartbeat(self, pb):
        return [pb.HeartbeatRequest(pool=PRIV, node_id=self.node, lease_token=self.token,
                                    load=0.5, running_jobs=1),
                pb.HeartbeatRequest(pool=PUB, node_id="fz-n2", lease_token=self.pub_token)]

    seeds_HeartbeatStream = seeds_Heartbeat

    def seeds_Deregister(self, pb):
        return [pb.DeregisterRequest(pool=PRIV, node_id="fz-r1", lease_token="0" * 32)]

    def seeds_Drain(self, pb):
        return [pb.DrainRequest(pool=PUB, node_id="fz-n2")]

    def seeds_GetNode(self, pb):
        return [pb.GetNodeRequest(pool=PRIV, node_id=self.node)]

    def seeds_ListNodes(self, pb):
        return [pb.ListNodesRequest(pool=PRIV, specialization="developer",
                                    labels={"zone": "a"},
                                    states=[pb.NODE_STATE_HEALTHY, pb.NODE_STATE_SUSPECT],
                                    page_size=1),
                pb.ListNodesRequest(pool=PUB, page_size=5000)]

    def seeds_Watch(self, pb):
        return [pb.WatchRequest(pool=PRIV, specialization="developer"),
                pb.WatchRequest(pool=PRIV, start_revision=1),
                pb.WatchRequest(pool=PUB, start_revision=2 ** 63)]

    def seeds_CreatePool(self, pb):
        return [pb.CreatePoolRequest(pool=pb.Pool(
            name="fz-new", visibility=pb.VISIBILITY_PRIVATE, tier="dev", description="fuzz",
            heartbeat_interval_ms=1000, node_ttl_ms=3000, routing_policy="least_loaded",
            specializations=["developer"], labels={"team": "fz"}, max_nodes=3))]

    def seeds_UpdatePool(self, pb):
        return [pb.UpdatePoolRequest(pool=pb.Pool(name="fz-new", description="again",
                                                  labels={"team": "fz2"}))]

    def seeds_DeletePool(self, pb):
        return [pb.DeletePoolRequest(name="fz-new")]

    def seeds_GetPool(self, pb):
        return [pb.GetPoolRequest(name=PRIV)]

    def seeds_CreateApiKey(self, pb):
        return [pb.CreateApiKeyRequest(name="fz key", role=pb.ROLE_NODE, pools=[PRIV, PUB]),
                pb.CreateApiKeyRequest(name="fz op", role=pb.ROLE_OPERATOR)]

    def seeds_RevokeApiKey(self, pb):
        return [pb.RevokeApiKeyRequest(id=self.spare_key)]

    def seeds_SubmitJob(self, pb):
        return [pb.SubmitJobRequest(job=pb.Job(
            pool=PRIV, specialization="developer", node_selector={"zone": "a"},
            resources=pb.Resources(cpu_millis=100, max_jobs=1), payload=b"\x00\x01" * 64,
            routing_key="k1")),
            pb.SubmitJobRequest(job=pb.Job(pool=PUB, specialization="developer"))]

    seeds_ExplainJob = seeds_SubmitJob

    def seeds_GetJob(self, pb):
        return [pb.GetJobRequest(id=self.job)]

    def seeds_CancelJob(self, pb):
        return [pb.CancelJobRequest(id=self.job)]

    def seeds_ListJobs(self, pb):
        return [pb.ListJobsRequest(pool=PRIV, states=[pb.JOB_STATE_PENDING], page_size=1),
                pb.ListJobsRequest(pool=PRIV, node_id=self.node)]

    def seeds_UpdateJobStatus(self, pb):
        return [pb.UpdateJobStatusRequest(id=self.job, node_id=self.node,
                                          lease_token=self.token,
                                          state=pb.JOB_STATE_RUNNING, message="started")]

    def seeds_reflection(self, cls):
        return [cls(list_services=""),
                cls(file_by_filename="galaxy/pool/v1/pool.proto"),
                cls(file_containing_symbol="galaxy.pool.v1.NodeRegistry.Register"),
                cls(all_extension_numbers_of_type="galaxy.pool.v1.Node"),
                cls(host="localhost", file_containing_extension={
                    "containing_type": "galaxy.pool.v1.Node", "extension_number": 100})]

    def channel(self, caller):
        if caller not in self.channels:
            self.channels[caller] = with_authorization(self.ch, self.auth[caller])
        return self.channels[caller]

    def renew(self, server):
        """A new connection (the server counts stream resets per connection)."""
        self.ch.close()
        self.ch = server.channel()
        self.admin = Api(with_key(self.ch, ADMIN), self.pb)
        self.channels = {}


# Wrong and malformed credentials: UNAUTHENTICATED whatever the call (API.md).
# (A value with leading or trailing blanks is a malformed HTTP/2 field, RFC
# 9113 8.2.1, refused below gRPC: not one of them.)
BAD_AUTH = {"unknown": "Bearer gxk_" + "0" * 64, "short": "Bearer gxk_1",
            "basic": "Basic Zm9vOmJhcg==", "no-scheme": ADMIN, "two-words": "Bearer a b",
            "long": "Bearer " + "k" * 6000}
CALLERS = ["admin"] * 20 + ["anon", "node", "node", "viewer", "submitter", "revoked"] + \
    sorted(BAD_AUTH)


# ---------------------------------------------------------------- statuses

# API.md: bad input INVALID_ARGUMENT, unknown things NOT_FOUND, the access
# rules UNAUTHENTICATED / PERMISSION_DENIED, limits RESOURCE_EXHAUSTED.
BASE = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED",
        "RESOURCE_EXHAUSTED"}
EXTRA = {
    "/galaxy.pool.v1.NodeRegistry/Register": {"ALREADY_EXISTS"},
    "/galaxy.pool.v1.PoolAdmin/CreatePool": {"ALREADY_EXISTS"},
    "/galaxy.pool.v1.PoolAdmin/DeletePool": {"FAILED_PRECONDITION"},      # nodes remain
    "/galaxy.pool.v1.PoolAdmin/RevokeApiKey": {"FAILED_PRECONDITION"},    # the last admin key
    "/galaxy.pool.v1.Jobs/CancelJob": {"FAILED_PRECONDITION"},            # already finished
    "/galaxy.pool.v1.Jobs/UpdateJobStatus": {"FAILED_PRECONDITION"},      # already finished
}


def echoes_status(method):
    """The interop service ends a call with any status and message the request
    asks for (EchoStatus), an empty message too."""
    return method.path.startswith("/grpc.testing.")


def allowed(method, caller, cut):
    """The statuses API.md allows for @method called by @caller (a method
    added later gets BASE until EXTRA names its own)."""
    if caller in BAD_AUTH or caller == "revoked":
        return {"UNAUTHENTICATED"}
    if echoes_status(method):
        return set(grpc.StatusCode.__members__)
    ok = BASE | EXTRA.get(method.path, set())
    if method.streaming:
        ok |= {"DEADLINE_EXCEEDED"}  # ours: streams run under STREAM_DEADLINE
        if cut:
            ok |= {"CANCELLED"}
    return ok


class BadUtf8Log(logging.Handler):
    """grpcio logs "Invalid encoding" (and shows latin-1) when a status
    message is not UTF-8: the only place where it can be seen."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def emit(self, record):
        if "Invalid encoding" in record.getMessage():
            self.seen.append(record.getMessage())


@pytest.fixture
def bad_utf8_log():
    h = BadUtf8Log()
    log = logging.getLogger("grpc._cython.cygrpc")
    log.addHandler(h)
    yield h
    log.removeHandler(h)


def call(ch, method, payloads, compression=None):
    """One call with raw bytes: (status name, details, cut by us, responses)."""
    cut, got = False, []
    kw = dict(compression=compression,
              timeout=STREAM_DEADLINE if method.streaming else UNARY_DEADLINE)
    try:
        if not method.server_streaming:
            if method.client_streaming:
                got.append(ch.stream_unary(method.path)(iter(payloads), **kw))
            else:
                got.append(ch.unary_unary(method.path)(payloads[0], **kw))
            return "OK", "", False, got
        if method.client_streaming:
            c = ch.stream_stream(method.path)(iter(payloads), **kw)
        else:
            c = ch.unary_stream(method.path)(payloads[0], **kw)
        for resp in c:
            got.append(resp)
            # a server stream of one request never ends by itself (Watch):
            # one message shows it works; bidi ones end after our last request
            if not method.client_streaming or len(got) >= 100:
                cut = True
                c.cancel()
                break
        return c.code().name, c.details() or "", cut, got
    except grpc.RpcError as e:
        return e.code().name, e.details() or "", cut, got


def undecodable(method, responses):
    """The first response that does not decode as the method's response type
    (a string field that is not UTF-8, say), as (index, error), or None."""
    for i, data in enumerate(responses):
        try:
            method.out_cls.FromString(data)
        except Exception as e:  # DecodeError, whose class depends on the protobuf backend
            return i, e
    return None


def fuzz_call(world, method, caller, payloads, compression, bad_utf8_log):
    """One call: (status name, what is wrong with the answer or None)."""
    logged = len(bad_utf8_log.seen)
    code, details, cut, responses = call(world.channel(caller), method, payloads, compression)
    return code, judge(method, caller, code, details, cut, responses,
                       bad_utf8_log.seen[logged:])


def judge(method, caller, code, details, cut, responses, bad_utf8):
    """What is wrong with one answer, as (kind, text), or None.  @bad_utf8:
    grpcio's complaint about its status message, if any."""
    bad = undecodable(method, responses)
    if bad is not None:
        return ("response does not decode",
                "response %d does not decode as %s (%s): %s"
                % (bad[0], method.out_cls.DESCRIPTOR.full_name, bad[1],
                   hexdump(responses[bad[0]], 1024)))
    if code not in allowed(method, caller, cut):
        return "status " + code, "status %s (%r) is not one API.md allows" % (code, details)
    if code != "OK" and not details.strip() and not echoes_status(method):
        return "empty message", "status %s with an empty message" % code
    if bad_utf8:
        return "message not UTF-8", "status %s message is not UTF-8: %s" % (code,
                                                                            bad_utf8[0][:300])
    return None


class Failures:
    """Failures by kind: how many inputs failed so, and the first two of them."""

    def __init__(self):
        self.count = collections.Counter()
        self.examples = {}

    def add(self, kind, text):
        self.count[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 2:
            self.examples[kind].append(text)

    def full(self):
        return len(self.count) >= MAX_FAILURES

    def __bool__(self):
        return bool(self.count)

    def report(self, server):
        out = ["%d failing input(s) of %d kind(s), seed %d; %s"
               % (sum(self.count.values()), len(self.count), SEED, replay_hint())]
        for kind, n in self.count.items():
            out.append("== %s: %d input(s), the first ones:\n%s"
                       % (kind, n, "\n".join(self.examples[kind])))
        return "\n\n".join(out) + "\n\nserver log tail:\n" + server.log()[-8000:]


def replay_hint():
    return ("replay: GX_FUZZ_SEED=%d GX_FUZZ_COUNT=%d GX_BUILDDIR=… /usr/bin/python3 -m pytest "
            "t/integration/test_fuzz.py" % (SEED, COUNT))


# ---------------------------------------------------------------- after a batch

def assert_serving(server, health_pb2):
    assert server.alive(), "galaxy-poold is not running"
    with server.channel() as ch:
        stub = ch.unary_unary(CHECK,
                              request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                              response_deserializer=health_pb2.HealthCheckResponse.FromString)
        resp = stub(health_pb2.HealthCheckRequest(), timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def assert_round_trip(server, pb):
    """Register + Heartbeat + GetNode in a new private pool (the fuzz may
    have changed or deleted the others, as an admin may)."""
    pool = "fz-check-" + secrets.token_hex(4)
    with server.channel() as ch:
        api = Api(with_key(ch, ADMIN), pb)
        api.create_pool(pool, visibility=pb.VISIBILITY_PRIVATE)
        r = api.register("fz-check", pool=pool)
        hb = api.heartbeat("fz-check", r.lease_token, pool=pool)
        assert hb.state == pb.NODE_STATE_HEALTHY
        n = api.get("fz-check", pool=pool)
        assert (n.id, n.pool, n.state) == ("fz-check", pool, pb.NODE_STATE_HEALTHY)


def assert_outcome(server, failures, pb, health_pb2):
    """The batch's failures, and whether the server still serves after it,
    reported together; then its log must be free of sanitizer reports."""
    for name, check in (("health", lambda: assert_serving(server, health_pb2)),
                        ("round trip", lambda: assert_round_trip(server, pb))):
        try:
            check()
        except (AssertionError, grpc.RpcError) as e:
            failures.add("after the batch: " + name, "%s: %s" % (type(e).__name__, e))
    assert not failures, failures.report(server)
    server.assert_clean()


# ---------------------------------------------------------------- 1. protobuf level

@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def test_protobuf_fuzz(make_server, pb, health_pb2, bad_utf8_log):
    server = fuzz_server(make_server)
    world = World(server, pb)
    methods = all_methods(world.ch)
    paths_ = {m.path for m in methods}
    # the descriptors and the server agree on what there is
    assert set(EXTRA) | {"/grpc.health.v1.Health/Check", "/galaxy.pool.v1.Discovery/Watch",
                         "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} <= paths_
    for m in methods:
        m.seeds = world.seeds(m)
        m.words = world.words
    print("protobuf fuzz: seed %d, %d inputs for each of %d methods"
          % (SEED, COUNT, len(methods)))
    failures, budget, watch = Failures(), Budget("protobuf fuzz"), LogWatch(server)
    repairs = 0
    seen = collections.defaultdict(collections.Counter)  # method: status: count
    try:
        for i in range(COUNT):
            if budget.over(i * len(methods), COUNT * len(methods)) or failures.full():
                break
            if i % REPAIR_ROUNDS == REPAIR_ROUNDS - 1 and world.repair():
                repairs += 1
                for m in methods:
                    m.seeds, m.words = world.seeds(m), world.words
            for m in methods:
                if (i * len(methods) + m.index) % CHANNEL_CALLS == 0:
                    world.renew(server)
                rng = input_rng("pb", m.path, i)
                caller = rng.choice(CALLERS)
                payloads = [mutate(rng, m) for _ in range(rng.randint(1, 3)
                                                          if m.client_streaming else 1)]
                gzip = grpc.Compression.Gzip if rng.random() < 0.15 else None
                code, wrong = fuzz_call(world, m, caller, payloads, gzip, bad_utf8_log)
                seen[m.path][code] += 1
                report = watch.new_report()
                if not server.alive() or report:
                    wrong = ("crash" if not server.alive() else "sanitizer",
                             "galaxy-poold %s during this call:\n%s"
                             % ("died" if not server.alive() else "reported",
                                report or "(no sanitizer report in its log)"))
                if wrong:
                    failures.add("%s: %s" % (m.path, wrong[0]),
                                 "seed %d input #%d %s as %s%s: %s\n  input: %s"
                                 % (SEED, i, m.path, caller, " gzip" if gzip else "", wrong[1],
                                    " | ".join(hexdump(p) for p in payloads) or "(none)"))
                if not server.alive():
                    break
            if not server.alive():
                break
    finally:
        world.close()
    print("protobuf fuzz: the world was repaired %d times" % repairs)
    for path, codes in seen.items():
        print("  %-62s %s" % (path, " ".join("%s=%d" % kv for kv in sorted(codes.items()))))
    assert_outcome(server, failures, pb, health_pb2)


# ---------------------------------------------------------------- 2. HTTP/2 level

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
MAX31 = 2 ** 31 - 1


def frame(ftype, flags, sid, payload, length=None):
    """raw_frame() that may lie about the length and set the reserved bit."""
    if length is None and 0 <= sid <= MAX31:
        return raw_frame(ftype, flags, sid, payload)
    n = len(payload) if length is None else length
    return struct.pack(">I", n & 0xFFFFFF)[1:] + bytes([ftype & 0xFF, flags & 0xFF]) + \
        struct.pack(">I", sid & 0xFFFFFFFF) + payload


def hpack_literal(headers):
    """A header block that adds nothing to the server's dynamic table (never
    indexed literals, static-table references), so any block decodes the same
    after any other.  Text goes as latin-1: one byte a character, as given."""
    def raw(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    return hpack.Encoder().encode([hpack.NeverIndexedHeaderTuple(raw(k), raw(v))
                                   for k, v in headers], huffman=False)


def requests_for_h2(pb, health_pb2):
    """(path, messages, metadata) of valid requests, the admin key on the galaxy ones."""
    auth = [("authorization", "Bearer " + ADMIN)]
    node = pb.Node(id="fz-h2", pool=PRIV, specializations=["developer"], address="10.0.0.1:1")
    return [
        (CHECK, [health_pb2.HealthCheckRequest().SerializeToString()], []),
        ("/grpc.health.v1.Health/Watch", [b""], []),
        ("/galaxy.pool.v1.NodeRegistry/Register",
         [pb.RegisterRequest(node=node).SerializeToString()], auth),
        ("/galaxy.pool.v1.Discovery/ListNodes",
         [pb.ListNodesRequest(pool=PRIV).SerializeToString()], auth),
        ("/galaxy.pool.v1.Discovery/Watch", [pb.WatchRequest(pool=PRIV).SerializeToString()],
         auth),
        ("/galaxy.pool.v1.NodeRegistry/HeartbeatStream",
         [pb.HeartbeatRequest(pool=PRIV, node_id="fz-h2").SerializeToString()] * 2, auth),
        ("/galaxy.pool.v1.Jobs/SubmitJob", [pb.SubmitJobRequest(job=pb.Job(
            pool=PRIV, specialization="developer")).SerializeToString()], auth),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", [b"\x3a\x00"], []),
        ("/no.such.Service/Method", [b""], []),
    ]


class Conn:
    """What one fuzzed connection has sent so far: streams opened, and the
    valid requests to draw from."""

    def __init__(self, rng, requests):
        self.rng = rng
        self.requests = requests
        self.next_sid = 1
        self.open = []

    def new_sid(self):
        sid = self.next_sid
        self.next_sid += 2
        self.open.append(sid)
        return sid

    def any_sid(self):
        r = self.rng
        return r.choice([0, 0, self.next_sid, r.randrange(2, 200, 2), MAX31, r.randrange(1 << 32),
                         r.randrange(1, 99, 2)] + self.open * 3)

    def junk(self, lo=0, hi=48):
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(lo, hi)))


def f_request(c):
    """A valid request: HEADERS, then its messages in DATA (END_STREAM mostly)."""
    path, msgs, md = c.rng.choice(c.requests)
    sid = c.new_sid()
    block = hpack_literal(grpc_headers(path, extra=md))
    if c.rng.random() < 0.1:
        return frame(HEADERS, END_HEADERS | END_STREAM, sid, block)
    body = b"".join(grpc_frame(m) for m in msgs)
    return frame(HEADERS, END_HEADERS, sid, block) + \
        frame(DATA, END_STREAM if c.rng.random() < 0.8 else 0, sid, body)


def f_data(c):
    r = c.rng
    body = grpc_frame(c.junk(), flag=r.choice([0, 0, 1, 2, 0x80]),
                      length=r.choice([None, None, 0, 2 ** 32 - 1, 5 << 20]))
    return frame(DATA, r.choice([0, END_STREAM, PADDED, 0xFF]), c.any_sid(), body)


def f_random(c):
    r = c.rng
    ftype = r.randrange(10) if r.random() < 0.7 else r.randrange(10, 256)
    return frame(ftype, r.getrandbits(8), c.any_sid(), c.junk())


def f_bad_length(c):
    r = c.rng
    payload = c.junk(0, 20)
    length = r.choice([0, max(len(payload) - 1, 0), len(payload) + 1, 16385, 2 ** 24 - 1])
    return frame(r.randrange(12), r.getrandbits(8), c.any_sid(), payload, length)


def f_oversize(c):
    """One frame past SETTINGS_MAX_FRAME_SIZE (16384), complete."""
    r = c.rng
    return frame(r.choice([DATA, HEADERS, CONTINUATION, SETTINGS, 200]), r.getrandbits(8),
                 r.choice([0, 1, c.next_sid]), b"\0" * r.randint(16385, 20000))


def f_continuation_flood(c):
    r = c.rng
    sid = c.new_sid()
    path, _, md = r.choice(c.requests)
    block = hpack_literal(grpc_headers(path, extra=md))
    out = frame(HEADERS, 0, sid, block[:r.randint(0, len(block))])
    n = r.choice([1, 7, 8, 9, 64, 400])
    piece = hpack_literal([("x-fz", "v" * r.randrange(40))]) if r.random() < 0.5 else c.junk()
    for i in range(n):
        last = i == n - 1 and r.random() < 0.5
        out += frame(CONTINUATION, END_HEADERS if last else r.choice([0, 0, 0xFB]),
                     sid if r.random() < 0.95 else c.any_sid(), piece)
    return out


def f_hpack_garbage(c):
    r = c.rng
    ok = hpack_literal(grpc_headers(CHECK))
    blocks = [
        c.junk(1, 64),
        b"\x80",                                        # index 0
        b"\xff\xff\xff\xff\xff\x0f",                   # an index far past the tables
        b"\xff" * 12,                                   # an integer that never ends
        b"\x3f\xe1\xff\xff\xff\x0f" + ok,              # table size update past the limit
        ok + b"\x20",                                   # a size update after a header
        b"\x00\x7f\xff\xff\xff\x0f" + b"a" * 10,       # a literal of ~2^28 bytes
        b"\x00\x84\xff\xff\xff\xff\x01a",              # Huffman with EOS in it
        b"\x40\x01a\x01b" * r.randint(1, 200),          # inserts into the dynamic table
        ok[:r.randrange(len(ok))],                       # cut short
        hpack_literal([(":method", "POST"), (":path", CHECK)]),          # no :scheme
        hpack_literal(grpc_headers(CHECK) + [(":path", "/x")]),           # two :path
        hpack_literal([("content-type", "application/grpc")] + grpc_headers(CHECK)),
        hpack_literal(grpc_headers(CHECK, extra=[("Upper", "x")])),
        hpack_literal(grpc_headers(CHECK, extra=[("x-a", "a\r\nb\0")])),
        hpack_literal(grpc_headers(CHECK, extra=[("connection", "keep-alive")])),
        hpack_literal(grpc_headers(CHECK, extra=[(":foo", "bar")])),
        hpack_literal(grpc_headers(CHECK, extra=[("content-length", "1")])),
        hpack_literal(grpc_headers("", extra=[("grpc-timeout", "99999999999S")])),
        hpack_literal(grpc_headers(CHECK, extra=[("authorization", "Bearer \xff\x00")])),
        hpack_literal(grpc_headers(CHECK, grpc_timeout="0n", encoding="gzip, x")),
        hpack_literal(grpc_headers("/" + "\xe9" * 3000)),
        hpack_literal([("x-big", "v" * 20000)] + grpc_headers(CHECK)),  # past the list size
    ]
    block = r.choice(blocks)
    flags = END_HEADERS | (END_STREAM if r.random() < 0.5 else 0)
    return frame(HEADERS, flags, c.new_sid() if r.random() < 0.8 else c.any_sid(), block) + \
        (frame(DATA, END_STREAM, c.next_sid - 2, grpc_frame(b"")) if r.random() < 0.5 else b"")


def f_priority(c):
    r = c.rng
    sid = c.any_sid()
    dep = r.choice([0, sid, MAX31, 2 ** 32 - 1, c.next_sid])
    payload = struct.pack(">IB", dep & 0xFFFFFFFF, r.choice([0, 255]))
    if r.random() < 0.2:
        payload = payload[:r.randrange(5)] if r.random() < 0.5 else payload + b"\0"
    if r.random() < 0.3:  # the same on a HEADERS frame's priority fields
        block = hpack_literal(grpc_headers(CHECK))
        return frame(HEADERS, PRIORITY_FLAG | END_HEADERS | END_STREAM, c.new_sid(),
                     payload + block)
    return frame(PRIORITY, r.getrandbits(8), sid, payload)


def f_rst_stream(c):
    r = c.rng
    code = r.choice([0, 1, 8, 0xD, 2 ** 32 - 1])
    payload = struct.pack(">I", code)
    if r.random() < 0.2:
        payload = payload[:3] if r.random() < 0.5 else payload + b"\0"
    return frame(RST_STREAM, 0, c.any_sid(), payload)


def f_window_update(c):
    r = c.rng
    inc = r.choice([0, 1, MAX31, 2 ** 31, 2 ** 32 - 1])
    payload = struct.pack(">I", inc)
    if r.random() < 0.2:
        payload = payload[:2] if r.random() < 0.5 else payload + b"\0\0"
    return frame(WINDOW_UPDATE, 0, c.any_sid(), payload) * r.choice([1, 1, 2, 3])


def f_settings(c):
    r = c.rng
    n = r.choice([0, 1, 3, 33, 200])
    entries = b"".join(struct.pack(">HI", r.choice([0, 1, 2, 3, 4, 5, 6, 8, 9, 0xFFFF]),
                                   r.choice([0, 1, 2, 16383, 16384, 2 ** 24, MAX31, 2 ** 31,
                                             2 ** 32 - 1]))
                       for _ in range(n))
    if r.random() < 0.2:
        entries += b"\0" * r.randint(1, 5)  # not a multiple of six
    flags = ACK if r.random() < 0.2 else 0
    return frame(SETTINGS, flags, 0 if r.random() < 0.8 else c.any_sid(), entries)


def f_ping(c):
    r = c.rng
    payload = b"\0" * r.choice([8, 8, 0, 7, 9, 64])
    return frame(PING, r.choice([0, ACK]), 0 if r.random() < 0.8 else c.any_sid(),
                 payload) * r.choice([1, 3, 20])


def f_goaway(c):
    r = c.rng
    payload = struct.pack(">II", r.choice([0, MAX31, 2 ** 32 - 1]), r.choice([0, 2, 99])) + \
        c.junk(0, 16)
    if r.random() < 0.2:
        payload = payload[:r.randrange(8)]
    return frame(GOAWAY, 0, 0 if r.random() < 0.8 else c.any_sid(), payload)


def f_padded(c):
    """PADDED with a pad length past (or right at) the payload."""
    r = c.rng
    ftype = r.choice([DATA, HEADERS])
    body = grpc_frame(b"") if ftype == DATA else hpack_literal(grpc_headers(CHECK))
    pad = r.choice([len(body) + 1, len(body), 255])
    sid = c.new_sid() if ftype == HEADERS else c.any_sid()
    flags = PADDED | END_STREAM | (END_HEADERS if ftype == HEADERS else 0)
    return frame(ftype, flags, sid, bytes([pad & 0xFF]) + body + b"\0" * r.randrange(3))


def f_push_promise(c):
    block = hpack_literal(grpc_headers(CHECK))
    return frame(PUSH_PROMISE, END_HEADERS, c.any_sid(),
                 struct.pack(">I", c.rng.choice([2, 4, 1])) + block)


FRAME_MAKERS = [f_request, f_request, f_request, f_data, f_random, f_random, f_bad_length,
                f_oversize, f_continuation_flood, f_hpack_garbage, f_hpack_garbage,
                f_priority, f_rst_stream, f_window_update, f_settings, f_ping, f_goaway,
                f_padded, f_push_promise]


def random_connection(rng, requests):
    """The preface, our SETTINGS, then 1..12 frames of any kind."""
    c = Conn(rng, requests)
    out = PREFACE + raw_frame(SETTINGS, 0, 0)
    for _ in range(rng.randint(1, 12)):
        out += rng.choice(FRAME_MAKERS)(c)
    return out


def valid_connection(rng, requests):
    """A valid connection's bytes: preface, SETTINGS, one to three requests
    (their HEADERS and DATA), and maybe a WINDOW_UPDATE and a PING."""
    c = Conn(rng, requests)
    out = PREFACE + raw_frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 20))
    for _ in range(rng.randint(1, 3)):
        path, msgs, md = rng.choice(requests)
        sid = c.new_sid()
        out += raw_frame(HEADERS, END_HEADERS, sid, hpack_literal(grpc_headers(path, extra=md)))
        out += raw_frame(DATA, END_STREAM, sid, b"".join(grpc_frame(m) for m in msgs))
    if rng.random() < 0.5:
        out += raw_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20))
    if rng.random() < 0.5:
        out += raw_frame(PING, 0, 0, b"fuzzping")
    return out


def mutate_stream(rng, data):
    """One to four byte-level mutations, mostly past the client preface."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        lo = len(PREFACE) if rng.random() < 0.9 else 0
        i = rng.randint(lo, max(lo, len(b) - 1))
        op = rng.randrange(6)
        if op == 0 and i < len(b):
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and i < len(b):
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.getrandbits(8)])
        elif op == 2:
            b[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 9)))
        elif op == 3:
            del b[i:i + rng.randint(1, 9)]
        elif op == 4:
            del b[i:]
        else:
            j = min(len(b), i + rng.randint(1, 64))
            b[j:j] = b[i:j] * rng.randint(1, 20)
    return bytes(b)


def exchange(addr, data, rng):
    """Sends @data on a new connection (in one to four writes) and reads what
    comes until the server closes or a short time passes (none at all, at
    times: closing at once exercises writes to a closed socket).
    @return (bytes received, how it ended)."""
    host, _, port = addr.rpartition(":")
    got = bytearray()
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 3)))
        try:
            for a, b in zip([0] + cuts, cuts + [len(data)]):
                if b > a:
                    s.sendall(data[a:b])
        except OSError:  # the server may close first, and may well
            return bytes(got), "closed while we sent"
        end = time.monotonic() + rng.choice([0, 0.05, 0.1])
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return bytes(got), "we closed"
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return bytes(got), "we closed"
            except OSError:
                return bytes(got), "reset by the server"
            if not chunk:
                return bytes(got), "closed by the server"
            got += chunk


def first_frame_is_settings(got):
    """The server's first frame (if it sent any) is its SETTINGS, on stream 0."""
    if len(got) < 9:
        return True
    length, ftype, flags, sid = struct.unpack(">I", b"\0" + got[:3])[0], got[3], got[4], \
        struct.unpack(">I", got[5:9])[0]
    return ftype == SETTINGS and flags & ACK == 0 and sid == 0 and length % 6 == 0


def fresh_check(addr):
    """A Health/Check on a new connection: (ok, what went wrong)."""
    try:
        with H2Client(addr, timeout=5) as c:
            r = c.call(CHECK, grpc_frame(b""), timeout=5)
        if r.status == 0 and r.messages == [SERVING]:
            return True, ""
        return False, repr(r)
    except (OSError, TimeoutError, ConnectionError) as e:
        return False, "%s: %s" % (type(e).__name__, e)


def run_h2(server, name, total, make_input):
    """@total connections of make_input(rng); after each, the server must be
    alive and answer a Health/Check on a fresh connection."""
    failures, budget, ends = Failures(), Budget(name), collections.Counter()
    watch = LogWatch(server)
    print("%s: seed %d, %d connections" % (name, SEED, total))
    for i in range(total):
        if budget.over(i, total) or failures.full():
            break
        rng = input_rng(name, i)
        data = make_input(rng)
        got, how = exchange(server.h2c, data, rng)
        ends[how] += 1
        wrong = None
        if not first_frame_is_settings(got):
            wrong = "first frame", "the server's first frame is not SETTINGS: " + \
                hexdump(got[:64])
        if server.alive() and wrong is None:
            ok, what = fresh_check(server.h2c)
            if not ok:
                wrong = "no answer", "a fresh Health/Check failed: " + what
        report = watch.new_report()  # after the check: the input has been handled
        if not server.alive():
            wrong = "crash", "galaxy-poold died:\n%s" % (report or "(no sanitizer report)")
        elif report:
            wrong = "sanitizer", "galaxy-poold reported:\n" + report
        if wrong:
            failures.add(wrong[0], "%s: seed %d input #%d (%d bytes): %s\n  input: %s"
                         % (name, SEED, i, len(data), wrong[1], hexdump(data)))
            if not server.alive():
                break
    print("%s: %s" % (name, dict(ends)))
    return failures


@pytest.fixture
def h2_server(make_server, pb, health_pb2):
    server = fuzz_server(make_server)
    server.requests = requests_for_h2(pb, health_pb2)
    yield server


def test_h2_random_frames(h2_server, pb, health_pb2):
    failures = run_h2(h2_server, "h2-frames", 6 * COUNT,
                      lambda rng: random_connection(rng, h2_server.requests))
    assert_outcome(h2_server, failures, pb, health_pb2)


def test_h2_mutated_valid_streams(h2_server, pb, health_pb2):
    failures = run_h2(h2_server, "h2-mutated", 3 * COUNT,
                      lambda rng: mutate_stream(rng, valid_connection(rng, h2_server.requests)))
    assert_outcome(h2_server, failures, pb, health_pb2)

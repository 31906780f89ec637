# SPDX-License-Identifier: MIT
"""gRPC server reflection (grpc.reflection.v1 and v1alpha), driven by our own
reflection client: list the services, fetch their files, build message classes
from the returned FileDescriptorProtos alone (a fresh descriptor pool, none of
the compiled _pb2 modules of the services called) and call methods with them;
dependencies that one stream already received are not sent again; bad and
oversized requests; many requests on one stream, and back-pressure when the
client does not read."""
import importlib
import queue
import types

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import wait_for

BASE_SERVICES = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                 "grpc.reflection.v1alpha.ServerReflection"}
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.fixture(scope="module")
def refl(protos):
    """The compiled reflection protos of both packages."""
    return types.SimpleNamespace(
        v1=importlib.import_module("grpc.reflection.v1.reflection_pb2"),
        v1alpha=importlib.import_module("grpc.reflection.v1alpha.reflection_pb2"))


class Session:
    """One ServerReflectionInfo stream: ask() sends a request and returns the
    response to it; send()/recv() do the halves."""

    def __init__(self, channel, pb, timeout=15, raw=False):
        self.pb = pb
        self.q = queue.Queue()
        self.pulled = 0
        package = pb.DESCRIPTOR.package
        serialize = (lambda b: b) if raw else pb.ServerReflectionRequest.SerializeToString
        stub = channel.stream_stream("/%s.ServerReflection/ServerReflectionInfo" % package,
                                     request_serializer=serialize,
                                     response_deserializer=pb.ServerReflectionResponse.FromString)
        self.responses = stub(self._requests(), timeout=timeout)

    def _requests(self):
        while True:
            item = self.q.get(timeout=20)
            if item is None:
                return
            self.pulled += 1
            yield item

    def send(self, req=None, **kw):
        self.q.put(req if req is not None else self.pb.ServerReflectionRequest(**kw))

    def recv(self):
        return next(self.responses)

    def ask(self, req=None, **kw):
        self.send(req, **kw)
        return self.recv()

    def close(self):
        """Half-closes; returns the responses that still came (normally none)."""
        self.q.put(None)
        return list(self.responses)


def services(session):
    """list_services: each name once, the standard services among them."""
    resp = session.ask(list_services="")
    assert resp.WhichOneof("message_response") == "list_services_response"
    names = [s.name for s in resp.list_services_response.service]
    assert len(names) == len(set(names)), names
    assert BASE_SERVICES <= set(names), names
    return names


def health_knows(channel, health_pb2, name):
    stub = channel.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                               response_deserializer=health_pb2.HealthCheckResponse.FromString)
    try:
        stub(health_pb2.HealthCheckRequest(service=name), timeout=5)
        return True
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
        return False


def file_names(resp):
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    return [descriptor_pb2.FileDescriptorProto.FromString(b).name
            for b in resp.file_descriptor_response.file_descriptor_proto]


def error_of(resp):
    assert resp.WhichOneof("message_response") == "error_response", resp
    return resp.error_response.error_code, resp.error_response.error_message


class DynamicPool:
    """Message classes built only from what reflection returned."""

    def __init__(self):
        self.pool = descriptor_pool.DescriptorPool()
        self.protos = {}
        self.added = set()

    def take(self, resp):
        for b in resp.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(b)
            self.protos.setdefault(fdp.name, fdp)

    def _add(self, name):
        if name in self.added:
            return
        for dep in self.protos[name].dependency:
            self._add(dep)
        self.pool.Add(self.protos[name])
        self.added.add(name)

    def method(self, full_service, method):
        for name in list(self.protos):
            self._add(name)
        m = self.pool.FindServiceByName(full_service).methods_by_name[method]
        return self.cls(m.input_type), self.cls(m.output_type)

    @staticmethod
    def cls(desc):
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


def discover(channel, pb):
    """Lists the services and fetches each one's file: {service: DynamicPool}."""
    s = Session(channel, pb)
    dyn = DynamicPool()
    names = services(s)
    for name in names:
        resp = s.ask(file_containing_symbol=name)
        dyn.take(resp)
    assert s.close() == []
    return names, dyn


def call_unary(channel, dyn, path, fields):
    """Calls /pkg.Service/Method with a request built from reflection alone."""
    svc, method = path.strip("/").split("/")
    req_cls, resp_cls = dyn.method(svc, method)
    stub = channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                               response_deserializer=resp_cls.FromString)
    return stub(req_cls(**fields), timeout=5)


# ---------------------------------------------------------------- listing

@pytest.mark.parametrize("version,transport", [("v1", "h2c"), ("v1alpha", "h2c"), ("v1", "tls")])
def test_list_services(server, refl, health_pb2, version, transport):
    """Exactly the services that modules serve (those Health knows), whatever
    else the descriptor set describes."""
    with server.channel(transport) as ch:
        s = Session(ch, getattr(refl, version))
        names = services(s)
        assert s.close() == []
        for name in names:
            assert health_knows(ch, health_pb2, name), name
        for name in ("grpc.testing.TestService", "galaxy.pool.v1.NodeRegistry",
                     "galaxy.pool.v1.Discovery", "galaxy.pool.v1.Jobs"):
            assert (name in names) == health_knows(ch, health_pb2, name), name
        assert "grpc.testing.TestService" not in names


def test_echoes_host_and_request(server, refl):
    pb = refl.v1
    with server.channel() as ch:
        s = Session(ch, pb)
        for req in (pb.ServerReflectionRequest(host="galaxy.example", list_services="*"),
                    pb.ServerReflectionRequest(host="h", file_containing_symbol="no.Such"),
                    pb.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto")):
            resp = s.ask(req)
            assert resp.valid_host == req.host
            assert resp.original_request == req
        assert s.close() == []


# ---------------------------------------------------------------- dynamic calls

def test_health_check_built_from_reflection(server, refl):
    with server.channel() as ch:
        names, dyn = discover(ch, refl.v1)
        assert "grpc.health.v1.Health" in names
        resp = call_unary(ch, dyn, "/grpc.health.v1.Health/Check", {"service": ""})
        status = resp.DESCRIPTOR.fields_by_name["status"].enum_type.values_by_number[resp.status]
        assert status.name == "SERVING"
        # every listed service resolves to a file that defines it
        for name in names:
            assert dyn.pool.FindServiceByName(name).full_name == name


def test_interop_listed_and_callable(make_server, refl):
    s = make_server(modules=("interop",), tls=False)
    with s.channel() as ch:
        names, dyn = discover(ch, refl.v1alpha)
        assert "grpc.testing.TestService" in names
        resp = call_unary(ch, dyn, "/grpc.testing.TestService/UnaryCall", {"response_size": 10})
        assert len(resp.payload.body) == 10
        resp = call_unary(ch, dyn, "/grpc.testing.TestService/EmptyCall", {})
        assert resp.ByteSize() == 0


# ---------------------------------------------------------------- lookups

@pytest.mark.parametrize("symbol,file", [
    ("grpc.health.v1.Health", "grpc/health/v1/health.proto"),
    (".grpc.health.v1.Health", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.HealthCheckRequest", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.HealthCheckRequest.service", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
    ("grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"),
    ("grpc.reflection.v1.ServerReflectionRequest.message_request",
     "grpc/reflection/v1/reflection.proto"),
    ("grpc.reflection.v1alpha.ErrorResponse", "grpc/reflection/v1alpha/reflection.proto"),
    # in the set though no loaded module serves it yet
    ("galaxy.pool.v1.Node", "galaxy/pool/v1/pool.proto"),
    ("galaxy.pool.v1.NodeRegistry.Register", "galaxy/pool/v1/pool.proto"),
    ("grpc.testing.SimpleRequest", "grpc/testing/messages.proto"),
])
def test_file_containing_symbol(server, refl, symbol, file):
    with server.channel() as ch:
        s = Session(ch, refl.v1)
        assert file_names(s.ask(file_containing_symbol=symbol))[0] == file
        assert s.close() == []


def test_file_by_filename_and_not_found(server, refl):
    with server.channel() as ch:
        s = Session(ch, refl.v1)
        resp = s.ask(file_by_filename="grpc/health/v1/health.proto")
        assert file_names(resp) == ["grpc/health/v1/health.proto"]
        fdp = descriptor_pb2.FileDescriptorProto.FromString(
            resp.file_descriptor_response.file_descriptor_proto[0])
        assert fdp.package == "grpc.health.v1"
        assert [m.name for m in fdp.service[0].method] == ["Check", "Watch"]
        for req in ({"file_by_filename": "no/such.proto"},
                    {"file_containing_symbol": "grpc.health.v1.NoSuch"},
                    {"file_containing_symbol": "grpc.health.v1.Health.NoSuchMethod"},
                    {"file_containing_symbol": ""},
                    {"file_containing_extension": refl.v1.ExtensionRequest(
                        containing_type="grpc.health.v1.HealthCheckRequest", extension_number=100)},
                    {"file_containing_extension": refl.v1.ExtensionRequest(
                        containing_type="no.Such", extension_number=1)},
                    {"all_extension_numbers_of_type": "no.Such"},
                    {"all_extension_numbers_of_type": "grpc.health.v1.Health"}):
            code, message = error_of(s.ask(**req))
            assert code == NOT_FOUND, (req, message)
            assert message
        resp = s.ask(all_extension_numbers_of_type=".grpc.health.v1.HealthCheckRequest")
        assert resp.WhichOneof("message_response") == "all_extension_numbers_response"
        assert resp.all_extension_numbers_response.base_type_name == \
            "grpc.health.v1.HealthCheckRequest"
        assert list(resp.all_extension_numbers_response.extension_number) == []
        assert s.close() == []


def test_v1_and_v1alpha_send_the_same_files(server, refl):
    with server.channel() as ch:
        got = []
        for pb in (refl.v1, refl.v1alpha):
            s = Session(ch, pb)
            resp = s.ask(file_containing_symbol="grpc.reflection.v1alpha.ServerReflection")
            got.append(list(resp.file_descriptor_response.file_descriptor_proto))
            assert s.close() == []
        assert got[0] == got[1] and len(got[0]) == 1


# ---------------------------------------------------------------- dependencies

def test_dependencies_not_sent_twice_on_a_stream(make_server, refl):
    test, empty, messages = ("grpc/testing/test.proto", "grpc/testing/empty.proto",
                             "grpc/testing/messages.proto")
    s = make_server(modules=("interop",), tls=False)
    with s.channel() as ch:
        a = Session(ch, refl.v1)
        assert file_names(a.ask(file_containing_symbol="grpc.testing.TestService")) == \
            [test, empty, messages]
        # what was asked for always comes; its imports only the first time
        assert file_names(a.ask(file_by_filename=messages)) == [messages]
        assert file_names(a.ask(file_containing_symbol="grpc.testing.TestService.UnaryCall")) == \
            [test]
        assert a.close() == []
        # a new stream starts afresh
        b = Session(ch, refl.v1alpha)
        assert file_names(b.ask(file_by_filename=messages)) == [messages]
        assert file_names(b.ask(file_by_filename=test)) == [test, empty]
        assert b.close() == []


# ---------------------------------------------------------------- bad requests

def test_invalid_requests_keep_the_stream(server, refl):
    pb = refl.v1
    with server.channel() as ch:
        s = Session(ch, pb)
        code, message = error_of(s.ask())
        assert code == INVALID_ARGUMENT and "message_request" in message
        assert error_of(s.ask(host="only.a.host"))[0] == INVALID_ARGUMENT
        code, message = error_of(s.ask(file_containing_symbol="a" * 2000))
        assert code == INVALID_ARGUMENT and "file_containing_symbol" in message
        assert error_of(s.ask(file_by_filename="x" * 1025))[0] == INVALID_ARGUMENT
        services(s)
        assert s.close() == []
    with server.channel() as ch:
        # a field of the oneof this server does not know (number 8), then a good request
        raw = Session(ch, pb, raw=True)
        resp = raw.ask(b"\x42\x03abc")
        assert error_of(resp)[0] == INVALID_ARGUMENT
        resp = raw.ask(pb.ServerReflectionRequest(list_services="").SerializeToString())
        assert resp.WhichOneof("message_response") == "list_services_response"
        # bytes that are no ServerReflectionRequest end the stream
        raw.send(b"\x0a\xff")
        with pytest.raises(grpc.RpcError) as e:
            raw.recv()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def ended_by(server, pb, raw):
    """Sends a good request, then the bytes @raw, on one stream: the stream must answer
    the first and end with INVALID_ARGUMENT at the second.  @return its message"""
    with server.channel() as ch:
        s = Session(ch, pb, raw=True)
        resp = s.ask(pb.ServerReflectionRequest(list_services="").SerializeToString())
        assert resp.WhichOneof("message_response") == "list_services_response"
        s.send(raw)
        with pytest.raises(grpc.RpcError) as e:
            s.recv()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return e.value.details()


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize("raw,field", [
    (b"\x22\x01\xff", "file_containing_symbol"),
    (b"\x1a\x03\xed\xa0\x80", "file_by_filename"),
    (b"\x2a\x04\x0a\x02\xc0\xaf", "file_containing_extension.containing_type"),
    (b"\x32\x01\x80", "all_extension_numbers_of_type"),
    (b"\x3a\x01\xfe", "list_services"),
    (b"\x0a\x01\xff\x3a\x00", "host"),
], ids=["symbol", "filename", "extension", "numbers", "list", "host"])
def test_string_not_utf8_ends_the_stream(server, refl, version, raw, field):
    """A response echoes its request: with a string that is not UTF-8 in it, no client
    could decode the answer.  The stream ends with INVALID_ARGUMENT naming the field
    (as a request that does not decode would), after the answers before it."""
    pb = getattr(refl, version)
    assert ended_by(server, pb, raw) == field + ": not valid UTF-8"


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize("nested", [False, True], ids=["top", "nested"])
def test_field_number_out_of_range_ends_the_stream(server, refl, version, nested):
    """protobuf-c keeps a field numbered 2^29 (past the largest, 2^29 - 1) as unknown;
    echoed in original_request, it would make the response undecodable.  Such a
    request does not decode, as for every other parser."""
    pb = getattr(refl, version)
    huge = b"\x82\x80\x80\x80\x10\x02hi"  # field 2^29, length-delimited
    if nested:
        ext = pb.ExtensionRequest(containing_type="galaxy.pool.v1.Node",
                                  extension_number=5).SerializeToString() + huge
        raw = b"\x2a" + bytes([len(ext)]) + ext
    else:
        raw = pb.ServerReflectionRequest(list_services="").SerializeToString() + huge
    assert "field number" in ended_by(server, pb, raw)


def test_oversized_request_ends_the_stream(server, refl):
    with server.channel() as ch:
        s = Session(ch, refl.v1alpha)
        services(s)
        s.send(host="h" * 20000, list_services="")
        with pytest.raises(grpc.RpcError) as e:
            s.recv()
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit" in e.value.details()


# ---------------------------------------------------------------- many requests

def test_many_requests_on_one_stream(server, refl):
    pb = refl.v1
    kinds = [{"list_services": ""},
             {"file_containing_symbol": "grpc.health.v1.HealthCheckResponse"},
             {"file_by_filename": "galaxy/pool/v1/pool.proto"},
             {"file_containing_symbol": "no.Such"},
             {}]
    with server.channel() as ch:
        s = Session(ch, pb, timeout=30)
        reqs = [pb.ServerReflectionRequest(host=str(i), **kinds[i % len(kinds)])
                for i in range(1000)]
        for r in reqs:  # all at once: the answers come in order
            s.send(r)
        for r in reqs:
            resp = s.recv()
            assert resp.original_request == r
        assert s.close() == []


def test_requests_per_stream_are_bounded(server, refl):
    pb = refl.v1
    with server.channel() as ch:
        s = Session(ch, pb, timeout=30)
        req = pb.ServerReflectionRequest(file_containing_symbol="no.Such")
        for _ in range(10001):
            s.send(req)
        got = 0
        with pytest.raises(grpc.RpcError) as e:
            while True:
                s.recv()
                got += 1
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert got == 10000


def test_full_send_buffer_stops_reading_requests(make_server, refl):
    """The client does not read: the server stops taking requests once its
    send buffer is full, so flow control holds the client back; when it reads
    again, every request is answered, in order."""
    conf = ("server:\n  log_level: info\nlimits:\n  send_buffer_bytes: 16384\n"
            "  initial_window_bytes: 65535\n  connection_window_bytes: 65535\n")
    s = make_server(config=conf, tls=False)
    pb = refl.v1
    n = 300
    # ~8 KiB each, echoed in each answer with pool.proto
    reqs = [pb.ServerReflectionRequest(host="%d-%s" % (i, "x" * 8000),
                                       file_by_filename="galaxy/pool/v1/pool.proto")
            for i in range(n)]
    # no BDP probing: the client's receive window stays at 64 KiB
    with grpc.insecure_channel(s.h2c, options=[("grpc.http2.bdp_probe", 0)]) as ch:
        sess = Session(ch, pb, timeout=30)
        for r in reqs:
            sess.send(r)
        # a server that kept reading would take them all within a second
        assert not wait_for(lambda: sess.pulled >= n // 2, timeout=1.0), \
            "the server kept reading: %d of %d requests taken" % (sess.pulled, n)
        for r in reqs:
            assert sess.recv().original_request.host == r.host
        assert sess.close() == []

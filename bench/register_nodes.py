#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Registers benchmark nodes through galaxy.pool.v1.NodeRegistry/Register and
writes the h2load request body for Heartbeat.

Works against any server of that API (galaxy-poold, bench/ref/ref_server, ...),
over h2c.  Nodes are n0..n{N-1} in one pool (default mainnet), each with the
specialization "bench"; at most --concurrency calls are in flight, spread over
--channels HTTP/2 connections, and the whole run is bounded by --deadline.

  register_nodes.py --target 127.0.0.1:50051 --count 100000 \\
      --tokens tokens.txt --body hb.bin --node n42
  register_nodes.py --body hb.bin --node n42 --token bench-token   # no RPC
  register_nodes.py --target ... --node n42 --token T --check      # one Heartbeat

--tokens writes "pool node_id lease_token" per line.  --body writes one framed
gRPC message (5-byte prefix + serialized HeartbeatRequest) for --node, with the
token from --token or from this run's registrations.  --check sends one Heartbeat
with that body's request and exits non-zero unless it is OK and HEALTHY.
Exit status: 0 if every call was OK, 1 otherwise, 2 on usage errors.
"""

import argparse
import atexit
import collections
import importlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTER = "/galaxy.pool.v1.NodeRegistry/Register"
HEARTBEAT = "/galaxy.pool.v1.NodeRegistry/Heartbeat"


def load_pool_pb2(proto_dir):
    """Compiles pool.proto with protoc into a temporary dir and imports it."""
    out = tempfile.mkdtemp(prefix="gx-bench-pb-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out,
                    os.path.join(proto_dir, "galaxy/pool/v1/pool.proto")], check=True)
    sys.path.insert(0, out)
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


def frame(msg):
    data = msg.SerializeToString()
    return b"\x00" + struct.pack(">I", len(data)) + data


def heartbeat_request(pb, args, token):
    return pb.HeartbeatRequest(pool=args.pool, node_id=args.node, lease_token=token,
                               load=0.5, running_jobs=1)


def bench_node(pb, args, i):
    """Node i of this script: specialization "bench", some capacity."""
    return pb.Node(id="%s%d" % (args.prefix, i), pool=args.pool, specializations=["bench"],
                   address="127.0.0.1:%d" % (20000 + i % 40000), version="bench",
                   capacity=pb.Resources(cpu_millis=4000, memory_bytes=8 << 30, max_jobs=4),
                   labels={"bench": "1"})


def register_all(pb, grpc, args, count, make_node, who="register_nodes"):
    """Registers make_node(i) for i in 0..count-1 over args.channels connections,
    args.concurrency calls in flight, all bounded by args.deadline; prints a
    summary as @who.  @return {node_id: token} and a Counter of codes."""
    channels = [grpc.insecure_channel(args.target) for _ in range(args.channels)]
    stubs = [ch.unary_unary(REGISTER,
                            request_serializer=pb.RegisterRequest.SerializeToString,
                            response_deserializer=pb.RegisterResponse.FromString)
             for ch in channels]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=args.call_timeout)

    tokens = {}
    codes = collections.Counter()
    first_error = None
    inflight = collections.deque()
    deadline = time.monotonic() + args.deadline
    t0 = time.monotonic()

    def reap(item):
        nonlocal first_error
        node_id, fut = item
        try:
            resp = fut.result()
            tokens[node_id] = resp.lease_token
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
            if first_error is None:
                first_error = "%s: %s %s" % (node_id, e.code().name, e.details())

    for i in range(count):
        if time.monotonic() > deadline:
            print("%s: deadline of %ss reached after %d Register calls" % (who, args.deadline, i),
                  file=sys.stderr)
            codes["CLIENT_DEADLINE"] += count - i
            break
        while len(inflight) >= args.concurrency:
            reap(inflight.popleft())
        node = make_node(i)
        fut = stubs[i % len(stubs)].future(pb.RegisterRequest(node=node),
                                            timeout=args.call_timeout)
        inflight.append((node.id, fut))
    while inflight:
        reap(inflight.popleft())
    secs = time.monotonic() - t0
    for ch in channels:
        ch.close()
    print("%s: %d Register calls in %.2f s (%.0f/s), %s" %
          (who, sum(codes.values()), secs, sum(codes.values()) / secs if secs > 0 else 0,
           " ".join("%s=%d" % kv for kv in sorted(codes.items()))), file=sys.stderr)
    if first_error:
        print("%s: first error: %s" % (who, first_error), file=sys.stderr)
    return tokens, codes


def check_heartbeat(pb, grpc, args, token):
    with grpc.insecure_channel(args.target) as ch:
        call = ch.unary_unary(HEARTBEAT,
                              request_serializer=pb.HeartbeatRequest.SerializeToString,
                              response_deserializer=pb.HeartbeatResponse.FromString)
        try:
            resp = call(heartbeat_request(pb, args, token), timeout=args.call_timeout)
        except grpc.RpcError as e:
            print("register_nodes: check Heartbeat %s/%s: %s %s" %
                  (args.pool, args.node, e.code().name, e.details()), file=sys.stderr)
            return False
    ok = resp.state == pb.NODE_STATE_HEALTHY
    print("register_nodes: check Heartbeat %s/%s: OK state=%s interval=%d" %
          (args.pool, args.node, pb.NodeState.Name(resp.state), resp.heartbeat_interval_ms),
          file=sys.stderr)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", help="HOST:PORT of the server's h2c listener")
    ap.add_argument("--count", type=int, default=0, help="nodes to register (default 0)")
    ap.add_argument("--pool", default="mainnet")
    ap.add_argument("--prefix", default="n", help="node id prefix (ids are PREFIX0..)")
    ap.add_argument("--concurrency", type=int, default=256, help="calls in flight (1..4096)")
    ap.add_argument("--channels", type=int, default=4, help="HTTP/2 connections (1..64)")
    ap.add_argument("--call-timeout", type=float, default=30.0, help="seconds per call")
    ap.add_argument("--deadline", type=float, default=600.0,
                    help="seconds for all registrations together")
    ap.add_argument("--tokens", help="write 'pool node_id lease_token' lines here")
    ap.add_argument("--node", default="n42", help="node of --body and --check")
    ap.add_argument("--token", help="lease token of --node (default: from this run)")
    ap.add_argument("--body", help="write the framed HeartbeatRequest for h2load here")
    ap.add_argument("--check", action="store_true", help="send one Heartbeat for --node")
    ap.add_argument("--proto-dir", default=os.path.join(SRCDIR, "proto"))
    args = ap.parse_args()
    if not 1 <= args.concurrency <= 4096 or not 1 <= args.channels <= 64 or args.count < 0:
        ap.error("--concurrency 1..4096, --channels 1..64, --count >= 0")
    if (args.count or args.check) and not args.target:
        ap.error("--count and --check need --target")

    pb = load_pool_pb2(args.proto_dir)
    ok = True
    tokens = {}
    if args.count:
        import grpc
        tokens, codes = register_all(pb, grpc, args, args.count,
                                     lambda i: bench_node(pb, args, i))
        ok = set(codes) == {"OK"}
        if args.tokens:
            with open(args.tokens, "w") as f:
                for node_id, tok in tokens.items():
                    f.write("%s %s %s\n" % (args.pool, node_id, tok))

    token = args.token if args.token is not None else tokens.get(args.node)
    if (args.body or args.check) and token is None:
        print("register_nodes: no lease token for %s/%s (give --token or register it)" %
              (args.pool, args.node), file=sys.stderr)
        return 1
    if args.body:
        with open(args.body, "wb") as f:
            f.write(frame(heartbeat_request(pb, args, token)))
    if args.check:
        import grpc
        ok = check_heartbeat(pb, grpc, args, token) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

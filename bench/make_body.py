#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the request templates of the Register benchmark for bench/gx_load.

--register FILE: one serialized galaxy.pool.v1.RegisterRequest (no gRPC prefix)
for pool mainnet, node id "b-@@@@@@@@", specialization "bench", a few labels,
an address, a version and a capacity.  gx_load replaces "@@@@@@@@" by a
zero-padded counter per request, so every Register names a distinct node and
every body has the same size.

--put FILE: one serialized etcdserverpb.PutRequest {bytes key = 1; bytes value
= 2;} with key "b-@@@@@@@@" and, as the value, the very bytes of the Register
body above (so etcd stores the same payload as galaxy-poold; its placeholder is
replaced by the same counter as the key).  Encoded by hand: two length-delimited
fields.

--pad N adds a label "pad" of N bytes to the node, to try bigger records.
Prints the sizes.  Exit status 0, or 2 on usage errors.

  make_body.py --register /tmp/reg.bin --put /tmp/put.bin
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import register_nodes  # noqa: E402  (compiles pool.proto with protoc)

PLACEHOLDER = b"@@@@@@@@"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def register_body(pb, pad):
    labels = {"bench": "1", "zone": "local-a", "arch": "x86_64"}
    if pad:
        labels["pad"] = "p" * pad
    node = pb.Node(id="b-" + PLACEHOLDER.decode(), pool="mainnet", specializations=["bench"],
                   labels=labels, address="127.0.0.1:20000", version="bench-1.0",
                   capacity=pb.Resources(cpu_millis=4000, memory_bytes=8 << 30, max_jobs=4))
    data = pb.RegisterRequest(node=node).SerializeToString()
    if data.count(PLACEHOLDER) != 1:
        raise SystemExit("make_body: the placeholder must appear exactly once")
    return data


def put_body(value):
    return field_bytes(1, b"b-" + PLACEHOLDER) + field_bytes(2, value)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--register", help="write the RegisterRequest template here")
    ap.add_argument("--put", help="write the etcd PutRequest template here")
    ap.add_argument("--pad", type=int, default=0, help="bytes of an extra label (0..4096)")
    ap.add_argument("--proto-dir", default=os.path.join(register_nodes.SRCDIR, "proto"))
    args = ap.parse_args()
    if not 0 <= args.pad <= 4096 or not (args.register or args.put):
        ap.error("give --register and/or --put; --pad 0..4096")
    pb = register_nodes.load_pool_pb2(args.proto_dir)
    reg = register_body(pb, args.pad)
    if args.register:
        with open(args.register, "wb") as f:
            f.write(reg)
    put = put_body(reg)
    if args.put:
        with open(args.put, "wb") as f:
            f.write(put)
    print("make_body: RegisterRequest %d bytes; PutRequest %d bytes (key %d, value %d)" %
          (len(reg), len(put), len(b"b-" + PLACEHOLDER), len(reg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the Register template of the memory benchmark (bench/memory.sh) for
bench/gx_load and prints the sizes the script needs.

One serialized galaxy.pool.v1.RegisterRequest (no gRPC prefix) for pool
mainnet with a fixed, realistic node shape: id "m-@@@@@@@@" (gx_load replaces
the placeholder by a zero-padded counter per request, so every node is distinct
and every body has the same size), two specializations, four labels, an
address, a version and a capacity.  No lease token: each Register makes a new
node.

Prints one line of key=value pairs, parsed by memory.sh:

  label_bytes=60 labels=4 id_bytes=10 body_bytes=...

label_bytes is the sum of the label keys' and values' lengths: the "labels' own
bytes" that the memory target (issue 3: < 1 KiB per node beyond them) leaves
out.  Exit status 0, or 2 on usage errors.

  memory_body.py --out /tmp/mem.body
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import register_nodes  # noqa: E402  (compiles pool.proto with protoc)

PLACEHOLDER = "@@@@@@@@"
NODE_ID = "m-" + PLACEHOLDER
SPECIALIZATIONS = ["inference", "batch"]
LABELS = {"region": "us-east-2", "zone": "us-east-2c", "arch": "aarch64",
          "instance": "c7gn.4xlarge"}
ADDRESS = "10.20.30.40:7443"
VERSION = "2.14.1"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="write the RegisterRequest template here")
    ap.add_argument("--proto-dir", default=os.path.join(register_nodes.SRCDIR, "proto"))
    args = ap.parse_args()
    pb = register_nodes.load_pool_pb2(args.proto_dir)
    node = pb.Node(id=NODE_ID, pool="mainnet", specializations=SPECIALIZATIONS, labels=LABELS,
                   address=ADDRESS, version=VERSION,
                   capacity=pb.Resources(cpu_millis=16000, memory_bytes=32 << 30, max_jobs=8))
    data = pb.RegisterRequest(node=node).SerializeToString()
    if data.count(PLACEHOLDER.encode()) != 1:
        raise SystemExit("memory_body: the placeholder must appear exactly once")
    with open(args.out, "wb") as f:
        f.write(data)
    label_bytes = sum(len(k) + len(v) for k, v in LABELS.items())
    print("label_bytes=%d labels=%d id_bytes=%d body_bytes=%d" %
          (label_bytes, len(LABELS), len(NODE_ID), len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

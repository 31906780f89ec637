#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Counts the nodes of one pool whose id starts with a prefix, through
galaxy.pool.v1.Discovery/ListNodes (pages of 1000), and prints the number.

Used by bench/register.sh after the Register runs, against a galaxy-poold
restarted on the same data directory after SIGKILL: the count is then what the
store holds, and must equal the registrations the server acknowledged.
Bounded: --deadline seconds in all and at most 100,000 pages.

  count_nodes.py --target 127.0.0.1:50051 [--pool mainnet] [--prefix b-]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import register_nodes  # noqa: E402

LIST = "/galaxy.pool.v1.Discovery/ListNodes"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="HOST:PORT of the h2c listener")
    ap.add_argument("--pool", default="mainnet")
    ap.add_argument("--prefix", default="b-")
    ap.add_argument("--deadline", type=float, default=120.0)
    ap.add_argument("--proto-dir", default=os.path.join(register_nodes.SRCDIR, "proto"))
    args = ap.parse_args()
    pb = register_nodes.load_pool_pb2(args.proto_dir)
    import grpc

    end = time.monotonic() + args.deadline
    count = total = 0
    token = ""
    with grpc.insecure_channel(args.target) as ch:
        call = ch.unary_unary(LIST, request_serializer=pb.ListNodesRequest.SerializeToString,
                              response_deserializer=pb.ListNodesResponse.FromString)
        for _ in range(100000):
            left = end - time.monotonic()
            if left <= 0:
                print("count_nodes: deadline reached", file=sys.stderr)
                return 1
            resp = call(pb.ListNodesRequest(pool=args.pool, page_size=1000, page_token=token),
                        timeout=left)
            total += len(resp.nodes)
            count += sum(1 for n in resp.nodes if n.id.startswith(args.prefix))
            token = resp.next_page_token
            if not token:
                break
        else:
            print("count_nodes: too many pages", file=sys.stderr)
            return 1
    print(count)
    print("count_nodes: %d nodes in pool %s, %d with prefix %r" %
          (total, args.pool, count, args.prefix), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Prepares a galaxy-poold for bench/jobs.sh: checks the pool, registers the
nodes, checks that they can take jobs, and writes the SubmitJob bodies.

Nodes n00000..n{N-1} of one pool, node i with the single specialization
"spec-{i mod S}" (N/S nodes per specialization), capacity zero (unlimited),
registered through galaxy.pool.v1.NodeRegistry/Register with at most
--concurrency calls in flight over --channels HTTP/2 connections, the whole
registration bounded by --deadline.  Then, before any job exists:

- GetPool: the pool must be public, have routing policy --policy and count N
  nodes;
- ListNodes per specialization (HEALTHY only, pages of 1000): N/S each;
- ExplainJob per specialization (routes as SubmitJob would, stores nothing;
  it judges at most the pool's first 1000 nodes): a node chosen, and no node
  refused for any other reason than lacking the specialization.

--bodies DIR writes DIR/spec-{k}.body for k in 0..S-1: one serialized
SubmitJobRequest (no gRPC prefix) for pool --pool, specialization spec-{k},
routing_key "k-@@@@@@@@" (bench/gx_load numbers every request there, so the
hash policy sees distinct keys) and an 8-byte payload.  Prints the sizes.

  jobs_setup.py --target 127.0.0.1:PORT --pool jobs --policy p2c \\
      --nodes 10000 --specs 10 --bodies /tmp/bodies

Exit status: 0 if every call was OK and every check passed, 1 otherwise, 2 on
usage errors.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import register_nodes  # noqa: E402  (compiles pool.proto with protoc)

PLACEHOLDER = "@@@@@@@@"
PFX = "/galaxy.pool.v1."


def spec_name(k):
    return "spec-%d" % k


def stub(grpc, ch, method, req_cls, resp_cls):
    return ch.unary_unary(PFX + method, request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)


def register(pb, grpc, args):
    """Registers the nodes; @return a Counter of status codes."""
    def node(i):
        return pb.Node(id="n%05d" % i, pool=args.pool, specializations=[spec_name(i % args.specs)],
                       address="127.0.0.1:%d" % (20000 + i % 40000), version="bench",
                       capacity=pb.Resources(), labels={"bench": "jobs"})

    return register_nodes.register_all(pb, grpc, args, args.nodes, node, "jobs_setup")[1]


def check_pool(pb, grpc, ch, args, want_nodes):
    get = stub(grpc, ch, "PoolAdmin/GetPool", pb.GetPoolRequest, pb.Pool)
    p = get(pb.GetPoolRequest(name=args.pool), timeout=args.call_timeout)
    policy = p.routing_policy or "least_loaded"
    ok = (policy == args.policy and p.visibility == pb.VISIBILITY_PUBLIC and
          p.node_count == want_nodes)
    print("jobs_setup: pool %s: %s, routing_policy %s, heartbeat_interval_ms %d, "
          "node_ttl_ms %d, node_count %d%s" %
          (p.name, pb.Visibility.Name(p.visibility), policy, p.heartbeat_interval_ms,
           p.node_ttl_ms, p.node_count,
           "" if ok else " (want public, %s, %d nodes)" % (args.policy, want_nodes)),
          file=sys.stderr)
    return ok


def count_healthy(pb, grpc, ch, args, spec):
    """HEALTHY nodes of @p spec, through ListNodes (bounded number of pages)."""
    ls = stub(grpc, ch, "Discovery/ListNodes", pb.ListNodesRequest, pb.ListNodesResponse)
    token, n = "", 0
    for _ in range(args.nodes // 1000 + 2):
        r = ls(pb.ListNodesRequest(pool=args.pool, specialization=spec,
                                   states=[pb.NODE_STATE_HEALTHY], page_size=1000,
                                   page_token=token), timeout=args.call_timeout)
        n += len(r.nodes)
        token = r.next_page_token
        if not token:
            return n
    return -1


def check_nodes(pb, grpc, args):
    per_spec = args.nodes // args.specs
    ok = True
    with grpc.insecure_channel(args.target) as ch:
        ok = check_pool(pb, grpc, ch, args, args.nodes)
        explain = stub(grpc, ch, "Jobs/ExplainJob", pb.SubmitJobRequest, pb.ExplainJobResponse)
        for k in range(args.specs):
            healthy = count_healthy(pb, grpc, ch, args, spec_name(k))
            r = explain(pb.SubmitJobRequest(job=job(pb, args, k)), timeout=args.call_timeout)
            eligible = sum(1 for v in r.verdicts if v.eligible)
            # ExplainJob judges at most the pool's first 1000 nodes, of every specialization
            other = [v for v in r.verdicts if not v.eligible and
                     not all("specialization" in why for why in v.reasons)]
            good = (healthy == per_spec and eligible > 0 and not other and
                    r.chosen_node_id != "")
            ok = ok and good
            if not good or k == 0:
                print("jobs_setup: %s: %d HEALTHY nodes; ExplainJob: %d verdicts, %d eligible, "
                      "%d refused for another reason than the specialization%s, chose %r%s" %
                      (spec_name(k), healthy, len(r.verdicts), eligible, len(other),
                       " (%s: %s)" % (other[0].node_id, "; ".join(other[0].reasons))
                       if other else "", r.chosen_node_id,
                       "" if good else " (want %d HEALTHY, none refused otherwise, a choice)" %
                       per_spec), file=sys.stderr)
    return ok


def job(pb, args, k):
    return pb.Job(pool=args.pool, specialization=spec_name(k), routing_key="k-" + PLACEHOLDER,
                  payload=b"benchjob")


def write_bodies(pb, args):
    os.makedirs(args.bodies, exist_ok=True)
    for k in range(args.specs):
        data = pb.SubmitJobRequest(job=job(pb, args, k)).SerializeToString()
        if data.count(PLACEHOLDER.encode()) != 1:
            raise SystemExit("jobs_setup: the placeholder must appear exactly once")
        with open(os.path.join(args.bodies, spec_name(k) + ".body"), "wb") as f:
            f.write(data)
    print("jobs_setup: %d SubmitJobRequest bodies of %d bytes in %s" %
          (args.specs, len(data), args.bodies), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", help="HOST:PORT of the server's h2c listener")
    ap.add_argument("--pool", default="jobs")
    ap.add_argument("--policy", default="least_loaded",
                    help="the routing policy the pool must have")
    ap.add_argument("--nodes", type=int, default=10000, help="nodes to register (default 10000)")
    ap.add_argument("--specs", type=int, default=10,
                    help="specializations spec-0.. (default 10; must divide --nodes)")
    ap.add_argument("--concurrency", type=int, default=256, help="calls in flight (1..4096)")
    ap.add_argument("--channels", type=int, default=4, help="HTTP/2 connections (1..64)")
    ap.add_argument("--call-timeout", type=float, default=30.0, help="seconds per call")
    ap.add_argument("--deadline", type=float, default=300.0,
                    help="seconds for all registrations together")
    ap.add_argument("--bodies", help="write the SubmitJob bodies into this directory")
    ap.add_argument("--bodies-only", action="store_true", help="no RPC: only write --bodies")
    ap.add_argument("--proto-dir", default=os.path.join(register_nodes.SRCDIR, "proto"))
    args = ap.parse_args()
    if (not 1 <= args.concurrency <= 4096 or not 1 <= args.channels <= 64 or
            not 1 <= args.specs <= 1000 or args.nodes < args.specs or args.nodes > 99999 or
            args.nodes % args.specs):
        ap.error("--concurrency 1..4096, --channels 1..64, --specs 1..1000 dividing "
                 "--nodes (at most 99999)")
    if not args.bodies_only and not args.target:
        ap.error("--target is needed (or --bodies-only)")
    if args.bodies_only and not args.bodies:
        ap.error("--bodies-only needs --bodies")

    pb = register_nodes.load_pool_pb2(args.proto_dir)
    ok = True
    if args.bodies:
        write_bodies(pb, args)
    if not args.bodies_only:
        import grpc
        codes = register(pb, grpc, args)
        ok = set(codes) == {"OK"}
        try:
            ok = check_nodes(pb, grpc, args) and ok
        except grpc.RpcError as e:
            print("jobs_setup: check failed: %s %s" % (e.code().name, e.details()),
                  file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ListNodes latency by specialization, labels and state in a big pool (issue 3).

Starts galaxy-poold (each --build in turn, fresh data directory, access log
off, pool mainnet with a TTL of ten hours and retention_factor 1000 so that
the nodes, which never heartbeat, stay HEALTHY for the whole run) and
registers through bench/gx_load, into pool mainnet:

  --nodes common nodes  "n-00000000".."n-…"  specialization "common", label kind=common
  --nodes/100 rare ones "n-00000050r", "n-00000150r", … (spread over the id
                        range, one per hundred)  specialization "rare", kind=rare

then times ListNodes with python3-grpcio, each query --reps times after one
warm-up, every reply checked (page size, ids ascending, each node carrying
what was asked for; a full paging must list exactly the rare nodes):

  rare-first     specialization=rare, page_size=100, first page
  rare-pages     specialization=rare, page_size=100, every page to the end
  rare-last      specialization=rare, page_size=100, the last page (its token)
  absent         specialization=nobody (no node has it): the worst case of a scan
  label-rare     labels={kind: rare}, page_size=100, first page (the label's index)
  label-absent   labels={kind: nobody}: no node has it
  spec+label     specialization=rare, labels={kind: rare}
  all-first      no filter, page_size=100, first page
  state-absent   states=[DOWN]: no node is DOWN

For each: client latency p50/p90/max (ms) and the server's CPU per call
(utime+stime of the process over the query's reps, /proc/PID/stat), plus the
Register rate, and the server's RssAnon before and after the registrations
(KiB, and bytes per node).  Exits 1 if a check fails.

  bench/list_nodes.py --build /tmp/build-rel [--build /tmp/build-base] [--nodes 1000000]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import register_nodes  # noqa: E402  (compiles pool.proto with protoc)

LIST = "/galaxy.pool.v1.Discovery/ListNodes"
REGISTER = "/galaxy.pool.v1.NodeRegistry/Register"
CONFIG = ('server:\n  log_level: warn\n  access_log: "off"\n'
          'registry:\n  retention_factor: 1000\n'
          'pools:\n  - name: mainnet\n    visibility: public\n    node_ttl_ms: 36000000\n')


def body(pb, path, node_id, spec, kind):
    node = pb.Node(id=node_id, pool="mainnet", specializations=[spec],
                   labels={"kind": kind, "region": "us-east-2"}, address="10.20.30.40:7443",
                   version="2.14.1",
                   capacity=pb.Resources(cpu_millis=16000, memory_bytes=32 << 30, max_jobs=8))
    with open(path, "wb") as f:
        f.write(pb.RegisterRequest(node=node).SerializeToString())


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def settled_rss(pid):
    """RssAnon once two samples half a second apart agree within 0.1 % (bounded)."""
    last = -1
    for _ in range(40):
        cur = rss_anon_kib(pid)
        if last >= 0 and abs(cur - last) <= cur / 1000:
            return cur
        last = cur
        time.sleep(0.5)
    return last


class Poold:
    def __init__(self, build, tmp, workers):
        self.dir = tempfile.mkdtemp(dir=tmp, prefix="poold.")
        self.build, self.workers = build, workers
        with open(os.path.join(self.dir, "poold.yaml"), "w") as f:
            f.write(CONFIG)
        self.log = open(os.path.join(self.dir, "poold.log"), "w")
        self.start()

    def start(self):
        build, workers = self.build, self.workers
        conf = os.path.join(self.dir, "poold.yaml")
        ready = os.path.join(self.dir, "ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = subprocess.Popen(
            [os.path.join(build, "galaxy-poold"), "-c", conf, "--listen", "127.0.0.1:0",
             "--admin-listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data"),
             "--workers", str(workers), "--ready-file", ready],
            stderr=self.log)
        for _ in range(1200):
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                break
            if self.proc.poll() is not None:
                raise SystemExit("list_nodes: galaxy-poold exited %d" % self.proc.returncode)
            time.sleep(0.05)
        else:
            raise SystemExit("list_nodes: galaxy-poold did not start in 60 s")
        with open(ready) as f:
            self.h2c = dict(line.strip().split("=", 1) for line in f if "=" in line)["h2c"]

    def stop(self, keep=False):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if keep:
            return rc
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


def gx_load(args, h2c, path, n, placeholder):
    cmd = [args.gx_load, "-n", str(n), "-c", "16", "-m", "32", "-d", path, "--placeholder",
           placeholder, "--timeout", str(args.timeout), "http://%s%s" % (h2c, REGISTER)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout + 60).stdout
    res = [line for line in out.splitlines() if line.startswith("result:")]
    kv = dict(x.split("=", 1) for x in res[0].split()[1:]) if res else {}
    if int(kv.get("ok", 0)) != n:
        raise SystemExit("list_nodes: Register: %s of %d OK\n%s" % (kv.get("ok"), n, out))
    return float(kv["rps"])


class Checked(Exception):
    pass


def check_page(r, want, spec=None, kind=None, after=""):
    ids = [x.id for x in r.nodes]
    if len(ids) != want or ids != sorted(ids) or (ids and ids[0] <= after):
        raise Checked("page of %d (want %d), ordered %s" % (len(ids), want, ids == sorted(ids)))
    for x in r.nodes:
        if spec and spec not in x.specializations:
            raise Checked("%s lacks %s" % (x.id, spec))
        if kind and x.labels["kind"] != kind:
            raise Checked("%s is kind %s" % (x.id, x.labels["kind"]))
    return ids


def timed(pid, reps, fn):
    fn()  # warm-up, checked
    lat = []
    t0 = cpu_ticks(pid)
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - s) * 1000)
    cpu_ms = (cpu_ticks(pid) - t0) * 1000.0 / os.sysconf("SC_CLK_TCK") / reps
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.9)], lat[-1], cpu_ms


def queries(pb, call, nrare):
    rare_ids = ["n-%06d50r" % k for k in range(nrare)]

    def req(**kw):
        return call(pb.ListNodesRequest(pool="mainnet", **kw), timeout=120)

    def rare_first():
        check_page(req(specialization="rare", page_size=100), min(100, nrare), "rare")

    state = {}

    def rare_pages():
        got, token = [], ""
        for _ in range(nrare // 100 + 2):
            r = req(specialization="rare", page_size=100, page_token=token)
            got += check_page(r, len(r.nodes), "rare", after=got[-1] if got else "")
            token = r.next_page_token
            if not token:
                break
        if got != rare_ids:
            raise Checked("paging listed %d rare nodes of %d" % (len(got), nrare))
        state["last"] = token

    def last_token():
        if "token" not in state:
            token, prev = "", ""
            while True:
                r = req(specialization="rare", page_size=100, page_token=token)
                if not r.next_page_token:
                    break
                prev, token = token, r.next_page_token
            state["token"] = token
        return state["token"]

    def rare_last():
        r = req(specialization="rare", page_size=100, page_token=last_token())
        check_page(r, nrare - (nrare - 1) // 100 * 100, "rare")
        if r.next_page_token:
            raise Checked("the last page has a token")

    def absent():
        r = req(specialization="nobody", page_size=100)
        check_page(r, 0)

    def label_rare():
        check_page(req(labels={"kind": "rare"}, page_size=100), min(100, nrare), kind="rare")

    def label_absent():
        check_page(req(labels={"kind": "nobody"}, page_size=100), 0)

    def spec_label():
        check_page(req(specialization="rare", labels={"kind": "rare"}, page_size=100),
                   min(100, nrare), "rare", "rare")

    def all_first():
        check_page(req(page_size=100), 100)

    def state_absent():
        check_page(req(states=[pb.NODE_STATE_DOWN], page_size=100), 0)

    return [("rare-first", rare_first, 1), ("rare-pages", rare_pages, nrare // 100),
            ("rare-last", rare_last, 1), ("absent", absent, 1), ("label-rare", label_rare, 1),
            ("label-absent", label_absent, 1), ("spec+label", spec_label, 1),
            ("all-first", all_first, 1), ("state-absent", state_absent, 1)]


def run(args, pb, build):
    import grpc

    nrare = args.nodes // 100
    poold = Poold(build, args.tmp, args.workers)
    failed = 0
    try:
        pid = poold.proc.pid
        rss0 = settled_rss(pid)
        common = os.path.join(poold.dir, "common.body")
        rare = os.path.join(poold.dir, "rare.body")
        body(pb, common, "n-@@@@@@@@", "common", "common")
        body(pb, rare, "n-@@@@@@50r", "rare", "rare")
        rps = gx_load(args, poold.h2c, common, args.nodes, "@@@@@@@@")
        rps_rare = gx_load(args, poold.h2c, rare, nrare, "@@@@@@")
        rss1 = settled_rss(pid)
        print("%s: %d nodes (%d rare) registered at %.0f/s (the rare ones %.0f/s); "
              "RssAnon %d -> %d KiB: %.1f bytes/node"
              % (build, args.nodes + nrare, nrare, rps, rps_rare, rss0, rss1,
                 (rss1 - rss0) * 1024.0 / (args.nodes + nrare)), flush=True)
        print("  %-13s %9s %9s %9s %12s" % ("query", "p50 ms", "p90 ms", "max ms",
                                            "server cpu ms"), flush=True)
        with grpc.insecure_channel(poold.h2c, options=[
                ("grpc.max_receive_message_length", 64 << 20)]) as ch:
            call = ch.unary_unary(LIST, request_serializer=pb.ListNodesRequest.SerializeToString,
                                  response_deserializer=pb.ListNodesResponse.FromString)
            for name, fn, calls in queries(pb, call, nrare):
                try:
                    p50, p90, mx, cpu = timed(pid, args.reps, fn)
                except Checked as e:
                    print("  %-13s FAILED: %s" % (name, e), flush=True)
                    failed += 1
                    continue
                print("  %-13s %9.2f %9.2f %9.2f %12.2f%s"
                      % (name, p50, p90, mx, cpu,
                         "" if calls == 1 else "   (%d pages a rep)" % calls), flush=True)
        # the same nodes loaded from the store at start-up: memory without the churn of
        # the registrations (index copies published and freed while the pool grew)
        rc = poold.stop(keep=True)
        if rc != 0:
            print("  galaxy-poold exited %d" % rc)
            failed += 1
        poold.start()
        rss2 = settled_rss(poold.proc.pid)
        print("  restarted on the same store: RssAnon %d KiB: %.1f bytes/node"
              % (rss2, (rss2 - rss0) * 1024.0 / (args.nodes + nrare)), flush=True)
    finally:
        rc = poold.stop()
        if rc != 0:
            print("  galaxy-poold exited %d" % rc)
            failed += 1
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", required=True,
                    help="galaxy-poold build directory (optimised); repeat to compare")
    ap.add_argument("--nodes", type=int, default=1000000, help="common nodes (rare: 1 %%)")
    ap.add_argument("--reps", type=int, default=20, help="timed calls of each query")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--timeout", type=int, default=900, help="bound of a gx_load run (s)")
    ap.add_argument("--gx-load", help="gx_load binary (default: built from bench/gx_load.c)")
    ap.add_argument("--tmp", default=tempfile.gettempdir())
    ap.add_argument("--proto-dir", default=os.path.join(register_nodes.SRCDIR, "proto"))
    args = ap.parse_args()
    if not 100 <= args.nodes <= 10000000 or not 1 <= args.reps <= 10000:
        ap.error("--nodes 100..10000000, --reps 1..10000")
    pb = register_nodes.load_pool_pb2(args.proto_dir)
    tmp = tempfile.mkdtemp(dir=args.tmp, prefix="gx-list.")
    try:
        if not args.gx_load:
            args.gx_load = os.path.join(tmp, "gx_load")
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libnghttp2",
                                    "libevent"], capture_output=True, text=True,
                                   check=True).stdout.split()
            subprocess.run(["cc", "-O2", "-o", args.gx_load,
                            os.path.join(register_nodes.SRCDIR, "bench", "gx_load.c")] +
                           flags + ["-lpthread"], check=True)
        args.tmp = tmp
        failed = sum(run(args, pb, b) for b in args.build)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

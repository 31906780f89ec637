# SPDX-License-Identifier: MIT
"""ListNodes through the per-specialization and per-label indexes (issue 3):
a specialization or label filter pages through the smallest index that holds
what it asks for, in id order, with the same page tokens and the same
stability under change as the pool's index: many nodes and pages, nodes that
change specialization or labels by re-Register while a listing goes on,
removals (Deregister, a pool deleted and made again), the indexes rebuilt
from the store after a restart, Watch snapshots with a specialization, and
all of it at once across many index chunks; a listing of states other than
HEALTHY through the pool's nodes out of HEALTHY (drained, lapsed, revived).
galaxy_list_nodes_scanned_total shows which index a listing read."""
import importlib
import random
import threading
import time

import grpc
import pytest

from conftest import wait_for
from gxapi import Api, Heartbeater, page_ids, status_of

POOL = "idx"


@pytest.fixture(scope="module")
def pb(protos):
    return importlib.import_module("galaxy.pool.v1.pool_pb2")


@pytest.fixture
def api(server, pb):
    with server.channel() as ch:
        a = Api(ch, pb)
        a.create_pool(POOL)
        yield a


def specs_of(i):
    """Node i's specializations: every 7th is rare, every 3rd also has gpu."""
    specs = ["rare"] if i % 7 == 0 else ["common"]
    if i % 3 == 0:
        specs.append("gpu")
    return specs


def register_many(api, pb, ids, specs, labels=None):
    futs = [api.Register.future(pb.RegisterRequest(node=api.node(
        i, POOL, specs=specs(i), labels=labels(i) if labels else None)), timeout=30)
        for i in ids]
    return {r.node.id: r.lease_token for r in (f.result() for f in futs)}


def page_all(api, page_size, token="", **kw):
    """Every page of a listing from @token: (ids, page sizes)."""
    return page_ids(lambda t: api.list(POOL, page_size=page_size, page_token=t, **kw), "nodes",
                    token)


def nid(i):
    return "n%04d" % i


def test_spec_paging_many_nodes(api, pb):
    n = 700
    register_many(api, pb, [nid(i) for i in reversed(range(n))],
                  lambda id: specs_of(int(id[1:])),
                  labels=lambda id: {"rack": "r%d" % (int(id[1:]) % 4)})
    rare = [nid(i) for i in range(n) if i % 7 == 0]
    ids, sizes = page_all(api, 30, specialization="rare")
    assert ids == rare and len(rare) == 100
    assert sizes == [30, 30, 30, 10]
    ids, sizes = page_all(api, 100, specialization="rare")
    assert ids == rare and sizes == [100]          # exactly one page: no token
    gpu = [nid(i) for i in range(n) if i % 3 == 0]
    assert page_all(api, 77, specialization="gpu")[0] == gpu
    common = [nid(i) for i in range(n) if i % 7 != 0]
    assert page_all(api, 1000, specialization="common")[0] == common
    # the other filters still apply on the smaller set
    both = [nid(i) for i in range(n) if i % 7 == 0 and i % 4 == 1]
    assert page_all(api, 3, specialization="rare", labels={"rack": "r1"})[0] == both
    assert page_all(api, 50, specialization="rare",
                    states=[pb.NODE_STATE_DRAINING])[0] == []
    api.Drain(pb.DrainRequest(pool=POOL, node_id=nid(14)), timeout=5)
    assert page_all(api, 50, specialization="rare",
                    states=[pb.NODE_STATE_DRAINING])[0] == [nid(14)]
    assert [x.state for x in api.list(POOL, specialization="rare", page_size=3).nodes] == \
        [pb.NODE_STATE_HEALTHY, pb.NODE_STATE_HEALTHY, pb.NODE_STATE_DRAINING]
    # a specialization no node has lists nothing, with no token
    r = api.list(POOL, specialization="nobody")
    assert list(r.nodes) == [] and r.next_page_token == "" and r.revision > 0
    # a page token from a listing without the filter pages the filtered one too
    first = api.list(POOL, page_size=10)
    r = api.list(POOL, page_size=5, page_token=first.next_page_token, specialization="rare")
    assert [x.id for x in r.nodes] == [x for x in rare if x > nid(9)][:5]
    # the whole pool still pages in id order
    assert page_all(api, 1000)[0] == [nid(i) for i in range(n)]


def test_respec_while_paging(api, pb):
    n = 300
    tokens = register_many(api, pb, [nid(i) for i in range(n)], lambda id: specs_of(int(id[1:])))
    rare = [nid(i) for i in range(n) if i % 7 == 0]               # 43 nodes
    first = api.list(POOL, page_size=10, specialization="rare")
    seen = [x.id for x in first.nodes]
    assert seen == rare[:10]

    def respec(i, specs):
        r = api.Register(pb.RegisterRequest(node=api.node(nid(i), POOL, specs=specs),
                                            lease_token=tokens[nid(i)]), timeout=10)
        assert r.lease_token == tokens[nid(i)]

    # between pages: seen and unseen nodes lose rare, others gain it, behind and ahead
    respec(0, ["common"])              # seen, loses it
    respec(140, ["common", "gpu"])     # unseen, loses it
    respec(1, ["rare"])                # behind the token, gains it: not listed again
    respec(141, ["gpu", "rare"])       # ahead, gains it: listed
    respec(280, ["rare", "common"])    # still rare, another set: listed once
    assert nid(0) not in api.list_all(POOL, specialization="rare")
    token, pages = first.next_page_token, 0
    while token and pages < 100:
        r = api.list(POOL, page_size=10, page_token=token, specialization="rare")
        seen += [x.id for x in r.nodes]
        token, pages = r.next_page_token, pages + 1
        if pages == 2:                 # and again in the middle of the listing
            respec(210, ["common"])
            respec(211, ["rare"])
    assert not token
    stayed = [x for x in rare if x not in (nid(0), nid(140), nid(210))]
    for x in stayed:
        assert seen.count(x) == 1, x
    assert nid(140) not in seen and nid(141) in seen and nid(1) not in seen
    assert seen.count(nid(211)) == 1 and nid(210) not in seen
    assert seen == sorted(seen)
    # the listing now is exactly the nodes that have rare now
    now = sorted(set(rare) - {nid(0), nid(140), nid(210)} | {nid(1), nid(141), nid(211)})
    assert api.list_all(POOL, page_size=7, specialization="rare") == now
    assert nid(140) in api.list_all(POOL, page_size=1000, specialization="gpu")
    assert api.get(nid(141), POOL).specializations == ["gpu", "rare"]


def test_removal(api, pb):
    tokens = register_many(api, pb, [nid(i) for i in range(60)],
                           lambda id: ["solo"] if id == nid(33) else specs_of(int(id[1:])))
    assert api.list_all(POOL, specialization="solo") == [nid(33)]
    first = api.list(POOL, page_size=3, specialization="rare")
    assert [x.id for x in first.nodes] == [nid(0), nid(7), nid(14)]

    def dereg(i):
        api.Deregister(pb.DeregisterRequest(pool=POOL, node_id=nid(i),
                                            lease_token=tokens[nid(i)]), timeout=5)

    for i in (7, 28, 33):
        dereg(i)
    rest, _ = page_all(api, 2, first.next_page_token, specialization="rare")
    assert rest == [nid(i) for i in (21, 35, 42, 49, 56)]
    assert api.list_all(POOL, specialization="solo") == []   # its index is gone
    api.register(nid(33), POOL, specs=["solo"])               # and comes back
    assert api.list_all(POOL, specialization="solo") == [nid(33)]
    # a pool deleted with its nodes and made again has no index left over
    api.DeletePool(pb.DeletePoolRequest(name=POOL, force=True), timeout=10)
    code, _ = status_of(api.list, POOL, specialization="rare")
    assert code == grpc.StatusCode.NOT_FOUND
    api.create_pool(POOL)
    assert api.list_all(POOL, specialization="rare") == []
    assert api.list_all(POOL, specialization="solo") == []
    api.register("z", POOL, specs=["rare"])
    assert api.list_all(POOL, specialization="rare") == ["z"]


def test_index_after_restart(make_server, pb):
    """The specialization, label and state indexes are rebuilt from the store:
    each lists exactly the nodes that had it when the server stopped."""
    s = make_server()
    with s.channel() as ch:
        api = Api(ch, pb)
        api.create_pool(POOL)
        tokens = register_many(api, pb, [nid(i) for i in range(200)],
                               lambda id: specs_of(int(id[1:])),
                               labels=lambda id: labels_of(int(id[1:])))
        api.Register(pb.RegisterRequest(node=api.node(nid(3), POOL, specs=["rare"],
                                                      labels=dict(labels_of(3), rare="yes")),
                                        lease_token=tokens[nid(3)]), timeout=10)
        api.Drain(pb.DrainRequest(pool=POOL, node_id=nid(77)), timeout=5)
    assert s.stop() == 0
    s.start()
    rare = sorted([nid(i) for i in range(200) if i % 7 == 0] + [nid(3)])
    with s.channel() as ch:
        api = Api(ch, pb)
        assert api.list_all(POOL, page_size=9, specialization="rare") == rare
        assert nid(3) not in api.list_all(POOL, page_size=1000, specialization="gpu")
        assert api.list_all(POOL, page_size=9, labels={"rare": "yes"}) == rare
        assert nid(3) not in api.list_all(POOL, page_size=1000, labels={"rare": "no"})
        (ids, _), seen = scanned(s, lambda: page_all(api, 10, labels={"host": "h0150"}))
        assert ids == [nid(150)] and seen == 1
        # every node has a fresh grace period; the drained one is still DRAINING
        (ids, _), seen = scanned(s, lambda: page_all(api, 10, states=[pb.NODE_STATE_DRAINING,
                                                                       pb.NODE_STATE_DOWN]))
        assert ids == [nid(77)] and seen == 1
    assert s.stop() == 0


def test_watch_snapshot_by_spec(api, pb):
    register_many(api, pb, [nid(i) for i in range(400)], lambda id: specs_of(int(id[1:])))
    call = api.Watch(pb.WatchRequest(pool=POOL, specialization="rare"), timeout=20)
    got = []
    for ev in call:
        if ev.type == pb.WATCH_EVENT_TYPE_SYNCED:
            break
        assert ev.type == pb.WATCH_EVENT_TYPE_UPSERT
        got.append(ev.node.id)
        assert len(got) <= 400
    call.cancel()
    assert got == [nid(i) for i in range(400) if i % 7 == 0]


def test_churn_across_chunks(api, pb):
    """Nodes registered in random order (the index splits its 512-node chunks
    all over), then re-registered with other specializations and deregistered,
    while listings page through the pool and by specialization and Watch
    snapshots of a specialization run: every listing and snapshot is in id
    order without repeats, and afterwards the pool's and each
    specialization's listing are exactly the nodes registered with it."""
    rnd = random.Random(7)
    ids = ["c%05d" % i for i in range(2500)]
    rnd.shuffle(ids)
    choices = (["a"], ["b"], ["a", "b"])
    specs = {x: choices[rnd.randrange(3)] for x in ids}
    tokens, errors, stop, passes = {}, [], threading.Event(), [0, 0]

    def ordered(got, what):
        if got != sorted(got) or len(got) != len(set(got)):
            errors.append((what, got[:8]))

    def lister():
        while not stop.is_set():
            for spec in ("", "a", "b"):
                ordered(api.list_all(POOL, page_size=97, specialization=spec), "list " + spec)
            passes[0] += 1

    def watcher():
        while not stop.is_set():
            got = []
            for ev in api.Watch(pb.WatchRequest(pool=POOL, specialization="b"), timeout=30):
                if ev.type == pb.WATCH_EVENT_TYPE_SYNCED:
                    break
                if ev.type == pb.WATCH_EVENT_TYPE_UPSERT:
                    got.append(ev.node.id)
            ordered(got, "watch snapshot")
            passes[1] += 1

    def register(batch):
        futs = [(x, api.Register.future(pb.RegisterRequest(
            node=api.node(x, POOL, specs=specs[x]), lease_token=tokens.get(x, "")), timeout=30))
            for x in batch]
        for x, f in futs:
            tokens[x] = f.result().lease_token

    def guarded(fn):
        def run():
            try:
                fn()
            except Exception as e:  # a reader's failure fails the test, not just its thread
                errors.append((fn.__name__, repr(e)))
        return run

    threads = [threading.Thread(target=guarded(fn)) for fn in (lister, lister, watcher)]
    for t in threads:
        t.start()
    try:
        # small batches, so that the readers run between them
        for k in range(0, len(ids), 50):
            register(ids[k:k + 50])
        for _ in range(3):
            changed = rnd.sample(ids, 300)
            for x in changed:
                specs[x] = choices[(choices.index(specs[x]) + 1) % 3]
            for k in range(0, len(changed), 50):
                register(changed[k:k + 50])
        gone = rnd.sample(ids, 700)
        for k in range(0, len(gone), 50):
            futs = [api.Deregister.future(pb.DeregisterRequest(
                pool=POOL, node_id=x, lease_token=tokens[x]), timeout=30) for x in gone[k:k + 50]]
            for f in futs:
                f.result()
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    assert passes[0] >= 1 and passes[1] >= 1, passes  # the readers ran alongside
    left = sorted(set(ids) - set(gone))
    assert api.list_all(POOL, page_size=250) == left
    for s in ("a", "b"):
        assert api.list_all(POOL, page_size=250, specialization=s) == \
            [x for x in left if s in specs[x]]


# ---------------------------------------------------------------- label indexes

def labels_of(i):
    """Node i's labels: a rack of four, every 7th rare, and a host of its own."""
    return {"rack": "r%d" % (i % 4), "rare": "yes" if i % 7 == 0 else "no", "host": "h%04d" % i}


def scanned(server, fn):
    """fn()'s result and the nodes ListNodes looked at meanwhile (/metrics)."""
    before = server.metrics()["galaxy_list_nodes_scanned_total"]
    out = fn()
    return out, server.metrics()["galaxy_list_nodes_scanned_total"] - before


def test_label_paging_many_nodes(server, api, pb):
    """A label filter pages through that label's nodes only: the listing is
    exactly the nodes with every label asked for, in id order, in exact
    pages, and the server looks at the nodes of the smallest index that
    holds them all (the pool's, the specialization's or one label's)."""
    n = 700
    register_many(api, pb, [nid(i) for i in reversed(range(n))],
                  lambda id: specs_of(int(id[1:])), labels=lambda id: labels_of(int(id[1:])))
    rack1 = [nid(i) for i in range(n) if i % 4 == 1]
    (ids, sizes), seen = scanned(server, lambda: page_all(api, 50, labels={"rack": "r1"}))
    assert ids == rack1 and sizes == [50, 50, 50, 25]
    assert seen <= len(rack1) + 3, seen              # not the pool's 700 nodes a page
    both = [nid(i) for i in range(n) if i % 7 == 0 and i % 4 == 1]
    (ids, _), seen = scanned(server, lambda: page_all(api, 4, labels={"rack": "r1",
                                                                       "rare": "yes"}))
    # through rare=yes (100 nodes; each page reads again what the last read past its end),
    # not rack=r1 (175)
    assert ids == both and seen < 150, seen
    (ids, _), seen = scanned(server, lambda: page_all(api, 10, labels={"host": "h0033"}))
    assert ids == [nid(33)] and seen == 1
    # with a specialization: the smaller of its index and the label's
    (ids, _), seen = scanned(server, lambda: page_all(api, 10, specialization="rare",
                                                      labels={"host": "h0070"}))
    assert ids == [nid(70)] and seen == 1
    (ids, _), seen = scanned(server, lambda: page_all(api, 1000, specialization="rare",
                                                      labels={"rack": "r2"}))
    assert ids == [nid(i) for i in range(n) if i % 7 == 0 and i % 4 == 2] and seen <= 100
    # a label no node has, or a value no node has, lists nothing and looks at nothing
    for labels in ({"rack": "r9"}, {"nobody": "r1"}, {"rack": "r1", "host": "h9999"},
                   {"rack": ""}):
        r, seen = scanned(server, lambda: api.list(POOL, labels=labels))
        assert list(r.nodes) == [] and r.next_page_token == "" and seen == 0, labels
    # a page token from a listing without the filter pages the filtered one too
    first = api.list(POOL, page_size=10)
    r = api.list(POOL, page_size=5, page_token=first.next_page_token, labels={"rare": "yes"})
    rare = [nid(i) for i in range(n) if i % 7 == 0]
    assert [x.id for x in r.nodes] == [x for x in rare if x > nid(9)][:5]
    # every node listed carries what was asked for, with its current labels
    for x in api.list(POOL, page_size=1000, labels={"rack": "r3"}).nodes:
        assert x.labels == labels_of(int(x.id[1:]))


def test_relabel_while_paging(api, pb):
    """Re-registers that move nodes between labels, between pages of a
    listing by label: a node that keeps the label through the listing is
    listed once, one that lost it is not listed, and the index afterwards is
    exactly the nodes with the label."""
    n = 300
    tokens = register_many(api, pb, [nid(i) for i in range(n)], lambda id: ["common"],
                           labels=lambda id: labels_of(int(id[1:])))
    rare = [nid(i) for i in range(n) if i % 7 == 0]
    first = api.list(POOL, page_size=10, labels={"rare": "yes"})
    seen = [x.id for x in first.nodes]
    assert seen == rare[:10]

    def relabel(i, rare, **more):
        labels = dict(labels_of(i), rare=rare, **more)
        r = api.Register(pb.RegisterRequest(node=api.node(nid(i), POOL, specs=["common"],
                                                          labels=labels),
                                            lease_token=tokens[nid(i)]), timeout=10)
        assert r.lease_token == tokens[nid(i)]

    relabel(0, "no")                   # seen, loses it
    relabel(140, "no")                 # unseen, loses it
    relabel(1, "yes")                  # behind the token, gains it: not listed again
    relabel(141, "yes")                # ahead, gains it: listed
    relabel(280, "yes", zone="z1")     # keeps it, gains another label: listed once
    assert nid(0) not in api.list_all(POOL, labels={"rare": "yes"})
    token, pages = first.next_page_token, 0
    while token and pages < 100:
        r = api.list(POOL, page_size=10, page_token=token, labels={"rare": "yes"})
        seen += [x.id for x in r.nodes]
        token, pages = r.next_page_token, pages + 1
        if pages == 2:
            relabel(210, "no")
            relabel(211, "yes")
    assert not token
    for x in rare:
        if x not in (nid(0), nid(140), nid(210)):
            assert seen.count(x) == 1, x
    assert nid(140) not in seen and nid(141) in seen and nid(1) not in seen
    assert seen.count(nid(211)) == 1 and nid(210) not in seen and seen == sorted(seen)
    now = sorted(set(rare) - {nid(0), nid(140), nid(210)} | {nid(1), nid(141), nid(211)})
    assert api.list_all(POOL, page_size=7, labels={"rare": "yes"}) == now
    assert api.list_all(POOL, labels={"zone": "z1"}) == [nid(280)]
    # a label whose value changes: out of the old value's index, into the new one's
    r = api.Register(pb.RegisterRequest(node=api.node(nid(5), POOL, specs=["common"],
                                                      labels=dict(labels_of(5), host="moved")),
                                        lease_token=tokens[nid(5)]), timeout=10)
    assert api.list_all(POOL, labels={"host": "h0005"}) == []
    assert api.list_all(POOL, labels={"host": "moved"}) == [nid(5)]


def test_label_removal(api, pb):
    """Deregister takes a node out of its label indexes; an index left empty
    is gone (its label lists nothing) and comes back with a node; a pool
    deleted with its nodes and made again under the same name has none of
    the old pool's labels."""
    tokens = register_many(api, pb, [nid(i) for i in range(60)], lambda id: ["common"],
                           labels=lambda id: labels_of(int(id[1:])))
    first = api.list(POOL, page_size=3, labels={"rare": "yes"})
    assert [x.id for x in first.nodes] == [nid(0), nid(7), nid(14)]
    for i in (7, 28, 33):
        api.Deregister(pb.DeregisterRequest(pool=POOL, node_id=nid(i),
                                            lease_token=tokens[nid(i)]), timeout=5)
    rest, _ = page_all(api, 2, first.next_page_token, labels={"rare": "yes"})
    assert rest == [nid(i) for i in (21, 35, 42, 49, 56)]
    assert api.list_all(POOL, labels={"host": "h0033"}) == []
    api.register(nid(33), POOL, specs=["common"], labels={"host": "h0033"})
    assert api.list_all(POOL, labels={"host": "h0033"}) == [nid(33)]
    api.DeletePool(pb.DeletePoolRequest(name=POOL, force=True), timeout=10)
    api.create_pool(POOL)
    for labels in ({"rare": "yes"}, {"host": "h0033"}, {"rack": "r1"}):
        assert api.list_all(POOL, labels=labels) == []
    api.register("z", POOL, labels={"rack": "r1"})
    assert api.list_all(POOL, labels={"rack": "r1"}) == ["z"]
    # the same label in another pool is another index
    api.create_pool("idx2")
    api.register("y", "idx2", labels={"rack": "r1"})
    assert api.list_all(POOL, labels={"rack": "r1"}) == ["z"]
    assert api.list_all("idx2", labels={"rack": "r1"}) == ["y"]


# ---------------------------------------------------------------- the index of nodes out of HEALTHY

def test_state_paging_many_nodes(server, api, pb):
    """A listing of states other than HEALTHY reads the pool's nodes out of
    HEALTHY only: here the drained ones, in exact pages; an un-drained or
    deregistered node leaves it, and HEALTHY in the filter reads the pool."""
    pool = "idx-st"
    api.create_pool(pool, heartbeat_interval_ms=600000)   # nobody lapses during the test
    n = 400
    futs = [api.Register.future(pb.RegisterRequest(node=api.node(
        nid(i), pool, labels={"host": "h%04d" % i})), timeout=30) for i in reversed(range(n))]
    tokens = {r.node.id: r.lease_token for r in (f.result() for f in futs)}
    drained = [nid(i) for i in range(n) if i % 10 == 3]
    for id in drained:
        assert api.Drain(pb.DrainRequest(pool=pool, node_id=id),
                         timeout=5).state == pb.NODE_STATE_DRAINING

    def listing(page_size, **kw):
        return scanned(server, lambda: page_ids(
            lambda t: api.list(pool, page_size=page_size, page_token=t, **kw), "nodes"))

    (ids, sizes), seen = listing(7, states=[pb.NODE_STATE_DRAINING])
    assert ids == drained and sizes == [7] * 5 + [5]
    assert seen <= len(drained) + len(sizes), seen      # not the pool's 400 a page
    for states in ([pb.NODE_STATE_DOWN], [pb.NODE_STATE_SUSPECT, pb.NODE_STATE_DOWN]):
        (ids, _), seen = listing(100, states=states)
        assert ids == [] and seen <= len(drained), (states, seen)
    (ids, _), seen = listing(1000, states=[pb.NODE_STATE_SUSPECT, pb.NODE_STATE_DOWN,
                                           pb.NODE_STATE_DRAINING])
    assert ids == drained and seen == len(drained)
    # HEALTHY asked for: the pool's index (or a smaller label's)
    (ids, _), seen = listing(1000, states=[pb.NODE_STATE_HEALTHY])
    assert ids == [x for x in map(nid, range(n)) if x not in drained] and seen == n
    (ids, _), seen = listing(1000, states=[pb.NODE_STATE_HEALTHY, pb.NODE_STATE_DRAINING])
    assert ids == [nid(i) for i in range(n)] and seen == n
    (ids, _), seen = listing(10, states=[pb.NODE_STATE_DRAINING], labels={"host": "h0013"})
    assert ids == [nid(13)] and seen == 1
    # a re-register under the lease ends the drain, a deregister the node: both leave
    api.register(drained[0], pool, token=tokens[drained[0]], labels={"host": "h0003"})
    api.Deregister(pb.DeregisterRequest(pool=pool, node_id=drained[1],
                                        lease_token=tokens[drained[1]]), timeout=5)
    (ids, _), seen = listing(1000, states=[pb.NODE_STATE_DRAINING])
    assert ids == drained[2:] and seen == len(drained) - 2
    assert api.get(drained[0], pool).state == pb.NODE_STATE_HEALTHY


def test_state_index_liveness(server, api, pb):
    """Nodes that stop heartbeating go into the index as they go SUSPECT,
    then DOWN; one that heartbeats again leaves it.  Every listing by those
    states is exact and reads only the lapsed nodes."""
    pool = "idx-live"
    api.create_pool(pool, heartbeat_interval_ms=100, node_ttl_ms=300)
    hb = Heartbeater(api, pool)
    try:
        tokens = {}
        for i in range(16):
            tokens[nid(i)] = api.register(nid(i), pool).lease_token
            hb.add(nid(i), tokens[nid(i)])
        lapsed = [nid(i) for i in range(16) if i % 4 == 1]      # 4 of 16: no self-preservation
        hb.set({k: v for k, v in tokens.items() if k not in lapsed})

        def down():
            return page_all_pool(api, pool, states=[pb.NODE_STATE_DOWN])

        assert wait_for(lambda: down() == lapsed, 5), down()
        (ids, _), seen = scanned(server, down_pages(api, pool, pb))
        assert ids == lapsed and seen <= len(lapsed) + 1, seen
        assert page_all_pool(api, pool, states=[pb.NODE_STATE_SUSPECT]) == []
        # two come back: HEALTHY at once, out of the DOWN listing
        back = lapsed[:2]
        for id in back:
            assert api.heartbeat(id, tokens[id], pool=pool).state == pb.NODE_STATE_HEALTHY
            hb.add(id, tokens[id])
        assert down() == lapsed[2:]
        healthy = page_all_pool(api, pool, states=[pb.NODE_STATE_HEALTHY])
        assert healthy == [x for x in map(nid, range(16)) if x not in lapsed[2:]]
        assert hb.errors == []
    finally:
        hb.stop()


def page_all_pool(api, pool, **kw):
    return page_ids(lambda t: api.list(pool, page_size=3, page_token=t, **kw), "nodes")[0]


def down_pages(api, pool, pb):
    return lambda: page_ids(lambda t: api.list(pool, page_size=4, page_token=t,
                                               states=[pb.NODE_STATE_DOWN]), "nodes")


def test_state_index_churn(make_server, pb):
    """Nodes that keep lapsing and coming back while listings by state page on:
    every listing is in strict id order with no node twice, the nodes DOWN
    through the whole run are in every listing of DOWN and SUSPECT exactly
    once and in no listing of HEALTHY, and once the churn stops the index
    holds exactly the DOWN nodes.  Bounded: 4 s of churn, a listing at a time."""
    conf = ("server:\n  log_level: info\nregistry:\n  retention_factor: 1000\n"
            "  self_preservation_share: 100\n")
    s = make_server(config=conf)
    pool = "churn"
    with s.channel() as ch:
        api = Api(ch, pb)
        api.create_pool(pool, heartbeat_interval_ms=100, node_ttl_ms=300)
        dead = ["d%02d" % i for i in range(20)]
        flappy = ["f%02d" % i for i in range(40)]
        tokens = {id: api.register(id, pool).lease_token for id in dead + flappy}
        lapsed = [pb.NODE_STATE_SUSPECT, pb.NODE_STATE_DOWN]
        assert wait_for(lambda: set(dead) <= set(page_all_pool(
            api, pool, states=[pb.NODE_STATE_DOWN])), 5)
        stop = threading.Event()
        errors = []

        def churn():
            rnd = random.Random(3)
            due = {id: 0.0 for id in flappy}
            t0 = time.monotonic()
            while not stop.is_set() and time.monotonic() - t0 < 4:
                now = time.monotonic() - t0
                for id in flappy:
                    if now >= due[id]:
                        try:
                            api.heartbeat(id, tokens[id], pool=pool)
                        except grpc.RpcError as e:
                            errors.append(e.code())
                        # mostly on time, sometimes late enough for SUSPECT or DOWN
                        due[id] = now + rnd.choice([0.05, 0.05, 0.1, 0.4, 0.8])
                stop.wait(0.02)

        t = threading.Thread(target=churn, daemon=True)
        t.start()
        listings, came_and_went = 0, set()
        try:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and listings < 1000:
                ids = page_all_pool(api, pool, states=lapsed)
                assert ids == sorted(set(ids)), ids
                assert [x for x in ids if x.startswith("d")] == dead, ids
                assert all(x in tokens for x in ids)
                came_and_went |= {x for x in ids if x.startswith("f")}
                up = page_all_pool(api, pool, states=[pb.NODE_STATE_HEALTHY])
                assert up == sorted(set(up)) and not set(up) & set(dead), up
                listings += 1
        finally:
            stop.set()
            t.join(10)
        assert errors == [] and listings >= 5, (errors, listings)
        assert came_and_went, "no node lapsed during the churn"   # the index did move
        for id in flappy:
            assert api.heartbeat(id, tokens[id], pool=pool).state == pb.NODE_STATE_HEALTHY
        assert page_all_pool(api, pool, states=lapsed) == dead
        assert page_all_pool(api, pool, states=[pb.NODE_STATE_HEALTHY]) == flappy
        r, seen = scanned(s, lambda: api.list(pool, page_size=100, states=lapsed))
        assert [x.id for x in r.nodes] == dead and seen == len(dead)
    assert s.stop() == 0

# SPDX-License-Identifier: MIT
"""ListNodes through the per-specialization index (issue 3): a specialization
filter pages through that specialization's nodes only, in id order, with the
same page tokens and the same stability under change as the pool's index:
many nodes and pages, nodes that change specialization by re-Register while a
listing goes on, removals (Deregister, a pool deleted and made again), the
index rebuilt from the store after a restart, Watch snapshots with a
specialization, and all of it at once across many index chunks."""
import importlib
import random
import threading

import grpc
import pytest

from gxapi import Api, page_ids, status_of

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
    s = make_server()
    with s.channel() as ch:
        api = Api(ch, pb)
        api.create_pool(POOL)
        tokens = register_many(api, pb, [nid(i) for i in range(200)],
                               lambda id: specs_of(int(id[1:])))
        api.Register(pb.RegisterRequest(node=api.node(nid(3), POOL, specs=["rare"]),
                                        lease_token=tokens[nid(3)]), timeout=10)
    assert s.stop() == 0
    s.start()
    rare = sorted([nid(i) for i in range(200) if i % 7 == 0] + [nid(3)])
    with s.channel() as ch:
        api = Api(ch, pb)
        assert api.list_all(POOL, page_size=9, specialization="rare") == rare
        assert nid(3) not in api.list_all(POOL, page_size=1000, specialization="gpu")
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

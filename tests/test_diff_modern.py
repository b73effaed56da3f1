"""ZooKeeper 3.5-3.9 operations, differential against real ZooKeeper 3.8 (raw protocol, so every
field and error is visible): create2/createContainer/createTTL, checkWatches, removeWatches,
addWatch (persistent and recursive), setWatches2, multiRead, getEphemerals,
getAllChildrenNumber, whoAmI, reconfig."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from tests.differential import Diff
from tests.rawclient import RawClient
from tests.servers import EtcdServer, ZooKeeperServer
from tests.test_javaorder import colliding_names
from tests.zetcd_server import ZetcdServer
from zetcd.emulation.javaorder import java_string_hash
from zetcd.proto.constants import OpCode
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    CheckWatchesRequest,
    CreateRequest,
    CreateTTLRequest,
    DeleteRequest,
    ExistsRequest,
    GetAllChildrenNumberRequest,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    MultiOp,
    MultiRequest,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
)

OPEN = (ACL(31, Id("world", "anyone")),)


def both(diff: Diff, scenario: Callable[[str, str], list[Any]]) -> list[Any]:
    root = f"/modern-{uuid.uuid4().hex[:10]}"
    expected = scenario(diff.zookeeper, root)
    actual = scenario(diff.zetcd, root)
    assert actual == expected
    return actual


def shape(reply: Any, root: str) -> Any:
    """What a reply says, with zxids and times left out and paths made relative."""
    body = reply.body
    out: Any = type(body).__name__ if body is not None else None
    if body is not None and hasattr(body, "path"):
        out = (out, body.path.removeprefix(root))
    if body is not None and hasattr(body, "stat"):
        st = body.stat
        owner = "session" if st.ephemeralOwner else 0
        out = (out, st.version, st.cversion, owner, st.numChildren, st.dataLength)
    if body is not None and hasattr(body, "results"):
        out = (out, [(r.type, r.err, type(r.response).__name__) for r in body.results])
    return (reply.header.err, out)


def events(c: RawClient, root: str) -> list[tuple[int, str]]:
    got = [(e.type, (e.path or "").removeprefix(root)) for e in c.pending]
    c.pending.clear()
    return got


def sync_events(c: RawClient, root: str) -> list[tuple[int, str]]:
    """Events that arrived before the reply to one more request."""
    c.call(OpCode.EXISTS, ExistsRequest("/", False))
    return events(c, root)


def test_create_variants(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        out: list[Any] = [shape(c.call(OpCode.CREATE2, CreateRequest(root, b"x", OPEN, 0)), root)]
        for opcode, req in [
            (OpCode.CREATE2, CreateRequest(f"{root}/c2", b"ab", OPEN, 0)),
            (OpCode.CREATE2, CreateRequest(f"{root}/seq-", b"", OPEN, 2)),
            (OpCode.CREATE2, CreateRequest(f"{root}/e", b"", OPEN, 1)),
            (OpCode.CREATE, CreateRequest(f"{root}/flag4", b"", OPEN, 4)),
            (OpCode.CREATE_CONTAINER, CreateRequest(f"{root}/ct", b"", OPEN, 4)),
            (OpCode.CREATE_CONTAINER, CreateRequest(f"{root}/ct-", b"", OPEN, 2)),
            (OpCode.CREATE_CONTAINER, CreateRequest(f"{root}/ct1", b"", OPEN, 1)),
            (OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/ttl", b"", OPEN, 5, 60000)),
            (OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/ttl-", b"", OPEN, 6, 60000)),
            (OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/bad", b"", OPEN, 5, 0)),
            (OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/bad", b"", OPEN, 5, 1 << 40)),
            (OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/bad", b"", OPEN, 0, 100)),
            (OpCode.CREATE, CreateRequest(f"{root}/bad", b"", OPEN, 5)),
            (OpCode.CREATE2, CreateRequest(f"{root}/ct/child", b"", OPEN, 1)),
            (OpCode.CREATE2, CreateRequest(f"{root}/e/child", b"", OPEN, 4)),
            (OpCode.CREATE2, CreateRequest(f"{root}/null", None, OPEN, 0)),
        ]:
            out.append((opcode, shape(c.call(opcode, req), root)))
        out.append(shape(c.call(OpCode.GET_DATA, GetDataRequest(f"{root}/null", False)), root))
        got = c.call(OpCode.GET_DATA, GetDataRequest(f"{root}/null", False))
        out.append(("null data", got.body.data))
        c.close()
        return out

    both(diff, scenario)


def test_multi_create_results_follow_flags(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        ops = (
            MultiOp(OpCode.CREATE, CreateRequest(f"{root}/a", b"", OPEN, 0)),
            MultiOp(OpCode.CREATE2, CreateRequest(f"{root}/b", b"", OPEN, 0)),
            MultiOp(OpCode.CREATE_CONTAINER, CreateRequest(f"{root}/c", b"", OPEN, 0)),
            MultiOp(OpCode.CREATE, CreateRequest(f"{root}/d", b"", OPEN, 4)),
            MultiOp(OpCode.CREATE_TTL, CreateTTLRequest(f"{root}/t", b"", OPEN, 5, 5000)),
            MultiOp(OpCode.SET_DATA, SetDataRequest(f"{root}/a", b"1", -1)),
            MultiOp(OpCode.SET_DATA, SetDataRequest(f"{root}/a", b"22", 1)),
            MultiOp(OpCode.CREATE, CreateRequest(f"{root}/s-", b"", OPEN, 2)),
            MultiOp(OpCode.CREATE, CreateRequest(f"{root}/s-", b"", OPEN, 2)),
        )
        out = [shape(c.call(OpCode.MULTI, MultiRequest(ops)), root)]
        out.append(shape(c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)), root))
        kids = c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)).body.children
        out.append(sorted(kids))
        out.append(shape(c.call(OpCode.MULTI, MultiRequest(())), root))
        c.close()
        return out

    both(diff, scenario)


def test_check_and_remove_watches(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        a = RawClient(address)
        b = RawClient(address)
        a.connect()
        b.connect()
        a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        out: list[Any] = []
        a.call(OpCode.GET_DATA, GetDataRequest(root, True))
        a.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        for kind in (1, 2, 3, 4, 5):
            out.append(
                (
                    "check a",
                    kind,
                    a.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, kind)).header.err,
                )
            )
            out.append(
                (
                    "check b",
                    kind,
                    b.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, kind)).header.err,
                )
            )
        out.append(
            (
                "check missing",
                a.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root + "/x", 3)).header.err,
            )
        )
        out.append(
            ("remove b", b.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 3)).header.err)
        )
        out.append(
            ("remove data", a.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 2)).header.err)
        )
        out.append(
            (
                "remove data again",
                a.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 2)).header.err,
            )
        )
        out.append(
            ("remove any", a.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 3)).header.err)
        )
        out.append(
            (
                "remove any again",
                a.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 3)).header.err,
            )
        )
        out.append(
            ("bad type", a.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, 9)).header.err)
        )
        b.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1))
        out.append(("no events after removal", sync_events(a, root)))
        a.close()
        b.close()
        return out

    both(diff, scenario)


def test_persistent_and_recursive_watches(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        w = RawClient(address)
        m = RawClient(address)
        w.connect()
        m.connect()
        m.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        out: list[Any] = []
        r = w.call(OpCode.ADD_WATCH, AddWatchRequest(root, 0))
        out.append(("add persistent", r.header.err, type(r.body).__name__))
        out.append(
            (
                "add recursive",
                w.call(OpCode.ADD_WATCH, AddWatchRequest(root + "/sub", 1)).header.err,
            )
        )
        out.append(("bad mode", w.call(OpCode.ADD_WATCH, AddWatchRequest(root, 7)).header.err))
        m.call(OpCode.CREATE, CreateRequest(root + "/sub", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/sub/a", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/sub/a/b", b"", OPEN, 0))
        m.call(OpCode.SET_DATA, SetDataRequest(root + "/sub/a/b", b"1", -1))
        m.call(OpCode.SET_DATA, SetDataRequest(root, b"1", -1))
        m.call(OpCode.SET_DATA, SetDataRequest(root, b"2", -1))
        m.call(OpCode.DELETE, DeleteRequest(root + "/sub/a/b", -1))
        out.append(("events", sync_events(w, root)))
        for kind in (1, 2, 3, 4, 5):
            out.append(
                (
                    "check",
                    kind,
                    w.call(
                        OpCode.CHECK_WATCHES, CheckWatchesRequest(root + "/sub", kind)
                    ).header.err,
                )
            )
        # a one-shot getData watch on a persistently watched path makes it one-shot (3.8.0)
        w.call(OpCode.GET_DATA, GetDataRequest(root, True))
        m.call(OpCode.SET_DATA, SetDataRequest(root, b"3", -1))
        m.call(OpCode.SET_DATA, SetDataRequest(root, b"4", -1))
        out.append(("after standard overlay", sync_events(w, root)))
        out.append(
            (
                "remove recursive as data",
                w.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root + "/sub", 2)).header.err,
            )
        )
        m.call(OpCode.SET_DATA, SetDataRequest(root + "/sub/a", b"x", -1))
        out.append(("after removal", sync_events(w, root)))
        w.close()
        m.close()
        return out

    both(diff, scenario)


def test_set_watches2_rearms_persistent_watches(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        w = RawClient(address)
        m = RawClient(address)
        w.connect()
        m.connect()
        m.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/k", b"", OPEN, 0))
        zxid = m.call(OpCode.EXISTS, ExistsRequest(root, False)).header.zxid
        req = SetWatches2(
            zxid, (root + "/k",), (root + "/none",), (root,), (root + "/p",), (root + "/r",)
        )
        w.request(OpCode.SET_WATCHES2, req, xid=-8)
        r = w.reply()
        out: list[Any] = [("setWatches2", r.header.xid, r.header.err, sync_events(w, root))]
        m.call(OpCode.CREATE, CreateRequest(root + "/p", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/r", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/r/x", b"", OPEN, 0))
        m.call(OpCode.SET_DATA, SetDataRequest(root + "/k", b"v", -1))
        m.call(OpCode.CREATE, CreateRequest(root + "/none", b"", OPEN, 0))
        out.append(("events", sync_events(w, root)))
        for kind in (1, 2):
            out.append(
                (
                    "check r",
                    kind,
                    w.call(
                        OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root + "/r", kind)
                    ).header.err,
                )
            )
        w.close()
        m.close()
        return out

    both(diff, scenario)


def _all_children_beyond_a_walk(c: RawClient, path: str) -> tuple[int, int]:
    """getAllChildrenNumber(path) for the whole tree ("/" or ""), as its error and how many
    more nodes it counts than a walk of the tree by getChildren finds below the root (taken
    again until nothing changed meanwhile: earlier tests' ephemerals may still be expiring)."""
    for _ in range(20):
        before = c.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path))
        walked, todo = 0, ["/"]
        while todo:
            parent = todo.pop()
            r = c.call(OpCode.GET_CHILDREN, GetChildrenRequest(parent, False))
            if r.header.err:  # deleted while walking
                continue
            kids = [parent.rstrip("/") + "/" + name for name in r.body.children]
            walked += len(kids)
            todo.extend(kids)
        after = c.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path))
        if before.header.err or before.body.totalNumber == after.body.totalNumber:
            break
    return before.header.err, before.body and before.body.totalNumber - walked


def test_other_3_6_ops(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        c.call(OpCode.CREATE, CreateRequest(root + "/a", b"A", OPEN, 0))
        c.call(OpCode.CREATE, CreateRequest(root + "/a/b", b"", OPEN, 1))
        c.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1))
        out: list[Any] = []
        for prefix in (root, root + "/a", "/", "", root + "/zz"):
            r = c.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(prefix))
            out.append(
                (
                    "ephemerals",
                    prefix.removeprefix(root),
                    r.header.err,
                    sorted(p.removeprefix(root) for p in r.body.ephemerals),
                )
            )
        for path in (root, root + "/a", root + "/missing"):
            r = c.call(OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(path))
            out.append(
                (
                    "all children",
                    path.removeprefix(root),
                    r.header.err,
                    r.body and r.body.totalNumber,
                )
            )
        for path in ("/", ""):  # the whole tree: compared with a walk of it on the same server
            out.append(("all children", path, _all_children_beyond_a_walk(c, path)))
        reads = MultiRequest(
            (
                MultiOp(OpCode.GET_DATA, GetDataRequest(root + "/a", False)),
                MultiOp(OpCode.GET_CHILDREN, GetChildrenRequest(root + "/a", False)),
                MultiOp(OpCode.GET_DATA, GetDataRequest(root + "/missing", False)),
            )
        )
        r = c.call(OpCode.MULTI_READ, reads)
        out.append(shape(r, root))
        out.append(
            ("multiRead data", r.body.results[0].response.data, r.body.results[1].response.children)
        )
        r = c.call(OpCode.WHO_AM_I)
        out.append(("whoAmI", r.header.err, [(i.authScheme, i.user) for i in r.body.clientInfo]))
        r = c.call(OpCode.RECONFIG, ReconfigRequest(None, None, "server.1=127.0.0.1:1:2", -1))
        out.append(("reconfig", r.header.err))
        c.close()
        return out

    both(diff, scenario)


def _copy_ordered_pair(parent: str) -> tuple[str, str]:
    """Two paths under ``parent`` whose spread Java hashes share their low 4 bits, the first
    with bit 4 clear and bit 5 set, the second the reverse."""
    found: dict[tuple[int, int], str] = {}
    for k in range(10_000):
        path = f"{parent}/p{k}"
        h = java_string_hash(path)
        h ^= h >> 16
        if (h >> 4) & 3 in (1, 2):
            found.setdefault((h & 15, (h >> 4) & 3), path)
            pair = found.get((h & 15, 2)), found.get((h & 15, 1))
            if pair[0] is not None and pair[1] is not None:
                return pair[0], pair[1]
    raise AssertionError("no such pair")


def test_container_and_ttl_expiry(etcd: EtcdServer) -> None:
    """Empty containers that had a child, and TTL nodes idle past their TTL, are deleted by the
    container manager, firing watches like a delete. Both servers check every 300 ms."""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        c.call(OpCode.CREATE_CONTAINER, CreateRequest(root + "/used", b"", OPEN, 4))
        c.call(OpCode.CREATE_CONTAINER, CreateRequest(root + "/fresh", b"", OPEN, 4))
        c.call(OpCode.CREATE, CreateRequest(root + "/used/kid", b"", OPEN, 0))
        c.call(OpCode.CREATE_TTL, CreateTTLRequest(root + "/ttl", b"", OPEN, 5, 500))
        c.call(OpCode.CREATE_TTL, CreateTTLRequest(root + "/ttl-parent", b"", OPEN, 5, 500))
        c.call(OpCode.CREATE, CreateRequest(root + "/ttl-parent/kid", b"", OPEN, 0))
        c.call(OpCode.EXISTS, ExistsRequest(root + "/used", True))
        c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        c.call(OpCode.DELETE, DeleteRequest(root + "/used/kid", -1))
        time.sleep(2.0)
        left = c.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)).body.children
        out: list[Any] = [("left", sorted(left)), ("events", sync_events(c, root))]
        # several found in one pass go in the order of the HashSet ZooKeeper collects them in
        # (containers, then TTL nodes, each in the order of the DataTree's set of them)
        names = [f"n{k}" for k in range(12)]
        emptied = [f"{root}/c/{name}" for name in names]
        c.call(OpCode.CREATE, CreateRequest(root + "/c", b"", OPEN, 0))
        for path in emptied:
            c.call(OpCode.CREATE_CONTAINER, CreateRequest(path, b"", OPEN, 4))
            c.call(OpCode.CREATE, CreateRequest(path + "/kid", b"", OPEN, 0))
            c.call(OpCode.EXISTS, ExistsRequest(path, True))
        kids = tuple(MultiOp(OpCode.DELETE, DeleteRequest(p + "/kid", -1)) for p in emptied)
        c.call(OpCode.MULTI, MultiRequest(kids))
        expiring = [f"{root}/t/{name}" for name in names]
        c.call(OpCode.CREATE, CreateRequest(root + "/t", b"", OPEN, 0))
        ttls = tuple(
            MultiOp(OpCode.CREATE_TTL, CreateTTLRequest(p, b"", OPEN, 5, 500)) for p in expiring
        )
        c.call(OpCode.MULTI, MultiRequest(ttls))
        for path in expiring:
            c.call(OpCode.EXISTS, ExistsRequest(path, True))
        time.sleep(2.0)
        out.append(("reaped in one pass", sync_events(c, root)))
        # two containers that share a bucket of the candidates' set, ordered by the copy of the
        # DataTree's set (getContainers: 32 buckets for 21 paths), not by that set (64 bins,
        # grown with 31 paths): a has bit 4 of its hash clear and bit 5 set, b the reverse
        a, b = _copy_ordered_pair(root + "/k")
        fillers = [f"{root}/k/f{k}" for k in range(28)]
        c.call(OpCode.CREATE, CreateRequest(root + "/k", b"", OPEN, 0))
        for path in (a, b, *fillers):
            c.call(OpCode.CREATE_CONTAINER, CreateRequest(path, b"", OPEN, 4))
        for path in (a, b):
            c.call(OpCode.CREATE, CreateRequest(path + "/kid", b"", OPEN, 0))
            c.call(OpCode.EXISTS, ExistsRequest(path, True))
        c.call(
            OpCode.MULTI,
            MultiRequest(tuple(MultiOp(OpCode.DELETE, DeleteRequest(p, -1)) for p in fillers[:10])),
        )
        c.call(
            OpCode.MULTI,
            MultiRequest(
                tuple(MultiOp(OpCode.DELETE, DeleteRequest(p + "/kid", -1)) for p in (a, b))
            ),
        )
        time.sleep(1.5)
        out.append(
            ("two of 21", [(t, p.replace(a, "a").replace(b, "b")) for t, p in sync_events(c, "")])
        )
        c.close()
        return out

    with ZooKeeperServer(jvm_opts=["-Dznode.container.checkIntervalMs=300"]) as zk:
        zetcd = ZetcdServer(etcd.endpoint, extra_args=("--container-check-interval", "300"))
        with zetcd:
            root = f"/cont-{uuid.uuid4().hex[:8]}"
            expected = scenario(zk.address, root)
            assert scenario(zetcd.address, root) == expected
            assert expected[0] == ("left", ["fresh", "ttl-parent"])
            assert [p for _, p in expected[-1][1] if p in ("a", "b")] == ["a", "b"]
            reaped = [path for _, path in expected[-2][1]]
            assert len(reaped) == 24 and reaped != sorted(reaped)  # not sorted, nor creation order


def test_sets_that_grow_and_shrink_within_one_transaction(diff: Diff) -> None:
    """ZooKeeper's child and ephemeral sets are Java HashSets whose tables grow with the most
    they ever held: a multi (or writes pipelined into one of zetcd's etcd transactions) that
    creates many nodes and deletes most of them again leaves the survivors in a grown table's
    order, and a node deleted and created again has a new, empty set. (The names of the kept
    ephemerals are picked with zetcd's Java hash; what order they come in is ZooKeeper's.)"""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        out: list[Any] = []

        def children(path: str) -> list[str]:
            return list(c.call(OpCode.GET_CHILDREN, GetChildrenRequest(path, False)).body.children)

        def nodes(parent: str, names: range, flags: int = 0) -> tuple[MultiOp, ...]:
            return tuple(
                MultiOp(OpCode.CREATE, CreateRequest(f"{parent}/c{k}", b"", OPEN, flags))
                for k in names
            )

        def gone(parent: str, names: range) -> tuple[MultiOp, ...]:
            return tuple(MultiOp(OpCode.DELETE, DeleteRequest(f"{parent}/c{k}", -1)) for k in names)

        # 30 children created and 24 deleted again in one multi
        c.call(OpCode.CREATE, CreateRequest(root + "/m", b"", OPEN, 0))
        c.call(
            OpCode.MULTI,
            MultiRequest(nodes(root + "/m", range(30)) + gone(root + "/m", range(6, 30))),
        )
        out.append(("multi", children(root + "/m")))
        # the same, pipelined: zetcd commits the writes of one read together
        c.call(OpCode.CREATE, CreateRequest(root + "/p", b"", OPEN, 0))
        xids = [c.request(op.type, op.request) for op in nodes(root + "/p", range(30))]
        xids += [c.request(op.type, op.request) for op in gone(root + "/p", range(6, 30))]
        out.append(("pipelined", [c.reply().header.err for _ in xids], children(root + "/p")))
        # a parent with 30 children deleted and created again with 6
        q = root + "/q"
        c.call(
            OpCode.MULTI,
            MultiRequest(
                (MultiOp(OpCode.CREATE, CreateRequest(q, b"", OPEN, 0)), *nodes(q, range(30)))
            ),
        )
        again = (
            *gone(q, range(30)),
            MultiOp(OpCode.DELETE, DeleteRequest(q, -1)),
            MultiOp(OpCode.CREATE, CreateRequest(q, b"", OPEN, 0)),
        )
        c.call(OpCode.MULTI, MultiRequest(again + nodes(q, range(6))))
        out.append(("created again", children(q)))
        # a session's ephemerals: 60 created in one multi, and all deleted again but those
        # that share a bucket of a small table (getEphemerals lists them in a clone of the
        # set, whose small table puts them together, in the order of the set's grown table)
        e = root + "/e"
        c.call(OpCode.CREATE, CreateRequest(e, b"", OPEN, 0))
        buckets: dict[int, list[int]] = {}
        for k in range(60):
            h = java_string_hash(f"{e}/c{k}")
            buckets.setdefault((h ^ (h >> 16)) & 15, []).append(k)
        kept = max(buckets.values(), key=len)
        dropped = tuple(
            MultiOp(OpCode.DELETE, DeleteRequest(f"{e}/c{k}", -1))
            for k in range(60)
            if k not in kept
        )
        c.call(OpCode.MULTI, MultiRequest(nodes(e, range(60), 1) + dropped))
        listed = c.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(e)).body.ephemerals
        out.append(("ephemerals", [p.removeprefix(root) for p in listed]))
        c.close()
        return out

    both(diff, scenario)


def test_names_that_crowd_one_java_hash_bucket(diff: Diff) -> None:
    """Children and ephemerals whose names share a Java hash bucket nine or more at a time:
    ZooKeeper's HashSets double a small table early and turn a bucket of a bigger one into a
    tree (listed root first), which removals turn back into a list."""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        out: list[Any] = []
        for parent, flags in ((root + "/t", 0), (root + "/e", 1)):
            c.call(OpCode.CREATE, CreateRequest(parent, b"", OPEN, 0))
            prefix = parent + "/" if flags else ""
            names = colliding_names(random.Random(11), prefix)[:90]
            names = [n.removeprefix(prefix) for n in names]
            random.Random(12).shuffle(names)

            def listed(parent: str = parent, flags: int = flags) -> list[str]:
                if flags:
                    got = c.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(parent)).body
                    return [p.removeprefix(parent + "/") for p in got.ephemerals]
                req = GetChildrenRequest(parent, False)
                return list(c.call(OpCode.GET_CHILDREN, req).body.children)

            for k, name in enumerate(names):
                c.call(OpCode.CREATE, CreateRequest(f"{parent}/{name}", b"", OPEN, flags))
                if k in (10, 40, 89):
                    out.append((parent, k, listed()))
            for k, name in enumerate(names[::2]):
                c.call(OpCode.DELETE, DeleteRequest(f"{parent}/{name}", -1))
                if k in (5, 30, 44):
                    out.append((parent, -k, listed()))
        c.close()
        return out

    both(diff, scenario)


def test_set_watches_replays_what_was_missed(diff: Diff) -> None:
    """setWatches (101) after a reconnect: data watches on changed or deleted nodes fire at once,
    exist watches on nodes created meanwhile fire NodeCreated, child watches likewise; the rest
    are re-armed and fire on the next change."""

    def scenario(address: str, root: str) -> list[Any]:
        m = RawClient(address)
        m.connect()
        m.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        for name in ("same", "changed", "gone", "kids", "quiet"):
            m.call(OpCode.CREATE, CreateRequest(f"{root}/{name}", b"", OPEN, 0))
        seen = m.call(OpCode.EXISTS, ExistsRequest(root, False)).header.zxid
        m.call(OpCode.SET_DATA, SetDataRequest(root + "/changed", b"x", -1))
        m.call(OpCode.DELETE, DeleteRequest(root + "/gone", -1))
        m.call(OpCode.CREATE, CreateRequest(root + "/born", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/kids/k", b"", OPEN, 0))
        w = RawClient(address)
        w.connect()
        req = SetWatches(
            seen,
            tuple(f"{root}/{n}" for n in ("same", "changed", "gone")),
            tuple(f"{root}/{n}" for n in ("born", "unborn")),
            tuple(f"{root}/{n}" for n in ("kids", "quiet", "gone")),
        )
        w.request(OpCode.SET_WATCHES, req, xid=-8)
        r = w.reply()
        out: list[Any] = [("setWatches", r.header.xid, r.header.err, sorted(events(w, root)))]
        m.call(OpCode.SET_DATA, SetDataRequest(root + "/same", b"y", -1))
        m.call(OpCode.CREATE, CreateRequest(root + "/unborn", b"", OPEN, 0))
        m.call(OpCode.CREATE, CreateRequest(root + "/quiet/q", b"", OPEN, 0))
        out.append(("re-armed", sorted(sync_events(w, root))))
        w.close()
        m.close()
        return out

    both(diff, scenario)


def test_super_digest(etcd: EtcdServer) -> None:
    """A session that authenticates as the super digest may do anything, on both servers."""
    from zetcd.emulation.acls import digest_id

    superid = digest_id("super:admin-secret")

    def scenario(address: str, root: str) -> list[Any]:
        owner = RawClient(address)
        owner.connect()
        owner.request(OpCode.AUTH, AuthPacket(0, "digest", b"alice:pw"), xid=-4)
        owner.reply()
        mine = (ACL(31, Id("digest", digest_id("alice:pw"))),)
        owner.call(OpCode.CREATE, CreateRequest(root, b"secret", mine, 0))
        out: list[Any] = []
        for who in (None, b"super:wrong", b"super:admin-secret"):
            c = RawClient(address)
            c.connect()
            if who is not None:
                c.request(OpCode.AUTH, AuthPacket(0, "digest", who), xid=-4)
                c.reply()
            got = c.call(OpCode.GET_DATA, GetDataRequest(root, False))
            out.append((who, got.header.err, got.body and got.body.data))
            out.append((who, c.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1)).header.err))
            c.close()
        owner.close()
        return out

    prop = f"-Dzookeeper.DigestAuthenticationProvider.superDigest={superid}"
    zetcd = ZetcdServer(etcd.endpoint, extra_args=("--super-digest", superid))
    with ZooKeeperServer(jvm_opts=[prop]) as zk, zetcd:
        root = f"/super-{uuid.uuid4().hex[:8]}"
        expected = scenario(zk.address, root)
        assert scenario(zetcd.address, root) == expected
        assert expected[-2][1] == 0 and expected[-2][2] == b"secret"

"""The key layout in etcd (zetcd/emulation/layout.py): what a write leaves in etcd, and that a
zetcd loading the tree from etcd at start-up sees exactly the Stats, ACLs and children that a
zetcd which watched every change being made sees."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl, make_digest_acl
from pyetcd.etcdrpc import rpc_pb2, rpc_pb2_grpc

from tests.servers import EtcdServer
from tests.zetcd_server import ZetcdServer
from zetcd.emulation import layout as L
from zetcd.emulation.layout import Layout
from zetcd.etcd import op_put, prefix_end
from zetcd.proto.records import ACL, Id


def _kazoo(address: str) -> KazooClient:
    zk = KazooClient(hosts=address, timeout=10)
    zk.start(timeout=15)
    return zk


def _keys(etcd: EtcdServer, prefix: str) -> set[str]:
    """The keys under a zetcd's prefix, without it, e.g. ``d/a`` (specials left out)."""
    with grpc.insecure_channel(f"{etcd.host}:{etcd.port}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        p = prefix.encode()
        resp = kv.Range(rpc_pb2.RangeRequest(key=p, range_end=prefix_end(p), keys_only=True))
    keys = {kv.key[len(p) :].decode() for kv in resp.kvs}
    return {k for k in keys if k[0] in "dcax" and not k[1:].startswith("/zookeeper")}


@pytest.fixture
def zetcd_on_prefix(etcd: EtcdServer) -> Iterator[ZetcdServer]:
    server = ZetcdServer(etcd.endpoint, prefix=f"/zetcd-layout-{uuid.uuid4().hex[:8]}/").start()
    try:
        yield server
    finally:
        server.stop()


def test_a_plain_create_writes_one_key(etcd: EtcdServer, zetcd_on_prefix: ZetcdServer) -> None:
    zk = _kazoo(zetcd_on_prefix.address)
    try:
        zk.create("/leaf", b"x")
        assert _keys(etcd, zetcd_on_prefix.prefix) == {"d/", "c/", "a/", "x/", "d/leaf"}
        zk.create("/leaf/child", b"")
        zk.create("/closed", b"", acl=[make_acl("world", "anyone", read=True)])
        assert _keys(etcd, zetcd_on_prefix.prefix) == {
            "d/",
            "c/",
            "a/",
            "x/",
            "d/leaf",
            "c/leaf",  # its first child change created it
            "d/leaf/child",
            "d/closed",
            "a/closed",  # not the open ACL
        }
    finally:
        zk.stop()
        zk.close()


def _snapshot(zk: KazooClient, path: str = "/", ordered: bool = False) -> dict[str, object]:
    """Every node's Stat, data, ACL and children under ``path``, /zookeeper left out. Children
    are sorted unless ``ordered``: a restarted zetcd cannot order children that one multi created
    (they share a zxid) as the running one does (docs/normalization.md)."""
    out: dict[str, object] = {}
    children, stat = zk.get_children(path, include_data=True)
    data, _ = zk.get(path)
    acl, _ = zk.get_acls(path)
    listed = children if ordered else sorted(children)
    out[path] = (stat, data, [(a.perms, a.id.scheme, a.id.id) for a in acl], listed)
    for name in children:
        child = f"{path.rstrip('/')}/{name}"
        if child != "/zookeeper":
            out.update(_snapshot(zk, child, ordered))
    return out


def _write_everything(zk: KazooClient) -> None:
    """Writes that exercise every key of the layout: lazy and full nodes, adjustment keys,
    nodes re-created inside a transaction, sequential names, ACLs."""
    zk.add_auth("digest", "user:pw")
    zk.create("/lazy", b"leaf")
    zk.create("/parent", b"")
    zk.create("/parent/one", b"")
    t = zk.transaction()  # three child changes in one transaction: an adjustment key
    t.create("/parent/two", b"")
    t.create("/parent/three", b"")
    t.delete("/parent/one")
    t.commit()
    t = zk.transaction()  # a node and its children created together
    t.create("/fresh", b"")
    t.create("/fresh/a", b"")
    t.create("/fresh/b", b"")
    t.commit()
    t = zk.transaction()  # deleted and created again inside one transaction
    t.delete("/lazy")
    t.create("/lazy", b"again")
    t.commit()
    zk.create("/seq", b"")
    for _ in range(3):
        zk.create("/seq/n-", b"", sequence=True)
    zk.delete("/seq/n-0000000001")
    zk.create("/digest", b"", acl=[make_digest_acl("user", "pw", all=True)])
    zk.create("/acl", b"")
    zk.set_acls("/acl", [make_acl("world", "anyone", read=True, write=True)])
    zk.set("/parent", b"changed")
    zk.create("/parent/two/deep", b"")
    zk.delete("/fresh/a")
    zk.create("/eph", b"", ephemeral=True)
    zk.delete("/eph")


def test_a_restarted_zetcd_sees_what_the_running_one_saw(
    etcd: EtcdServer, zetcd_on_prefix: ZetcdServer
) -> None:
    zk = _kazoo(zetcd_on_prefix.address)
    try:
        _write_everything(zk)
        before = _snapshot(zk)
    finally:
        zk.stop()
        zk.close()
    zetcd_on_prefix.stop()
    again = ZetcdServer(etcd.endpoint, prefix=zetcd_on_prefix.prefix).start()
    try:
        zk = _kazoo(again.address)
        try:
            zk.add_auth("digest", "user:pw")
            after = _snapshot(zk)
        finally:
            zk.stop()
            zk.close()
    finally:
        again.stop()
    assert after == before
    stat, _, _, children = before["/parent"]  # type: ignore[misc]
    assert (stat.cversion, stat.numChildren, children) == (4, 2, ["three", "two"])


def test_a_tree_in_the_three_key_layout_still_works(etcd: EtcdServer) -> None:
    """Nodes written before the one-key create (``d``, ``c`` and ``a`` keys, no lazy flag), as
    the old code wrote them, load with the right Stats and take new children correctly."""
    prefix = f"/zetcd-layout-{uuid.uuid4().hex[:8]}/"
    lay = Layout(prefix.encode())
    now = int(time.time() * 1000)
    value = L.DataValue(0, L.CZXID_FROM_CREATE, now, now, 0, L.NODE_PLAIN, 0, 0, 0, 0, b"old")
    ops = [
        op_put(lay.data("/old"), value.encode()),
        op_put(lay.children("/old"), L.encode_children_value(0)),
        op_put(lay.acl("/old"), L.encode_acl_value(0, L.OPEN_ACL)),
    ]
    with grpc.insecure_channel(f"{etcd.host}:{etcd.port}") as channel:
        written = rpc_pb2_grpc.KVStub(channel).Txn(rpc_pb2.TxnRequest(success=ops))
    zxid = L.zxid(written.header.revision)

    def stat_of(server: ZetcdServer, path: str) -> tuple[object, ...]:
        zk = _kazoo(server.address)
        try:
            data, s = zk.get(path)
            acl, _ = zk.get_acls(path)
        finally:
            zk.stop()
            zk.close()
        return (data, s.czxid, s.mzxid, s.pzxid, s.cversion, s.aversion, s.numChildren, acl)

    open_acl = [make_acl("world", "anyone", all=True)]
    server = ZetcdServer(etcd.endpoint, prefix=prefix).start()
    try:
        assert stat_of(server, "/old") == (b"old", zxid, zxid, zxid, 0, 0, 0, open_acl)
        zk = _kazoo(server.address)
        try:
            zk.create("/old/kid", b"")
            kid = zk.exists("/old/kid").czxid
        finally:
            zk.stop()
            zk.close()
        after = (b"old", zxid, zxid, kid, 1, 0, 1, open_acl)
        assert stat_of(server, "/old") == after
    finally:
        server.stop()
    again = ZetcdServer(etcd.endpoint, prefix=prefix).start()
    try:
        assert stat_of(again, "/old") == after
    finally:
        again.stop()


def test_the_writing_zetcd_sees_what_a_watching_one_sees(
    etcd: EtcdServer, zetcd_on_prefix: ZetcdServer
) -> None:
    """The zetcd that commits a transaction and another zetcd on the same prefix, which only
    learns of it from its etcd watch, end up with the same tree, children in the same order,
    and fire the same watches."""
    other = ZetcdServer(etcd.endpoint, prefix=zetcd_on_prefix.prefix).start()
    writer, watcher = _kazoo(zetcd_on_prefix.address), _kazoo(other.address)
    try:
        seen: dict[str, list[tuple[str, str]]] = {"writer": [], "watcher": []}
        for zk, name in ((writer, "writer"), (watcher, "watcher")):
            zk.add_auth("digest", "user:pw")

            def record(event: object, log: list[tuple[str, str]] = seen[name]) -> None:
                log.append((event.type, event.path))  # type: ignore[attr-defined]

            zk.get_children("/", watch=record)
        _write_everything(writer)
        watcher.sync("/")
        assert _snapshot(writer, ordered=True) == _snapshot(watcher, ordered=True)
        deadline = time.monotonic() + 10
        while len(seen["watcher"]) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen["writer"] == seen["watcher"] == [("CHILD", "/")]
    finally:
        for zk in (writer, watcher):
            zk.stop()
            zk.close()
        other.stop()


def test_acl_values_with_ids_of_64_kib_and_more_round_trip() -> None:
    """ZooKeeper takes an ACL id of any length; a value with one that needs more than 16 bits
    keeps its lengths in 32 (flagged by a complemented count), others keep the 16-bit form
    that zetcds before it wrote and read."""
    from zetcd.proto.records import ACL, Id

    short = (ACL(31, Id("digest", "u:" + "x" * 0xFFFC)), ACL(1, Id("ip", "127.0.0.1")))
    value = L.encode_acl_value(3, short)
    assert int.from_bytes(value[4:8], "big") == 2  # the 16-bit form
    assert L.decode_acl_value(value) == (3, short)
    for n in (0xFFFF, 0x10000, 500_000):
        acl = (ACL(1, Id("ip", "10.0.0.1")), ACL(31, Id("digest", "é" * n)), ACL(2, Id("w", "")))
        value = L.encode_acl_value(7, acl)
        assert int.from_bytes(value[4:8], "big", signed=True) == ~3
        assert L.decode_acl_value(value) == (7, acl)


def test_log_values_name_event_acls_and_older_ones_still_decode() -> None:
    """The !log names, for some changes, the ACLs their events are checked against (the node's
    and the parent's, either may be absent); a log without them, as zetcds before them wrote
    it, decodes to the same changes and names none."""
    hidden = (ACL(31, Id("ip", "10.0.0.0/8")), ACL(1, Id("digest", "u:\u00e9\U0001f600")))
    changes = [("s", "/a"), ("c", "/p/\u00e9"), ("d", "/p/\u00e9"), ("c", "/q")]
    raw = L.encode_log(changes, {1: (hidden, None), 2: (None, hidden), 3: (hidden, ())})
    assert L.decode_log(raw) == (
        changes,
        {(1, "/p/\u00e9"): hidden, (2, "/p"): hidden, (3, "/q"): hidden, (3, "/"): ()},
        {},
    )
    older = b'[["s","/a"],["c","/p/x"]]'
    assert L.decode_log(older) == ([("s", "/a"), ("c", "/p/x")], {}, {})
    assert L.encode_log([("s", "/a"), ("c", "/p/x")]) == older


def test_log_values_name_the_owners_of_nodes_a_transaction_creates_and_deletes() -> None:
    """A create of an ephemeral, container or TTL node deleted again in the same transaction
    names its owner (with or without ACLs named for its events)."""
    hidden = (ACL(31, Id("ip", "10.0.0.0/8")),)
    changes = [("c", "/e"), ("c", "/f"), ("d", "/e"), ("d", "/f"), ("c", "/g")]
    owner = -(1 << 63)
    raw = L.encode_log(changes, {1: (hidden, None)}, {0: 0x1234, 1: owner})
    assert L.decode_log(raw) == (changes, {(1, "/f"): hidden}, {0: 0x1234, 1: owner})
    assert L.decode_log(L.encode_log(changes, None, {4: 7})) == (changes, {}, {4: 7})

"""Null paths, multiRead's watch flags, getEphemerals' blank prefixes and SASL packets, sent
byte for byte to real ZooKeeper 3.8 and to zetcd (docs/zk-facts.md, section 7)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.differential import Diff
from tests.rawclient import Closed, RawClient
from tests.servers import EtcdServer, ZooKeeperServer
from tests.test_diff_wire import OPEN, ZxidTrack, both
from tests.zetcd_server import ZetcdServer
from zetcd.proto.codec import encode_request
from zetcd.proto.constants import OpCode, WatcherType
from zetcd.proto.framing import frame
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    CheckVersionRequest,
    CheckWatchesRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    MultiOp,
    MultiRequest,
    RemoveWatchesRequest,
    RequestHeader,
    SetACLRequest,
    SetDataRequest,
    SetWatches,
    SetWatches2,
    SyncRequest,
)


def _raw(c: RawClient, opcode: int, record: Any) -> tuple[int, int, str]:
    """(zxid, err, body as hex) of one request, its reply read undecoded; the notifications
    that come before it are noted in ``c.pending`` as raw frames."""
    c.xid += 1
    c.send_raw(frame(encode_request(RequestHeader(c.xid, opcode), record)))
    while True:
        raw = c.raw_reply()
        xid, zxid, err = struct.unpack(">iqi", raw[:16])
        if xid != -1:
            return zxid, err, raw[16:].hex()
        c.pending.append(raw[16:].hex())


def _multi(*ops: tuple[int, Any]) -> MultiRequest:
    return MultiRequest(tuple(MultiOp(t, r) for t, r in ops))


def test_null_paths_get_marshalling_error(diff: Diff) -> None:
    """A null path (length -1) throws inside ZooKeeper: MarshallingError, a zxid spent for a
    create or delete (an error txn); a session's first persistent watch on a null path is kept
    and the next one throws (so does removeWatches of a null path then); a multi with one gets -5 and only the end marker, with no
    zxid spent; a multiRead gets the results before it. setData, setACL and check alone
    validate the path first: BadArguments."""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        t = ZxidTrack()
        c.call(OpCode.CREATE, CreateRequest(root, b"r", OPEN, 0))
        out: list[Any] = []
        requests: list[tuple[str, int, Any]] = [
            ("exists", OpCode.EXISTS, ExistsRequest(None, True)),
            ("getData", OpCode.GET_DATA, GetDataRequest(None, True)),
            ("getChildren", OpCode.GET_CHILDREN, GetChildrenRequest(None, False)),
            ("getChildren2", OpCode.GET_CHILDREN2, GetChildren2Request(None, False)),
            ("getACL", OpCode.GET_ACL, GetACLRequest(None)),
            ("allChildren", OpCode.GET_ALL_CHILDREN_NUMBER, GetAllChildrenNumberRequest(None)),
            ("create", OpCode.CREATE, CreateRequest(None, b"", OPEN, 0)),
            ("create2", OpCode.CREATE2, CreateRequest(None, b"", OPEN, 0)),
            ("delete", OpCode.DELETE, DeleteRequest(None, -1)),
            ("setData", OpCode.SET_DATA, SetDataRequest(None, b"", -1)),
            ("check", OpCode.CHECK, CheckVersionRequest(None, -1)),
            ("persistent watch", OpCode.ADD_WATCH, AddWatchRequest(None, 0)),
            ("recursive watch", OpCode.ADD_WATCH, AddWatchRequest(None, 1)),
            ("removeWatches", OpCode.REMOVE_WATCHES, RemoveWatchesRequest(None, WatcherType.ANY)),
            ("setWatches exist", OpCode.SET_WATCHES, SetWatches(0, (), (None,), ())),
            ("setWatches2 null list", OpCode.SET_WATCHES2, SetWatches2(0, None, (), (), (), ())),
            ("setWatches2 data", OpCode.SET_WATCHES2, SetWatches2(0, (root, None), (), (), (), ())),
            (
                "setWatches2 persistent",
                OpCode.SET_WATCHES2,
                SetWatches2(0, (), (), (), (None,), ()),
            ),
            (
                "multi",
                OpCode.MULTI,
                _multi(
                    (OpCode.CREATE, CreateRequest(root + "/m", b"", OPEN, 0)),
                    (OpCode.SET_DATA, SetDataRequest(None, b"", -1)),
                ),
            ),
            ("multi check", OpCode.MULTI, _multi((OpCode.CHECK, CheckVersionRequest(None, -1)))),
            (
                "multiRead",
                OpCode.MULTI_READ,
                _multi(
                    (OpCode.GET_DATA, GetDataRequest(root, False)),
                    (OpCode.GET_CHILDREN, GetChildrenRequest(None, False)),
                ),
            ),
        ]
        for label, opcode, record in requests:
            write = opcode in (OpCode.CREATE, OpCode.CREATE2, OpCode.DELETE, OpCode.MULTI)
            zxid, err, body = _raw(c, opcode, record)
            # the multiRead's body holds the root's Stat: its zxids and times differ
            shown = body if opcode != OpCode.MULTI_READ else (len(body), body[-18:])
            out.append((label, t.rel(zxid, write), err, shown))
        out.append(
            (
                "multi created nothing",
                c.call(OpCode.EXISTS, ExistsRequest(root + "/m", False)).header.err,
            )
        )
        # no watch was left on the root by the requests above
        check = c.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, WatcherType.ANY))
        out.append(("watches on the root", check.header.err))
        c.close()
        return out

    both(diff, scenario)


def test_a_null_path_watch_after_a_persistent_one_on_a_path_hashing_to_zero(diff: Diff) -> None:
    """ZooKeeper's table of watch modes compares a null-path key with every key of the same
    hash, and a session's key hashes as its path's String.hashCode(): a null-path addWatch
    after a persistent watch on "" or "/bbodcmn" (both hash to 0) throws, MarshallingError;
    after one on another path, or once that watch is removed, it is kept."""

    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        for first, remove in (("", False), ("/bbodcmn", False), ("/other", False), ("", True)):
            c = RawClient(address)
            c.connect()
            for opcode, record in (
                (OpCode.ADD_WATCH, AddWatchRequest(first, 1)),
                (OpCode.REMOVE_WATCHES, RemoveWatchesRequest(first, WatcherType.ANY)),
                (OpCode.ADD_WATCH, AddWatchRequest(None, 0)),
            ):
                if remove or opcode != OpCode.REMOVE_WATCHES:
                    out.append((first, opcode, _raw(c, opcode, record)[1]))
            c.close()
        return out

    both(diff, scenario)


def test_null_acl_ids_get_marshalling_error(diff: Diff) -> None:
    """fixupACL reads a world id (``equals("anyone")``) and has a provider validate the others:
    a null id throws there, so create, create2 and setACL fail with MarshallingError, a zxid
    spent, whatever else is wrong with the request (a missing parent or node, an existing
    one), and a multi with such a create fails whole, with no per-op results. An ``auth``
    entry's id is never read, and a scheme with no provider (x509 without a secure port, a
    null scheme) is InvalidACL."""

    def acl(scheme: str | None, ident: str | None) -> tuple[ACL, ...]:
        return (ACL(31, Id(scheme, ident)),)

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        t = ZxidTrack()
        c.call(OpCode.CREATE, CreateRequest(root, b"r", OPEN, 0))
        requests: list[tuple[str, int, Any]] = [
            ("world", OpCode.CREATE, CreateRequest(root + "/a", b"", acl("world", None), 0)),
            ("digest", OpCode.CREATE2, CreateRequest(root + "/a", b"", acl("digest", None), 0)),
            ("ip", OpCode.CREATE, CreateRequest(root + "/a", b"", acl("ip", None), 0)),
            ("x509", OpCode.CREATE, CreateRequest(root + "/a", b"", acl("x509", None), 0)),
            ("auth", OpCode.CREATE, CreateRequest(root + "/a", b"", acl("auth", None), 0)),
            ("no scheme", OpCode.CREATE, CreateRequest(root + "/a", b"", acl(None, "x"), 0)),
            ("exists", OpCode.CREATE, CreateRequest(root, b"", acl("world", None), 0)),
            ("no parent", OpCode.CREATE, CreateRequest(root + "/x/y", b"", acl("ip", None), 0)),
            ("setACL", OpCode.SET_ACL, SetACLRequest(root, acl("digest", None), -1)),
            ("setACL no node", OpCode.SET_ACL, SetACLRequest(root + "/n", acl("ip", None), -1)),
            ("setACL world", OpCode.SET_ACL, SetACLRequest(root, acl("world", None), -1)),
            (
                "multi",
                OpCode.MULTI,
                _multi(
                    (OpCode.CREATE, CreateRequest(root + "/m1", b"", OPEN, 0)),
                    (OpCode.CREATE, CreateRequest(root + "/m2", b"", acl("digest", None), 0)),
                ),
            ),
            ("after", OpCode.CREATE, CreateRequest(root + "/ok", b"", OPEN, 0)),
        ]
        out: list[Any] = []
        for label, opcode, record in requests:
            zxid, err, body = _raw(c, opcode, record)
            out.append((label, t.rel(zxid), err, body))
        for path in ("/a", "/m1", "/m2"):
            out.append((path, c.call(OpCode.EXISTS, ExistsRequest(root + path, False)).header.err))
        c.close()
        return out

    both(diff, scenario)


def test_multiread_sets_no_watches(diff: Diff) -> None:
    """ZooKeeper runs a multiRead's ops as Op.getData(path) and Op.getChildren(path): their
    watch flags are dropped, so nothing fires later."""

    def scenario(address: str, root: str) -> list[Any]:
        w = RawClient(address)
        w.connect()
        w.call(OpCode.CREATE, CreateRequest(root, b"r", OPEN, 0))
        read = _multi(
            (OpCode.GET_DATA, GetDataRequest(root, True)),
            (OpCode.GET_CHILDREN, GetChildrenRequest(root, True)),
        )
        out: list[Any] = [("multiRead", w.call(OpCode.MULTI_READ, read).header.err)]
        for kind in (WatcherType.DATA, WatcherType.CHILDREN):
            r = w.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, kind))
            out.append(("checkWatches", kind, r.header.err))
        x = RawClient(address)
        x.connect()
        x.call(OpCode.SET_DATA, SetDataRequest(root, b"changed", -1))
        x.call(OpCode.CREATE, CreateRequest(root + "/kid", b"", OPEN, 0))
        w.call(OpCode.EXISTS, ExistsRequest(root, False))  # what fired is in by now
        out.append(("events", [(e.type, e.path) for e in w.pending]))
        x.close()
        w.close()
        return out

    both(diff, scenario)


def test_get_ephemerals_blank_prefixes_are_javas(diff: Diff) -> None:
    """getEphemerals lists every ephemeral of the session for a blank prefix or "/", both by
    Java's String.trim, which strips the characters up to U+0020 and keeps Unicode's other
    spaces."""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        c.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1))
        out: list[Any] = []
        for prefix in ("\x01", "\x1f/\x00", "\xa0", "\u2003", "\u3000", " ", "/\t", root):
            r = c.call(OpCode.GET_EPHEMERALS, GetEphemeralsRequest(prefix))
            out.append((prefix, r.header.err, [p.removeprefix(root) for p in r.body.ephemerals]))
        c.close()
        return out

    both(diff, scenario)


def test_sasl_packets_on_a_server_without_sasl(diff: Diff) -> None:
    """A server with no SASL configured answers a SASL token (op 102) with no token, zxid 0,
    and keeps the connection; a null token or a body it cannot read closes the connection."""

    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        for label, body in (
            ("token", b"\x00\x00\x00\x03abc"),
            ("null", b"\xff\xff\xff\xff"),
            ("none", b""),
        ):
            c = RawClient(address)
            c.connect()
            c.xid += 1
            frame = struct.pack(">ii", c.xid, OpCode.SASL) + body
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            try:
                raw = c.raw_reply()
                _xid, zxid, err = struct.unpack(">iqi", raw[:16])
                after = c.call(OpCode.EXISTS, ExistsRequest("/", False)).header.err
                out.append((label, zxid, err, raw[16:].hex(), after))
            except (Closed, OSError):
                out.append((label, "closed"))
            c.close()
        return out

    both(diff, scenario)


def test_set_watches2_takes_a_null_persistent_entry_as_add_watch_does(diff: Diff) -> None:
    """A null entry in setWatches2's persistent lists is added as addWatch adds a null path:
    a connection's first is kept and the request goes on (the recursive watch after it is
    set and fires); its next one, or a removeWatches of a null path, then throws. Null entries
    in the other lists, or a null list, throw at once."""

    def scenario(address: str, root: str) -> list[Any]:
        w = RawClient(address)
        w.connect()
        w.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        out: list[Any] = []
        c = RawClient(address)
        c.connect()
        out.append(_raw(c, OpCode.SET_WATCHES2, SetWatches2(0, (), (), (), (None,), (root,)))[1:])
        w.call(OpCode.CREATE, CreateRequest(root + "/r", b"", OPEN, 0))
        out.append(("sync", _raw(c, OpCode.SYNC, SyncRequest(root))[1]))
        out.append(("events", c.pending))
        for opcode, record in (
            (OpCode.ADD_WATCH, AddWatchRequest(None, 0)),
            (OpCode.REMOVE_WATCHES, RemoveWatchesRequest(None, WatcherType.ANY)),
            (OpCode.SET_WATCHES2, SetWatches2(0, (), (), (), (), (None,))),
        ):
            out.append((opcode, _raw(c, opcode, record)[1]))
        c.close()
        d = RawClient(address)
        d.connect()
        for body in (
            SetWatches2(0, (), (), (), (None, None), ()),
            SetWatches2(0, (), (), (None,), (), ()),
            SetWatches2(0, (), (), (), (), None),
        ):
            out.append(("fresh", _raw(d, OpCode.SET_WATCHES2, body)[1]))
        d.close()
        w.close()
        return out

    both(diff, scenario)


@contextmanager
def _fresh(etcd: EtcdServer) -> Iterator[Diff]:
    """A ZooKeeper of its own (and a zetcd): ZooKeeper 3.8 keeps counting the recursive watch
    of a closed connection whose watch was on a null path (docs/differences.md), as earlier
    tests on the shared one leave it, and a relative path's checkWatches shows that count."""
    with ZooKeeperServer() as zk, ZetcdServer(etcd.endpoint) as z:
        yield Diff(zk.address, z.address)


def test_check_watches_of_a_relative_path_while_a_recursive_watch_exists(
    etcd: EtcdServer,
) -> None:
    """checkWatches walks a path up to its parents while any connection has a persistent
    recursive watch: a relative path with a '/' then throws (MarshallingError) unless a watch
    of the type checked is on the path itself; otherwise it is NoWatcher."""

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.call(OpCode.EXISTS, ExistsRequest("a/w", True))  # a data watch on a relative path
        out: list[Any] = []

        def checks(label: str) -> None:
            for path in ("a/b", "a/w", "a/"):
                for kind in (WatcherType.CHILDREN, WatcherType.DATA, WatcherType.ANY):
                    err = _raw(c, OpCode.CHECK_WATCHES, CheckWatchesRequest(path, kind))[1]
                    out.append((label, path, kind, err))

        checks("no recursive watch")
        r = RawClient(address)
        r.connect()
        r.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        r.call(OpCode.ADD_WATCH, AddWatchRequest(root, 1))
        checks("another connection's recursive watch")
        # each type of watch counts its own recursive watches
        r.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.CHILDREN))
        checks("in the data table only")
        r.call(OpCode.ADD_WATCH, AddWatchRequest(root, 1))
        r.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.DATA))
        checks("in the child table only")
        r.call(OpCode.ADD_WATCH, AddWatchRequest(root, 1))
        r.call(OpCode.GET_DATA, GetDataRequest(root, True))  # a standard data watch instead
        checks("a standard data watch over it")
        r.close()
        c.call(OpCode.SYNC, SyncRequest(root))
        checks("closed")
        c.close()
        return out

    with _fresh(etcd) as diff:
        both(diff, scenario)


@pytest.mark.parametrize("form", ["setWatches2", "addWatch"])
def test_a_null_recursive_watch_counts_as_a_recursive_watch(etcd: EtcdServer, form: str) -> None:
    """A recursive watch on a null path (setWatches2's recursive list, or addWatch): while its
    connection lives, checkWatches of a relative path throws for every connection. A fresh
    ZooKeeper for each: once such a connection closes, ZooKeeper 3.8 never takes its watch
    off its recursive count (docs/differences.md), which no other test may inherit."""
    add: tuple[int, Any] = (
        (OpCode.SET_WATCHES2, SetWatches2(0, (), (), (), (), (None,)))
        if form == "setWatches2"
        else (OpCode.ADD_WATCH, AddWatchRequest(None, 1))
    )

    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        o = RawClient(address)
        o.connect()
        check = CheckWatchesRequest("a/b", WatcherType.DATA)
        out = [("before", _raw(o, OpCode.CHECK_WATCHES, check)[1])]
        out.append(("added", _raw(c, *add)[1]))
        out.append(("during", _raw(o, OpCode.CHECK_WATCHES, check)[1]))
        c.close()
        o.close()
        return out

    with _fresh(etcd) as diff:
        both(diff, scenario)

"""Malformed and odd input on the wire, sent byte for byte to real ZooKeeper 3.8 and to zetcd.

Each scenario returns what a client observes; zxids are reduced to how they relate to the zxid
seen just before ("same", "up" or a literal special value), since the servers' numbers differ.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.differential import Diff
from tests.rawclient import Closed, RawClient
from tests.servers import ZooKeeperServer
from tests.zetcd_server import ZetcdServer
from zetcd.proto import decode_connect_response, encode_connect_request
from zetcd.proto.constants import Err, OpCode, WatcherType
from zetcd.proto.records import (
    ACL,
    AuthPacket,
    CheckWatchesRequest,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiOp,
    MultiRequest,
    RemoveWatchesRequest,
    RequestHeader,
    SetDataRequest,
    SetWatches,
    SyncRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)


class ZxidTrack:
    """How a reply's zxid relates to the previous one. A write must move it ("up"); for a read
    only "not down" is asserted ("ok"), since other sessions on a shared server (say, an expiry
    left over from an earlier test) may move it at any time."""

    def __init__(self) -> None:
        self.last: int | None = None

    def rel(self, zxid: int, write: bool = True) -> Any:
        if zxid in (-1, 0):
            return zxid
        last, self.last = self.last, zxid
        if last is None:
            return "first"
        if zxid < last:
            return "down"
        if not write:
            return "ok"
        return "up" if zxid > last else "same"


def observe(reply: Any, track: ZxidTrack, write: bool = False) -> tuple[Any, ...]:
    h = reply.header
    body = type(reply.body).__name__ if reply.body else None
    return (h.xid, track.rel(h.zxid, write), h.err, body)


def both(diff: Diff, scenario: Callable[[str, str], list[Any]]) -> list[Any]:
    root = f"/wire-{uuid.uuid4().hex[:10]}"
    expected = scenario(diff.zookeeper, root)
    actual = scenario(diff.zetcd, root)
    assert actual == expected
    return actual


def _setup(address: str, root: str) -> tuple[RawClient, ZxidTrack]:
    c = RawClient(address)
    c.connect()
    t = ZxidTrack()
    c.call(OpCode.CREATE, CreateRequest(root, b"r", OPEN, 0))
    return c, t


def test_unknown_opcode_answers_unimplemented_and_session_survives(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        resp = c.connect.__self__  # keep mypy quiet about the bound method
        del resp
        sid_conn = RawClient(address)
        cr = sid_conn.connect()
        out: list[Any] = []
        sid_conn.request(999)
        out.append(observe(sid_conn.reply(), t))
        out.append(("closed", sid_conn.is_closed()))
        again = RawClient(address)
        resumed = again.connect(session_id=cr.sessionId, passwd=cr.passwd)
        out.append(("resumed", resumed.sessionId == cr.sessionId, resumed.timeOut))
        out.append(observe(again.call(OpCode.EXISTS, ExistsRequest(root, False)), t))
        for x in (c, sid_conn, again):
            x.close()
        return out

    both(diff, scenario)


@pytest.mark.parametrize("opcode", [10, 0, -5, 20000])
def test_other_unknown_opcodes(diff: Diff, opcode: int) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        c.request(opcode)
        r = c.reply()
        out = [(r.header.xid, r.header.zxid, r.header.err), c.is_closed()]
        c.close()
        return out

    both(diff, scenario)


def _how_it_ends(c: RawClient) -> str:
    """ "eof" when the server ends the stream, "reset" when the connection is reset."""
    c.sock.settimeout(5)
    try:
        while c.sock.recv(65536):
            pass
    except ConnectionResetError:
        return "reset"
    return "eof"


def test_oversized_and_negative_frames_cost_only_their_connection(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        keeper, _t = _setup(address, root)
        out: list[Any] = []
        for length in (0x100000, -1, 0x7FFFFFFF):
            bad = RawClient(address)
            bad.connect()
            bad.send_raw(struct.pack(">i", length) + b"\0" * 64)
            out.append((length, bad.is_closed()))
            bad.close()
        # the whole payload of an oversized frame sent: the close still reads as the end of
        # the stream (unread bytes reset a socket closed without shutting its output first)
        bad = RawClient(address)
        bad.connect()
        with contextlib.suppress(OSError):
            bad.send_raw(struct.pack(">i", 0x100000) + b"\0" * 0x100000)
        out.append(("whole payload", _how_it_ends(bad)))
        bad.close()
        # exactly 1048575 bytes is accepted (a setData whose frame is that long)
        big = RawClient(address)
        big.connect()
        path = root
        overhead = 4 + 4 + 4 + len(path.encode()) + 4 + 4
        big.request(OpCode.SET_DATA, SetDataRequest(path, b"x" * (1048575 - overhead), -1))
        r = big.reply()
        out.append(("max frame", r.header.err, type(r.body).__name__))
        big.close()
        got = keeper.call(OpCode.GET_DATA, GetDataRequest(root, False))
        out.append(("other session intact", got.header.err, len(got.body.data)))
        keeper.close()
        return out

    both(diff, scenario)


def _until_closed(c: RawClient) -> int:
    """How many bytes come before the server closes the connection."""
    received = 0
    c.sock.settimeout(5)
    with contextlib.suppress(OSError):
        while chunk := c.sock.recv(65536):
            received += len(chunk)
    return received


def test_a_frame_that_ends_the_connection_takes_the_replies_not_sent_yet(diff: Diff) -> None:
    """A create and, in the same write, a frame that ends the connection (too long, negative,
    too short, a SASL packet without its token): ZooKeeper's network thread reads both and
    closes before the create's reply is ready, so none comes, and the node is created."""

    def scenario(address: str, root: str) -> list[Any]:
        keeper, _t = _setup(address, root)
        out: list[Any] = []
        sasl = struct.pack(">ii", 7, OpCode.SASL)  # a header, no token
        for k, bad in enumerate(
            (
                struct.pack(">i", 0x200000),
                struct.pack(">i", -5),
                struct.pack(">i", 3) + b"abc",
                struct.pack(">i", len(sasl)) + sasl,
            )
        ):
            c = RawClient(address)
            c.connect()
            c.xid += 1
            create = c.proto.send_request(
                RequestHeader(c.xid, OpCode.CREATE), CreateRequest(f"{root}/n{k}", b"", OPEN, 0)
            )
            c.send_raw(create + bad + b"\0" * 16)
            out.append((k, "bytes after the connect response", _until_closed(c)))
            c.close()
        exists = [
            keeper.call(OpCode.EXISTS, ExistsRequest(f"{root}/n{k}", False)).header.err
            for k in range(4)
        ]
        out.append(("created", exists))
        keeper.close()
        return out

    both(diff, scenario)


def test_a_client_that_shuts_its_side_gets_no_reply(diff: Diff) -> None:
    """Requests and, at once, the client's FIN (``shutdown(SHUT_WR)``): ZooKeeper's network
    thread reads the end of the stream and closes the connection before the replies are ready,
    so none comes; the requests take effect (the session lives on, as after any lost
    connection). Reads answered from zetcd's tree at once are held back the same way."""

    def scenario(address: str, root: str) -> list[Any]:
        keeper, _t = _setup(address, root)
        keeper.call(OpCode.CREATE, CreateRequest(f"{root}/d", b"old", OPEN, 0))
        out: list[Any] = []
        kinds: dict[str, list[tuple[int, Any]]] = {
            "getData": [(OpCode.GET_DATA, GetDataRequest(f"{root}/d", True))],
            "exists": [(OpCode.EXISTS, ExistsRequest(f"{root}/none", True))],
            "create": [(OpCode.CREATE, CreateRequest(f"{root}/c", b"", OPEN, 0))],
            "setData": [(OpCode.SET_DATA, SetDataRequest(f"{root}/d", b"new", -1))],
            "create then getData": [
                (OpCode.CREATE, CreateRequest(f"{root}/c2", b"", OPEN, 0)),
                (OpCode.GET_DATA, GetDataRequest(f"{root}/c2", False)),
            ],
            "sync": [(OpCode.SYNC, SyncRequest(f"{root}/d"))],
            "ping": [(OpCode.PING, None)],
            "closeSession": [(OpCode.CLOSE_SESSION, None)],
        }
        for kind, requests in kinds.items():
            c = RawClient(address)
            session = c.connect()
            frames = b""
            for opcode, body in requests:
                c.xid += 1
                xid = -2 if opcode == OpCode.PING else c.xid
                frames += c.proto.send_request(RequestHeader(xid, opcode), body)
            # corked, the requests and the FIN leave in one segment: a server answers none
            # before it can see the end of the stream
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            c.send_raw(frames)
            c.sock.shutdown(socket.SHUT_WR)
            out.append((kind, "bytes after the connect response", _until_closed(c)))
            c.close()
            # the session outlives its connection unless it was closed (ZooKeeper applies the
            # requests taken in before the end of the stream before any request sent after)
            keeper.call(OpCode.SYNC, SyncRequest(root))
            with RawClient(address) as again:
                back = again.connect(session_id=session.sessionId, passwd=session.passwd or b"")
                out.append((kind, "session resumed", back.timeOut > 0))
        d = keeper.call(OpCode.GET_DATA, GetDataRequest(f"{root}/d", False))
        out.append(("data", d.body.data))
        made = [keeper.call(OpCode.EXISTS, ExistsRequest(f"{root}/{n}", False)) for n in "c c2"]
        out.append(("created", [r.header.err for r in made]))
        # a four-letter word is answered as it is read, before the end of the stream
        host, port = address.rsplit(":", 1)
        word = socket.create_connection((host, int(port)), timeout=5)
        word.sendall(b"ruok")
        word.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := word.recv(64):
            answer += chunk
        word.close()
        out.append(("ruok", answer))
        keeper.close()
        return out

    both(diff, scenario)


def test_truncated_bodies_get_marshalling_error_and_keep_the_connection(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = []
        out.append(observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t))
        for opcode, body in (
            (OpCode.GET_DATA, b"\x00\x00"),
            (OpCode.CREATE, struct.pack(">i", 2) + b"/x"),
            (OpCode.SET_DATA, b""),
            # reconfig alone is decoded before it takes a zxid: none spent, "same"
            (OpCode.RECONFIG, b""),
            (OpCode.RECONFIG, struct.pack(">i", 0)),
        ):
            c.xid += 1
            frame = struct.pack(">ii", c.xid, opcode) + body
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            raw = c.raw_reply()
            xid, zxid, err = struct.unpack(">iqi", raw[:16])
            out.append(
                (opcode, xid == c.xid, t.rel(zxid, opcode != OpCode.GET_DATA), err, len(raw))
            )
            out.append(observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t))
        c.close()
        return out

    both(diff, scenario)


def test_ping_reply_xid_is_always_minus_two(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c = RawClient(address)
        c.connect()
        out = []
        for xid in (-2, 7):
            c.send_raw(c.proto.send_request(RequestHeader(xid, OpCode.PING), None))
            raw = c.raw_reply()
            out.append(struct.unpack(">iqi", raw[:16])[0::2])
        c.close()
        return out

    both(diff, scenario)


def test_reconnect_outcomes(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        a = RawClient(address)
        ca = a.connect(timeout=30000)
        out.append(("new", ca.timeOut, len(ca.passwd or b""), ca.readOnly))
        b = RawClient(address)
        cb = b.connect(session_id=ca.sessionId, passwd=ca.passwd, timeout=10000, read_only=False)
        out.append(
            (
                "resume",
                cb.sessionId == ca.sessionId,
                cb.timeOut,
                cb.passwd == ca.passwd,
                cb.readOnly,
            )
        )
        out.append(("old connection closed", a.is_closed()))
        for sid, pw in (
            (ca.sessionId, b"\x01" * 16),
            (ca.sessionId, ca.passwd[:8]),
            (0x123456789, bytes(16)),
        ):
            c = RawClient(address)
            r = c.connect(session_id=sid, passwd=pw)
            out.append(("refused", r.timeOut, r.sessionId, r.passwd, r.readOnly, c.is_closed()))
            c.close()
        # the session's live connection was closed before the wrong password was noticed
        out.append(("live connection closed by the refused takeover", b.is_closed(1.0)))
        for timeout in (0, -5, 3999, 40001, 10**6):
            c = RawClient(address)
            out.append(("timeout", timeout, c.connect(timeout=timeout).timeOut))
            c.close()
        ahead = RawClient(address)
        ahead.send_raw(
            ahead.proto.send_connect(
                __import__("zetcd.proto.records", fromlist=["ConnectRequest"]).ConnectRequest(
                    0, 1 << 60, 10000, 0, bytes(16), None
                )
            )
        )
        try:
            ev = ahead.next()
        except Closed:
            ev = "closed"
        out.append(("zxid ahead", ev))
        for x in (a, b, ahead):
            x.close()
        return out

    both(diff, scenario)


def test_short_or_garbage_first_frame_is_closed(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        out = []
        for data in (struct.pack(">i", 10) + b"0123456789", b"abcd", b"RUOK", struct.pack(">i", 0)):
            c = RawClient(address)
            c.send_raw(data)
            out.append((data[:4], c.is_closed()))
            c.close()
        return out

    both(diff, scenario)


def test_read_paths_are_not_validated(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, _t = _setup(address, root)
        out: list[Any] = []
        for path in ("", "a", root + "/", root + "//x", "/a\0b", "/zookeeper/"):
            out.append(
                ("getData", path, c.call(OpCode.GET_DATA, GetDataRequest(path, False)).header.err)
            )
            out.append(
                ("exists", path, c.call(OpCode.EXISTS, ExistsRequest(path, False)).header.err)
            )
            out.append(
                (
                    "children",
                    path,
                    c.call(OpCode.GET_CHILDREN, GetChildrenRequest(path, False)).header.err,
                )
            )
            out.append(("sync", path, c.call(OpCode.SYNC, SyncRequest(path)).header.err))
        root_children = c.call(OpCode.GET_CHILDREN, GetChildrenRequest("", False)).body
        out.append(("'' is the root", "zookeeper" in root_children.children))
        c.close()
        return out

    both(diff, scenario)


def test_create_path_checks_in_zookeeper_order(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, _t = _setup(address, root)
        out: list[Any] = []
        cases = [
            (root + "/missing/", 0, OPEN),
            (root + "//x", 0, OPEN),
            (root + "/", 0, OPEN),
            (root + "/", 2, OPEN),
            ("a", 0, OPEN),
            ("", 0, OPEN),
            (root + "/a\0b", 0, OPEN),
            (root + "/missing/x", 0, ()),
            ("a", 0, ()),
            (root + "/f", 7, OPEN),
            (root + "/f", -1, OPEN),
            (root + "/\U0001f600", 0, OPEN),
        ]
        for path, flags, acl in cases:
            r = c.call(OpCode.CREATE, CreateRequest(path, b"", acl, flags))
            out.append((path, flags, len(acl), r.header.err, getattr(r.body, "path", None)))
        c.close()
        return out

    both(diff, scenario)


def test_auth_outcomes(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        for scheme, auth in (("digest", b"u:p"), ("ip", b"127.0.0.1"), ("nope", b"x")):
            c = RawClient(address)
            c.connect()
            c.request(OpCode.AUTH, AuthPacket(0, scheme, auth), xid=-4)
            r = c.reply()
            out.append((scheme, r.header.xid, r.header.zxid, r.header.err, c.is_closed(1.0)))
            c.close()
        return out

    both(diff, scenario)


def test_a_failed_auth_is_answered_ahead_of_the_writes_before_it(
    zookeeper: ZooKeeperServer, zetcd: ZetcdServer
) -> None:
    """A create, then in the same write a failing auth: ZooKeeper's network thread answers the
    auth itself, at once, and closes the connection; the create takes effect. Whether the
    create's reply comes too, before or after, is a race on ZooKeeper: most often it does not
    (docs/zk-facts.md §7), and zetcd answers that way every time. (Not through the cross-check
    proxy, which serves a connection's requests one at a time: docs/crosscheck.md.)"""

    def scenario(address: str, root: str) -> list[Any]:
        keeper, _t = _setup(address, root)
        c = RawClient(address)
        c.connect()
        create = CreateRequest(f"{root}/w", b"", OPEN, 0)
        frames = c.proto.send_request(RequestHeader(1, OpCode.CREATE), create)
        auth = AuthPacket(0, "nope", b"x")
        c.send_raw(frames + c.proto.send_request(RequestHeader(-4, OpCode.AUTH), auth))
        got: list[Any] = []
        with contextlib.suppress(Closed):
            while True:
                r = c.reply()
                got.append((r.header.xid, r.header.err))
        c.close()
        made = keeper.call(OpCode.EXISTS, ExistsRequest(f"{root}/w", False)).header.err
        keeper.close()
        return [got, ("created", made)]

    answered = scenario(zetcd.address, f"/wire-{uuid.uuid4().hex[:10]}")
    assert answered == [[(-4, Err.AUTH_FAILED)], ("created", 0)]
    seen = []
    for _ in range(30):
        seen.append(scenario(zookeeper.address, f"/wire-{uuid.uuid4().hex[:10]}"))
        if seen[-1] == answered:
            break
    assert seen[-1] == answered, f"ZooKeeper answered otherwise in {len(seen)} runs: {seen}"


def test_multi_with_read_ops_and_multiread_with_writes(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = [observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t)]
        get = (
            struct.pack(">i?i", OpCode.GET_DATA, False, -1)
            + struct.pack(">i", len(root))
            + root.encode()
            + b"\0"
        )
        create = (
            struct.pack(">i?i", OpCode.CREATE, False, -1)
            + struct.pack(">i", len(root) + 2) + root.encode() + b"/x"
            + struct.pack(">i", 0) + struct.pack(">i", 1) + struct.pack(">i", 31)
            + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone" + struct.pack(">i", 0)
        )  # fmt: skip
        end = struct.pack(">i?i", -1, True, -1)
        for opcode, ops in ((OpCode.MULTI, create + get), (OpCode.MULTI_READ, create)):
            c.xid += 1
            frame = struct.pack(">ii", c.xid, opcode) + ops + end
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            raw = c.raw_reply()
            _xid, zxid, err = struct.unpack(">iqi", raw[:16])
            out.append((opcode, t.rel(zxid, opcode == OpCode.MULTI), err, raw[16:].hex()))
        out.append(
            ("x not created", c.call(OpCode.EXISTS, ExistsRequest(root + "/x", False)).header.err)
        )
        c.close()
        return out

    both(diff, scenario)


def test_a_multi_of_read_ops_with_a_null_path(diff: Diff) -> None:
    """A multi (14) of getData/getChildren ops fails as a MarshallingError that spends a zxid;
    with a null path among them, wherever it is, as any multi with a null path: no zxid spent,
    and the result list's end marker as its body."""

    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = [observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t)]

        def read(opcode: int, path: str | None) -> bytes:
            named = struct.pack(">i", -1) if path is None else struct.pack(">i", len(path))
            return struct.pack(">i?i", opcode, False, -1) + named + (path or "").encode() + b"\0"

        end = struct.pack(">i?i", -1, True, -1)
        cases = (
            read(OpCode.GET_DATA, root),
            read(OpCode.GET_DATA, None),
            read(OpCode.GET_CHILDREN, None),
            read(OpCode.GET_DATA, root) + read(OpCode.GET_DATA, None),
            read(OpCode.GET_DATA, None) + read(OpCode.GET_CHILDREN, root),
        )
        for ops in cases:
            c.xid += 1
            frame = struct.pack(">ii", c.xid, OpCode.MULTI) + ops + end
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            raw = c.raw_reply()
            _xid, zxid, err = struct.unpack(">iqi", raw[:16])
            out.append((t.rel(zxid), err, raw[16:].hex()))
        c.close()
        return out

    both(diff, scenario)


def test_trailing_bytes_are_ignored_and_malformed_auth(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = []
        body = struct.pack(">i", len(root)) + root.encode() + b"\0"
        for extra in (b"", b"\x01\x02\x03", b"\0" * 40):
            c.xid += 1
            frame = struct.pack(">ii", c.xid, OpCode.GET_DATA) + body + extra
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            raw = c.raw_reply()
            xid, zxid, err = struct.unpack(">iqi", raw[:16])
            out.append((len(extra), xid == c.xid, t.rel(zxid, False), err, len(raw)))
        c.xid += 1
        frame = struct.pack(">ii", c.xid, OpCode.PING) + b"junk"
        c.send_raw(struct.pack(">i", len(frame)) + frame)
        out.append(("ping with junk", struct.unpack(">iqi", c.raw_reply()[:16])[0::2]))
        bad = RawClient(address)
        bad.connect()
        frame = struct.pack(">ii", -4, OpCode.AUTH) + b"\0\0"
        bad.send_raw(struct.pack(">i", len(frame)) + frame)
        try:
            raw = bad.raw_reply()
            got: Any = struct.unpack(">iqi", raw[:16])
        except Closed:
            got = "closed"
        out.append(("malformed auth", got, bad.is_closed(1.0)))
        bad.close()
        c.close()
        return out

    both(diff, scenario)


def test_a_create_with_ttl_flags_inside_a_multi(diff: Diff) -> None:
    """Inside a multi, a create, create2 or createContainer op with TTL flags becomes a createTTL
    op that still holds a CreateRequest: ZooKeeper 3.8 fails the whole multi with
    MarshallingError (a zxid spent) when it reaches that op, and not when an earlier op failed."""

    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = [observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t)]
        for opcode, flags in (
            (OpCode.CREATE, 5),
            (OpCode.CREATE2, 6),
            (OpCode.CREATE_CONTAINER, 5),
        ):
            first = MultiOp(OpCode.CREATE, CreateRequest(f"{root}/a", b"", OPEN, 0))
            ttl = MultiOp(opcode, CreateRequest(f"{root}/b", b"", OPEN, flags))
            r = c.call(OpCode.MULTI, MultiRequest((first, ttl)))
            out.append((opcode, observe(r, t, write=True)))
            failing = MultiOp(OpCode.CREATE, CreateRequest(f"{root}/no/a", b"", OPEN, 0))
            r = c.call(OpCode.MULTI, MultiRequest((failing, ttl)))
            out.append((opcode, observe(r, t, write=True), [x.err for x in r.body.results]))
        for child in ("a", "b"):
            r = c.call(OpCode.EXISTS, ExistsRequest(f"{root}/{child}", False))
            out.append((child, r.header.err))
        c.close()
        return out

    both(diff, scenario)


def test_watches_on_the_empty_path(diff: Diff) -> None:
    """ZooKeeper's DataTree finds the root under "" too: setWatches fires for "" as for the root
    (the watch it may leave on "" never fires), and checkWatches of "" is always NoWatcher,
    though removeWatches does remove a watch set on "" by a read."""

    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = []
        for lists in (([""], [], []), ([], [""], []), ([], [], [""])):
            w = RawClient(address)
            w.connect()
            w.request(OpCode.SET_WATCHES, SetWatches(0, *map(tuple, lists)), xid=-8)
            out.append(("setWatches", lists, w.reply().header.err))
            w.call(OpCode.EXISTS, ExistsRequest(root, False))  # what setWatches fired is in
            c.call(OpCode.SET_DATA, SetDataRequest(root, b"again", -1))
            c.call(OpCode.CREATE, CreateRequest(root + "/kid", b"", OPEN, 0))
            c.call(OpCode.DELETE, DeleteRequest(root + "/kid", -1))
            w.call(OpCode.EXISTS, ExistsRequest(root, False))
            out.append(("events", [(e.type, e.path) for e in w.pending]))
            w.close()
        w = RawClient(address)
        w.connect()
        out.append(("getData ''", observe(w.call(OpCode.GET_DATA, GetDataRequest("", True)), t)[2]))
        for kind in (WatcherType.DATA, WatcherType.ANY):
            r = w.call(OpCode.CHECK_WATCHES, CheckWatchesRequest("", kind))
            out.append(("checkWatches ''", kind, r.header.err))
        r = w.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest("", WatcherType.DATA))
        out.append(("removeWatches ''", r.header.err))
        r = w.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest("", WatcherType.DATA))
        out.append(("removeWatches '' again", r.header.err))
        w.close()
        c.close()
        return out

    both(diff, scenario)


def test_bytes_after_the_connect_requests_read_only_byte_are_ignored(diff: Diff) -> None:
    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        for extra in (b"\0", b"\x07" * 100):
            c = RawClient(address)
            body = encode_connect_request(ConnectRequest(0, 0, 10000, 0, bytes(16), False))
            c.send_raw(struct.pack(">i", len(body + extra)) + body + extra)
            answer = decode_connect_response(c.raw_reply())
            ping = struct.pack(">ii", -2, OpCode.PING)
            c.send_raw(struct.pack(">i", len(ping)) + ping)
            xid, _zxid, err = struct.unpack(">iqi", c.raw_reply()[:16])
            out.append((len(extra), answer.timeOut, answer.sessionId != 0, xid, err))
            c.close()
        return out

    both(diff, scenario)


def test_a_negative_vector_count_other_than_minus_one_is_an_empty_vector(diff: Diff) -> None:
    """BinaryInputArchive reads -1 as a null vector and any other negative count as an empty
    one: an empty ACL (InvalidACL), no watches to set, not a MarshallingError."""

    def ustr(s: str) -> bytes:
        return struct.pack(">i", len(s)) + s.encode()

    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = []
        for count in (-2, -(2**31)):
            vec = struct.pack(">i", count)
            create = ustr(root + "/v") + struct.pack(">i", 0) + vec
            multi_create = struct.pack(">i?i", OpCode.CREATE, False, -1) + create
            for opcode, body in (
                (OpCode.CREATE, create + struct.pack(">i", 0)),
                (OpCode.CREATE, create + struct.pack(">i", 31)),  # bad flags after it
                (OpCode.SET_ACL, ustr(root) + vec + struct.pack(">i", -1)),
                (OpCode.SET_WATCHES, struct.pack(">q", 0) + vec + vec + vec),
                (
                    OpCode.MULTI,
                    multi_create + struct.pack(">i", 0) + struct.pack(">i?i", -1, True, -1),
                ),
            ):
                c.xid += 1
                frame = struct.pack(">ii", c.xid, opcode) + body
                c.send_raw(struct.pack(">i", len(frame)) + frame)
                raw = c.raw_reply()
                xid, zxid, err = struct.unpack(">iqi", raw[:16])
                write = opcode != OpCode.SET_WATCHES
                out.append((count, opcode, xid, t.rel(zxid, write), err, raw[16:].hex()))
        out.append(observe(c.call(OpCode.EXISTS, ExistsRequest(root + "/v", False)), t))
        c.close()
        return out

    both(diff, scenario)


def test_delete_container_is_bad_arguments_whatever_its_body(diff: Diff) -> None:
    """A client's deleteContainer (20): ZooKeeper reads its path from the whole request,
    header and its NUL bytes included, so every body (none, a path, bytes that are no
    record) is BadArguments, a zxid spent, the connection kept."""

    def scenario(address: str, root: str) -> list[Any]:
        c, t = _setup(address, root)
        out: list[Any] = []
        path = root.encode()
        for body in (
            b"",
            b"\x00\x00",
            struct.pack(">i", len(path)) + path,
            struct.pack(">i", -1),
            struct.pack(">i", -2),
            struct.pack(">i", 1000) + path,
            path,
        ):
            c.xid += 1
            frame = struct.pack(">ii", c.xid, OpCode.DELETE_CONTAINER) + body
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            raw = c.raw_reply()
            xid, zxid, err = struct.unpack(">iqi", raw[:16])
            out.append((body.hex(), xid == c.xid, t.rel(zxid), err, len(raw)))
        out.append(observe(c.call(OpCode.EXISTS, ExistsRequest(root, False)), t))
        c.close()
        return out

    both(diff, scenario)


def test_digest_auth_data_decodes_as_java_does(diff: Diff) -> None:
    """addauth digest's data is ``new String(bytes, UTF_8)``: malformed bytes become U+FFFD by
    Java's rules (an encoded surrogate is one), and the id's hash is of that string."""

    def scenario(address: str, root: str) -> list[Any]:
        out: list[Any] = []
        for user in (b"u\xed\xa0\xbd\xed\xb8\x80", b"u\xed\xa0A", b"u\xc3", b"u\xf0\x9f\x98\x80"):
            c = RawClient(address)
            c.connect()
            c.request(OpCode.AUTH, AuthPacket(0, "digest", user + b":pw"), xid=-4)
            out.append(c.reply().header.err)
            who = c.call(OpCode.WHO_AM_I)
            out.append([(i.authScheme, i.user) for i in who.body.clientInfo])
            path = f"{root}-{user.hex()}"
            c.call(OpCode.CREATE, CreateRequest(path, b"", (ACL(31, Id("auth", "")),), 0))
            got = c.call(OpCode.GET_ACL, GetACLRequest(path))
            out.append([(a.id.scheme, a.id.id) for a in got.body.acl])
            c.close()
        return out

    both(diff, scenario)

"""The bridge backend against a real ZooKeeper: sessions, xids, notifications, closes."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import trio

from oracle.bridge import BridgeBackend
from tests.servers import ZooKeeperServer
from zetcd.backend import Accepted, Reply, Session
from zetcd.proto.constants import Err, EventType, OpCode
from zetcd.proto.records import (
    ACL,
    CheckVersionRequest,
    ConnectRequest,
    CreateRequest,
    ExistsRequest,
    GetDataRequest,
    Id,
    RequestHeader,
    SetDataRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)


class Outbox:
    def __init__(self) -> None:
        self.peer_host = "127.0.0.1"
        self.certificate = None
        self.log: list[object] = []
        self.closed = False

    def notify(self, event_type: int, path: str) -> None:
        self.log.append((event_type, path))

    def close(self) -> None:
        self.closed = True
        self.log.append("close")


def with_bridge(zk: ZooKeeperServer, body: Callable[[BridgeBackend], Awaitable[None]]) -> None:
    async def main() -> None:
        with trio.fail_after(30):
            bridge = BridgeBackend(zk.host, zk.port)
            async with trio.open_nursery() as nursery:
                await nursery.start(bridge.run)
                await body(bridge)
                nursery.cancel_scope.cancel()

    trio.run(main)


async def session(bridge: BridgeBackend, outbox: Outbox, **kw: object) -> tuple[Accepted, Session]:
    request = ConnectRequest(0, 0, 10000, 0, bytes(16), None)
    if kw:
        request = ConnectRequest(0, 0, 10000, kw["sid"], kw["passwd"], None)  # type: ignore[arg-type]
    accepted = await bridge.connect(request, outbox)
    assert accepted.session is not None
    return accepted, accepted.session


async def call(s: Session, xid: int, op: int, body: object | None = None) -> Reply:
    return await s.handle(RequestHeader(xid, op), body)


def test_requests_replies_and_xids(zookeeper: ZooKeeperServer) -> None:
    root = f"/bridge-{uuid.uuid4().hex[:8]}"

    async def body(bridge: BridgeBackend) -> None:
        out = Outbox()
        accepted, s = await session(bridge, out)
        assert accepted.response is not None and accepted.response.timeOut == 10000
        assert s.session_id == accepted.response.sessionId
        r = await call(s, 5, OpCode.CREATE, CreateRequest(root, b"v", OPEN, 0))
        assert (r.xid, r.err, r.body.path) == (5, 0, root)  # type: ignore[attr-defined]
        got = await call(s, -1, OpCode.GET_DATA, GetDataRequest(root, False))  # looks like xid -1
        assert (got.xid, got.err, got.body.data) == (-1, 0, b"v")  # type: ignore[attr-defined]
        assert got.zxid == r.zxid
        ping = await call(s, 7, OpCode.PING)
        assert (ping.xid, ping.err) == (-2, 0)
        bad = await s.malformed(9, OpCode.GET_DATA)
        assert (bad.xid, bad.err) == (9, Err.MARSHALLING_ERROR)
        missing = await call(s, 10, OpCode.EXISTS, ExistsRequest(root + "/x", False))
        assert (missing.xid, missing.err, missing.body) == (10, Err.NO_NODE, None)
        # a successful standalone check gets no reply from ZooKeeper 3.8 at all
        with trio.move_on_after(0.5) as scope:
            await call(s, 11, OpCode.CHECK, CheckVersionRequest(root, 0))
        assert scope.cancelled_caught
        after = await call(s, 12, OpCode.EXISTS, ExistsRequest(root, False))
        assert (after.xid, after.err) == (12, 0)
        await s.detach()
        assert not out.closed

    with_bridge(zookeeper, body)


def test_notifications_come_before_the_reply_that_caused_them(zookeeper: ZooKeeperServer) -> None:
    root = f"/bridge-{uuid.uuid4().hex[:8]}"

    async def body(bridge: BridgeBackend) -> None:
        out = Outbox()
        _, s = await session(bridge, out)
        await call(s, 1, OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        await call(s, 2, OpCode.GET_DATA, GetDataRequest(root, True))
        reply = await call(s, 3, OpCode.SET_DATA, SetDataRequest(root, b"x", -1))
        assert reply.err == 0
        assert out.log == [(EventType.NODE_DATA_CHANGED, root)]
        other_out = Outbox()
        _, other = await session(bridge, other_out)
        await call(s, 4, OpCode.EXISTS, ExistsRequest(root, True))
        await call(other, 1, OpCode.SET_DATA, SetDataRequest(root, b"y", -1))
        await call(s, 5, OpCode.EXISTS, ExistsRequest(root, False))
        assert out.log[-1] == (EventType.NODE_DATA_CHANGED, root)
        await other.detach()
        await s.detach()

    with_bridge(zookeeper, body)


def test_closes_and_refusals(zookeeper: ZooKeeperServer) -> None:
    async def body(bridge: BridgeBackend) -> None:
        out = Outbox()
        accepted, s = await session(bridge, out)
        assert accepted.response is not None
        sid, passwd = accepted.response.sessionId, accepted.response.passwd
        wrong = await bridge.connect(ConnectRequest(0, 0, 10000, sid, b"x" * 16, None), Outbox())
        assert wrong.session is None and wrong.response is not None
        assert (wrong.response.sessionId, wrong.response.timeOut) == (0, 0)
        with trio.fail_after(5):  # ZooKeeper closed the session's connection on that attempt
            while not out.closed:
                await trio.sleep(0.01)
        again = Outbox()
        _, s2 = await session(bridge, again, sid=sid, passwd=passwd)
        closing = await call(s2, 1, OpCode.CLOSE_SESSION)
        assert closing.err == 0
        with trio.fail_after(5):
            while not (closing.close or again.closed):
                await trio.sleep(0.01)
        await s.detach()
        await s2.detach()
        ahead = await bridge.connect(
            ConnectRequest(0, 1 << 60, 10000, 0, bytes(16), None), Outbox()
        )
        assert ahead == Accepted(None, None)

    with_bridge(zookeeper, body)

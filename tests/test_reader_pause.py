"""The server's reader pauses while a connection has server.MAX_PENDING requests outstanding.

ZooKeeper touches a session as it takes each request in, and stops taking requests in while
too many are outstanding; so a request zetcd had already read when its reader paused counts as
heard from when it is begun, after the pause. Before, a burst served more slowly than the
session's timeout (30,000 pipelined syncs on a loaded machine: test_javautf8) expired the
session of a client that was busy all along.

The backend here is a stand-in whose requests wait for the test to let them through, so the
pause lasts exactly as long as the test wants; no timing is asserted. What the session does
with ``heard`` is tested against real servers in test_sessions.py.
"""

from __future__ import annotations

import struct
import time

import trio

from zetcd.backend import Accepted, Outbox, Reply
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ConnectRequest, ConnectResponse, RequestHeader
from zetcd.server import MAX_PENDING, ServerConfig, serve


class _GatedSession:
    """Answers each request once ``gate`` is set, noting when it began and what the
    connection said it last heard then."""

    session_id = 1

    def __init__(self, outbox: Outbox, gate: trio.Event) -> None:
        self.outbox = outbox
        self.gate = gate
        self.seen: list[tuple[int, float]] = []  # (xid, outbox.heard when it was handled)

    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        await self.gate.wait()
        self.seen.append((header.xid, self.outbox.heard))
        return Reply(header.xid, 1, 0, None)

    async def malformed(self, xid: int, opcode: int) -> Reply:
        return Reply(xid, 1, -5, None)

    async def detach(self) -> None:
        pass


class _GatedBackend:
    def __init__(self) -> None:
        self.gate = trio.Event()
        self.session: _GatedSession | None = None

    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        self.session = _GatedSession(outbox, self.gate)
        return Accepted(ConnectResponse(0, 10000, 1, bytes(16), False), self.session)


def _frame(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_requests_begun_after_the_readers_pause_count_as_heard_then() -> None:
    count = MAX_PENDING + 100

    async def main() -> None:
        backend = _GatedBackend()
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve, backend, "127.0.0.1", 0, ServerConfig())
            port = listeners.plain[0].socket.getsockname()[1]
            client = await trio.open_tcp_stream("127.0.0.1", port)
            connect = struct.pack(">iqiqi16sb", 0, 0, 10000, 0, 16, bytes(16), 0)
            await client.send_all(_frame(connect))
            # every ping in one write: the server reads them all before it pauses
            pings = b"".join(_frame(struct.pack(">ii", -2, OpCode.PING)) for _ in range(count))
            await client.send_all(pings)
            while backend.session is None:
                await trio.sleep(0.01)
            await trio.sleep(0.3)  # the reader has read the burst and paused (gate closed)
            opened = time.monotonic()
            backend.gate.set()
            replies = 0
            buf = b""
            while replies < count + 1:  # the ConnectResponse, then a reply per ping
                buf += await client.receive_some(65536)
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                    buf = buf[4 + struct.unpack_from(">i", buf)[0] :]
                    replies += 1
            await client.aclose()
            nursery.cancel_scope.cancel()
        seen = backend.session.seen
        assert len(seen) == count
        # the first was begun before the pause; the last after it, as the reader resumed
        assert seen[0][1] < opened, "a request begun before the pause was heard during it"
        assert seen[-1][1] >= opened, "a request begun after the pause was not heard then"

    trio.run(main)

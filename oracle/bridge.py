"""The bridge backend: each client session served by a session of a real ZooKeeper.

Theory of operation. ``connect`` opens one TCP connection to the ZooKeeper for the client
session and forwards the ConnectRequest re-encoded by our codec; a session then forwards each
decoded request the same way and waits for the reply. A reader task per connection cuts what
ZooKeeper sends into frames: notifications go to the session's outbox at once, replies to the
waiting request, so an event ZooKeeper sent before a reply is queued before it. When ZooKeeper
closes the connection (closeSession, a failed auth, a takeover, expiry) the outbox is closed
too; when the client goes first, ``detach`` closes ours and the session lives on in ZooKeeper
until it expires, as it would had the client been connected to it.

Requests carry the bridge's own xids (pings -2), mapped back to the client's in the reply:
ZooKeeper answers every ping with xid -2, and a client's xid of -1 would read as a
notification. Replies are read with the codec's functions rather than ClientProtocol, which
matches by xid and rejects an error reply that has a body: ZooKeeper sends one (multiRead with a
write op inside answers err -5 plus an empty multi) and a successful standalone check gets no
reply at all, so a reply older than the request waited for is skipped.

A request the server could not decode reaches the backend as (xid, opcode) only; the bridge
asks ZooKeeper the same question with the body cut off (for an opcode without a body: the bare
request, as ZooKeeper ignores trailing bytes).

A createSession (-10) sent inside the session is answered with the session's ConnectResponse
again, a bare frame without a reply header: its first int (protocolVersion 0) stands where an
xid would, and no bridge xid is 0, so that frame is taken as the answer. It carries no zxid;
the bridge's reply says -1 and the cross-checker does not compare it (oracle/normalize.py).
"""

from __future__ import annotations

import logging
import math
import struct

import trio

from zetcd.backend import Accepted, DropConnection, Outbox, Reply
from zetcd.proto.codec import (
    decode,
    decode_connect_response,
    decode_reply_header,
    decode_response,
    encode_connect_request,
    encode_request,
    is_bare_connect_response,
)
from zetcd.proto.constants import PING_XID, WATCH_XID, OpCode
from zetcd.proto.errors import ProtocolError
from zetcd.proto.framing import FrameReader, frame
from zetcd.proto.opcodes import OPS
from zetcd.proto.records import ConnectRequest, ConnectResponse, RequestHeader, WatcherEvent

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
MAX_REPLY = 64 << 20  # what ZooKeeper may send back is not bounded by jute.maxbuffer
_HEADER = struct.Struct(">ii")
_XID_LIMIT = 0x7FFFFFFF


class BridgeBackend:
    def __init__(self, host: str, port: int, *, connect_timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._nursery: trio.Nursery | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hold the readers of the sessions; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        if self._nursery is None:
            raise RuntimeError("BridgeBackend.run must be started before connect")
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(self.host, self.port)
        except (OSError, trio.TooSlowError) as e:
            log.warning("cannot reach ZooKeeper at %s: %s", self.address, e)
            raise DropConnection() from None
        frames = FrameReader(MAX_REPLY)
        try:
            with trio.fail_after(self.connect_timeout):
                await stream.send_all(frame(encode_connect_request(request)))
                response = await _read_connect_response(stream, frames)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ProtocolError) as e:
            log.warning("ZooKeeper at %s failed a connect: %s", self.address, e)
            await trio.aclose_forcefully(stream)
            raise DropConnection() from None
        except BaseException:  # cancelled: the stream must not leak
            await trio.aclose_forcefully(stream)
            raise
        if response is None or response.timeOut <= 0:
            await trio.aclose_forcefully(stream)
            return Accepted(response, None)
        session = BridgeSession(stream, frames, response, outbox)
        self._nursery.start_soon(session.read)
        return Accepted(response, session)


async def _read_connect_response(
    stream: trio.SocketStream, frames: FrameReader
) -> ConnectResponse | None:
    while True:
        body = frames.next_frame()
        if body is not None:
            return decode_connect_response(body)
        data = await stream.receive_some(RECV_SIZE)
        if not data:
            return None
        frames.feed(data)


class BridgeSession:
    def __init__(
        self,
        stream: trio.SocketStream,
        frames: FrameReader,
        response: ConnectResponse,
        outbox: Outbox,
    ) -> None:
        self.session_id = response.sessionId
        self.outbox = outbox
        self._stream = stream
        self._frames = frames
        self._send, self._replies = trio.open_memory_channel[bytes](math.inf)
        self._xid = 0
        self.closed = False  # by ZooKeeper, or by detach
        self._detached = False
        self._in_flight = False
        self._close_after_reply = False

    async def read(self) -> None:
        """Forward notifications, queue replies; close the outbox when ZooKeeper closes."""
        try:
            while True:
                body = self._frames.next_frame()
                if body is None:
                    data = await self._stream.receive_some(RECV_SIZE)
                    if not data:
                        return
                    self._frames.feed(data)
                    continue
                if decode_reply_header(body).xid == WATCH_XID:
                    _, event = decode_response(OpCode.NOTIFICATION, body)
                    assert isinstance(event, WatcherEvent)
                    self.outbox.notify(event.type, event.path or "")
                else:
                    self._send.send_nowait(body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            if not self._detached:
                log.info("connection to ZooKeeper for 0x%x lost: %s", self.session_id, e)
        except ProtocolError as e:
            log.warning("ZooKeeper sent an undecodable frame to 0x%x: %s", self.session_id, e)
        finally:
            self.closed = True
            self._send.close()
            if self._in_flight:
                # the reply being waited for must leave before the connection closes
                self._close_after_reply = True
            elif not self._detached:
                self.outbox.close()
            await trio.aclose_forcefully(self._stream)

    def _next_xid(self) -> int:
        self._xid = self._xid % _XID_LIMIT + 1
        return self._xid

    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        op = header.type
        xid = PING_XID if op == OpCode.PING else self._next_xid()
        return await self._roundtrip(
            header.xid, op, xid, encode_request(RequestHeader(xid, op), body)
        )

    async def malformed(self, xid: int, opcode: int) -> Reply:
        spec = OPS.get(opcode)
        own = PING_XID if opcode == OpCode.PING else self._next_xid()
        if spec is None or spec.request is None:
            data = encode_request(RequestHeader(own, opcode), None)
        else:
            data = _HEADER.pack(own, opcode)
        return await self._roundtrip(xid, opcode, own, data)

    async def _roundtrip(self, client_xid: int, op: int, own_xid: int, data: bytes) -> Reply:
        if self.closed:
            raise DropConnection()
        self._in_flight = True
        try:
            body = await self._exchange(own_xid, data, op)
        finally:
            self._in_flight = False
        close = self._close_after_reply
        if _is_connect_response(op, body):
            return Reply(client_xid, -1, 0, decode_connect_response(body), close=close)
        header = decode_reply_header(body)
        record = _decode_body(op, body)
        reply_xid = client_xid if op != OpCode.PING else header.xid
        return Reply(reply_xid, header.zxid, header.err, record, close=close)

    async def _exchange(self, own_xid: int, data: bytes, op: int) -> bytes:
        try:
            await self._stream.send_all(frame(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise DropConnection() from None
        while True:
            try:
                body = await self._replies.receive()
            except trio.EndOfChannel:
                raise DropConnection() from None
            xid = decode_reply_header(body).xid
            if xid == own_xid or _is_connect_response(op, body):
                return body
            log.info("skipping a stale ZooKeeper reply (xid %d) for 0x%x", xid, self.session_id)

    async def detach(self) -> None:
        self._detached = True
        if not self.closed:
            self.closed = True
            await self._stream.aclose()


def _is_connect_response(op: int, body: bytes) -> bool:
    """Is ``body`` the bare ConnectResponse frame that answers a createSession sent inside a
    session (its protocolVersion 0 where a reply's xid would be)?"""
    return op == OpCode.CREATE_SESSION and is_bare_connect_response(body)


def _decode_body(op: int, body: bytes) -> object | None:
    try:
        return decode_response(op, body)[1]
    except ProtocolError:
        pass
    # an error reply that carries a body anyway: decode it as the opcode's response
    spec = OPS.get(op)
    if spec is not None and spec.response is not None:
        try:
            return decode(spec.response, body[16:])
        except ProtocolError:
            pass
    log.warning("undecodable ZooKeeper reply to opcode %d: %s", op, body[:64].hex())
    return None

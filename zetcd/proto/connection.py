"""Sans-I/O connection state for both ends of a ZooKeeper client connection.

Theory of operation. A connection is a byte stream in each direction. The caller feeds
what it received with ``receive_data`` and pulls events with ``next_event`` until it gets
``NEED_DATA``; it sends the bytes the ``send_*`` methods return. Nothing here touches a
socket or a clock.

Server side (:class:`ServerProtocol`), as ``NIOServerCnxn`` does it:

    state          input                         event / next state
    AWAIT_CONNECT  first 4 bytes a known 4lw     FourLetterWord -> FOUR_LETTER_WORD
    AWAIT_CONNECT  a frame                       Connect -> CONNECTED
    CONNECTED      a frame                       Request -> CONNECTED
    FOUR_LETTER_WORD  anything                   ignored (NEED_DATA); the server answers
                                                 the word and closes
    any            bad length / bad connect /    ProtocolError or UnknownOpcode -> CLOSED
                   unknown opcode
    CONNECTED      malformed request body        MalformedRequest, state unchanged (the
                                                 frame is consumed; ZooKeeper answers
                                                 MarshallingError and goes on)
    CLOSED         anything                      ProtocolError

``stmk`` carries an 8-byte trace mask after the word, read as ZooKeeper reads it: at once,
from what was received with the word (ZooKeeper's one read right after it). When fewer than 8
bytes are there the event has no mask, and ZooKeeper then closes without an answer.

Client side (:class:`ClientProtocol`): the first frame received after ``send_connect`` is
a ConnectResponse; every later frame is a reply, matched to the opcode of the request
that used its xid (replies come back in request order), or a notification (xid -1). The
exception: ZooKeeper answers a createSession (-10) sent inside the session with a bare
ConnectResponse frame (its protocolVersion 0 where an xid would be, 36 or 37 bytes). Such a
frame, while a createSession is outstanding and no request with xid 0 sent before it is, is
that request's reply: a ``Reply`` whose header has the request's xid, zxid -1 and err 0 (the
frame carries neither) and whose body is the ConnectResponse.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from .codec import (
    decode_connect_request,
    decode_connect_response,
    decode_reply_header,
    decode_request,
    decode_response,
    encode_connect_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    encode_request,
    is_bare_connect_response,
)
from .constants import DEFAULT_MAX_PACKET, WATCH_XID, OpCode
from .errors import MalformedRequest, ProtocolError
from .framing import NEED_DATA, FrameReader, NeedData, frame
from .jute import fast_constructor
from .records import (
    ConnectRequest,
    ConnectResponse,
    Record,
    ReplyHeader,
    RequestHeader,
    WatcherEvent,
)

# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FourLetterWord:
    """The connection opened with a four-letter word instead of a ConnectRequest."""

    word: str
    trace_mask: int | None = None
    """The 8-byte mask that follows ``stmk``; None for every other word."""


@dataclass(frozen=True, slots=True)
class Connect:
    """The connection's first frame: a session create/resume request."""

    request: ConnectRequest


@dataclass(frozen=True, slots=True)
class Request:
    """A request after the handshake; ``body`` is None for bodiless opcodes."""

    header: RequestHeader
    body: Record | None


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to one of our requests; ``body`` is None when err != 0 or bodiless."""

    header: ReplyHeader
    body: Record | None


@dataclass(frozen=True, slots=True)
class Notification:
    """A watch notification (reply xid -1)."""

    event: WatcherEvent


ServerEvent = FourLetterWord | Connect | Request | Literal[NeedData.NEED_DATA]
ClientEvent = ConnectResponse | Reply | Notification | Literal[NeedData.NEED_DATA]

_TRACE_MASK: Final = struct.Struct(">q")
_Request: Final = fast_constructor(Request)
_Reply: Final = fast_constructor(Reply)


class ServerState(enum.Enum):
    """Where a :class:`ServerProtocol` is (see the table in the module docstring)."""

    AWAIT_CONNECT = "AWAIT_CONNECT"
    CONNECTED = "CONNECTED"
    FOUR_LETTER_WORD = "FOUR_LETTER_WORD"
    CLOSED = "CLOSED"


# --- server ---------------------------------------------------------------------------


class ServerProtocol:
    """The server end of one client connection."""

    __slots__ = ("_frames", "state")

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._frames = FrameReader(max_packet)
        self.state = ServerState.AWAIT_CONNECT

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self.state is not ServerState.FOUR_LETTER_WORD:
            self._frames.feed(data)

    def next_event(self) -> ServerEvent:
        state = self.state
        if state is ServerState.CONNECTED:
            body = self._next_frame()
            if body is None:
                return NEED_DATA
            try:
                header, record = decode_request(body)
            except MalformedRequest:
                raise
            except ProtocolError:
                self.state = ServerState.CLOSED
                raise
            return _Request(header, record)
        if state is ServerState.AWAIT_CONNECT:
            return self._await_connect()
        if state is ServerState.FOUR_LETTER_WORD:
            return NEED_DATA
        raise ProtocolError("the connection is closed after a protocol error")

    def _next_frame(self) -> bytes | None:
        try:
            return self._frames.next_frame()
        except ProtocolError:
            self.state = ServerState.CLOSED
            raise

    def _await_connect(self) -> ServerEvent:
        frames = self._frames
        word = frames.sniff_four_letter_word()
        if word is NEED_DATA:
            return NEED_DATA
        if word is not None:
            mask: int | None = None
            if word == "stmk":
                raw = frames.take(_TRACE_MASK.size)
                if raw is not None:
                    (mask,) = _TRACE_MASK.unpack(raw)
            self.state = ServerState.FOUR_LETTER_WORD
            return FourLetterWord(word, mask)
        body = self._next_frame()
        if body is None:
            return NEED_DATA
        try:
            request = decode_connect_request(body)
        except ProtocolError:
            self.state = ServerState.CLOSED
            raise
        self.state = ServerState.CONNECTED
        return Connect(request)

    # Sending: framed bytes for the caller to write.

    def send_connect_response(self, response: ConnectResponse) -> bytes:
        return frame(encode_connect_response(response))

    def send_reply(self, header: ReplyHeader, body: object | None = None) -> bytes:
        return frame(encode_reply(header, body))

    def send_notification(self, event: WatcherEvent) -> bytes:
        return frame(encode_notification(event))


# --- client ---------------------------------------------------------------------------


class ClientProtocol:
    """The client end of a connection, for tests, fuzzers and the oracle bridge."""

    __slots__ = ("_connected", "_connecting", "_frames", "_pending", "_recreates", "_sent")

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET) -> None:
        self._frames = FrameReader(max_packet)
        self._connecting = False
        self._connected = False
        # xid -> (opcode, sequence number) of the outstanding requests that used it
        self._pending: dict[int, deque[tuple[int, int]]] = {}
        self._recreates: deque[tuple[int, int]] = deque()  # createSession: (xid, sequence)
        self._sent = 0

    def send_connect(self, request: ConnectRequest) -> bytes:
        if self._connecting:
            raise ProtocolError("send_connect called twice on one connection")
        self._connecting = True
        return frame(encode_connect_request(request))

    def send_request(self, header: RequestHeader, record: object | None = None) -> bytes:
        """Frame a request and remember its opcode so its reply can be decoded."""
        if not self._connecting:
            raise ProtocolError("send_connect must come before any request")
        data = frame(encode_request(header, record))
        self._sent += 1
        self._pending.setdefault(header.xid, deque()).append((header.type, self._sent))
        if header.type == OpCode.CREATE_SESSION:
            self._recreates.append((header.xid, self._sent))
        return data

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._frames.feed(data)

    def next_event(self) -> ClientEvent:
        body = self._frames.next_frame()
        if body is None:
            return NEED_DATA
        if not self._connected:
            if not self._connecting:
                raise ProtocolError("data received before send_connect")
            self._connected = True
            return decode_connect_response(body)
        xid = decode_reply_header(body).xid
        if xid == WATCH_XID:
            _, event = decode_response(0, body)
            assert isinstance(event, WatcherEvent)
            return Notification(event)
        if self._recreates and is_bare_connect_response(body):
            xid0 = self._pending.get(0)
            rxid, seq = self._recreates[0]
            if not xid0 or xid0[0][1] > seq:
                self._take(rxid)
                return _Reply(ReplyHeader(rxid, -1, 0), decode_connect_response(body))
        opcode = self._take(xid)
        header, record = decode_response(opcode, body)
        return _Reply(header, record)

    def _take(self, xid: int) -> int:
        """The opcode of the oldest outstanding request with ``xid``, no longer outstanding."""
        queue = self._pending.get(xid)
        if not queue:
            raise ProtocolError(f"reply with xid {xid} matches no outstanding request")
        opcode, seq = queue.popleft()
        if not queue:
            del self._pending[xid]
        if opcode == OpCode.CREATE_SESSION:
            self._recreates.remove((xid, seq))
        return opcode

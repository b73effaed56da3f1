"""A small blocking ZooKeeper client on zetcd's own codec, able to send anything.

Theory of operation. A :class:`Connection` is one TCP connection to one server, driven by the
sans-I/O :class:`~zetcd.proto.connection.ClientProtocol`: requests are encoded by the codec
(so invalid paths, bad versions and odd flags go out exactly as built), ``send`` also takes
a raw body (multi contents the codec would refuse, truncated bodies), and every
answer comes back as an :class:`Outcome` instead of an exception: a reply, the connection
closed, no answer in time, or a frame the codec could not decode. Watch notifications are kept
in ``events`` in arrival order, each tagged with the number of replies received before it, so
a caller can tell which notifications came before the reply to its own request.

Nothing here knows about the other side of a comparison; :mod:`fuzz.driver` pairs two of these.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass
from typing import Final

from zetcd.proto.connection import ClientProtocol, Notification, Reply
from zetcd.proto.constants import PING_XID, OpCode
from zetcd.proto.errors import ProtocolError
from zetcd.proto.framing import NEED_DATA, frame
from zetcd.proto.records import ConnectRequest, ConnectResponse, RequestHeader, WatcherEvent

MAX_PACKET: Final = 8 << 20
_LENGTH: Final = struct.Struct(">i")
_HEADER_SIZE: Final = 8  # RequestHeader: xid, type

REPLY = "reply"
CLOSED = "closed"
TIMEOUT = "timeout"
UNDECODABLE = "undecodable"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request got: ``kind`` is reply, closed, timeout or undecodable."""

    kind: str
    reply: Reply | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    """A watch notification and how many replies this connection had received before it."""

    event: WatcherEvent
    replies_before: int


class Connection:
    """One connection to one server. Every method is bounded by ``timeout`` seconds."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self.timeout = timeout
        self.proto = ClientProtocol(max_packet=MAX_PACKET)
        self.events: list[Event] = []
        self.replies = 0
        self.last_zxid = 0
        self.closed = False
        self.sock: socket.socket | None = socket.create_connection((host, int(port)), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- life cycle -------------------------------------------------------------------

    def drop(self) -> None:
        """Close the socket without a closeSession (the session lives on in the server)."""
        self.closed = True
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()

    def connect(self, request: ConnectRequest) -> ConnectResponse | None:
        """Send the handshake; None when the server closes (or stays silent) instead."""
        if not self._send(self.proto.send_connect(request)):
            return None
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                ev = self.proto.next_event()
            except ProtocolError:
                self.drop()
                return None
            if isinstance(ev, ConnectResponse):
                return ev
            if ev is NEED_DATA and self._receive(deadline):
                continue
            self.drop()
            return None

    # --- requests ---------------------------------------------------------------------

    def send(
        self, xid: int, opcode: int, record: object | None = None, body: bytes | None = None
    ) -> bool:
        """Send one request; False if the connection is already closed.

        The codec encodes ``record`` and remembers the opcode so the reply decodes; with
        ``body`` those bytes go out after the header instead of the encoded record (a raw
        multi, a truncated body), and ``record`` only has to be valid for the opcode."""
        framed = self.proto.send_request(RequestHeader(xid, opcode), record)
        if body is not None:
            framed = frame(framed[_LENGTH.size : _LENGTH.size + _HEADER_SIZE] + body)
        return self._send(framed)

    def wait_reply(self, xid: int) -> Outcome:
        """Read until the reply with ``xid`` (notifications before it go to ``events``)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                ev = self.proto.next_event()
            except ProtocolError as e:
                if "frame length" in str(e):
                    self.drop()
                    return Outcome(CLOSED, detail=str(e))
                self.replies += 1
                return Outcome(UNDECODABLE, detail=str(e))
            if ev is NEED_DATA:
                if self.closed:
                    return Outcome(CLOSED)
                if not self._receive(deadline):
                    if self.closed:
                        return Outcome(CLOSED)
                    self.drop()  # a late reply would desynchronize the stream
                    return Outcome(TIMEOUT)
                continue
            if isinstance(ev, Notification):
                self.events.append(Event(ev.event, self.replies))
                continue
            if isinstance(ev, Reply):
                self.replies += 1
                if ev.header.zxid > 0 and ev.header.xid != PING_XID:
                    self.last_zxid = ev.header.zxid
                if ev.header.xid == xid:
                    return Outcome(REPLY, ev)
                continue
            self.drop()
            return Outcome(CLOSED, detail=f"unexpected {ev!r}")

    def call(self, xid: int, opcode: int, record: object | None = None) -> Outcome:
        if not self.send(xid, opcode, record):
            return Outcome(CLOSED)
        return self.wait_reply(xid)

    def ping(self) -> Outcome:
        return self.call(PING_XID, OpCode.PING)

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events

    def wait_closed(self, timeout: float) -> bool:
        """True once the server has closed the connection (bytes read meanwhile are fed to the
        protocol and decoded later)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            if not self._receive(deadline):
                return self.closed
        return True

    # --- socket -----------------------------------------------------------------------

    def _send(self, data: bytes) -> bool:
        if self.sock is None:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            self.drop()
            return False
        return True

    def _receive(self, deadline: float) -> bool:
        """Feed the protocol one chunk; False on timeout or when the peer closed."""
        sock = self.sock
        if sock is None:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            data = b""
        if not data:
            self.drop()
            return False
        self.proto.receive_data(data)
        return True


def open_connection(address: str, timeout: float) -> Connection | None:
    """A connection, or None when the server cannot be reached."""
    with contextlib.suppress(OSError):
        return Connection(address, timeout)
    return None

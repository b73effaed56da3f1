"""A tiny blocking client on zetcd's own codec, for sending exactly the bytes a test wants."""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

from zetcd.proto.connection import ClientProtocol, Notification, Reply
from zetcd.proto.framing import NEED_DATA
from zetcd.proto.records import ConnectRequest, ConnectResponse, RequestHeader


class Closed(Exception):
    """The server closed the connection."""


class RawClient:
    def __init__(
        self, address: str, timeout: float = 5.0, context: ssl.SSLContext | None = None
    ) -> None:
        """Connected to ``address``; over TLS with ``context`` (its handshake done, so a refused
        one raises ssl.SSLError here)."""
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        if context is not None:
            try:
                self.sock = context.wrap_socket(
                    self.sock, server_hostname=host, suppress_ragged_eofs=False
                )
            except BaseException:
                self.sock.close()
                raise
        self.proto = ClientProtocol(max_packet=8 << 20)
        self.xid = 0
        self.pending: list[Any] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ sending
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(
        self,
        timeout: int = 10000,
        session_id: int = 0,
        passwd: bytes = bytes(16),
        last_zxid: int = 0,
        read_only: bool | None = None,
    ) -> ConnectResponse:
        self.send_raw(
            self.proto.send_connect(
                ConnectRequest(0, last_zxid, timeout, session_id, passwd, read_only)
            )
        )
        ev = self.next()
        assert isinstance(ev, ConnectResponse), ev
        return ev

    def request(self, opcode: int, body: Any = None, xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send_raw(self.proto.send_request(RequestHeader(xid, opcode), body))
        return xid

    def call(self, opcode: int, body: Any = None) -> Reply:
        self.request(opcode, body)
        return self.reply()

    # ------------------------------------------------------------------ receiving
    def next(self) -> Any:
        while True:
            ev = self.proto.next_event()
            if ev is not NEED_DATA:
                return ev
            data = self.sock.recv(65536)
            if not data:
                raise Closed()
            self.proto.receive_data(data)

    def reply(self) -> Reply:
        """The next reply, collecting notifications that come before it."""
        while True:
            ev = self.next()
            if isinstance(ev, Notification):
                self.pending.append(ev.event)
                continue
            assert isinstance(ev, Reply), ev
            return ev

    def raw_reply(self) -> bytes:
        """One whole frame body, undecoded (for replies our client cannot match to a request)."""
        head = self._recv_exact(4)
        (n,) = struct.unpack(">i", head)
        return self._recv_exact(n)

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise Closed()
            buf += chunk
        return buf

    def is_closed(self, timeout: float = 3.0) -> bool:
        """True when the server closes the connection within ``timeout`` (data read is lost)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except TimeoutError:
            return False
        except OSError:
            return True

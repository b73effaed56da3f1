"""A TCP proxy that plants one divergence in front of a ZooKeeper-protocol server.

It proves the fuzzer finds what it should: put it in front of a real ZooKeeper (or zetcd), fuzz
it against a real ZooKeeper, and the campaign must find the planted rule, shrink it to a
handful of steps and replay it. Rules (:data:`RULES`):

- ``setdata-child-watch``: a successful setData on ``/p/c`` also fires NodeChildrenChanged
  ``/p`` to every connection holding a child watch on ``/p`` (a child's setData must fire
  nothing on its parent, zk-facts.md §5). The proxy tracks the child watches a connection set
  (getChildren with watch on an existing node) and the ones that fired, so the planted event
  is one-shot like a real one, and the writer's connection gets it before its reply.
- ``getdata-cversion``: getData reports ``Stat.cversion + 1`` for a node with two or more
  children.

Theory of operation: one thread runs a ``selectors`` loop over the listening socket and, for
every client, the client socket and its upstream socket. Bytes pass through unchanged; each
direction is also parsed with the project's codec (``ServerProtocol`` for requests, a
``FrameReader`` for replies) so that frames can be rewritten or added between frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from zetcd.proto.codec import (
    decode_reply_header,
    decode_response,
    encode_notification,
    encode_reply,
)
from zetcd.proto.connection import Connect, Request, ServerProtocol
from zetcd.proto.constants import WATCH_XID, EventType, KeeperState, OpCode
from zetcd.proto.errors import MalformedRequest, ProtocolError
from zetcd.proto.framing import NEED_DATA, FrameReader, frame
from zetcd.proto.records import (
    GetChildren2Request,
    GetChildrenRequest,
    GetDataResponse,
    SetDataRequest,
    WatcherEvent,
)

SETDATA_CHILD_WATCH = "setdata-child-watch"
GETDATA_CVERSION = "getdata-cversion"
RULES = (SETDATA_CHILD_WATCH, GETDATA_CVERSION)
_MAX = 16 << 20


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class _Pair:
    """One client connection and its upstream connection."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.requests = ServerProtocol(max_packet=_MAX)
        self.parsing = True
        self.replies = FrameReader(_MAX)
        self.connected = False
        self.pending: dict[int, tuple[int, object]] = {}  # xid -> (opcode, request record)
        self.child_watches: set[str] = set()
        self.out = {client: bytearray(), upstream: bytearray()}
        self.eof = {client: False, upstream: False}

    def other(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client


class PlantedProxy:
    def __init__(self, upstream: str, rule: str = SETDATA_CHILD_WATCH) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.rule = rule
        self.host = "127.0.0.1"
        self.port = 0
        self.planted = 0  # how many times the rule changed something
        self._pairs: list[_Pair] = []
        self._listener: socket.socket | None = None
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="planted-proxy", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        listener = socket.create_server((self.host, 0))
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._sel.register(listener, selectors.EVENT_READ, self._accept)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        for pair in self._pairs:
            self._close(pair)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop:
            for key, events in self._sel.select(timeout=1.0):
                if key.data is None:
                    return
                callback: Callable[[socket.socket, int], None] = key.data
                callback(key.fileobj, events)  # type: ignore[arg-type]

    def _accept(self, listener: socket.socket, events: int) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(client, upstream)
        self._pairs.append(pair)
        for sock in (client, upstream):
            self._sel.register(sock, selectors.EVENT_READ, self._make_handler(pair))

    def _make_handler(self, pair: _Pair) -> Callable[[socket.socket, int], None]:
        def handle(sock: socket.socket, events: int) -> None:
            if events & selectors.EVENT_READ:
                self._read(pair, sock)
            if events & selectors.EVENT_WRITE:
                self._flush(pair, sock)

        return handle

    def _read(self, pair: _Pair, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            pair.eof[sock] = True
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            self._maybe_close(pair)
            return
        if sock is pair.client:
            self._client_bytes(pair, data)
        else:
            self._upstream_bytes(pair, data)

    def _send(self, pair: _Pair, sock: socket.socket, data: bytes) -> None:
        if pair.eof[sock]:
            return
        pair.out[sock] += data
        self._flush(pair, sock)

    def _flush(self, pair: _Pair, sock: socket.socket) -> None:
        buf = pair.out[sock]
        try:
            sent = sock.send(buf) if buf else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            pair.eof[sock] = True
            buf.clear()
            self._maybe_close(pair)
            return
        del buf[:sent]
        events = selectors.EVENT_READ if not pair.eof[sock] else 0
        if buf:
            events |= selectors.EVENT_WRITE
        with contextlib.suppress(KeyError, ValueError):
            if events:
                self._sel.modify(sock, events, self._make_handler(pair))
            else:
                self._sel.unregister(sock)
        self._maybe_close(pair)

    def _maybe_close(self, pair: _Pair) -> None:
        """Once one side has closed and everything bound for the other is written, close."""
        for sock in (pair.client, pair.upstream):
            if pair.eof[sock] and not pair.out[pair.other(sock)]:
                self._close(pair)
                return

    def _close(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            sock.close()
            pair.eof[sock] = True
        if pair in self._pairs:
            self._pairs.remove(pair)

    # --- parsing and planting -----------------------------------------------------------

    def _client_bytes(self, pair: _Pair, data: bytes) -> None:
        self._send(pair, pair.upstream, data)
        if not pair.parsing:
            return
        pair.requests.receive_data(data)
        while True:
            try:
                ev = pair.requests.next_event()
            except MalformedRequest:
                continue
            except ProtocolError:
                pair.parsing = False
                return
            if ev is NEED_DATA:
                return
            if isinstance(ev, Request):
                pair.pending[ev.header.xid] = (ev.header.type, ev.body)
            elif not isinstance(ev, Connect):
                pair.parsing = False
                return

    def _upstream_bytes(self, pair: _Pair, data: bytes) -> None:
        pair.replies.feed(data)
        while True:
            try:
                body = pair.replies.next_frame()
            except ProtocolError:
                self._send(pair, pair.client, data)
                return
            if body is None:
                return
            if not pair.connected:
                pair.connected = True
                self._send(pair, pair.client, frame(body))
                continue
            self._send(pair, pair.client, self._reply(pair, body))

    def _reply(self, pair: _Pair, body: bytes) -> bytes:
        """Observe one reply frame; return the frame(s) the client gets for it."""
        header = decode_reply_header(body)
        if header.xid == WATCH_XID:
            _, event = decode_response(0, body)
            if isinstance(event, WatcherEvent) and event.type in (
                EventType.NODE_CHILDREN_CHANGED,
                EventType.NODE_DELETED,
            ):
                pair.child_watches.discard(event.path or "")
            return frame(body)
        opcode, request = pair.pending.pop(header.xid, (None, None))
        if header.err != 0 or opcode is None:
            return frame(body)
        if isinstance(request, GetChildrenRequest | GetChildren2Request) and request.watch:
            pair.child_watches.add(request.path or "")
        if self.rule == SETDATA_CHILD_WATCH and isinstance(request, SetDataRequest):
            return self._plant_child_watch(pair, _parent(request.path or "")) + frame(body)
        if self.rule == GETDATA_CVERSION and opcode == OpCode.GET_DATA:
            h, record = decode_response(opcode, body)
            if isinstance(record, GetDataResponse) and record.stat.numChildren >= 2:
                self.planted += 1
                stat = dataclasses.replace(record.stat, cversion=record.stat.cversion + 1)
                return frame(encode_reply(h, dataclasses.replace(record, stat=stat)))
        return frame(body)

    def _plant_child_watch(self, writer: _Pair, parent: str) -> bytes:
        note = frame(
            encode_notification(
                WatcherEvent(EventType.NODE_CHILDREN_CHANGED, KeeperState.SYNC_CONNECTED, parent)
            )
        )
        own = b""
        for pair in list(self._pairs):
            if parent in pair.child_watches:
                pair.child_watches.discard(parent)
                self.planted += 1
                if pair is writer:
                    own = note  # before the writer's reply, as ZooKeeper orders its events
                else:
                    self._send(pair, pair.client, note)
        return own

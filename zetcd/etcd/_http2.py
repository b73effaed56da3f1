"""gRPC unary calls over a small HTTP/2 client of our own, native to trio.

Why not grpc-python's futures: a future's completion runs on gRPC's channel thread, which then
wakes the trio task through ``run_sync_soon``; starting the call and the two thread hand-offs
cost more than etcd's own work on a small transaction. Measured on this project's machine (one
txn of one put, idle etcd, from trio): p50 1.06 ms through gRPC futures, 0.73 ms over this client.
Streams (watch, lease keep-alive) are calls on the same connections (:class:`Http2Stream`).

What it speaks: HTTP/2 over cleartext TCP with prior knowledge, as gRPC does for ``http://``
targets, or over TLS (``tls.py``: ALPN "h2") for ``https://`` ones. One connection per etcd
endpoint; each call is one stream: our HEADERS (a header block of HPACK literals that never touch
the dynamic table) and DATA (the length-prefixed message, in frames the server's windows allow),
then the server's HEADERS, DATA and trailers, whose header blocks the ``hpack`` package decodes.
Our receive windows are opened to the maximum at once and topped up.

There is no background task: a caller waiting for its answer (or for send window) reads the
socket on behalf of every call on the connection, one reader at a time, and once its own wait is
over hands the role to another waiting call. A call begun by :meth:`Http2Connection.start` may
instead be left to whoever reads (the consumer of a stream opened with ``keeps_reading``): its
``notify`` callback says when its answer is in, or when no reader is left for it.

Errors look like grpc's: :class:`CallError` has ``code()`` and ``details()``, and ``never_sent``
when the request certainly did not reach etcd (the connection could not be made, the server
refused the stream, or a GOAWAY said it would not process it). A connection that fails, or whose
call passes its deadline, is closed; the next call opens a new one.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import hpack
import trio

from . import tls as _tls
from ._h2wire import (
    ACK,
    CANCEL,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    MAX_WINDOW,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STATUS,
    RST_STREAM,
    SETTINGS,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_FRAME_SIZE,
    WINDOW_UPDATE,
    CallError,
    StreamEnded,
    frame,
    grpc_timeout,
    request_headers,
    status_error,
    unpad,
)

__all__ = ["CallError", "Http2Connection", "Http2Stream", "StreamEnded"]

log = logging.getLogger(__name__)

TOP_UP_AFTER = 1 << 30  # received bytes after which the connection window is topped up again
STREAM_WINDOW = 16 * 1024 * 1024  # our receive window of each stream, topped up as data arrives
TOP_UP_STREAM = STREAM_WINDOW // 2
# what a call may hold unread: a larger response, or a stream whose consumer stopped reading,
# fails the call (RESOURCE_EXHAUSTED; gRPC's channel had the same limit on a message)
MAX_BUFFERED = 64 * 1024 * 1024
MAX_HEADER_BLOCK = 1024 * 1024  # a header block continued beyond this fails the connection
# a stream waiting this long without a message pings the server; no answer in PING_TIMEOUT
# seconds fails the connection (gRPC's keepalive did this for the watch; etcd refuses pings
# more often than every 5 s)
PING_AFTER = 10.0
PING_TIMEOUT = 5.0
# the ACK of a server's ping is held back this long (seconds; see _frame), and at most this
# many bytes of them (17 each): more go at once
ACK_HOLD = 0.2
MAX_HELD_ACKS = 8 * 17
RECV_SIZE = 256 * 1024
LAST_STREAM_ID = 2**31 - 1


class Call:
    """One call's stream: what was sent and received on it, and who waits for what.

    Opened by :meth:`Http2Connection.start` or :meth:`Http2Connection.open_stream`; the caller
    keeps it only as a handle to pass back to the connection's methods."""

    __slots__ = (
        "blocked",
        "credit",
        "data",
        "done",
        "error",
        "event",
        "headers",
        "id",
        "keeps_reading",
        "notify",
        "pending",
        "sent",
        "stream",
        "taken",
        "trailers",
        "window",
    )

    def __init__(self, stream_id: int, window: int, stream: bool = False) -> None:
        self.id = stream_id
        self.stream = stream  # a streaming call: messages both ways until either side ends it
        # a stream whose consumer comes back to read it until it is closed (the mirror's watch)
        self.keeps_reading = False
        self.taken = 0  # of data, the bytes of messages a stream's consumer took
        self.credit = 0  # bytes received since the stream's window was last topped up
        self.pending = bytearray()  # a stream's request bytes waiting for send window
        self.window = window  # what we may still send on this stream
        self.sent = False  # some of the request may have left
        self.done = False
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.data = bytearray()
        self.error: CallError | None = None
        self.event: trio.Event | None = None  # set while the call waits for the reader
        self.blocked = False  # its request waits for send window
        # a call begun by start() whose finish() no task awaits yet: called once it is over,
        # and whenever no task is left to read the connection for it (see Http2Connection.start)
        self.notify: Callable[[], None] | None = None


class Http2Connection:
    """One HTTP/2 connection to ``host:port`` (over TLS with ``tls``). :meth:`call` makes unary
    gRPC calls on it, any number at once; once :attr:`usable` is False, open another."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self._label = f"{'TLS connection' if tls else 'connection'} to {host}:{port}"  # errors
        self.authority = (
            f"{host}:{port}".encode() if ":" not in host else f"[{host}]:{port}".encode()
        )
        self.sock: socket.socket | None = None
        self.error: CallError | None = None  # the connection failed: every call fails so
        self.closing = False  # no new calls (GOAWAY, stream ids used up, a deadline passed)
        self._calls: dict[int, Call] = {}
        self._next_id = 1
        self._window = DEFAULT_WINDOW  # connection-level send window
        self._stream_window = DEFAULT_WINDOW  # the server's initial stream window
        self._max_frame = DEFAULT_MAX_FRAME
        self._received = 0  # bytes of DATA since the connection window was last topped up
        self._inbuf = bytearray()
        self._greeted = False  # the server's SETTINGS came
        self._out = bytearray()  # bytes a full socket buffer kept back
        self._acks = b""  # PING ACKs not sent yet (see _frame)
        self._acks_since = 0.0  # trio time the first of them was held
        self._flushing = False
        self._reading = False
        self._decoder = hpack.Decoder()
        self._block: tuple[int, int, bytearray] | None = None  # a header block being continued
        self._blocks: dict[bytes, list[tuple[bytes, bytes]]] = {}  # see _decode
        self._headers: dict[tuple[bytes, bytes], bytes] = {}  # path, timeout -> header block
        self._pings = 0  # keepalive pings sent
        self._pongs = 0  # and answered
        self._heard = 0.0  # trio time of the last bytes from the server
        self._metadata: tuple[tuple[str, str], ...] = ()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC metadata (name, value) sent with every call from now on (etcd's "hasleader",
        its auth "token")."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: tuple[tuple[str, str], ...]) -> None:
        self._metadata = value
        self._headers.clear()

    @property
    def usable(self) -> bool:
        return self.error is None and not self.closing

    # ------------------------------------------------------------------ connecting
    async def open(self) -> None:
        """Connect and send the preface; raises CallError(UNAVAILABLE, never_sent)."""
        try:
            infos = await trio.socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise self._fail(
                f"DNS resolution failed for {self.host}: {e}", never_sent=True
            ) from None
        last: OSError | None = None
        connected: socket.socket | None = None
        for family, stype, proto, _, addr in infos:
            sock = socket.socket(family, stype, proto)
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                err = sock.connect_ex(addr)
                if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                    await trio.lowlevel.wait_writable(sock)
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, errno.errorcode.get(err, str(err)))
            except OSError as e:
                sock.close()
                last = e
                continue
            except BaseException:
                sock.close()
                raise
            connected = sock
            break
        else:
            raise self._fail(
                f"failed to connect to {self.host}:{self.port}: {last}", never_sent=True
            )
        if self.tls is not None:
            try:
                connected = await _tls.handshake(connected, self.tls, self.host)
            except OSError as e:  # closed by handshake()
                hint = ""
                if not isinstance(e, ssl.SSLCertVerificationError):
                    hint = " (if etcd serves plain HTTP there, use http://)"
                raise self._fail(
                    f"TLS handshake with {self.host}:{self.port} failed: {e}{hint}",
                    never_sent=True,
                ) from None
        self.sock = connected
        self._heard = trio.current_time()
        settings = struct.pack(
            ">HIHI", SETTINGS_ENABLE_PUSH, 0, SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW
        )
        self._write(
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW))
        )
        if self._out:
            await self._flush()

    def close(self) -> None:
        if self.error is None:
            self._fail("connection closed", never_sent=False)

    # ------------------------------------------------------------------ calls
    async def call(
        self,
        path: bytes,
        message: bytes,
        timeout: float,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> bytes:
        """The response message of one unary call to ``path`` (``/package.Service/Method``),
        with ``metadata`` instead of the connection's if given. Raises CallError;
        cancellation abandons the call (the server is told)."""
        if not self.usable:
            raise self.error or CallError(
                grpc.StatusCode.UNAVAILABLE, "connection closing", never_sent=True
            )
        call = self._new_call()
        try:
            await self._send_request(call, path, message, timeout, metadata)
        except BaseException:
            self._abandon(call)
            raise
        return await self.finish(call)

    def start(
        self,
        path: bytes,
        message: bytes,
        timeout: float,
        notify: Callable[[], None] | None = None,
    ) -> Call | None:
        """Send a unary call's request now, without waiting, if it can all go at once (the
        connection usable, nothing queued before it, the send windows open); else None.
        :meth:`finish` must then be awaited for its answer (or the call is abandoned), or its
        answer taken by :meth:`answered`.

        Until a task awaits :meth:`finish`, the answer is read only if another task reads the
        connection: see :meth:`has_reader`. ``notify`` is called (from whichever task is
        running) when the call is over, and whenever the last task reading for it leaves with
        no stream left that keeps reading: then :meth:`finish` must be awaited for the call
        to end."""
        n = len(message) + 5
        if (
            not self.usable
            or self._out
            or n > min(self._window, self._stream_window, self._max_frame)
        ):
            return None
        call = self._new_call()
        call.notify = notify
        self._window -= n
        call.window -= n
        call.sent = True
        self._write(
            frame(HEADERS, END_HEADERS, call.id, self._request_block(path, timeout))
            + frame(DATA, END_STREAM, call.id, b"\0" + len(message).to_bytes(4, "big") + message)
        )
        return call

    async def finish(self, call: Call) -> bytes:
        """The response message of a call whose request is sent (see :meth:`call`)."""
        call.notify = None  # this task reads for it if need be
        try:
            await self._wait(call, lambda: call.done)
        except BaseException:
            self._abandon(call)
            raise
        self._after_call()
        return self._result(call)

    def answered(self, call: Call) -> bytes | None:
        """The response message of a call begun by :meth:`start` if its answer is already in
        (read by whichever task was reading), without waiting; None if it is not, or if the
        call failed (then :meth:`finish` raises as usual). :meth:`finish` may still be awaited
        afterwards: it returns at once."""
        if not call.done or call.error is not None:
            return None
        try:
            result = self._result(call)
        except CallError:
            return None
        self._after_call()
        return result

    def has_reader(self) -> bool:
        """Does a stream that keeps reading (see :meth:`open_stream`) live on this connection?
        Its consumer reads the answers of every call on it, whoever awaits them."""
        return any(c.keeps_reading for c in self._calls.values())

    def _new_call(self) -> Call:
        call = Call(self._next_id, self._stream_window)
        self._next_id += 2
        if self._next_id > LAST_STREAM_ID:
            self.closing = True
        self._calls[call.id] = call
        return call

    def _request_block(
        self, path: bytes, timeout: float, metadata: tuple[tuple[str, str], ...] | None = None
    ) -> bytes:
        key = (path, grpc_timeout(timeout))
        block = self._headers.get(key) if metadata is None else None
        if block is None:
            meta = (
                *(self._metadata if metadata is None else metadata),
                ("grpc-timeout", key[1].decode()),
            )
            block = request_headers(path, self.authority, meta, https=self.tls is not None)
            if metadata is None:
                self._headers[key] = block
        return block

    def retire(self) -> None:
        """Take no new calls; close once the ones in flight are over (a call on it passed its
        deadline: the server or the path to it may be gone)."""
        self.closing = True
        self._after_call()

    async def _send_request(
        self,
        call: Call,
        path: bytes,
        message: bytes,
        timeout: float,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        block = self._request_block(path, timeout, metadata)
        body = memoryview(b"\0" + len(message).to_bytes(4, "big") + message)
        total = len(body)
        frames = [frame(HEADERS, END_HEADERS, call.id, block)]
        pos = 0
        while True:
            while pos < total:
                n = min(total - pos, self._window, call.window, self._max_frame)
                if n <= 0:
                    break
                self._window -= n
                call.window -= n
                flags = END_STREAM if pos + n == total else 0
                frames.append(frame(DATA, flags, call.id, body[pos : pos + n]))
                pos += n
            if frames:
                call.sent = True
                self._write(b"".join(frames))
                frames.clear()
                if self._out:
                    await self._flush()
            if pos == total:
                return
            # wait for the server's windows to open (or for an early answer, an error)
            call.blocked = True
            try:
                await self._wait(call, lambda: call.done or (self._window > 0 and call.window > 0))
            finally:
                call.blocked = False
            if call.done:
                return

    def _result(self, call: Call) -> bytes:
        error = call.error or status_error(call.headers, call.trailers)
        if error is not None:
            raise error
        data = call.data
        if len(data) < 5 or data[0] != 0:
            raise CallError(grpc.StatusCode.INTERNAL, "malformed or compressed gRPC message")
        length = int.from_bytes(data[1:5], "big")
        if len(data) != 5 + length:
            raise CallError(grpc.StatusCode.INTERNAL, "gRPC message length mismatch")
        return bytes(data[5:])

    # ------------------------------------------------------------------ streams
    def open_stream(self, path: bytes, keeps_reading: bool = False) -> Call:
        """Start a streaming call (no deadline); see Http2Stream. ``keeps_reading``: its
        consumer promises to come back to read it until it closes it (see
        :meth:`has_reader`)."""
        if not self.usable:
            raise self.error or CallError(
                grpc.StatusCode.UNAVAILABLE, "connection closing", never_sent=True
            )
        call = Call(self._next_id, self._stream_window, stream=True)
        call.keeps_reading = keeps_reading
        self._next_id += 2
        if self._next_id > LAST_STREAM_ID:
            self.closing = True
        self._calls[call.id] = call
        key = (path, b"")
        block = self._headers.get(key)
        if block is None:
            block = self._headers[key] = request_headers(
                path, self.authority, self._metadata, https=self.tls is not None
            )
        call.sent = True
        self._write(frame(HEADERS, END_HEADERS, call.id, block))
        return call

    def stream_send(self, call: Call, message: bytes) -> None:
        """Queue one message on a stream; it leaves as the server's windows allow."""
        if call.done:
            return
        call.pending += b"\0" + len(message).to_bytes(4, "big") + message
        self._send_pending(call)

    def _send_pending(self, call: Call) -> None:
        pending = call.pending
        while pending:
            n = min(len(pending), self._window, call.window, self._max_frame)
            if n <= 0:
                return
            self._window -= n
            call.window -= n
            self._write(frame(DATA, 0, call.id, bytes(pending[:n])))
            del pending[:n]

    def next_message(self, call: Call) -> bytes | None:
        """A stream's next whole message, if it has arrived; raises CallError if malformed."""
        data = call.data
        pos = call.taken
        if len(data) - pos < 5:
            return None
        n = int.from_bytes(data[pos + 1 : pos + 5], "big")
        if len(data) - pos - 5 < n:
            return None
        if data[pos] != 0:
            raise CallError(grpc.StatusCode.INTERNAL, "compressed gRPC message")
        message = bytes(data[pos + 5 : pos + 5 + n])
        call.taken = pos = pos + 5 + n
        if pos == len(data):
            data.clear()
            call.taken = 0
        elif pos > 65536:
            del data[:pos]
            call.taken = 0
        return message

    def has_message(self, call: Call) -> bool:
        data = call.data
        pos = call.taken
        return len(data) - pos >= 5 and len(data) - pos - 5 >= int.from_bytes(
            data[pos + 1 : pos + 5], "big"
        )

    async def wait_message(self, call: Call) -> None:
        """Wait until a stream has a whole message or is over. When nothing at all has come
        from the server for PING_AFTER seconds, ping it (one ping per connection at a time:
        etcd's server counts pings closer than 5 s together against the client)."""
        while not (call.done or self.has_message(call)):
            with trio.move_on_after(PING_AFTER) as idle:
                await self._wait(call, lambda: call.done or self.has_message(call))
            if idle.cancelled_caught and trio.current_time() - self._heard >= PING_AFTER:
                await self._ping(call)

    async def _ping(self, call: Call) -> None:
        if self._pongs >= self._pings:  # none outstanding: send one
            self._pings += 1
            self._write(frame(PING, 0, 0, struct.pack(">Q", self._pings)))
        wanted = self._pings
        with trio.move_on_after(PING_TIMEOUT) as late:
            await self._wait(call, lambda: call.done or self._pongs >= wanted)
        if late.cancelled_caught:
            self._fail(f"no answer to a keepalive ping from {self.host}:{self.port}")

    def abandon(self, call: Call) -> None:
        """Give up on a call whose answer no one will take: a stream whose consumer is gone, or
        a call begun by :meth:`start` whose :meth:`finish` is never awaited."""
        self._abandon(call)

    def _abandon(self, call: Call) -> None:
        """The caller gave up (cancelled, closed, or the connection failed)."""
        if self._calls.get(call.id) is call:
            if self.error is None and call.sent:
                self._write(frame(RST_STREAM, 0, call.id, struct.pack(">I", CANCEL)))
            self._finish(call, CallError(grpc.StatusCode.CANCELLED, "cancelled locally"))
        self._after_call()

    def _after_call(self) -> None:
        if self.closing and not self._calls and self.error is None:
            self._fail("connection closed", never_sent=False)
        else:
            self._handover()

    # ------------------------------------------------------------------ waiting and reading
    async def _wait(self, call: Call, ready: Callable[[], bool]) -> None:
        """Until ``ready()``: read for every call if no one else does, else sleep until woken.
        However this ends (ready, failed, cancelled), a task that leaves while no one reads
        wakes a waiting call to take over, so that the role is never left unheld."""
        try:
            while not ready():
                if call.error is not None:
                    return
                if self._out and not self._flushing:
                    await self._flush()
                    continue
                if self._reading:
                    call.event = trio.Event()
                    try:
                        await call.event.wait()
                    finally:
                        call.event = None
                    continue
                self._reading = True
                try:
                    while not ready() and call.error is None:
                        await self._receive()
                finally:
                    self._reading = False
        finally:
            self._handover()

    def _handover(self) -> None:
        """If no one reads, wake one waiting call (not one already woken) to read on."""
        if self._reading:
            return
        for c in self._calls.values():
            event = c.event
            if event is not None and not event.is_set():
                event.set()
                return
        calls = list(self._calls.values())
        if any(c.keeps_reading for c in calls):
            return  # that stream's consumer comes back to read (and sends the ACKs held)
        if self._acks:
            self._write(b"")
        for c in calls:
            if c.notify is not None:  # no task reads for it: its owner must await finish()
                self._notify(c)
                return

    async def _receive(self) -> None:
        sock = self.sock
        assert sock is not None
        if self._acks and trio.current_time() - self._acks_since >= ACK_HOLD:
            self._write(b"")
        try:
            await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError:  # _fail() closed it: every call has its error
            return
        try:
            data = sock.recv(RECV_SIZE)
            if self.tls is not None and data:
                data = _more_tls(cast(ssl.SSLSocket, sock), data)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # nothing after all (over TLS: a record not whole yet)
        except OSError as e:
            self._lost(f"failed: {e}")
            return
        if not data:
            self._lost("closed by the server")
            return
        self._heard = trio.current_time()
        buf = self._inbuf
        buf += data
        pos = 0
        end = len(buf)
        while end - pos >= 9 and self.error is None:
            n = buf[pos] << 16 | buf[pos + 1] << 8 | buf[pos + 2]
            if not self._greeted:  # a server's first frame is its SETTINGS
                if n > DEFAULT_MAX_FRAME or buf[pos + 3] != SETTINGS:
                    self._fail(f"{self.host}:{self.port} does not speak HTTP/2: not etcd's gRPC")
                    return
                self._greeted = True
            if n > DEFAULT_MAX_FRAME:
                self._fail(f"frame of {n} bytes from the server: larger than allowed")
                return
            stop = pos + 9 + n
            if stop > end:
                break
            stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            self._frame(buf[pos + 3], buf[pos + 4], stream_id, bytes(buf[pos + 9 : stop]))
            pos = stop
        del buf[:pos]
        if self._out and self.error is None:
            await self._flush()

    def _frame(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._block is not None and ftype != CONTINUATION:
            self._fail("header block interrupted by another frame")
            return
        if ftype == DATA:
            self._data(flags, stream_id, payload)
        elif ftype == HEADERS:
            if flags & PADDED:
                payload = unpad(payload)
            if flags & PRIORITY:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._header_block(stream_id, flags, payload)
            else:
                self._block = (stream_id, flags, bytearray(payload))
        elif ftype == CONTINUATION:
            block = self._block
            if block is None or block[0] != stream_id:
                self._fail("unexpected CONTINUATION frame")
                return
            block[2].extend(payload)
            if len(block[2]) > MAX_HEADER_BLOCK:
                self._fail("header block too large")
                return
            if flags & END_HEADERS:
                self._block = None
                self._header_block(stream_id, block[1], bytes(block[2]))
        elif ftype == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif ftype == PING:
            if not flags & ACK:
                # gRPC's server pings with the first request after its last ping was
                # answered (its bandwidth estimate): answered at once, every call would cost a
                # ping and an ACK more. The ACK is held for ACK_HOLD, then goes with the next
                # bytes written or before the reader next waits; at once when no one is left
                # reading (_handover). A keepalive ping's ACK waits at most until a stream's
                # idle ping (PING_AFTER), within etcd's keepalive timeout (20 s).
                if not self._acks:
                    self._acks_since = self._heard
                self._acks += frame(PING, ACK, 0, payload)
                if len(self._acks) > MAX_HELD_ACKS:
                    self._write(b"")
            elif len(payload) == 8:
                self._pongs = max(self._pongs, int.from_bytes(payload, "big"))
                self._wake_all()
        elif ftype == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if stream_id == 0:
                self._window += increment
                if self._window > MAX_WINDOW:
                    self._fail("connection flow-control window overflow")
                    return
            else:
                c = self._calls.get(stream_id)
                if c is None:
                    return
                c.window += increment
            self._window_opened()
        elif ftype == RST_STREAM:
            c = self._calls.get(stream_id)
            if c is not None:
                code = int.from_bytes(payload[:4], "big")
                status = RST_STATUS.get(code, grpc.StatusCode.INTERNAL)
                self._finish(
                    c,
                    CallError(
                        status,
                        f"stream reset by the server (HTTP/2 error {code})",
                        code == REFUSED_STREAM,
                    ),
                )
        elif ftype == GOAWAY:
            self._goaway(payload)
        elif ftype == PUSH_PROMISE:
            self._fail("PUSH_PROMISE although push is disabled")
        # PRIORITY and unknown frame types are ignored, as HTTP/2 requires

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self._received += len(payload)
        if self._received >= TOP_UP_AFTER:
            self._write(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self._received)))
            self._received = 0
        c = self._calls.get(stream_id)
        if c is None:
            return
        c.data += unpad(payload) if flags & PADDED else payload
        if len(c.data) - c.taken > MAX_BUFFERED:
            self._write(frame(RST_STREAM, 0, c.id, struct.pack(">I", CANCEL)))
            error = f"more than {MAX_BUFFERED} bytes of response left unread"
            self._finish(c, CallError(grpc.StatusCode.RESOURCE_EXHAUSTED, error))
            return
        c.credit += len(payload)
        if c.credit >= TOP_UP_STREAM:
            self._write(frame(WINDOW_UPDATE, 0, c.id, struct.pack(">I", c.credit)))
            c.credit = 0
        if flags & END_STREAM:  # a response must end with trailers
            self._finish(c, CallError(grpc.StatusCode.INTERNAL, "response without trailers"))
        elif c.stream and c.event is not None:
            c.event.set()

    def _header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:
            fields = self._decode(block)
        except hpack.HPACKError as e:
            self._fail(f"undecodable header block: {e}")
            return
        c = self._calls.get(stream_id)
        if c is None:
            return
        if c.headers is None and not flags & END_STREAM:
            c.headers = fields
            return
        if c.headers is None:  # trailers-only: headers and status in one block
            c.headers = fields
        c.trailers = fields
        self._finish(c, None)

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """hpack's decoding, with the blocks that only index the tables remembered: such a block
        cannot change the dynamic table, so it means the same until one that can arrives."""
        fields = self._blocks.get(block)
        if fields is not None:
            return fields
        fields = [(bytes(k), bytes(v)) for k, v in self._decoder.decode(block, raw=True)]
        if all(0x80 < b < 0xFF for b in block):  # indexed fields, one byte each
            if len(self._blocks) < 64:
                self._blocks[block] = fields
        else:
            self._blocks.clear()
        return fields

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            self._fail("malformed SETTINGS frame")
            return
        for i in range(0, len(payload), 6):
            ident, value = struct.unpack_from(">HI", payload, i)
            if ident == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    self._fail(f"SETTINGS_INITIAL_WINDOW_SIZE {value} out of range")
                    return
                delta = value - self._stream_window
                self._stream_window = value
                for c in self._calls.values():
                    c.window += delta
            elif ident == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value < 1 << 24:
                    self._fail(f"SETTINGS_MAX_FRAME_SIZE {value} out of range")
                    return
                self._max_frame = value
        self._write(frame(SETTINGS, ACK, 0))
        self._window_opened()

    def _goaway(self, payload: bytes) -> None:
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(payload[4:8], "big")
        self.closing = True
        for c in [c for c in self._calls.values() if c.id > last]:
            self._finish(
                c, CallError(grpc.StatusCode.UNAVAILABLE, f"GOAWAY (HTTP/2 error {code})", True)
            )
        if not self._calls:
            self._fail("connection closed after GOAWAY", never_sent=False)

    def _finish(self, c: Call, error: CallError | None) -> None:
        c.done = True
        c.error = error
        del self._calls[c.id]
        if c.event is not None:
            c.event.set()
        if c.notify is not None:
            self._notify(c)

    def _notify(self, c: Call) -> None:
        notify = c.notify
        if c.done:
            c.notify = None
        try:
            notify()  # type: ignore[misc]
        except Exception:  # a bug of the caller's: never this connection's reader
            log.exception("a call's notify callback failed")

    def _window_opened(self) -> None:
        """Send what streams queued, and wake the calls whose requests wait for window (the
        others wait for their answers: waking them would only cost a task switch each)."""
        for c in list(self._calls.values()):
            if c.pending:
                self._send_pending(c)
            elif c.blocked and c.event is not None:
                c.event.set()

    def _wake_all(self) -> None:
        for c in self._calls.values():
            if c.event is not None:
                c.event.set()

    # ------------------------------------------------------------------ writing
    def _write(self, data: bytes) -> None:
        if self.error is not None:
            return
        if self._acks and (not data or trio.current_time() - self._acks_since >= ACK_HOLD):
            data = self._acks + data
            self._acks = b""
        if self._out:
            self._out += data
            return
        sock = self.sock
        assert sock is not None
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0  # over TLS, the same bytes go first when tried again (they lead _out)
        except OSError as e:
            self._lost(f"failed: {e}")
            return
        if sent < len(data):
            self._out += data[sent:]

    async def _flush(self) -> None:
        """Send what a full socket buffer kept back (whoever queued bytes calls this)."""
        if self._flushing:
            return
        self._flushing = True
        sock = self.sock
        assert sock is not None
        # cancelled part-way, it leaves the rest in _out, whole frames after the tail of one,
        # for the next flush: the byte stream stays consistent
        try:
            while self._out and self.error is None:
                try:
                    await trio.lowlevel.wait_writable(sock)
                except trio.ClosedResourceError:  # _fail() closed it
                    return
                try:
                    sent = sock.send(self._out)
                except (BlockingIOError, ssl.SSLWantWriteError):
                    continue
                except ssl.SSLWantReadError:
                    # TLS must read first: the bytes wait in _out for the connection's reader,
                    # which flushes after each read
                    return
                except OSError as e:
                    self._lost(f"failed: {e}")
                    return
                del self._out[:sent]
        finally:
            self._flushing = False

    def _lost(self, how: str) -> None:
        details = f"{self._label} {how}"
        if self.tls is not None and not self._greeted:
            # etcd with --client-cert-auth checks a client's certificate after TLS 1.3's
            # handshake is over for the client, and then closes, its alert often lost
            details += (
                " before etcd's first frame (if etcd checks client certificates, it wants one"
                " signed by a CA it trusts: zetcd's --cert and --key)"
            )
        elif not self._greeted:
            details += " before etcd's first frame (if etcd serves TLS there, use https://)"
        self._fail(details)

    def _fail(self, details: str, never_sent: bool = False) -> CallError:
        """The connection is over: every call on it fails."""
        err = CallError(grpc.StatusCode.UNAVAILABLE, details, never_sent)
        if self.error is None:
            self.error = err
            self.closing = True
            for c in list(self._calls.values()):
                self._finish(
                    c, CallError(grpc.StatusCode.UNAVAILABLE, details, never_sent or not c.sent)
                )
            if self.sock is not None:
                # wakes a task waiting on the socket (with ClosedResourceError)
                trio.lowlevel.notify_closing(self.sock)
                self.sock.close()
        return err


def _more_tls(sock: ssl.SSLSocket, data: bytes) -> bytes:
    """What else the TLS socket has now, up to RECV_SIZE in all, and whatever OpenSSL holds
    decrypted past that: one ``recv`` returns at most one TLS record (16 KiB), where a plain
    socket gives all the kernel holds, and bytes left in OpenSSL would wake no one."""
    chunks = [data]
    n = len(data)
    while n < RECV_SIZE or sock.pending():
        try:
            more = sock.recv(max(RECV_SIZE - n, sock.pending()))
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not more:
            break  # the end: the next recv says so
        chunks.append(more)
        n += len(more)
    return b"".join(chunks)


class Http2Stream:
    """A bidirectional streaming gRPC call (watch, lease keep-alive). ``send`` queues a request
    message and never blocks; ``receive`` returns the next response or raises StreamEnded. The
    stream starts (connecting if need be) at the first ``receive``."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Http2Connection]],
        path: bytes,
        response_type: Any,
        keeps_reading: bool = False,
    ) -> None:
        self._connect = connect
        self._path = path
        self._type = response_type
        self._keeps_reading = keeps_reading  # see Http2Connection.open_stream
        self._conn: Http2Connection | None = None
        self._call: Call | None = None
        self._queued: list[bytes] = []
        self._end: StreamEnded | None = None
        self.closed = False

    def send(self, request: Any) -> None:
        if self.closed:
            raise trio.ClosedResourceError("stream is closed")
        message = request.SerializeToString()
        if self._conn is None or self._call is None:
            self._queued.append(message)
        else:
            self._conn.stream_send(self._call, message)

    async def receive(self) -> Any:
        if self._end is not None:
            raise self._end
        if self.closed:
            raise StreamEnded(None, True)
        try:
            if self._call is None:
                await self._start()
            conn, call = self._conn, self._call
            assert conn is not None and call is not None
            while True:
                message = conn.next_message(call)
                if message is not None:
                    return self._type.FromString(message)
                if call.done:
                    error = call.error or status_error(call.headers, call.trailers)
                    raise self._ended(None if self.closed else error)
                await conn.wait_message(call)
        except CallError as e:
            raise self._ended(e) from None

    def _ended(self, error: CallError | None) -> StreamEnded:
        self._end = StreamEnded(error, self.closed)
        return self._end

    async def _start(self) -> None:
        conn = await self._connect()
        if self.closed:
            raise StreamEnded(None, True)
        call = conn.open_stream(self._path, self._keeps_reading)
        self._conn, self._call = conn, call
        for message in self._queued:
            conn.stream_send(call, message)
        self._queued.clear()
        if conn._out:
            await conn._flush()

    def close(self) -> None:
        """Cancel the call (idempotent, never blocks)."""
        if self.closed:
            return
        self.closed = True
        if self._conn is not None and self._call is not None:
            self._conn.abandon(self._call)

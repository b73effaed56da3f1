"""The trio server: accept loop, a reader per connection, and one writer.

Theory of operation: the reader decodes frames with the sans-I/O ServerProtocol and hands each
request, in order, to the backend session; replies and watch notifications are appended to one
outgoing buffer, and a single writer task flushes it. So per-connection order is decided in one
place: whatever the backend queued first leaves first. Bad input costs only its own connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import trio

from zetcd import client_tls
from zetcd.backend import (
    Accepted,
    Backend,
    ClientCertificate,
    DropConnection,
    Reply,
    Session,
)
from zetcd.expiry import Expiries
from zetcd.fourlw import FourLetterWords
from zetcd.proto.codec import frame_reply_into
from zetcd.proto.connection import Connect, FourLetterWord, Request, ServerProtocol
from zetcd.proto.constants import DEFAULT_MAX_PACKET, Err, KeeperState, OpCode
from zetcd.proto.errors import MalformedRequest, ProtocolError, UnknownOpcode
from zetcd.proto.framing import NEED_DATA
from zetcd.proto.opcodes import TXN_OPS
from zetcd.proto.records import ConnectResponse, RequestHeader, WatcherEvent
from zetcd.stats import ConnStats, ServerStats

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
# a reader tries recv() before waiting while fewer than EAGER_MISSES such tries in a row found
# nothing, then once in EAGER_PROBE receives (see Connection._receive)
EAGER_MISSES = 2
EAGER_PROBE = 16
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
MAX_PENDING = 1024  # requests a connection may have outstanding before reading pauses
# a connection without a ConnectRequest (or a four-letter word) by then is closed, as ZooKeeper's
# zookeeper.nio.sessionlessCnxnTimeout (10 s by default)
SESSIONLESS_TIMEOUT = 10.0
# ZooKeeper's maxClientCnxns default: connections one client address may hold open at once
DEFAULT_MAX_CLIENT_CNXNS = 60
REFUSAL_LOG_INTERVAL = 10.0  # seconds between two warnings about refused connections
# poll(2)'s "the peer shut its side" (Linux only)
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)
# requests ZooKeeper's network thread answers itself: they do not keep a session alive
_UNHEARD = frozenset((OpCode.AUTH, OpCode.SASL))


def _answer_packets(answer: bytes) -> int:
    """The packets ZooKeeper counts sent for a four-letter word's answer: it writes through a
    BufferedWriter of 8,192 chars, each buffer a packet."""
    units = len(answer.decode("utf-8").encode("utf-16-le")) // 2
    return -(-units // 8192)


class RequestObserver(Protocol):
    def __call__(self, opcode: int, err: int, seconds: float) -> None: ...


@dataclass(slots=True)
class ServerConfig:
    max_packet: int = DEFAULT_MAX_PACKET
    four_letter_words: FourLetterWords | None = None
    stats: ServerStats = field(default_factory=ServerStats)
    observe: RequestObserver | None = None  # metrics hook
    # connections one client address may hold open (0: no limit), as ZooKeeper's maxClientCnxns
    max_client_cnxns: int = DEFAULT_MAX_CLIENT_CNXNS
    # seconds a connection may go without a ConnectRequest or a four-letter word; None: for
    # ever, as ZooKeeper's Netty connection factory (which a secure client port needs) keeps it
    sessionless_timeout: float | None = SESSIONLESS_TIMEOUT
    expiry: Expiries | None = None  # ZooKeeper's expiry queues, for `dump` (expiry.py)


class Connection:
    """One client connection; also the backend's Outbox for it."""

    def __init__(
        self,
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
        backend: Backend,
        config: ServerConfig,
        certificate: ClientCertificate | None = None,
    ) -> None:
        self.stream = stream
        self.certificate = certificate  # the client's (client_tls.py), if any
        self.backend = backend
        self.config = config
        self.proto = ServerProtocol(config.max_packet)
        self.out = bytearray()
        self.wake = trio.Event()
        # The reader and the emitter send what they queued themselves, in one send() and without
        # waking the writer, when the writer is idle (see _flush); the writer sends the rest.
        # The plain socket is trio's own (a trio socket without one, or TLS: always the writer).
        sock = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._sock: socket.socket | None = getattr(sock, "_sock", None)
        self._eager_misses = 0  # recv() tries before waiting that found nothing, in a row
        self._hangup: select.poll | None = None  # asks whether the client shut its side
        # the reader or the emitter is in a stretch without awaits that ends with _flush()
        self.holding = False
        self.sending = False  # the writer is in send_all
        self.closing = False
        self.input_ended = False  # the client closed, or its input is refused (see `gone`)
        # a frame that ends the connection came: it closes without the replies not sent yet
        # (ZooKeeper's network thread closes it before they are ready), once the requests
        # before it have been served (they take effect on ZooKeeper)
        self.abandoned = False
        self.session: Session | None = None
        self.greeted = False  # a ConnectRequest or a four-letter word has come in
        # the reader waits before it reads on (a connect, too many requests outstanding), as
        # ZooKeeper stops reading a connection then (`cons` shows it)
        self.reading_paused = False
        # its session was resumed on another zetcd (moved_away): it closes once idle
        self.session_moved = trio.Event()
        # a new session's creation under way (ZooKeeper counts it a request in process)
        self.creating_session = False
        # when the client last sent anything, and when it last sent a request that keeps its
        # session alive: ZooKeeper touches a session as it takes a request in (submitRequest),
        # which its network thread does not do for auth and SASL packets, nor for bytes that
        # are not yet a whole request (the Outbox's ``heard``)
        self.read_at = self.heard = time.monotonic()
        # its timeout in ZooKeeper's connection expiry queue: the session's once connected
        self.expiry_ms = int((config.sessionless_timeout or 0) * 1000)
        self.session_timeout_ms = 0
        self.stats = ConnStats()
        # deferred requests, in order: (header, reply or how to get it, start time)
        self.pending: deque[tuple[RequestHeader, Reply | Callable[[], Awaitable[Reply]], float]] = (
            deque()
        )
        self.pending_wake = trio.Event()
        self.emitter_idle = False  # the emitter waits for pending_wake
        self._announcer: object = None  # the answer that last agreed to call reply_ready
        self.drained = trio.Event()
        self.trace_mask: int | None = None
        self.peer, self.peer_host = _peer(stream)
        self._touch(self.read_at)  # accepted: in the connection expiry queue

    # ------------------------------------------------------------------ Outbox
    def _queue(self, data: bytes) -> None:
        if not self.closing and not self.abandoned:
            self.out += data
            if not self.holding:
                self.wake.set()

    def notify(self, event_type: int, path: str) -> None:
        self.stats.sent += 1
        self.config.stats.sent += 1
        self._queue(
            self.proto.send_notification(WatcherEvent(event_type, KeeperState.SYNC_CONNECTED, path))
        )

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        self._leave()

    def kick(self) -> None:
        """The server ends the session's connection (another connection claims the session,
        it expired or ended, the mirror is rebuilt). ZooKeeper's NIO connection closes at once,
        what is queued dropped, and the client reads the end of the stream now: so does a
        plain one here. Its Netty connection (TLS) sends what is queued, then closes: so does
        a TLS one here (``close``)."""
        if self._sock is not None:
            self._abandon()
        self.close()
        self._send_fin()  # nothing under TLS

    def moved_away(self) -> None:
        """Its session was resumed on another zetcd: as a ZooKeeper follower leaves the old
        connection of a session that moved to another server, it stays open until it has been
        idle for its connection expiry (``_idle_deadline``)."""
        self.session_moved.set()

    def _touch(self, now: float) -> None:
        """Something was read: the connection expires later (expiry.py)."""
        expiry = self.config.expiry
        if expiry is not None and expiry.connections is not None:
            expiry.connections.touch(self, int(now * 1000), self.expiry_ms)

    def _touch_heard(self) -> None:
        """A request was taken in (``heard``): the session expires later (expiry.py)."""
        if self.session is not None and self.config.expiry is not None:
            ms = int(self.heard * 1000)
            self._touch_session(self.session.session_id, self.session_timeout_ms, ms)

    def _touch_session(self, session_id: int, timeout_ms: int, ms: int) -> None:
        """The session expires ``timeout_ms`` after ``ms`` (expiry.py)."""
        expiry = self.config.expiry
        if expiry is not None:
            expiry.sessions.touch(session_id, ms, timeout_ms)

    def _touch_connection(self) -> None:
        """Something was written: the connection expires later (expiry.py)."""
        expiry = self.config.expiry
        if expiry is not None and expiry.connections is not None and not self.gone:
            expiry.connections.touch(self, int(time.monotonic() * 1000), self.expiry_ms)

    def _leave(self) -> None:
        """The connection is `gone`: tell its session (its watches go at once)."""
        expiry = self.config.expiry
        if expiry is not None and expiry.connections is not None:
            expiry.connections.remove(self)
        leave = getattr(self.session, "connection_gone", None)
        if leave is not None:
            leave()

    @property
    def gone(self) -> bool:
        """Closed as ZooKeeper sees it: its client closed it, or this server decided to. A
        ZooKeeper drops such a connection from the set srvr and cons count at once, before
        the requests still in flight are answered (here, while it drains)."""
        return self.closing or self.input_ended

    def send_reply(self, reply: Reply) -> None:
        if not self.closing and not self.abandoned:
            body = reply.body
            if type(body) is ConnectResponse:
                # createSession inside a session: ZooKeeper sends the ConnectResponse again,
                # without a reply header, and never counts the request answered (`cons` queued)
                self.out += self.proto.send_connect_response(body)
                if reply.xid > 0:
                    self.stats.queued += 1
                # the session expires at the timeout it carries
                self._touch_session(body.sessionId, body.timeOut, int(time.monotonic() * 1000))
            else:
                frame_reply_into(self.out, reply.xid, reply.zxid, reply.err, body)
            if not self.holding:
                self.wake.set()
        if reply.close:
            self.close()

    # ------------------------------------------------------------------ tasks
    async def writer(self) -> None:
        stream = self.stream
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            if self.out:
                data, self.out = self.out, bytearray()
                self.sending = True
                try:
                    await stream.send_all(data)
                finally:
                    self.sending = False
                self._touch_connection()
            if self.closing and not self.out:
                return

    async def serve(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_then_stop, nursery.cancel_scope)
                nursery.start_soon(self.emitter)
                nursery.start_soon(self._idle_deadline, nursery.cancel_scope)
                try:
                    await self._read()
                finally:
                    self.input_ended = True
                    self._leave()
                await self._drain()
                self.close()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the peer went away (possibly reported by both tasks at once)
        except* Exception:
            # a bug must cost only this connection, never the process or other sessions
            log.exception("internal error serving %s; closing its connection", self.peer)
        finally:
            log.debug("%s: connection closed", self.peer)
            self._send_fin()
            if self.session is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self.session.detach()
            await trio.aclose_forcefully(self.stream)

    def _send_fin(self) -> None:
        """End the stream to the client now, as ZooKeeper shuts a socket's output before it
        closes it: the client reads the end of the stream even when it sent bytes this server
        never read, whose close then resets the connection (TLS: the close alone)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):  # already reset by the client
                sock.shutdown(socket.SHUT_WR)

    async def _idle_deadline(self, scope: trio.CancelScope) -> None:
        """Close a connection when ZooKeeper's NIO connection factory would: one that has sent
        neither a ConnectRequest nor a four-letter word, when its bucket in the connection
        expiry queue comes, the sessionless timeout (zookeeper.nio.sessionlessCnxnTimeout)
        after the client last sent anything rounded up to the next multiple of that timeout
        (expiry.py); one whose session moved to another zetcd (``moved_away``), the same with
        its session's timeout. With no expiry queue, never (its Netty factory)."""
        timeout = self.config.sessionless_timeout
        if timeout is None:
            return
        while not self.greeted:
            if await self._expired(timeout, f"no ConnectRequest within {timeout:.0f} s"):
                scope.cancel()
                return
        await self.session_moved.wait()
        while not await self._expired(self.expiry_ms / 1000, "idle since its session moved"):
            pass
        scope.cancel()

    async def _expired(self, timeout: float, why: str) -> bool:
        """Has the connection expired (logged), else wait until it might have."""
        at = self._connection_expiry(timeout)
        now = time.monotonic()
        if at <= now:
            log.info("closing %s: %s", self.peer, why)
            return True
        await trio.sleep(at - now)
        return False

    def _connection_expiry(self, timeout: float) -> float:
        """When the connection expires (time.monotonic()): its bucket, as `dump` lists it;
        without the expiry queues, ``timeout`` after the client was last heard."""
        expiry = self.config.expiry
        bucket = None
        if expiry is not None and expiry.connections is not None:
            bucket = expiry.connections.where.get(self)
        return self.read_at + timeout if bucket is None else bucket / 1000

    async def _drain(self) -> None:
        """The client stopped sending: let the replies already owed go out first."""
        while self.pending and not self.closing:
            self.drained = trio.Event()
            await self.drained.wait()

    async def _write_then_stop(self, scope: trio.CancelScope) -> None:
        try:
            await self.writer()
        finally:
            scope.cancel()

    def _flush_replies(self) -> None:
        """_flush, unless the client has shut its side of the connection (sent its FIN, or
        reset it) since: ZooKeeper's network thread then closes the connection before the
        replies of the requests it read are ready, so none is sent (the requests take effect),
        and so do we (``_abandon``). What the client sent before its FIN is still read."""
        if self.out and not self.abandoned and self._client_shut():
            log.debug("%s: the client shut its side; its replies are not sent", self.peer)
            self._abandon()
        self._flush()

    def _client_shut(self) -> bool:
        """Has the client shut its side (a poll(2) without waiting: no data is read)?"""
        hangup = self._hangup
        if hangup is None:
            if self._sock is None or not _POLLRDHUP:
                return False  # TLS, or not Linux: only the next receive tells
            hangup = self._hangup = select.poll()
            hangup.register(self._sock, _POLLRDHUP)
        return bool(hangup.poll(0))

    def _flush(self) -> None:
        """End of a stretch of the reader or the emitter: send what is queued now if the writer
        is idle (one send(), no task switch); what does not go at once is left to the writer."""
        self.holding = False
        out = self.out
        if not out:
            return
        sock = self._sock
        if sock is None or self.sending:
            self.wake.set()
            return
        try:
            sent = sock.send(out, _NOSIGNAL)
        except BlockingIOError:
            sent = 0
        except OSError:  # the writer meets the error and ends the connection
            self.wake.set()
            return
        if sent == len(out):
            out.clear()
        else:
            del out[:sent]
            self.wake.set()
        if sent:
            self._touch_connection()

    async def _receive(self) -> bytes | bytearray:
        """receive_some, without a scheduling round when the data is there after waiting.
        The first recv() is tried before waiting only while it tends to find data (a client
        with requests in flight), and once in EAGER_PROBE receives otherwise: a client waiting
        for each answer would make it fail every time."""
        sock = self._sock
        if sock is None:
            return await self.stream.receive_some(RECV_SIZE)
        misses = self._eager_misses
        if misses < EAGER_MISSES or misses % EAGER_PROBE == 0:
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                self._eager_misses = misses + 1
            else:
                self._eager_misses = 0
                # data was waiting already: yield once, as trio's receive_some does, so that a
                # busy connection cannot starve the others
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data
        else:
            self._eager_misses = misses + 1
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue

    async def _read(self) -> None:
        try:
            await self._read_requests()
        finally:
            self._touch_heard()  # for the requests taken in before it stopped reading
            self._end_of_input()  # what was begun still happens, as on ZooKeeper
            self._flush()

    def _abandon(self) -> None:
        """A frame that ends the connection came: what is queued and not sent yet is dropped,
        and so is every reply and notification after it (``_queue``, ``send_reply``)."""
        self.abandoned = True
        self.out.clear()

    def _end_of_input(self) -> None:
        """Tell a backend session with ``end_of_input`` that the requests begun so far are all
        it gets before the reader next awaits anything (the writes they queued may leave
        together now); see ``EtcdSession.end_of_input``."""
        if self.session is not None:
            end_of_input = getattr(self.session, "end_of_input", None)
            if end_of_input is not None:
                end_of_input()

    async def _read_requests(self) -> None:
        proto = self.proto
        while not self.closing:
            data = await self._receive()
            if not data:
                # the client shut its side: ZooKeeper closes the connection at once, so the
                # replies not sent yet never are (the requests read before still take effect)
                self._abandon()
                return
            self.read_at = now = time.monotonic()
            self._touch(now)
            heard = self.heard
            proto.receive_data(data)
            self.holding = True
            while not self.closing:
                try:
                    ev = proto.next_event()
                except UnknownOpcode as e:
                    # ZooKeeper touches the session before it finds no such opcode
                    self._taken_in(e.opcode)
                    self.send_reply(Reply(e.xid, -1, Err.UNIMPLEMENTED, None, close=True))
                    return
                except MalformedRequest as e:
                    if self.session is None:
                        return
                    if e.opcode in (OpCode.AUTH, OpCode.SASL) and e.decoded is None:
                        # ZooKeeper's network thread reads these itself and closes on one it
                        # cannot: no reply, nor any other not sent yet
                        self._taken_in(e.opcode)
                        self._abandon()
                        return
                    if e.decoded is not None:  # only trailing bytes: ZooKeeper ignores them
                        ev = Request(*e.decoded)
                    else:
                        self._taken_in(e.opcode)
                        header = RequestHeader(e.xid, e.opcode)
                        # in the session's order (a backend with ``begin`` counts it in flight)
                        begin_malformed = getattr(self.session, "begin_malformed", None)
                        if begin_malformed is not None:
                            self._defer(header, begin_malformed(e.xid, e.opcode))
                        else:
                            self._defer(header, partial(self.session.malformed, e.xid, e.opcode))
                        continue
                except ProtocolError as e:
                    log.info("closing %s: %s", self.peer, e)
                    self._abandon()
                    return
                if ev is NEED_DATA:
                    break
                if isinstance(ev, Request):
                    if self.session is None:
                        return
                    if await self._request(ev.header, ev.body):
                        return
                elif isinstance(ev, Connect):
                    self.greeted = True
                    self._end_of_input()
                    self._flush()
                    with self._reading_paused():
                        await self._connect(ev)
                elif isinstance(ev, FourLetterWord):
                    self.greeted = True
                    words = self.config.four_letter_words
                    # a packet received, counted before the answer (srvr's Received includes
                    # the srvr itself) and the answer's packets sent after it, as ZooKeeper
                    self._count_packets(1, 0)
                    self.trace_mask = ev.trace_mask
                    caught_up = getattr(self.backend, "caught_up", None)
                    if words is not None and caught_up is not None:
                        # answered from the tree: with every write already answered in it
                        self._end_of_input()
                        await caught_up()
                    answer = words.answer(ev.word, self) if words is not None else None
                    if answer is not None:
                        self._queue(answer)
                        self.config.stats.sent += _answer_packets(answer)
                    return
            if self.heard != heard:
                self._touch_heard()
            self._end_of_input()
            self._flush_replies()

    def _taken_in(self, opcode: int) -> None:
        """A whole request read: ZooKeeper counts it a packet received there and then (`cons`'
        recved, srvr's Received, before it is answered), and touches the session as it submits
        it (auth and SASL packets, which its network thread answers itself, do not count)."""
        self.stats.received += 1
        self.config.stats.received += 1
        if opcode not in _UNHEARD:
            self.heard = self.read_at

    @property
    def queued(self) -> int:
        """`cons`' queued: ZooKeeper's count of the connection's requests with a positive xid
        read and not yet answered (a ping's or setWatches' negative xid is never counted, nor
        a SASL packet, which its network thread answers as it reads it), and of the
        createSession requests it never answers as requests (ConnStats.queued)."""
        return self.stats.queued + sum(
            1 for header, _, _ in self.pending if header.xid > 0 and header.type not in _UNHEARD
        )

    @contextlib.contextmanager
    def _reading_paused(self) -> Iterator[None]:
        """Not reading the socket for a while (``cons`` shows such a connection's interest
        ops as 0)."""
        self.reading_paused = True
        try:
            yield
        finally:
            self.reading_paused = False

    async def _request(self, header: RequestHeader, body: object | None) -> bool:
        """Start serving one request. A backend session with ``begin`` answers what it can at
        once and returns the rest as awaitables (a pipelined write is already queued); replies
        then leave in request order through the emitter. Without ``begin``, one at a time.
        True when the connection reads no more."""
        session = self.session
        assert session is not None
        self._taken_in(header.type)
        begin = getattr(session, "begin", None)
        if begin is None:
            self._defer(header, lambda: session.handle(header, body))
        else:
            started = time.perf_counter()
            answer = begin(header, body)
            if isinstance(answer, Reply):
                if not self.pending:
                    self._account(header.xid, header.type, answer, started)
                    self.send_reply(answer)
                    return False
                if header.type == OpCode.AUTH:
                    # a failed auth: ZooKeeper's network thread sends its reply at once and
                    # closes the connection, so the replies of the requests before it that
                    # were not ready never come (the requests still take effect)
                    self._account(header.xid, header.type, answer, started)
                    self.send_reply(dataclasses.replace(answer, close=False))
                    self.abandoned = True
                    return True
            self._defer(header, answer, started)
        if len(self.pending) >= MAX_PENDING:
            self._end_of_input()
            self._flush_replies()
            self.drained = trio.Event()
            with self._reading_paused():
                await self.drained.wait()
            # ZooKeeper touches a session as it takes each request in (submitRequest), and
            # stops taking them in while too many are outstanding: the requests read before
            # this pause and begun after it count as heard now, or a long burst served more
            # slowly than the session's timeout would expire a session whose client is busy
            self.read_at = self.heard = time.monotonic()
        return False

    def _defer(
        self,
        header: RequestHeader,
        answer: Reply | Callable[[], Awaitable[Reply]],
        started: float | None = None,
    ) -> None:
        pending = self.pending
        pending.append((header, answer, started or time.perf_counter()))
        if self.emitter_idle:
            # an answer that can say when it is ready is sent then, by reply_ready, with the
            # ones after it, without waking the emitter now only for it to wait
            if len(pending) == 1:
                if self._announce(answer):
                    return
            elif pending[0][1] is self._announcer:
                return
        self.pending_wake.set()

    def _announce(self, answer: object) -> bool:
        """Have the head of ``pending`` call reply_ready when it is ready, if it can."""
        when_ready = getattr(answer, "when_ready", None)
        if when_ready is None or not when_ready(self.reply_ready):
            return False
        self._announcer = answer
        return True

    def reply_ready(self) -> None:
        """The answer at the head of ``pending`` has its reply (the backend calls this from
        whichever of its tasks finished it: another connection's or its own, say the batcher's
        or the reader's for a write that failed as it was planned): if the emitter is idle,
        send the replies ready now, in one send()."""
        if not self.emitter_idle or self.closing:
            return
        try:
            if self._emit_ready() is not None:
                self.pending_wake.set()  # the emitter awaits that one
        except DropConnection:
            self.close()
        except Exception:  # a bug must cost only this connection, never the caller's task
            log.exception("internal error replying to %s; closing its connection", self.peer)
            self.close()

    def _emit_ready(self) -> Callable[[], Awaitable[Reply]] | None:
        """Send the replies at the head of ``pending`` that are ready, in order. Returns the
        first answer that is not ready and must be awaited; None when nothing is left or the
        first one not ready calls reply_ready when it is."""
        pending = self.pending
        self.holding = True  # the replies ready now leave together
        try:
            while pending and not self.closing:
                header, answer, started = pending[0]
                if isinstance(answer, Reply):
                    reply = answer
                else:
                    # a backend's answer may have its reply ready without a task switch
                    poll = getattr(answer, "poll", None)
                    ready = poll() if poll is not None else None
                    if ready is None:
                        return None if self._announce(answer) else answer
                    reply = ready
                self._emit(header, reply, started)
            return None
        finally:
            self._flush_replies()

    def _emit(self, header: RequestHeader, reply: Reply, started: float) -> None:
        pending = self.pending
        pending.popleft()
        if len(pending) < MAX_PENDING // 2:
            self.drained.set()
        self._account(header.xid, header.type, reply, started)
        self.send_reply(reply)

    async def emitter(self) -> None:
        """Send the replies of deferred requests, strictly in request order: those ready at
        once, then, one at a time, those that must be awaited. It is idle while the first one
        not ready will call reply_ready."""
        try:
            while not self.closing:
                try:
                    head = self._emit_ready()
                    if head is None:
                        self.emitter_idle = True
                        self.pending_wake = trio.Event()
                        try:
                            await self.pending_wake.wait()
                        finally:
                            self.emitter_idle = False
                        continue
                    header, _, started = self.pending[0]
                    reply = await head()
                except DropConnection:
                    self.close()
                    return
                self.holding = True
                self._emit(header, reply, started)
        finally:
            self._flush()

    def _account(self, xid: int, opcode: int, reply: Reply, started: float) -> None:
        now = time.perf_counter()
        seconds = now - started
        # whole ms, as ZooKeeper's difference of two millisecond clocks: min <= avg <= max
        ms = int(now * 1000) - int(started * 1000)
        st, server = self.stats, self.config.stats
        st.sent += 1  # received when read (_taken_in)
        server.sent += 1
        if self.config.observe is not None:
            self.config.observe(opcode, reply.err, seconds)
        if opcode in _UNHEARD:  # answered by ZooKeeper's network thread: packets, nothing more
            return
        # a write that fails is an error txn, which ZooKeeper's FinalRequestProcessor throws
        # on before it names the op: lop=NA (its cxid and zxid are still kept)
        st.last_opcode = 0 if reply.err and opcode in TXN_OPS else opcode
        if xid >= 0:  # ZooKeeper keeps the last real xid, not a ping's -2 or setWatches' -8
            st.last_cxid = xid
        st.last_zxid = reply.zxid
        st.last_response_clock = now
        st.last_latency = ms
        st.latency.add(ms)
        server.latency.add(ms)

    def _count_packets(self, received: int, sent: int) -> None:
        self.stats.received += received
        self.stats.sent += sent
        self.config.stats.received += received
        self.config.stats.sent += sent

    async def _connect(self, ev: Connect) -> None:
        started = time.perf_counter()
        self._count_packets(1, 0)  # a packet received as it is read, answered or not
        self.creating_session = not ev.request.sessionId
        try:
            accepted = await self.backend.connect(ev.request, self)
        except DropConnection:
            accepted = Accepted(None, None)
        finally:
            self.creating_session = False
        if accepted.response is None:
            self.close()
            return
        self._queue(self.proto.send_connect_response(accepted.response))
        self.expiry_ms = self.session_timeout_ms = accepted.response.timeOut
        if accepted.session is not None and not ev.request.sessionId:
            # ZooKeeper's connection counts a new session's creation as its first request
            # (lop SESS, cxid 0, the creation's zxid); a resumption is a bare packet each way
            self._account(0, OpCode.CREATE_SESSION, Reply(0, accepted.zxid, 0), started)
        else:
            self._count_packets(0, 1)
        resp = accepted.response
        if accepted.session is None:
            log.debug(
                "%s: session 0x%x refused (expired or unknown)", self.peer, ev.request.sessionId
            )
            self.close()
        elif ev.request.sessionId:
            log.debug("%s: session 0x%x resumed", self.peer, resp.sessionId)
        else:
            log.debug(
                "%s: session 0x%x established, timeout %d ms",
                self.peer,
                resp.sessionId,
                resp.timeOut,
            )
        self.session = accepted.session
        if accepted.session is not None:
            self.heard = time.monotonic()
            self._touch(self.heard)  # on the session's timeout from now on (expiry_ms)
            self._touch_heard()


async def serve(
    backend: Backend,
    host: str,
    port: int,
    config: ServerConfig,
    *,
    secure: tuple[str, int, ssl.SSLContext] | None = None,
    task_status: trio.TaskStatus[Listeners] = trio.TASK_STATUS_IGNORED,
    connections: set[Connection] | None = None,
) -> None:
    """Serve the ZooKeeper protocol on host:port (host "": every interface) until cancelled,
    and with ``secure`` (host, port, context) over TLS there too (client_tls.py); the two share
    the per-address connection cap. ``connections`` tracks the open ones. An address that
    cannot be served raises OSError, its message naming the address. Started with the plain
    listeners and the secure ones (none without ``secure``)."""
    live = connections if connections is not None else set()
    per_host: dict[str, int] = {}
    refusals = _RefusalLog(config.max_client_cnxns)

    async def handler(stream: trio.SocketStream, tls: ssl.SSLContext | None = None) -> None:
        peer, host = _peer(stream)
        held = per_host.get(host, 0)
        if 0 < config.max_client_cnxns <= held:
            # as ZooKeeper's accept thread: closed at once, before anything is read (and before
            # a TLS handshake)
            refusals.refused(host)
            _discard_received(getattr(stream.socket, "_sock", None))  # a FIN, not a reset
            await trio.aclose_forcefully(stream)
            return
        per_host[host] = held + 1
        try:
            served: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = stream
            certificate = None
            if tls is not None:
                handshaken = await client_tls.handshake(stream, tls, peer)
                served, certificate = handshaken if handshaken is not None else (None, None)
            if served is not None:
                conn = Connection(served, backend, config, certificate)
                live.add(conn)
                try:
                    await conn.serve()
                finally:
                    live.discard(conn)
        finally:
            left = per_host[host] - 1
            if left:
                per_host[host] = left
            else:
                del per_host[host]

    plain = await _listen(host, port)
    tls_listeners: list[trio.SocketListener] = []
    if secure is not None:
        tls_listeners = await _listen(secure[0], secure[1])
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, plain)
        if secure is not None:
            await nursery.start(
                trio.serve_listeners, partial(handler, tls=secure[2]), tls_listeners
            )
        task_status.started(Listeners(plain, tls_listeners))


@dataclass(frozen=True, slots=True)
class Listeners:
    """What :func:`serve` listens on: the plain listeners and the TLS ones."""

    plain: list[trio.SocketListener]
    secure: list[trio.SocketListener]


async def _listen(host: str, port: int) -> list[trio.SocketListener]:
    try:  # host "": every interface
        return await trio.open_tcp_listeners(port, host=host or None)
    except OSError as e:
        raise OSError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e


def _peer(stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> tuple[str, str]:
    """("host:port", "host") of the client at the other end ("?" when it is gone)."""
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    try:
        host, port = transport.socket.getpeername()[:2]
    except OSError:
        return "?", "?"
    return f"{host}:{port}", str(host)


def _discard_received(sock: socket.socket | None) -> None:
    """Read and drop what the peer has sent so far, without waiting."""
    if sock is None:
        return
    try:
        while sock.recv(RECV_SIZE, socket.MSG_DONTWAIT):
            pass
    except OSError:  # BlockingIOError: nothing more for now
        pass


class _RefusalLog:
    """Warns about connections refused by the per-address cap, at most once per
    REFUSAL_LOG_INTERVAL (a client retrying in a loop must not flood the log)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.quiet_until = 0.0
        self.unreported = 0

    def refused(self, host: str) -> None:
        self.unreported += 1
        now = time.monotonic()
        if now < self.quiet_until:
            return
        log.warning(
            "too many connections from %s - max is %d (%d refused since the last warning)",
            host,
            self.limit,
            self.unreported,
        )
        self.unreported = 0
        self.quiet_until = now + REFUSAL_LOG_INTERVAL

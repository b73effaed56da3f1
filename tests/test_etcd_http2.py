"""The HTTP/2 transport of the etcd client's unary calls (zetcd/etcd/_http2.py): flow control,
concurrency and errors against a real etcd, and what it does with servers that misbehave."""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import hpack
import pytest
import trio
import trio.testing
from pyetcd.etcdrpc import rpc_pb2

from tests.servers import freeze
from zetcd.etcd import EtcdClient, EtcdError, EtcdUnavailable, _h2wire, _http2, op_put
from zetcd.etcd._h2wire import CONTINUATION, GOAWAY, HEADERS, SETTINGS, frame

from .servers import EtcdServer
from .test_etcd_client import run, start_etcd, stop_etcd

MiB = 1024 * 1024


def test_large_requests_and_responses(etcd: EtcdServer) -> None:
    """A request far beyond HTTP/2's initial 64 KiB windows waits for the server's window
    updates; a response spans many DATA frames."""

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            big = bytes(range(256)) * (MiB // 256)
            put = await client.put(b"/h2/big", big)
            got = await client.range(b"/h2/big")
            assert got.kvs[0].value == big
            assert got.kvs[0].mod_revision == put.header.revision
            # the same through a transaction, twice in a row on the same connection
            for i in range(2):
                resp = await client.txn([], [op_put(b"/h2/big%d" % i, big[i:])])
                assert resp.succeeded
            both = await client.range(b"/h2/big0", b"/h2/big2")
            assert [kv.value for kv in both.kvs] == [big, big[1:]]

    run(main, timeout=60)


def test_many_concurrent_calls(etcd: EtcdServer) -> None:
    """Calls of mixed sizes from many tasks at once share one connection; every answer reaches
    its own caller."""

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            results: dict[int, int] = {}

            async def worker(i: int) -> None:
                value = b"%d:" % i + b"x" * (i * 997 % 150_000)
                put = await client.put(b"/h2/c/%04d" % i, value)
                got = await client.range(b"/h2/c/%04d" % i)
                assert got.kvs[0].value == value
                results[i] = put.header.revision

            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(worker, i)
            assert len(results) == 300
            assert len(set(results.values())) == 300  # 300 distinct writes
            everything = await client.range(b"/h2/c/", b"/h2/c0")
            assert len(everything.kvs) == 300

    run(main, timeout=60)


def test_error_status_keeps_the_connection(etcd: EtcdServer) -> None:
    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            with pytest.raises(EtcdError) as exc:
                await client.txn([], [op_put(b"/h2/dup", b"1"), op_put(b"/h2/dup", b"2")])
            assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "duplicate key" in exc.value.details
            assert (await client.put(b"/h2/dup", b"3")).header.revision > 0

    run(main)


# -- servers that misbehave ------------------------------------------------------------------
@contextlib.contextmanager
def fake_server(behave: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback port whose every connection is handed to ``behave`` (on a thread)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    behave(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _read_preface(conn: socket.socket) -> None:
    data = b""
    while len(data) < 24:
        chunk = conn.recv(24 - len(data))
        if not chunk:
            return
        data += chunk


def _await_streams(conn: socket.socket, count: int) -> None:
    """Read the client's frames until it has opened ``count`` streams (HEADERS seen)."""
    buf, opened = b"", set[int]()
    while len(opened) < count:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the client went away")
        buf += chunk
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            if buf[3] == HEADERS:
                opened.add(int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF)
            buf = buf[9 + n :]


async def _fake_connection(
    endpoint: str,
) -> tuple[_http2.Http2Connection, Callable[[], Awaitable[_http2.Http2Connection]]]:
    """An open connection to ``endpoint`` (a fake_server), and a connect() for its streams."""
    host, port = endpoint.split(":")
    conn = _http2.Http2Connection(host, int(port))
    await conn.open()

    async def connect() -> _http2.Http2Connection:
        return conn

    return conn, connect


async def _reading_stream(endpoint: str) -> tuple[_http2.Http2Connection, _http2.Http2Stream]:
    """A connection to ``endpoint`` (a fake_server) and a stream on it that keeps reading (as
    the mirror's watch does), its request queued."""
    conn, connect = await _fake_connection(endpoint)
    stream = _http2.Http2Stream(connect, b"/x/Watch", rpc_pb2.RangeResponse, keeps_reading=True)
    stream.send(rpc_pb2.RangeRequest())
    return conn, stream


def answers_http1(conn: socket.socket) -> None:
    _read_preface(conn)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    conn.recv(65536)


def hangs_up(conn: socket.socket) -> None:
    _read_preface(conn)
    conn.recv(65536)


def refuses_every_stream(conn: socket.socket) -> None:
    """A GOAWAY whose last stream id is 0: nothing this connection carried was processed."""
    _read_preface(conn)
    conn.sendall(frame(SETTINGS, 0, 0) + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
    with contextlib.suppress(OSError):
        while conn.recv(65536):
            pass


@pytest.mark.parametrize("behave", [answers_http1, hangs_up], ids=["http1", "hangs-up"])
def test_broken_server_fails_the_call_without_hanging(
    behave: Callable[[socket.socket], None],
) -> None:
    async def main() -> None:
        with fake_server(behave) as endpoint:
            async with EtcdClient([endpoint], timeout=0.5) as client:
                # a read is retried for ``timeout`` s, then fails
                with pytest.raises(EtcdUnavailable) as read_exc:
                    await client.range(b"k")
                assert read_exc.value.code == grpc.StatusCode.UNAVAILABLE
            async with EtcdClient([endpoint], timeout=10.0) as client:
                t0 = trio.current_time()
                with pytest.raises(EtcdUnavailable) as write_exc:
                    await client.put(b"k", b"v")
                # the request left: it may have been applied; and the broken connection was
                # noticed at once, not at the deadline
                assert write_exc.value.indeterminate
                assert write_exc.value.code == grpc.StatusCode.UNAVAILABLE
                assert trio.current_time() - t0 < 5

    run(main)


def test_refused_stream_fails_over_even_for_a_write(etcd: EtcdServer) -> None:
    """A write the server refused (GOAWAY below its stream) was certainly not applied, so the
    client replays it on the next endpoint instead of calling it indeterminate."""

    async def main() -> None:
        with fake_server(refuses_every_stream) as endpoint:
            async with EtcdClient([endpoint, etcd.endpoint], timeout=2.0) as client:
                put = await client.put(b"/h2/failover", b"v")
                assert client.current_endpoint == etcd.endpoint.removeprefix("http://")
                got = await client.range(b"/h2/failover")
                assert got.kvs[0].mod_revision == put.header.revision

    run(main)


def test_a_watch_on_a_frozen_etcd_notices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that hears nothing pings the server; an etcd that does not answer (frozen, or
    cut off without a reset) ends the stream, and the watch gives up after its patience."""
    monkeypatch.setattr(_http2, "PING_AFTER", 0.3)
    monkeypatch.setattr(_http2, "PING_TIMEOUT", 0.3)
    endpoint, process = start_etcd(tmp_path)

    async def main() -> None:
        async with await EtcdClient.connect([endpoint], timeout=0.5, reconnect_timeout=1.0) as c:
            rev = (await c.put(b"/frozen/k", b"v")).header.revision
            async with c.watch(b"/frozen/k", None, start_revision=rev) as w:
                assert [ev.kv.value for ev in (await w.__anext__()).events] == [b"v"]
                # quiet but alive: pings are answered and the watch goes on
                with trio.move_on_after(1.0):
                    await w.__anext__()
                await c.put(b"/frozen/k", b"w")
                assert [ev.kv.value for ev in (await w.__anext__()).events] == [b"w"]
                freeze(process.pid)
                try:
                    with pytest.raises(EtcdUnavailable):
                        await w.__anext__()
                finally:
                    process.send_signal(signal.SIGCONT)

    try:
        run(main, timeout=20)
    finally:
        stop_etcd(process)


def test_a_call_holds_a_bounded_amount_unread(
    etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response larger than the limit, or a watch whose consumer stopped reading while others
    kept the connection busy, fails that call alone (RESOURCE_EXHAUSTED)."""
    monkeypatch.setattr(_http2, "MAX_BUFFERED", 64 * 1024)

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            await client.put(b"/h2/huge", b"x" * 100_000)
            with pytest.raises(EtcdError) as exc:
                await client.range(b"/h2/huge")
            assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await client.put(b"/h2/small", b"ok")).header.revision > 0

            rev = (await client.put(b"/h2/w/0", b"")).header.revision
            async with client.watch(b"/h2/w/", b"/h2/w0", start_revision=rev) as w:
                for i in range(1, 40):  # about 160 KiB of events nobody reads yet
                    await client.put(b"/h2/w/%d" % i, b"y" * 4000)
                with pytest.raises(EtcdError) as exc:
                    async for _ in w:
                        pass
                assert exc.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await client.range(b"/h2/small")).kvs[0].value == b"ok"

    run(main)


def endless_header_block(conn: socket.socket) -> None:
    _read_preface(conn)
    conn.recv(65536)  # the request
    conn.sendall(frame(SETTINGS, 0, 0) + frame(HEADERS, 0, 1, b"\x88" * 16000))
    for _ in range(100):
        conn.sendall(frame(CONTINUATION, 0, 1, b"\x88" * 16000))
    while conn.recv(65536):  # until the client hangs up (closing first would reset it)
        pass


def test_an_endless_header_block_fails_the_connection() -> None:
    async def main() -> None:
        with fake_server(endless_header_block) as endpoint:
            async with EtcdClient([endpoint], timeout=10.0) as client:
                with pytest.raises(EtcdUnavailable) as exc:
                    await client.put(b"k", b"v")
                assert "header block too large" in str(exc.value)

    run(main)


def test_request_header_block_decodes_as_meant() -> None:
    """Our HPACK encoding, checked against the hpack package's decoder and RFC 7541's example
    of an integer in a 5-bit prefix (C.1.2: 1337 -> 1f 9a 0a)."""
    assert _h2wire._hpack_int(1337, 5, 0) == b"\x1f\x9a\x0a"
    assert _h2wire._hpack_int(10, 5, 0) == b"\x0a"
    long_path = b"/etcdserverpb.KV/" + b"x" * 300  # a length beyond the 7-bit prefix
    block = _h2wire.request_headers(
        long_path, b"127.0.0.1:2379", (("hasleader", "true"), ("grpc-timeout", "5000m"))
    )
    decoded = [(bytes(k), bytes(v)) for k, v in hpack.Decoder().decode(block, raw=True)]
    assert decoded == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", long_path),
        (b":authority", b"127.0.0.1:2379"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"hasleader", b"true"),
        (b"grpc-timeout", b"5000m"),
    ]
    tls_block = _h2wire.request_headers(long_path, b"127.0.0.1:2379", (), https=True)
    assert [(bytes(k), bytes(v)) for k, v in hpack.Decoder().decode(tls_block, raw=True)][:2] == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
    ]
    assert _h2wire.grpc_timeout(5.0) == b"5000m"
    assert _h2wire.grpc_timeout(1e9) == b"99999999S"  # at most 8 digits


def test_the_reader_role_is_never_left_unheld() -> None:
    """One receive brings a message for a waiting stream and the reading call's own answer:
    the reader must hand its role to the call that still needs reading, not to the stream
    (which takes its message and reads no more), or the last call's answer, sent later, is
    never read (found by review; it stalled such a call until its deadline)."""
    encoder = hpack.Encoder()  # frames below are encoded in the order they are sent

    def head(stream_id: int) -> bytes:
        block = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        return frame(HEADERS, 0x4, stream_id, block)

    def message(stream_id: int) -> bytes:
        return frame(0, 0, stream_id, b"\0\0\0\0\0")  # DATA: an empty message

    def trailers(stream_id: int) -> bytes:
        return frame(HEADERS, 0x5, stream_id, encoder.encode([("grpc-status", "0")]))

    def serve(conn: socket.socket) -> None:
        _read_preface(conn)
        conn.sendall(frame(SETTINGS, 0, 0))  # first, as HTTP/2 wants (it wakes every waiter)
        _await_streams(conn, 3)
        # stream 3's message and call 1's whole answer in one write; call 5's answer later
        conn.sendall(head(3) + message(3) + head(1) + message(1) + trailers(1))
        time.sleep(0.5)
        conn.sendall(head(5) + message(5) + trailers(5))
        while conn.recv(65536):
            pass

    async def main() -> None:
        with fake_server(serve) as endpoint:
            conn, connect = await _fake_connection(endpoint)
            stream = _http2.Http2Stream(connect, b"/x/Watch", rpc_pb2.RangeResponse)
            stream.send(rpc_pb2.RangeRequest())
            done: dict[str, float] = {}

            async def unary(name: str) -> None:
                await conn.call(b"/x/Unary", b"", 30.0)
                done[name] = trio.current_time()

            async def watch() -> None:
                await stream.receive()
                done["stream"] = trio.current_time()

            t0 = trio.current_time()
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(unary, "first")  # stream 1: the reader
                    await trio.sleep(0.05)
                    nursery.start_soon(watch)  # stream 3
                    await trio.sleep(0.05)
                    nursery.start_soon(unary, "last")  # stream 5
            assert set(done) == {"first", "stream", "last"}
            assert done["last"] - t0 < 2  # read when it came (about 0.6 s), not stranded
            stream.close()
            conn.close()

    run(main)


def test_a_started_call_nobody_reads_for_tells_its_owner() -> None:
    """A call begun by start() is read by whichever task reads the connection. When the last
    reader leaves with its answer still to come, ``notify`` tells the call's owner (maybe more
    than once), whose finish() must then read it; when another task reads its answer,
    ``notify`` says so and answered() takes it without waiting. (The batcher relies on both:
    it sleeps while the mirror's task reads, and must be woken when no one does.)"""
    encoder = hpack.Encoder()

    def answer(stream_id: int, payload: bytes) -> bytes:
        head = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        message = b"\0" + len(payload).to_bytes(4, "big") + payload
        return (
            frame(HEADERS, 0x4, stream_id, head)
            + frame(0, 0, stream_id, message)
            + frame(HEADERS, 0x5, stream_id, encoder.encode([("grpc-status", "0")]))
        )

    def serve(conn: socket.socket) -> None:
        _read_preface(conn)
        conn.sendall(frame(SETTINGS, 0, 0))
        _await_streams(conn, 3)
        # calls 1 and 3 are started, 5 is awaited: its answer first, theirs later, together
        conn.sendall(answer(5, b"five"))
        time.sleep(0.3)
        conn.sendall(answer(3, b"three") + answer(1, b"one"))
        while conn.recv(65536):
            pass

    async def main() -> None:
        with fake_server(serve) as endpoint:
            conn, _ = await _fake_connection(endpoint)
            told: list[tuple[int, bool]] = []
            calls: dict[int, _http2.Call] = {}

            def teller(n: int) -> Callable[[], None]:
                return lambda: told.append((n, calls[n].done))

            for n in (1, 3):
                call = conn.start(b"/x/Unary", b"", 30.0, teller(n))
                assert call is not None
                calls[n] = call
            assert not conn.has_reader()
            with trio.fail_after(5):
                assert await conn.call(b"/x/Unary", b"", 30.0) == b"five"
                # the reader left, the started calls' answers still to come: an owner is told
                assert set(told) == {(1, False)} and conn.answered(calls[1]) is None
                assert await conn.finish(calls[1]) == b"one"  # it reads call 3's answer too
                assert set(told) == {(1, False), (3, True)}  # an awaited call is told no more
                assert conn.answered(calls[3]) == b"three"
                assert await conn.finish(calls[3]) == b"three"
            conn.close()

    run(main)


def test_a_stream_that_keeps_reading_reads_for_started_calls() -> None:
    """While a stream opened with ``keeps_reading`` (the mirror's watch) lives on the
    connection, a started call's owner is not told to read when that stream's consumer stops
    to take a message: it will come back. Once the stream is closed, the owner is told."""
    encoder = hpack.Encoder()

    def serve(conn: socket.socket) -> None:
        _read_preface(conn)
        conn.sendall(frame(SETTINGS, 0, 0))
        _await_streams(conn, 2)
        head = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        conn.sendall(frame(HEADERS, 0x4, 1, head) + frame(0, 0, 1, b"\0\0\0\0\0"))  # stream 1
        time.sleep(0.3)
        conn.sendall(  # call 3's whole answer
            frame(HEADERS, 0x4, 3, encoder.encode([(":status", "200")]))
            + frame(0, 0, 3, b"\0\0\0\0\1a")
            + frame(HEADERS, 0x5, 3, encoder.encode([("grpc-status", "0")]))
        )
        while conn.recv(65536):
            pass

    async def main() -> None:
        with fake_server(serve) as endpoint:
            conn, stream = await _reading_stream(endpoint)
            told: list[bool] = []
            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream.receive)  # reads until its message comes
                    await trio.testing.wait_all_tasks_blocked()
                    calls: list[_http2.Call] = []
                    call = conn.start(b"/x/Unary", b"", 30.0, lambda: told.append(calls[0].done))
                    assert call is not None and conn.has_reader()
                    calls.append(call)
                # the stream's consumer took its message and left: no one is told yet
                assert told == []
                stream.close()
                assert told == [False] and not conn.has_reader()
                assert await conn.finish(call) == b"a"
            conn.close()

    run(main)


def _next_frames(conn: socket.socket, buf: bytearray) -> Iterator[tuple[int, int, int, bytes]]:
    """The client's frames as they come: (type, flags, stream id, payload)."""
    while True:
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            n = int.from_bytes(buf[:3], "big")
            stream_id = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            yield buf[3], buf[4], stream_id, bytes(buf[9 : 9 + n])
            del buf[: 9 + n]
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk


def test_server_pings_are_answered_late_but_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC's server pings with the first request after its last ping was answered (its
    bandwidth estimate), so an ACK sent at once would cost a ping and an ACK per call. The
    client holds an ACK for ACK_HOLD: then it goes with the next bytes written, or before the
    reader next waits; and at once when no one is left reading (a call ended, the stream that
    kept reading closed). Every ping is
    answered once, with its payload. (The server waits for the ACKs before it goes on where
    the client must send them unprompted: an ACK held for good fails the test.)"""
    monkeypatch.setattr(_http2, "ACK_HOLD", 1.0)
    encoder = hpack.Encoder()
    events: list[tuple[str, int]] = []  # the client's frames: ("ack", ping) or (type, stream)
    names = {0: "data", HEADERS: "headers", _h2wire.RST_STREAM: "rst"}

    def message(stream_id: int, payload: bytes) -> bytes:
        return frame(0, 0, stream_id, b"\0" + len(payload).to_bytes(4, "big") + payload)

    def ping(n: int) -> bytes:
        return frame(_h2wire.PING, 0, 0, struct.pack(">Q", n))

    def answer(stream_id: int, payload: bytes) -> bytes:
        return (
            frame(HEADERS, 0x4, stream_id, encoder.encode([(":status", "200")]))
            + message(stream_id, payload)
            + frame(HEADERS, 0x5, stream_id, encoder.encode([("grpc-status", "0")]))
        )

    def serve(conn: socket.socket) -> None:
        _read_preface(conn)
        conn.sendall(frame(SETTINGS, 0, 0))
        frames = _next_frames(conn, bytearray())

        def wait_for(wanted: tuple[str, int]) -> None:
            for ftype, flags, stream_id, payload in frames:
                if ftype == _h2wire.PING and flags & _h2wire.ACK:
                    events.append(("ack", int.from_bytes(payload, "big")))
                elif ftype in names:
                    events.append((names[ftype], stream_id))
                if events and events[-1] == wanted:
                    return

        head = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
        wait_for(("data", 1))  # the stream's request
        conn.sendall(ping(1) + frame(HEADERS, 0x4, 1, head) + message(1, b""))
        wait_for(("ack", 1))  # comes with a message the consumer sends a second later
        wait_for(("data", 1))
        conn.sendall(ping(2) + message(1, b""))
        wait_for(("data", 3))  # ack 2 comes before the consumer waits, or with call 3
        conn.sendall(ping(3) + answer(3, b"a"))  # read by the stream's consumer
        wait_for(("data", 5))  # the stream closed, then call 5
        conn.sendall(ping(4) + answer(5, b"b"))
        wait_for(("ack", 4))  # no one reads once call 5 has its answer
        while conn.recv(65536):
            pass

    async def main() -> None:
        with fake_server(serve) as endpoint:
            conn, stream = await _reading_stream(endpoint)
            with trio.fail_after(10):
                await stream.receive()
                stream.send(rpc_pb2.RangeRequest(key=b"k"))  # too soon: the ACK stays
                assert conn._acks
                await trio.sleep(1.05)
                stream.send(rpc_pb2.RangeRequest(key=b"k"))  # the ACK goes ahead of it
                assert not conn._acks
                await stream.receive()
                await trio.sleep(1.05)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream.receive)  # reads the call's answer
                    assert await conn.call(b"/x/Unary", b"", 30.0) == b"a"
                    nursery.cancel_scope.cancel()
                stream.close()
                assert await conn.call(b"/x/Unary", b"", 30.0) == b"b"
                while ("ack", 4) not in events:
                    await trio.sleep(0.01)
            conn.close()

    run(main)
    assert events == [
        ("headers", 1),
        ("data", 1),
        ("data", 1),
        ("ack", 1),
        ("data", 1),
        ("ack", 2),
        ("headers", 3),
        ("data", 3),
        ("rst", 1),
        ("ack", 3),  # the stream closed, no one reads
        ("headers", 5),
        ("data", 5),
        ("ack", 4),
    ], events

"""A recording TCP relay between ZooKeeper clients and a real ZooKeeper server.

Every accepted connection is relayed byte for byte to the upstream server. Both byte streams are
split on ZooKeeper's framing (a 4-byte big-endian length, then that many bytes of body) and each
complete frame body is recorded, in the order the relay saw them, as
``{"dir": "c2s" | "s2c", "hex": "<body>"}``. A connection whose first four client bytes are a
four-letter word (``ruok``, ``srvr``, ...) has no framing: its bytes are recorded as
``c2s-raw``/``s2c-raw`` entries, consecutive chunks of one direction merged. Bytes left over
when a connection ends mid-frame are recorded the same raw way, so nothing is lost.

When a connection ends, its recording is written to ``<out_dir>/<client>-<n>.json`` as
``{"client": "<client>", "frames": [...]}``, where ``client`` is the relay's current
:attr:`RecordingRelay.client_name` at accept time and ``n`` counts that client's connections
from 1.

From Python::

    with RecordingRelay(("127.0.0.1", zk_port), out_dir) as relay:
        relay.client_name = "kazoo"
        ... connect clients to relay.address ...

As a script (runs until interrupted)::

    python -m tools.record_relay --upstream 127.0.0.1:2181 --listen 127.0.0.1:2182 \\
        --out /tmp/recordings --client kazoo

One thread runs a ``selectors`` loop for the listener and all connections, so the relative
order of frames from both directions is exactly the order the relay received them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

C2S = "c2s"
S2C = "s2c"
RAW = "-raw"
# A length prefix above this is not ZooKeeper framing (jute.maxbuffer is about 1 MiB).
MAX_FRAME = 16 * 1024 * 1024


@dataclass
class _Direction:
    name: str
    buffer: bytearray = field(default_factory=bytearray)
    raw: bool = False
    eof: bool = False


@dataclass
class Recording:
    """One relayed connection: its client name, sequence number and frames so far."""

    client: str
    number: int
    frames: list[dict[str, str]] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"{self.client}-{self.number}.json"

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "frames": self.frames}


class _Connection:
    def __init__(self, downstream: socket.socket, upstream: socket.socket, rec: Recording) -> None:
        self.downstream = downstream
        self.upstream = upstream
        self.recording = rec
        self.c2s = _Direction(C2S)
        self.s2c = _Direction(S2C)
        self.decided = False  # whether the framed-or-4lw question has been answered
        self.closed = False

    def peer_of(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.downstream else self.downstream

    def direction_of(self, sock: socket.socket) -> _Direction:
        return self.c2s if sock is self.downstream else self.s2c

    def _add_raw(self, direction: str, data: bytes) -> None:
        frames = self.recording.frames
        if frames and frames[-1]["dir"] == direction:
            frames[-1]["hex"] += data.hex()
        else:
            frames.append({"dir": direction, "hex": data.hex()})

    def feed(self, d: _Direction, data: bytes) -> None:
        d.buffer += data
        if not self.decided and d is self.c2s and len(d.buffer) >= 4:
            self.decided = True
            if bytes(d.buffer[:4]).isalpha():
                self.c2s.raw = self.s2c.raw = True
        if not self.decided and d is self.s2c:
            # The server spoke first (it never does in ZooKeeper's protocol): keep it raw.
            self.decided = True
            self.c2s.raw = self.s2c.raw = True
        if not self.decided:
            return
        if d.raw:
            self._add_raw(d.name + RAW, bytes(d.buffer))
            d.buffer.clear()
            return
        while len(d.buffer) >= 4:
            length = int.from_bytes(d.buffer[:4], "big", signed=True)
            if length < 0 or length > MAX_FRAME:
                d.raw = True
                self._add_raw(d.name + RAW, bytes(d.buffer))
                d.buffer.clear()
                return
            if len(d.buffer) < 4 + length:
                return
            body = bytes(d.buffer[4 : 4 + length])
            del d.buffer[: 4 + length]
            self.recording.frames.append({"dir": d.name, "hex": body.hex()})

    def flush(self) -> None:
        for d in (self.c2s, self.s2c):
            if d.buffer:
                self._add_raw(d.name + RAW, bytes(d.buffer))
                d.buffer.clear()


class RecordingRelay:
    """Relay ``listen`` -> ``upstream``, recording every connection into ``out_dir``."""

    def __init__(
        self,
        upstream: tuple[str, int],
        out_dir: str | Path | None = None,
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        client_name: str = "client",
    ) -> None:
        self.upstream = upstream
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.client_name = client_name
        self.recordings: list[Recording] = []
        self._listen = listen
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Connection] = {}
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._drop_requested = False
        self._idle = threading.Condition(self._lock)

    # -- public API -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        assert self._listener is not None, "relay not started"
        host: str = self._listener.getsockname()[0]
        return host

    @property
    def port(self) -> int:
        assert self._listener is not None, "relay not started"
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        listener = socket.create_server(self._listen, reuse_port=False)
        listener.setblocking(False)
        self._listener = listener
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="record-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection (writing its recording) and the listener."""
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def drop_connections(self) -> None:
        """Close every open connection now (both sides), as a network failure would."""
        with self._lock:
            self._drop_requested = True
        self._wake()

    def open_connections(self) -> int:
        with self._lock:
            return len({id(conn) for conn in self._conns.values()})

    def snapshot(self) -> list[Recording]:
        """Copies of every recording so far, finished ones first, then the open ones."""
        with self._lock:
            live = {id(c): c.recording for c in self._conns.values()}
            return [
                Recording(rec.client, rec.number, [dict(f) for f in rec.frames])
                for rec in [*self.recordings, *live.values()]
            ]

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no connection is open (all recordings written); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._conns, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the loop -------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        sel = self._selector
        assert sel is not None and self._listener is not None
        try:
            while not self._stopping:
                for key, _ in sel.select(timeout=0.5):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    else:
                        self._readable(key.fileobj)  # type: ignore[arg-type]
                with self._lock:
                    drop, self._drop_requested = self._drop_requested, False
                if drop:
                    for conn in list({id(c): c for c in self._conns.values()}.values()):
                        self._close(conn)
        finally:
            for conn in list({id(c): c for c in self._conns.values()}.values()):
                self._close(conn)
            sel.unregister(self._listener)
            self._listener.close()
            sel.close()

    def _accept(self) -> None:
        assert self._listener is not None and self._selector is not None
        try:
            downstream, _ = self._listener.accept()
        except BlockingIOError:
            return
        downstream.setblocking(True)
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            downstream.close()
            return
        upstream.settimeout(None)
        for sock in (downstream, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            name = self.client_name
            number = self._counters.get(name, 0) + 1
            self._counters[name] = number
            conn = _Connection(downstream, upstream, Recording(name, number))
            self._conns[downstream] = conn
            self._conns[upstream] = conn
        self._selector.register(downstream, selectors.EVENT_READ, "conn")
        self._selector.register(upstream, selectors.EVENT_READ, "conn")

    def _readable(self, sock: socket.socket) -> None:
        conn = self._conns.get(sock)
        if conn is None:
            return
        direction = conn.direction_of(sock)
        try:
            data = sock.recv(65536)
        except OSError:
            self._close(conn)
            return
        if not data:
            direction.eof = True
            assert self._selector is not None
            self._selector.unregister(sock)
            with contextlib.suppress(OSError):
                conn.peer_of(sock).shutdown(socket.SHUT_WR)
            if conn.c2s.eof and conn.s2c.eof:
                self._close(conn)
            return
        with self._lock:
            conn.feed(direction, data)
        try:
            conn.peer_of(sock).sendall(data)
        except OSError:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        assert self._selector is not None
        for sock in (conn.downstream, conn.upstream):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
        with self._idle:
            conn.flush()
        self._save(conn.recording)
        with self._idle:
            self._conns.pop(conn.downstream, None)
            self._conns.pop(conn.upstream, None)
            self.recordings.append(conn.recording)
            self._idle.notify_all()

    def _save(self, rec: Recording) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / rec.filename
        path.write_text(dump_recording(rec))


def dump_recording(rec: Recording) -> str:
    """JSON text of a recording with one frame per line (small, diff-friendly)."""
    frames = ",\n".join("  " + json.dumps(frame) for frame in rec.frames)
    return f'{{"client": {json.dumps(rec.client)}, "frames": [\n{frames}\n]}}\n'


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="ZooKeeper server host:port")
    parser.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on")
    parser.add_argument("--out", required=True, type=Path, help="directory for <client>-<n>.json")
    parser.add_argument("--client", default="client", help="client name for the recordings")
    args = parser.parse_args(argv)
    relay = RecordingRelay(
        _host_port(args.upstream), args.out, listen=_host_port(args.listen), client_name=args.client
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with relay:
        print(f"relaying {relay.address} -> {args.upstream}, recording into {args.out}", flush=True)
        stop.wait()
    print(f"wrote {len(relay.recordings)} recording(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

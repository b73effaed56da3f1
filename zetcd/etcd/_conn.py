"""Endpoints: parsing, the methods the client calls, and per endpoint its HTTP/2 connection."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc
import trio
from pyetcd.etcdrpc import rpc_pb2

from ._http2 import Call, CallError, Http2Connection, Http2Stream

__all__ = [
    "FAILOVER_CODES",
    "REQUIRE_LEADER",
    "STREAMS",
    "UNARY",
    "Endpoint",
    "Rounds",
    "endpoints_tls",
    "is_never_sent",
    "parse_endpoints",
]

# gRPC codes after which the client tries the next endpoint.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# Asks etcd to refuse a request (or end a stream) when the member has no leader, instead of
# accepting it and timing out or serving a stale watch; see etcd's rpctypes.MetadataRequireLeaderKey.
REQUIRE_LEADER: tuple[tuple[str, str], ...] = (("hasleader", "true"),)


def _split(endpoints: str | Sequence[str]) -> list[str]:
    items = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """``["http://h:p", "h2:p2,h3:p3"]`` -> ``["h:p", "h2:p2", "h3:p3"]`` (gRPC targets).

    Accepts a single string too. Schemes ``http`` and ``https`` (see :func:`endpoints_tls`); a
    missing port means 2379.
    """
    targets: list[str] = []
    for raw in _split(endpoints):
        part = raw
        if "://" in part:
            scheme, _, part = part.partition("://")
            if scheme.lower() not in ("http", "https"):
                raise ValueError(f"unsupported etcd endpoint scheme {scheme!r} in {raw!r}")
            part = part.rstrip("/")
        if not part or "/" in part:
            raise ValueError(f"bad etcd endpoint {raw!r}")
        if not part.rsplit("]", 1)[-1].count(":"):
            part += ":2379"
        host, _, port = part.rpartition(":")
        if not host.strip("[]") or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"bad etcd endpoint {raw!r}: want host:port, port 1-65535")
        targets.append(part)
    if not targets:
        raise ValueError("no etcd endpoint given")
    return targets


def endpoints_tls(endpoints: str | Sequence[str], tls_given: bool) -> bool:
    """Do these endpoints speak TLS? ``https://`` ones do, ``http://`` ones do not, and bare
    ``host:port`` ones do when TLS settings are given (``tls_given``), as etcdctl has it.
    ValueError for a mix of schemes, or for TLS settings with ``http://`` endpoints."""
    schemes = {raw.partition("://")[0].lower() for raw in _split(endpoints) if "://" in raw}
    if len(schemes) > 1:
        raise ValueError("etcd endpoints mix http:// and https://: use one or the other")
    if schemes == {"http"} and tls_given:
        raise ValueError("TLS settings given for http:// etcd endpoints: use https://")
    return schemes == {"https"} or tls_given


def is_never_sent(err: Any) -> bool:
    """True when an UNAVAILABLE error proves the request was not processed by etcd: the
    connection could not be made, or etcd refused it up front for lack of a leader."""
    if getattr(err, "never_sent", False):
        return True
    details = (err.details() or "") if hasattr(err, "details") else ""
    return (
        "failed to connect to all addresses" in details
        or "DNS resolution failed" in details
        or "etcdserver: no leader" in details
    )


class Rounds:
    """Retry pacing after a failed attempt: try every endpoint once, then go round again after
    a growing pause, until ``window`` seconds have passed since the first failure."""

    __slots__ = ("delay", "failures", "give_up", "size")

    def __init__(self, size: int, window: float) -> None:
        self.size = size
        self.failures = 0
        self.give_up = trio.current_time() + window
        self.delay = 0.025

    async def failed(self) -> bool:
        """Count a failed attempt (pausing after a failed round); False: give up."""
        self.failures += 1
        if self.failures % self.size:
            return True
        remaining = self.give_up - trio.current_time()
        if remaining <= 0:
            return False
        await trio.sleep(min(self.delay, remaining))
        self.delay = min(self.delay * 2, 0.5)
        return True


# The methods the client calls: their paths and response types (pyetcd's messages); all go over
# the project's own HTTP/2 client (_http2.py).
UNARY: dict[str, tuple[bytes, Any]] = {
    "Range": (b"/etcdserverpb.KV/Range", rpc_pb2.RangeResponse),
    "Put": (b"/etcdserverpb.KV/Put", rpc_pb2.PutResponse),
    "DeleteRange": (b"/etcdserverpb.KV/DeleteRange", rpc_pb2.DeleteRangeResponse),
    "Txn": (b"/etcdserverpb.KV/Txn", rpc_pb2.TxnResponse),
    "Compact": (b"/etcdserverpb.KV/Compact", rpc_pb2.CompactionResponse),
    "LeaseGrant": (b"/etcdserverpb.Lease/LeaseGrant", rpc_pb2.LeaseGrantResponse),
    "LeaseRevoke": (b"/etcdserverpb.Lease/LeaseRevoke", rpc_pb2.LeaseRevokeResponse),
    "LeaseTimeToLive": (b"/etcdserverpb.Lease/LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveResponse),
    "Status": (b"/etcdserverpb.Maintenance/Status", rpc_pb2.StatusResponse),
    "Authenticate": (b"/etcdserverpb.Auth/Authenticate", rpc_pb2.AuthenticateResponse),
}
STREAMS: dict[str, tuple[bytes, Any]] = {
    "Watch": (b"/etcdserverpb.Watch/Watch", rpc_pb2.WatchResponse),
    "LeaseKeepAlive": (b"/etcdserverpb.Lease/LeaseKeepAlive", rpc_pb2.LeaseKeepAliveResponse),
}


class Started(NamedTuple):
    """A unary call whose request has been sent (Endpoint.start)."""

    conn: Http2Connection
    call: Call
    deadline: float


class Endpoint:
    """One etcd member and the HTTP/2 connection to it (opened when first needed, and again
    after it fails), over TLS with ``tls``."""

    def __init__(self, target: str, tls: ssl.SSLContext | None = None) -> None:
        self.target = target
        self.tls = tls
        self._metadata = REQUIRE_LEADER
        host, _, port = target.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self._conn: Http2Connection | None = None
        self._opening = trio.Lock()
        self._closed = False

    async def _connection(self) -> Http2Connection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        async with self._opening:
            conn = self._conn
            if conn is None or not conn.usable:
                if self._closed:
                    raise CallError(grpc.StatusCode.UNAVAILABLE, "client closed", never_sent=True)
                conn = Http2Connection(self.host, self.port, self.tls)
                conn.metadata = self._metadata
                await conn.open()
                if self._closed:  # closed while connecting
                    conn.close()
                    raise CallError(grpc.StatusCode.UNAVAILABLE, "client closed", never_sent=True)
                conn.metadata = self._metadata  # a new auth token may have come meanwhile
                self._conn = conn
            return conn

    def set_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        """The gRPC metadata of every call from now on (streams: those opened from now on)."""
        self._metadata = metadata
        if self._conn is not None:
            self._conn.metadata = metadata

    async def call(
        self,
        path: bytes,
        message: bytes,
        timeout: float,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> bytes:
        """One unary call with a deadline of ``timeout`` s (with ``metadata`` instead of the
        endpoint's, if given); raises ``CallError``."""
        conn: Http2Connection | None = None
        with trio.move_on_after(timeout):
            conn = await self._connection()
            return await conn.call(path, message, timeout, metadata)
        if conn is not None:
            conn.retire()  # the member or the path to it may be gone: start afresh next time
        raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", conn is None)

    def start(
        self,
        path: bytes,
        message: bytes,
        timeout: float,
        notify: Callable[[], None] | None = None,
    ) -> Started | None:
        """Send a unary call's request now, if its connection is open and can take it at once
        (see Http2Connection.start, also for ``notify``); None if not. Then await
        :meth:`finish`, or take the answer with :meth:`answered`."""
        conn = self._conn
        if conn is None:
            return None
        call = conn.start(path, message, timeout, notify)
        return None if call is None else Started(conn, call, trio.current_time() + timeout)

    @staticmethod
    async def finish(started: Started) -> bytes:
        """The answer of a call begun by :meth:`start`, by its deadline; raises ``CallError``."""
        conn = started.conn
        with trio.move_on_at(started.deadline):
            return await conn.finish(started.call)
        conn.retire()
        raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", False)

    @staticmethod
    def answered(started: Started) -> bytes | None:
        """The answer of a call begun by :meth:`start` if it is already in; see
        Http2Connection.answered."""
        return started.conn.answered(started.call)

    @staticmethod
    def has_reader(started: Started) -> bool:
        """Is the call's answer read without a task awaiting :meth:`finish` (see
        Http2Connection.has_reader)?"""
        return started.conn.has_reader()

    @staticmethod
    def abandon(started: Started) -> None:
        """Give up on a call begun by :meth:`start` (the server is told)."""
        started.conn.abandon(started.call)

    def open_stream(self, method: str, keeps_reading: bool = False) -> Http2Stream:
        """A streaming call of ``method`` (see STREAMS); it starts at its first receive().
        ``keeps_reading``: see Http2Connection.open_stream."""
        path, response_type = STREAMS[method]
        return Http2Stream(self._connection, path, response_type, keeps_reading)

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()

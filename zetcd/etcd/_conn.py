"""Endpoints: parsing, gRPC channel options; per endpoint an HTTP/2 connection for unary calls
and a gRPC channel for streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import trio
from pyetcd.etcdrpc import rpc_pb2, rpc_pb2_grpc

from ._http2 import CallError, Http2Connection

__all__ = [
    "CHANNEL_OPTIONS",
    "FAILOVER_CODES",
    "REQUIRE_LEADER",
    "UNARY",
    "Endpoint",
    "Rounds",
    "is_never_sent",
    "parse_endpoints",
]

_MiB = 1024 * 1024

CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", 64 * _MiB),
    ("grpc.max_send_message_length", 64 * _MiB),
    # HTTP/2 pings detect a dead peer under an open stream (a watch) within ~15 s. etcd's
    # server refuses pings more often than every 5 s (--grpc-keepalive-min-time) and pings
    # without an active call, hence permit_without_calls=0.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after etcd comes back (gRPC's defaults back off up to 120 s);
    # min_reconnect_backoff is also the connect timeout of one attempt.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 1_000),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)

# gRPC codes after which the client tries the next endpoint.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# Asks etcd to refuse a request (or end a stream) when the member has no leader, instead of
# accepting it and timing out or serving a stale watch; see etcd's rpctypes.MetadataRequireLeaderKey.
REQUIRE_LEADER: tuple[tuple[str, str], ...] = (("hasleader", "true"),)


def parse_endpoints(endpoints: str | Sequence[str]) -> list[str]:
    """``["http://h:p", "h2:p2,h3:p3"]`` -> ``["h:p", "h2:p2", "h3:p3"]`` (gRPC targets).

    Accepts a single string too. Only plain ``http`` is supported; a missing port means 2379.
    """
    items = [endpoints] if isinstance(endpoints, str) else list(endpoints)
    targets: list[str] = []
    for item in items:
        for raw in item.split(","):
            part = raw.strip()
            if not part:
                continue
            if "://" in part:
                scheme, _, part = part.partition("://")
                if scheme.lower() != "http":
                    raise ValueError(f"unsupported etcd endpoint scheme {scheme!r} in {raw!r}")
                part = part.rstrip("/")
            if not part or "/" in part:
                raise ValueError(f"bad etcd endpoint {raw!r}")
            if not part.rsplit("]", 1)[-1].count(":"):
                part += ":2379"
            targets.append(part)
    if not targets:
        raise ValueError("no etcd endpoint given")
    return targets


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


# The unary methods the client calls: their paths and response types. They go over the
# project's own HTTP/2 client (_http2.py), the streams (Watch, LeaseKeepAlive) over gRPC.
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
}


class Endpoint:
    """One etcd member: an HTTP/2 connection for unary calls, a gRPC channel for streams."""

    def __init__(self, target: str) -> None:
        self.target = target
        host, _, port = target.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        self.channel: Any = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.LeaseKeepAlive: Any = rpc_pb2_grpc.LeaseStub(self.channel).LeaseKeepAlive
        self.Watch: Any = rpc_pb2_grpc.WatchStub(self.channel).Watch
        self._conn: Http2Connection | None = None
        self._opening = trio.Lock()

    async def _connection(self) -> Http2Connection:
        conn = self._conn
        if conn is not None and conn.usable:
            return conn
        async with self._opening:
            conn = self._conn
            if conn is None or not conn.usable:
                conn = Http2Connection(self.host, self.port)
                conn.metadata = REQUIRE_LEADER
                await conn.open()
                self._conn = conn
            return conn

    async def call(self, path: bytes, message: bytes, timeout: float) -> bytes:
        """One unary call with a deadline of ``timeout`` s; raises ``CallError``."""
        conn: Http2Connection | None = None
        with trio.move_on_after(timeout):
            conn = await self._connection()
            return await conn.call(path, message, timeout)
        if conn is not None:
            conn.retire()  # the member or the path to it may be gone: start afresh next time
        raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", conn is None)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.channel.close()

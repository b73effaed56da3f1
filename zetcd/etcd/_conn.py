"""Endpoints: parsing, gRPC channel options, one channel and its stubs per endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
import trio
from pyetcd.etcdrpc import rpc_pb2, rpc_pb2_grpc

__all__ = [
    "CHANNEL_OPTIONS",
    "FAILOVER_CODES",
    "REQUIRE_LEADER",
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


class Endpoint:
    """One etcd member: its channel and the multicallables the client uses."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.channel: Any = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        kv = rpc_pb2_grpc.KVStub(self.channel)
        lease = rpc_pb2_grpc.LeaseStub(self.channel)
        maintenance = rpc_pb2_grpc.MaintenanceStub(self.channel)
        self.Range: Any = kv.Range
        self.Put: Any = kv.Put
        self.DeleteRange: Any = kv.DeleteRange
        self.Txn: Any = kv.Txn
        # a Txn whose request comes already serialized (requests.encode_txn)
        self.TxnEncoded: Any = self.channel.unary_unary(
            "/etcdserverpb.KV/Txn",
            request_serializer=None,
            response_deserializer=rpc_pb2.TxnResponse.FromString,
        )
        self.Compact: Any = kv.Compact
        self.LeaseGrant: Any = lease.LeaseGrant
        self.LeaseRevoke: Any = lease.LeaseRevoke
        self.LeaseTimeToLive: Any = lease.LeaseTimeToLive
        self.LeaseKeepAlive: Any = lease.LeaseKeepAlive
        self.Status: Any = maintenance.Status
        self.Watch: Any = rpc_pb2_grpc.WatchStub(self.channel).Watch
        self._pin: Any = None

    def pin(self) -> None:
        """Keep one idle call open on the channel (cheap; call before each unary call).

        grpc-python serves future-style calls from a per-channel thread that it starts when
        the channel's first such call begins and stops when the last one ends; sequential calls
        would pay for a new thread each (about 200 us of CPU per call, measured). An idle call
        keeps that thread alive: a Watch stream half-closed at once, with no watch on it, which
        etcd keeps open until we cancel it. It also lets HTTP/2 keepalive pings watch the
        connection. When the connection breaks the pin ends and the next call re-opens it.
        """
        if self._pin is None:
            pin = self.Watch(iter(()))
            self._pin = pin
            pin.add_done_callback(self._unpin)

    def _unpin(self, call: Any) -> None:  # gRPC thread
        if self._pin is call:
            self._pin = None

    def close(self) -> None:
        pin, self._pin = self._pin, None
        if pin is not None:
            pin.cancel()
        self.channel.close()

"""Prometheus metrics (``--metrics-addr``), on their own registry.

| metric | type | labels |
|---|---|---|
| zetcd_requests_total | counter | op (ZooKeeper opcode name), result (error name, OK) |
| zetcd_request_duration_seconds | histogram | op |
| zetcd_etcd_requests_total | counter | call (txn, put, lease_grant, ...), result (ok, error) |
| zetcd_etcd_request_duration_seconds | histogram | call |
| zetcd_mirror_lag_seconds | histogram | time from a write's etcd reply until the mirror applied it |
| zetcd_writes_per_transaction | histogram | ZooKeeper writes per etcd transaction (group commit) |
| zetcd_connections, zetcd_sessions, zetcd_znodes, zetcd_watches{table}, zetcd_mirror_revision, zetcd_last_zxid | gauges | |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from zetcd.proto.constants import Err, OpCode

_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


def _op_name(opcode: int) -> str:
    try:
        return OpCode(opcode).name.lower()
    except ValueError:
        return str(opcode)


def _err_name(err: int) -> str:
    try:
        return Err(err).name.lower()
    except ValueError:
        return str(err)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "zetcd_requests", "ZooKeeper requests served", ["op", "result"], registry=r
        )
        self.latency = Histogram(
            "zetcd_request_duration_seconds", "Time to serve a ZooKeeper request", ["op"],
            buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.etcd = Counter(
            "zetcd_etcd_requests", "etcd round trips", ["call", "result"], registry=r
        )
        self.etcd_latency = Histogram(
            "zetcd_etcd_request_duration_seconds", "etcd round-trip time", ["call"],
            buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.mirror_lag = Histogram(
            "zetcd_mirror_lag_seconds", "From a write's etcd reply until the mirror applied it",
            buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch = Histogram(
            "zetcd_writes_per_transaction", "ZooKeeper writes committed in one etcd transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r,
        )  # fmt: skip
        self._req: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._etcd: dict[tuple[str, bool], tuple[Any, Any]] = {}

    def gauge(self, name: str, doc: str, fn: Callable[[], float], **labels: str) -> None:
        g = Gauge(name, doc, list(labels), registry=self.registry)
        (g.labels(**labels) if labels else g).set_function(fn)

    def observe_request(self, opcode: int, err: int, seconds: float) -> None:
        pair = self._req.get((opcode, err))
        if pair is None:
            op = _op_name(opcode)
            pair = (self.requests.labels(op, _err_name(err)), self.latency.labels(op))
            self._req[(opcode, err)] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_etcd(self, call: str, ok: bool, seconds: float) -> None:
        pair = self._etcd.get((call, ok))
        if pair is None:
            pair = (self.etcd.labels(call, "ok" if ok else "error"), self.etcd_latency.labels(call))
            self._etcd[(call, ok)] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics over HTTP from a daemon thread. An address that cannot be served
        raises OSError, its message naming the flag and the address."""
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise OSError(f"--metrics-addr {host}:{port}: {e.strerror or e}") from e

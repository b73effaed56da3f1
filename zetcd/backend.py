"""The one interface every backend implements (design.md, "Layers").

The server decodes frames and hands each connection's requests, in order, to a backend session;
the etcd emulation, the bridge to a real ZooKeeper and the cross-checker all implement it, and the
cross-checker composes two others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from zetcd.proto.records import ConnectRequest, ConnectResponse, RequestHeader


class DropConnection(Exception):
    """Raised by a backend to close the connection without a reply, as when a ZooKeeper server
    is cut off from its ensemble: the client sees ConnectionLoss and retries elsewhere."""


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What a session needs of its connection's client certificate: its x509 id and the
    times (seconds since the epoch) it is valid between."""

    x509_id: str
    not_before: float
    not_after: float

    def valid(self, now: float) -> bool:
        return self.not_before <= now <= self.not_after


class Outbox(Protocol):
    """Where a backend sends what goes to one client connection, in order."""

    peer_host: str
    # the client's certificate (TLS with client certificates), else None
    certificate: ClientCertificate | None

    @property
    def heard(self) -> float:
        """time.monotonic() when the client last sent anything."""

    def notify(self, event_type: int, path: str) -> None:
        """Queue a watch notification (state SyncConnected)."""

    def close(self) -> None:
        """Ask for the connection to be closed once what is queued has been sent. (An outbox
        may also have ``kick()``: close at once, what is queued dropped; a backend falls back
        to ``close`` without it.)"""


@dataclass(slots=True)  # built per request: a frozen dataclass's __init__ is slower
class Reply:
    xid: int
    zxid: int
    err: int
    body: object | None = None
    close: bool = False  # close the connection after sending this reply


@dataclass(frozen=True, slots=True)
class Accepted:
    """A connect request's outcome: the response to send (None: close without one), and for a
    new session the zxid of its creation (-1: not known), which the connection's statistics
    show as ZooKeeper's `cons` does."""

    response: ConnectResponse | None
    session: Session | None
    zxid: int = -1


class Session(Protocol):
    session_id: int

    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        """Serve one request; called sequentially per connection, in request order."""
        ...

    async def malformed(self, xid: int, opcode: int) -> Reply:
        """A request whose body did not decode: ZooKeeper answers MarshallingError (a write
        still spends a zxid) and keeps the connection."""
        ...

    # Optional, looked up with getattr: ``begin(header, body)`` (serve what can be served at
    # once, see EtcdSession.begin), ``begin_malformed(xid, opcode)`` (``malformed``, counted
    # in flight by a backend with ``begin``, so what follows keeps its order),
    # ``end_of_input()`` (the requests of one receive from
    # the client have all been handed over: a backend may send what it queued for them) and
    # ``connection_gone()`` (the connection is closed as ZooKeeper sees it, by its client or
    # by the server, while the requests in flight may still be answered). The server calls
    # ``end_of_input`` before its reader awaits anything after ``begin``, on every path, so a
    # backend may hold what ``begin`` queued until then.

    async def detach(self) -> None:
        """The connection is gone without closeSession: the session lives on until it expires."""
        ...


class Backend(Protocol):
    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted: ...

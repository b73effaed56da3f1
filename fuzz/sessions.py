"""The two halves of a fuzz session, and each side's helper session.

A :class:`FuzzSession` is one session of the fuzzer: a slot number, the same on both sides,
with a connection, a session id and a password on each side, the last zxid each side gave it,
and the watches it registered (for setWatches on a resume). Its ``status`` is ``live``
(connected on both sides), ``dropped`` (TCP connection closed, session alive) or ``gone``
(closed or expired). A :class:`Probe` is a side's helper session for what the fuzzer does
behind the scenes (base nodes, expiry markers, container clean-up); what it sees is never
compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fuzz.client import CLOSED, REPLY, Connection, Outcome, open_connection
from fuzz.compare import SIDES
from oracle.sides import Side
from zetcd.proto.constants import OpCode
from zetcd.proto.records import ConnectRequest, ExistsRequest, ExistsResponse, Stat

PROBE_SESSION_TIMEOUT = 40000

LIVE = "live"
DROPPED = "dropped"
GONE = "gone"


class ServerLost(Exception):
    """A server cannot be reached at all (not a divergence: the campaign cannot go on)."""


@dataclass
class FuzzSession:
    slot: int
    timeout: int = 30000
    status: str = LIVE
    xid: int = 0
    conns: dict[Side, Connection | None] = field(default_factory=dict)
    sid: dict[Side, int] = field(default_factory=dict)
    passwd: dict[Side, bytes] = field(default_factory=dict)
    last_zxid: dict[Side, int] = field(default_factory=lambda: {s: 0 for s in SIDES})
    watches: dict[str, set[str]] = field(
        default_factory=lambda: {k: set() for k in ("data", "exist", "child", "pers", "rec")}
    )
    dropped_at: float = 0.0

    def next_xid(self) -> int:
        self.xid += 1
        return self.xid

    def drop(self) -> None:
        for side, conn in self.conns.items():
            if conn is not None:
                if conn.last_zxid > 0:
                    self.last_zxid[side] = conn.last_zxid
                conn.drop()


class Probe:
    """One side's helper session; reconnects (a new session) when its connection is lost."""

    def __init__(self, side: Side, address: str, timeout: float) -> None:
        self.side = side
        self.address = address
        self.timeout = timeout
        self.conn: Connection | None = None
        self.xid = 0

    def _open(self) -> Connection:
        conn = open_connection(self.address, self.timeout)
        resp = (
            conn.connect(ConnectRequest(0, 0, PROBE_SESSION_TIMEOUT, 0, bytes(16)))
            if conn
            else None
        )
        if conn is None or resp is None or not resp.sessionId:
            raise ServerLost(f"the {self.side.value} at {self.address} does not accept sessions")
        return conn

    def call(self, opcode: int, record: object | None) -> Outcome:
        out = Outcome(CLOSED)
        for _ in range(2):
            if self.conn is None or self.conn.closed:
                self.conn = self._open()
            self.xid += 1
            out = self.conn.call(self.xid, opcode, record)
            self.conn.take_events()
            if out.kind != CLOSED:
                return out
        return out

    def err(self, opcode: int, record: object | None) -> int | None:
        out = self.call(opcode, record)
        return out.reply.header.err if out.kind == REPLY and out.reply is not None else None

    def stat(self, path: str) -> Stat | None:
        out = self.call(OpCode.EXISTS, ExistsRequest(path, False))
        if (
            out.kind == REPLY
            and out.reply is not None
            and isinstance(out.reply.body, ExistsResponse)
        ):
            return out.reply.body.stat
        return None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            self.xid += 1
            conn.call(self.xid, OpCode.CLOSE_SESSION)
            conn.drop()

"""Counters the four-letter words and the metrics endpoint report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# ZooKeeper's short op names, as `cons` shows them in lop=
OP_NAMES = {
    1: "CREA", 2: "DELE", 3: "EXIS", 4: "GETD", 5: "SETD", 6: "GETA", 7: "SETA", 8: "GETC",
    9: "SYNC", 11: "PING", 12: "GETC", 13: "CHEC", 14: "MULT", 15: "CREA", 16: "RECO",
    17: "CHKW", 18: "REMW", 19: "CREA", 21: "CREA", 22: "MLTR", 101: "SETW",
    103: "GETE", 104: "GETACN", 105: "STW2", 106: "ADDW", 107: "HOMI", -10: "SESS", -11: "CLOS",
}  # fmt: skip


@dataclass
class Latency:
    """Request latencies in whole milliseconds, as ZooKeeper's ServerStats keeps them."""

    count: int = 0
    total: int = 0
    low: int = 0
    high: int = 0

    def add(self, ms: int) -> None:
        if self.count == 0 or ms < self.low:
            self.low = ms
        if ms > self.high:
            self.high = ms
        self.count += 1
        self.total += ms

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    def reset(self) -> None:
        self.count, self.total, self.low, self.high = 0, 0, 0, 0


@dataclass
class ConnStats:
    """One connection's counters, as ZooKeeper's ServerCnxn keeps them for `cons`: until the
    first `crst` its fields hold Java's defaults (last op null, last cxid and zxid 0, and a
    minimum latency of 0 that no request lowers); `crst` sets them to "NA", -1, -1 and starts
    the minimum afresh. A session's connect counts as a packet each way, and a new session's
    creation as its first request (op SESS, cxid 0)."""

    established: int = field(default_factory=lambda: int(time.time() * 1000))
    received: int = 0
    sent: int = 0
    last_opcode: int | None = None
    last_cxid: int = 0
    last_zxid: int = 0
    # time.perf_counter() of the last reply: CLOCK_MONOTONIC on Linux, which Java's nanoTime
    # (ZooKeeper's Time.currentElapsedTime) reads too
    last_response_clock: float = 0.0
    last_latency: float = 0.0
    latency: Latency = field(default_factory=Latency)
    was_reset: bool = False
    # createSession requests sent inside the session: ZooKeeper never counts them answered
    # (its outstanding count, `cons`' queued, keeps them)
    queued: int = 0

    @property
    def last_op(self) -> str:
        if self.last_opcode is None:
            return "NA" if self.was_reset else "null"
        return OP_NAMES.get(self.last_opcode, "NA")

    @property
    def min_latency(self) -> int:
        return round(self.latency.low) if self.was_reset else 0

    @property
    def last_response(self) -> int:
        """Milliseconds of the monotonic clock at the last reply (0: none yet)."""
        return int(self.last_response_clock * 1000)

    def reset(self) -> None:
        self.received = self.sent = 0
        self.last_opcode, self.last_cxid, self.last_zxid = None, -1, -1
        self.last_response_clock, self.last_latency = 0.0, 0.0
        self.latency.reset()
        self.was_reset = True


@dataclass
class ServerStats:
    received: int = 0
    sent: int = 0
    latency: Latency = field(default_factory=Latency)

    def reset(self) -> None:
        self.received = self.sent = 0
        self.latency.reset()

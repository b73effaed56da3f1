"""Session ids and passwords of the two sides.

Each side gives a new session its own id and password; the client sees the answering side's.
A pair is recorded when both sides accept a new session, so a resume with the answering side's
id and password can be sent to the other side with its own, and an ephemeralOwner on one side
can be compared with the other's through the pair.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from oracle.sides import Side
from zetcd.proto.records import ConnectRequest

MAX_PAIRS = 100_000  # the oldest pairs are forgotten beyond this


@dataclass(frozen=True, slots=True)
class SessionPair:
    candidate: int
    oracle: int
    candidate_passwd: bytes
    oracle_passwd: bytes

    def sid(self, side: Side) -> int:
        return self.candidate if side is Side.CANDIDATE else self.oracle

    def passwd(self, side: Side) -> bytes:
        return self.candidate_passwd if side is Side.CANDIDATE else self.oracle_passwd


class SessionMap:
    def __init__(self) -> None:
        self._by: dict[Side, dict[int, SessionPair]] = {Side.CANDIDATE: {}, Side.ORACLE: {}}

    def add(self, pair: SessionPair) -> None:
        cand = self._by[Side.CANDIDATE]
        cand[pair.candidate] = pair
        self._by[Side.ORACLE][pair.oracle] = pair
        while len(cand) > MAX_PAIRS:
            oldest = cand.pop(next(iter(cand)))
            self._by[Side.ORACLE].pop(oldest.oracle, None)

    def find(self, sid: int, side: Side) -> SessionPair | None:
        return self._by[side].get(sid)

    def same(self, candidate: int, oracle: int) -> bool:
        """Do these two ids name one session? 0 (no session) only matches 0."""
        if candidate == 0 or oracle == 0:
            return candidate == oracle
        pair = self._by[Side.CANDIDATE].get(candidate)
        return pair is not None and pair.oracle == oracle

    def translate(self, request: ConnectRequest, side: Side) -> ConnectRequest:
        """A resume the client sent with ``side``'s id and password, for the other side: its
        own id, and its own password if the client's was right (a wrong one stays wrong)."""
        pair = self._by[side].get(request.sessionId) if request.sessionId else None
        if pair is None:
            return request
        other = side.other
        right = request.passwd == pair.passwd(side)
        passwd = pair.passwd(other) if right else request.passwd
        return dataclasses.replace(request, sessionId=pair.sid(other), passwd=passwd)

"""Pairing what arrives asynchronously from the two sides of one client session.

Theory of operation. Watch notifications (and connection closes) reach the cross-checker from
each side on its own schedule. Each arrival gets a sequence number on its side and is paired
with the oldest unpaired arrival of the other side that has the same key, (type, path) for an
event. Nothing here waits or reads a clock: callers pass ``now`` and ask for :meth:`expired`.

- An arrival left unpaired for ``deadline`` seconds is *unpaired*: missing on the other side.
- A pair that crosses an earlier pair (it comes after that pair on one side and before it on
  the other) is *misordered*.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from oracle.sides import Side


@dataclass(frozen=True, slots=True)
class Arrival:
    side: Side
    seq: int
    key: Hashable
    at: float


@dataclass(frozen=True, slots=True)
class Misordered:
    key: Hashable
    candidate_seq: int
    oracle_seq: int


class Pairing:
    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._pending: dict[Side, list[Arrival]] = {Side.CANDIDATE: [], Side.ORACLE: []}
        self._next_seq = {Side.CANDIDATE: 0, Side.ORACLE: 0}
        self._max_paired = {Side.CANDIDATE: -1, Side.ORACLE: -1}

    def add(
        self, side: Side, key: Hashable, now: float, *, match_only: bool = False
    ) -> Misordered | None:
        """One arrival; returns a misordering if its pair crosses an earlier one. With
        ``match_only`` an arrival that pairs with nothing is dropped instead of kept."""
        seq = self._next_seq[side]
        self._next_seq[side] = seq + 1
        others = self._pending[side.other]
        for i, other in enumerate(others):
            if other.key == key:
                del others[i]
                return self._paired(side, seq, other.seq, key)
        if not match_only:
            self._pending[side].append(Arrival(side, seq, key, now))
        return None

    def _paired(self, side: Side, seq: int, other_seq: int, key: Hashable) -> Misordered | None:
        other = side.other
        crossed = other_seq < self._max_paired[other]
        self._max_paired[side] = max(self._max_paired[side], seq)
        self._max_paired[other] = max(self._max_paired[other], other_seq)
        if not crossed:
            return None
        by = {side: seq, other: other_seq}
        return Misordered(key, by[Side.CANDIDATE], by[Side.ORACLE])

    def expired(self, now: float) -> list[Arrival]:
        """Arrivals unpaired for longer than the deadline, removed."""
        out: list[Arrival] = []
        for side, pending in self._pending.items():
            keep = [a for a in pending if now - a.at <= self.deadline]
            if len(keep) != len(pending):
                out.extend(a for a in pending if now - a.at > self.deadline)
                self._pending[side] = keep
        out.sort(key=lambda a: a.at)
        return out

    def waiting(self, side: Side, key: Hashable) -> bool:
        """Is an arrival with this key waiting for its pair on ``side``'s behalf?"""
        return any(a.key == key for a in self._pending[side])

    @property
    def pending(self) -> bool:
        return any(self._pending.values())

    def oldest(self) -> float | None:
        times = [a.at for pending in self._pending.values() for a in pending]
        return min(times, default=None)

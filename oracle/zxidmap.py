"""The monotone mapping between the candidate's zxids and ZooKeeper's.

Theory of operation. The two servers number their transactions independently (etcd revisions
on one side, ZooKeeper's epoch-and-counter on the other), so their zxids are never compared as
numbers: each observation is a pair (candidate zxid, oracle zxid) seen in the same place of the
same answer, and the mapping built from the pairs must stay consistent.

- A *txn* pair names one transaction (a write's reply zxid, a Stat's czxid/mzxid/pzxid). Txn
  pairs form a strictly increasing bijection: a candidate zxid seen with two oracle zxids is
  *split*, two candidate zxids seen with one oracle zxid are *merged*, and a pair that sits
  below an earlier pair on one side and above it on the other is *reordered*.
- A *read* pair is the last processed zxid a server put on a read's reply. Background
  transactions (a session expiring on one server before the other) move it on one side only,
  so read pairs are compared by order alone: the set of known transactions at or below it must
  be the same on both sides, and read pairs never cross each other.
- A txn pair learned after reads that it does not fit (a read at or above it on one side and
  below it on the other) is a background transaction that one side had made and the other not
  yet when those reads were answered: a client's write cannot be one, as the two sides get
  each request, one at a time, before the next, and its reply names it at once. Those reads
  are dropped, not reported (a session expiry read between the two sides' expiries, then a
  Stat naming it, must not be a divergence).
- Zxids <= 0 are literals (0: never written, or an auth reply; -1: a notification) and must be
  equal.

An inconsistent pair is reported once and not added, so one bug does not cascade. The mapping
keeps the newest ``limit`` pairs of each kind: forgetting old pairs only weakens the checks, it
never makes a consistent history look inconsistent.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass

from oracle.normalize import ZxidKind
from oracle.sides import Side


@dataclass(frozen=True, slots=True)
class Conflict:
    """An observation the mapping cannot take."""

    how: str  # "literal", "split", "merged" or "reordered"
    candidate: int
    oracle: int
    against: tuple[int, int] | None = None  # the earlier (candidate, oracle) pair

    def describe(self) -> str:
        pair = f"candidate 0x{self.candidate:x} ~ oracle 0x{self.oracle:x}"
        if self.how == "literal":
            return f"zxid {self.candidate} vs {self.oracle}: special values must be equal"
        assert self.against is not None
        ac, ao = self.against
        earlier = f"candidate 0x{ac:x} ~ oracle 0x{ao:x}"
        if self.how == "split":
            return f"{pair}, but candidate 0x{ac:x} was paired with oracle 0x{ao:x}"
        if self.how == "merged":
            return f"{pair}, but oracle 0x{ao:x} was paired with candidate 0x{ac:x}"
        return f"{pair} is ordered differently on the two sides from {earlier}"


class ZxidMap:
    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._c2o: dict[int, int] = {}
        self._o2c: dict[int, int] = {}
        self._txn_c: list[int] = []  # candidate zxids of txn pairs, sorted
        self._txn_o: list[int] = []  # their oracle zxids: sorted too, as the map is monotone
        self._reads: list[tuple[int, int]] = []  # read pairs, sorted
        self._read_set: set[tuple[int, int]] = set()
        self._reported: set[tuple[int, int, ZxidKind]] = set()
        # the other side's zxid last seen with each zxid, for translate()
        self._seen: dict[Side, dict[int, int]] = {Side.CANDIDATE: {}, Side.ORACLE: {}}

    def observe(self, candidate: int, oracle: int, kind: ZxidKind) -> Conflict | None:
        """Add one pair; return what it contradicts (reported once per pair), or None."""
        if candidate <= 0 or oracle <= 0:
            conflict = None if candidate == oracle else Conflict("literal", candidate, oracle)
        elif kind is ZxidKind.TXN:
            conflict = self._observe_txn(candidate, oracle)
        else:
            conflict = self._observe_read(candidate, oracle)
        if conflict is None:
            if candidate > 0 and oracle > 0:
                self._remember(candidate, oracle, kind)
            return None
        key = (candidate, oracle, kind)
        if key in self._reported:
            return None
        self._reported.add(key)
        return conflict

    def _observe_txn(self, c: int, o: int) -> Conflict | None:
        known = self._c2o.get(c)
        if known is not None:
            return None if known == o else Conflict("split", c, o, (c, known))
        known_c = self._o2c.get(o)
        if known_c is not None:
            return Conflict("merged", c, o, (known_c, o))
        i = bisect_left(self._txn_c, c)
        if i > 0 and self._txn_o[i - 1] > o:
            return Conflict("reordered", c, o, (self._txn_c[i - 1], self._txn_o[i - 1]))
        if i < len(self._txn_c) and self._txn_o[i] < o:
            return Conflict("reordered", c, o, (self._txn_c[i], self._txn_o[i]))
        self._drop_reads_across(c, o)
        return None

    def _drop_reads_across(self, c: int, o: int) -> None:
        """Forget the reads that a background txn (c, o) was made between on the two sides:
        those below it on the candidate and not on the oracle, and the reverse. Read pairs never
        cross, so they are one run around where the txn sorts."""
        reads = self._reads
        j = bisect_left(reads, (c, -1))  # reads[:j] came before this txn on the candidate
        lo = hi = j
        while lo > 0 and reads[lo - 1][1] >= o:
            lo -= 1
        while hi < len(reads) and reads[hi][1] < o:
            hi += 1
        if lo < hi:
            for pair in reads[lo:hi]:
                self._read_set.discard(pair)
            del reads[lo:hi]

    def _observe_read(self, c: int, o: int) -> Conflict | None:
        if (c, o) in self._read_set:
            return None
        below_c = bisect_right(self._txn_c, c)
        below_o = bisect_right(self._txn_o, o)
        if below_c != below_o:
            k = min(below_c, below_o)
            return Conflict("reordered", c, o, (self._txn_c[k], self._txn_o[k]))
        reads = self._reads
        j = bisect_left(reads, (c, o))
        if j > 0 and reads[j - 1][1] > o:
            return Conflict("reordered", c, o, reads[j - 1])
        if j < len(reads) and reads[j][1] < o:
            return Conflict("reordered", c, o, reads[j])
        return None

    def _remember(self, c: int, o: int, kind: ZxidKind) -> None:
        if kind is ZxidKind.TXN:
            if c not in self._c2o:
                self._c2o[c] = o
                self._o2c[o] = c
                i = bisect_left(self._txn_c, c)
                self._txn_c.insert(i, c)
                self._txn_o.insert(i, o)
        elif (c, o) not in self._read_set:
            self._read_set.add((c, o))
            insort(self._reads, (c, o))
        seen_c = self._seen[Side.CANDIDATE]
        seen_o = self._seen[Side.ORACLE]
        seen_c[c] = max(seen_c.get(c, o), o)
        seen_o[o] = max(seen_o.get(o, c), c)
        if len(self._txn_c) > self.limit or len(self._reads) > self.limit:
            self._forget()

    def _forget(self) -> None:
        """Drop the oldest tenth of each kind of pair (the smallest zxids)."""
        n = self.limit // 10 or 1
        for c in self._txn_c[:n]:
            self._o2c.pop(self._c2o.pop(c), None)
        del self._txn_c[:n], self._txn_o[:n]
        for pair in self._reads[:n]:
            self._read_set.discard(pair)
        del self._reads[:n]
        for seen in self._seen.values():
            for key in list(seen)[: max(0, len(seen) - 2 * self.limit)]:
                del seen[key]
        self._reported.clear()

    def translate(self, zxid: int, side: Side) -> int:
        """A zxid that ``side`` gave the client (lastZxidSeen, setWatches' relativeZxid),
        expressed in the other side's numbering.

        Exactly as seen with it when known; else the largest known zxid below it; 0 below
        everything known; and beyond everything known, as far beyond on the other side."""
        if zxid <= 0:
            return zxid
        seen = self._seen[side]
        if zxid in seen:
            return seen[zxid]
        if not seen:
            return zxid
        keys = sorted(seen)
        i = bisect_right(keys, zxid)
        if i == 0:
            return 0
        if i == len(keys):
            return max(seen.values()) + (zxid - keys[-1])
        return seen[keys[i - 1]]

"""Field-level comparison of two normalized answers.

:func:`compare` walks the union of both sides' field paths in order. Exact, unordered and
password fields were reduced by :mod:`oracle.normalize` and compare with ``==``; zxids, times
and session ids go to a :class:`Checks`, which holds what earlier answers established (the zxid
mapping, the session pairs, the time of each transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from oracle.normalize import Normalized, Rule, Value, ZxidKind
from oracle.sessionmap import SessionMap
from oracle.sides import Side
from oracle.zxidmap import ZxidMap

# Divergence kinds of a field, most significant first (a record takes its first field's kind).
ERROR = "error"
FIELD = "field"
ZXID = "zxid"
KIND_ORDER = (ERROR, FIELD, ZXID)
TIME_BOOK_LIMIT = 200_000


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


@dataclass(frozen=True, slots=True)
class FieldDiff:
    field: str
    rule: str
    candidate: Any
    oracle: Any
    note: str = ""

    @property
    def kind(self) -> str:
        if self.field == "err" or self.field.endswith(".err"):
            return ERROR
        return ZXID if self.rule == Rule.ZXID.value else FIELD


class Context(Protocol):
    """The stateful rules; each returns why two values disagree, or None."""

    def zxid(self, candidate: int, oracle: int, kind: ZxidKind) -> str | None: ...

    def time(self, candidate: Value, oracle: Value) -> str | None: ...

    def session(self, candidate: int, oracle: int) -> str | None: ...


def _keys(a: Normalized, b: Normalized) -> Iterator[str]:
    yield from a
    for key in b:
        if key not in a:
            yield key


def compare(candidate: Normalized, oracle: Normalized, ctx: Context) -> list[FieldDiff]:
    diffs: list[FieldDiff] = []
    for key in _keys(candidate, oracle):
        a = candidate.get(key)
        b = oracle.get(key)
        if a is None or b is None or a.rule is not b.rule:
            present = a if a is not None else b
            rule = present.rule.value if present is not None else Rule.EXACT.value
            diffs.append(
                FieldDiff(
                    key,
                    rule,
                    ABSENT if a is None else a.value,
                    ABSENT if b is None else b.value,
                    "present on one side only",
                )
            )
            continue
        note = _compare_value(a, b, ctx)
        if note is not None:
            diffs.append(FieldDiff(key, a.rule.value, a.value, b.value, note))
    return diffs


def _compare_value(a: Value, b: Value, ctx: Context) -> str | None:
    rule = a.rule
    if rule is Rule.ZXID:
        if not isinstance(a.value, int) or not isinstance(b.value, int):
            return None if a.value == b.value else "not comparable"
        return ctx.zxid(a.value, b.value, a.zxid_kind or ZxidKind.READ)
    if rule is Rule.TIME:
        return ctx.time(a, b)
    if rule is Rule.SESSION:
        if not isinstance(a.value, int) or not isinstance(b.value, int):
            return None if a.value == b.value else "not comparable"
        return ctx.session(a.value, b.value)
    return None if a.value == b.value else ""


def primary_kind(diffs: list[FieldDiff]) -> str:
    kinds = {d.kind for d in diffs}
    return next(k for k in KIND_ORDER if k in kinds)


class Checks:
    """The default :class:`Context`: the zxid mapping, the session pairs, and times.

    Times: 0 must match 0; otherwise the two must lie within ``time_tolerance_ms`` of each
    other, and a transaction keeps one time (a side that reports two times for one zxid when
    the other side does not diverges)."""

    def __init__(self, zxids: ZxidMap, sessions: SessionMap, time_tolerance_ms: int = 5000) -> None:
        self.zxids = zxids
        self.sessions = sessions
        self.tolerance = time_tolerance_ms
        self._times: dict[Side, dict[int, int]] = {Side.CANDIDATE: {}, Side.ORACLE: {}}

    def zxid(self, candidate: int, oracle: int, kind: ZxidKind) -> str | None:
        conflict = self.zxids.observe(candidate, oracle, kind)
        return None if conflict is None else f"{conflict.how}: {conflict.describe()}"

    def session(self, candidate: int, oracle: int) -> str | None:
        if self.sessions.same(candidate, oracle):
            return None
        pair = self.sessions.find(candidate, Side.CANDIDATE)
        if pair is None:
            return f"candidate session 0x{candidate:x} is not paired with any oracle session"
        return f"candidate session 0x{candidate:x} is paired with oracle 0x{pair.oracle:x}"

    def time(self, candidate: Value, oracle: Value) -> str | None:
        c, o = candidate.value, oracle.value
        if not isinstance(c, int) or not isinstance(o, int):
            return None if c == o else "not comparable"
        if c == 0 or o == 0:
            return None if c == o else "zero on one side only"
        stable_c = self._stable(Side.CANDIDATE, candidate.anchor, c)
        stable_o = self._stable(Side.ORACLE, oracle.anchor, o)
        if stable_c != stable_o:
            side = Side.CANDIDATE if not stable_c else Side.ORACLE
            return f"{side.value} reports another time for the same transaction than before"
        if abs(c - o) > self.tolerance:
            return f"{abs(c - o)} ms apart, beyond the {self.tolerance} ms tolerance"
        return None

    def _stable(self, side: Side, anchor: int | None, t: int) -> bool:
        if anchor is None or anchor <= 0:
            return True
        book = self._times[side]
        if len(book) > TIME_BOOK_LIMIT:  # forget the oldest transactions' times
            for key in list(book)[: TIME_BOOK_LIMIT // 10]:
                del book[key]
        return book.setdefault(anchor, t) == t

"""Comparing what the two sides answered, with the oracle's normalization and records.

A thin adapter over ``oracle/``: replies and connect responses are normalized by
``oracle.normalize`` and compared field by field by ``oracle.diff.compare`` against one
:class:`oracle.diff.Checks` per example (the zxid order mapping, the session pairs and the
transaction times); every difference becomes an ``oracle.records.Divergence``. What the
oracle has no notion of because the cross-checker never sees it is decided here, by the same
kinds: an answer that is not a reply on one side (the connection closed, no reply in time, a
frame the codec cannot decode) is ``lifecycle``; the watch events a session received during a
step are compared as lists, in arrival order (``watch.missing``, ``watch.extra``,
``watch.order``).

:func:`signature` names a divergence coarsely (op, kind, first field or event type), so one
root cause found twice is recognized as the same bug.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from fuzz.client import REPLY, Outcome
from oracle.diff import Checks, compare, primary_kind
from oracle.normalize import normalize_connect, normalize_reply
from oracle.records import (
    LIFECYCLE,
    WATCH_EXTRA,
    WATCH_MISSING,
    WATCH_ORDER,
    Answer,
    Divergence,
)
from oracle.sides import Side
from zetcd.proto.constants import EventType
from zetcd.proto.opcodes import OPS
from zetcd.proto.records import ConnectResponse

CANDIDATE = Side.CANDIDATE
ORACLE = Side.ORACLE
SIDES = (CANDIDATE, ORACLE)

EventKey = tuple[str, int, int, str | None]  # (phase, type, state, path)


def _sessions(sids: Mapping[Side, int]) -> dict[str, int | None]:
    return {side.value: sids.get(side) for side in SIDES}


def _outcome_raw(out: Outcome) -> Any:
    if out.kind == REPLY and out.reply is not None:
        return {"header": out.reply.header, "body": out.reply.body}
    return {"outcome": out.kind, "detail": out.detail}


def compare_replies(
    checks: Checks,
    *,
    slot: int,
    op: str,
    opcode: int,
    xid: int,
    request: Any,
    outcomes: Mapping[Side, Outcome],
    sids: Mapping[Side, int],
) -> Divergence | None:
    """One request's outcome on both sides; a Divergence if they differ."""
    c, o = outcomes[CANDIDATE], outcomes[ORACLE]
    common = {
        "op": op,
        "session": sids.get(ORACLE),
        "sessions": _sessions(sids),
        "xid": xid,
        "request": request,
        "ts": time.time(),
    }
    if c.kind == REPLY and o.kind == REPLY and c.reply is not None and o.reply is not None:
        hc, ho = c.reply.header, o.reply.header
        nc = normalize_reply(opcode, xid, hc.zxid, hc.err, c.reply.body)
        no = normalize_reply(opcode, xid, ho.zxid, ho.err, o.reply.body)
        diffs = compare(nc, no, checks)
        if not diffs:
            return None
        return Divergence(
            kind=primary_kind(diffs),
            detail=f"session s{slot}",
            candidate=Answer(_outcome_raw(c), nc),
            oracle=Answer(_outcome_raw(o), no),
            diff=tuple(diffs),
            **common,
        )
    if (c.kind, c.detail) == (o.kind, o.detail):
        return None
    return Divergence(
        kind=LIFECYCLE,
        detail=f"session s{slot}: candidate {_describe(c)}, oracle {_describe(o)}",
        candidate=Answer(_outcome_raw(c)),
        oracle=Answer(_outcome_raw(o)),
        **common,
    )


def _describe(out: Outcome) -> str:
    if out.kind == REPLY and out.reply is not None:
        return f"replied err {out.reply.header.err}"
    return out.kind + (f" ({out.detail})" if out.detail else "")


def compare_connects(
    checks: Checks,
    *,
    slot: int,
    op: str,
    request: Any,
    responses: Mapping[Side, ConnectResponse | None],
    sids: Mapping[Side, int],
) -> Divergence | None:
    nc = normalize_connect(responses[CANDIDATE])
    no = normalize_connect(responses[ORACLE])
    diffs = compare(nc, no, checks)
    if not diffs:
        return None
    refused = [s.value for s in SIDES if responses[s] is None or not responses[s].sessionId]  # type: ignore[union-attr]
    return Divergence(
        kind=LIFECYCLE if len(refused) == 1 else primary_kind(diffs),
        op=op,
        detail=f"session s{slot}" + (f": refused by the {refused[0]} only" if refused else ""),
        session=sids.get(ORACLE),
        sessions=_sessions(sids),
        request=request,
        candidate=Answer(responses[CANDIDATE], nc),
        oracle=Answer(responses[ORACLE], no),
        diff=tuple(diffs),
        ts=time.time(),
    )


def event_name(t: int) -> str:
    try:
        return EventType(t).name
    except ValueError:
        return str(t)


def describe_events(events: Sequence[EventKey], strip: str = "") -> list[str]:
    out = []
    for phase, t, state, path in events:
        shown = path[len(strip) :] or "/" if path and strip and path.startswith(strip) else path
        text = f"{event_name(t)} {shown}" + ("" if state == 3 else f" state={state}")
        out.append(f"{text} ({phase})" if phase else text)
    return out


def compare_events(
    *, slot: int, events: Mapping[Side, Sequence[EventKey]], sids: Mapping[Side, int], strip: str
) -> Divergence | None:
    """The watch events one session received during a step, in arrival order."""
    c, o = list(events[CANDIDATE]), list(events[ORACLE])
    if c == o:
        return None
    missing = Counter(o) - Counter(c)
    extra = Counter(c) - Counter(o)
    if missing:
        kind = WATCH_MISSING
    elif extra:
        kind = WATCH_EXTRA
    else:
        kind = WATCH_ORDER
    detail = (
        f"session s{slot}: candidate {describe_events(c, strip)}, "
        f"oracle {describe_events(o, strip)}"
    )
    return Divergence(
        kind=kind,
        op="watch",
        detail=detail,
        session=sids.get(ORACLE),
        sessions=_sessions(sids),
        candidate=Answer(describe_events(c, strip)),
        oracle=Answer(describe_events(o, strip)),
        ts=time.time(),
    )


def lifecycle(
    *, slot: int, op: str, detail: str, sids: Mapping[Side, int], candidate: Any, oracle: Any
) -> Divergence:
    return Divergence(
        kind=LIFECYCLE,
        op=op,
        detail=f"session s{slot}: {detail}",
        session=sids.get(ORACLE),
        sessions=_sessions(sids),
        candidate=Answer(candidate),
        oracle=Answer(oracle),
        ts=time.time(),
    )


_INDEX = re.compile(r"\[\d+\]")
_RESULT = re.compile(r"body\.results\[(\d+)\]")


def _op_name(opcode: int) -> str:
    spec = OPS.get(opcode)
    return spec.name if spec is not None else str(opcode)


def signature(d: Divergence) -> str:
    """A coarse name for the bug behind ``d``: op, kind, and the first differing field (list
    indexes dropped; a multi result named by its op) or the event types involved."""
    if d.diff:
        field = d.diff[0].field
        ops = getattr(d.request, "ops", None)
        result = _RESULT.match(field)
        if result and ops is not None and int(result.group(1)) < len(ops):
            op = ops[int(result.group(1))].type
            field = field.replace(result.group(0), f"body.results[{_op_name(op)}]", 1)
        what = _INDEX.sub("[]", field)
    elif d.kind.startswith("watch"):
        c = Counter(d.candidate.raw if d.candidate is not None else ())
        o = Counter(d.oracle.raw if d.oracle is not None else ())
        differing = (c - o) + (o - c) or c
        what = ",".join(sorted({str(item).split(" ", 1)[0] for item in differing}))
    else:
        what = re.sub(r"session s\d+: ", "", d.detail).split(",")[0]
        what = re.sub(r"\d+", "N", what)
    return f"{d.op}/{d.kind}/{what}"

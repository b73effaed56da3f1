"""Divergence records: one JSON object per line (``--divergence-log PATH``).

A line holds when (``time``, ISO 8601 UTC, and ``ts``, epoch seconds), the client-visible
``session`` and both sides' session ids, ``xid``, ``op`` (ZooKeeper's name, or ``connect``,
``watch``, ``session``), ``kind``, which side ``answered`` the client, the decoded ``request``,
each side's ``raw`` and ``normalized`` answer, the field-level ``diff`` and a ``detail``.

Kinds: ``error`` (an err differs), ``field`` (a response field, e.g. ``body.stat.version``),
``zxid`` (the zxid mapping broke), ``watch.missing`` (ZooKeeper delivered an event the
candidate did not), ``watch.extra`` (the reverse), ``watch.order``, ``lifecycle`` (a connect
refused, a connection closed or dropped, a request unanswered, on one side only).

JSON shapes: a record is an object with ``"$type"`` and its fields; bytes are ``{"$utf8":
text}`` when they are UTF-8, else ``{"$hex": ...}``.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from oracle.diff import ERROR, FIELD, ZXID, FieldDiff
from oracle.normalize import Normalized

WATCH_MISSING = "watch.missing"
WATCH_EXTRA = "watch.extra"
WATCH_ORDER = "watch.order"
LIFECYCLE = "lifecycle"
KINDS = (ERROR, FIELD, ZXID, WATCH_MISSING, WATCH_EXTRA, WATCH_ORDER, LIFECYCLE)


@dataclass(frozen=True, slots=True)
class Answer:
    """One side's answer: what it sent (``raw``) and its normalized form."""

    raw: Any
    normalized: Normalized | None = None


@dataclass(frozen=True, slots=True)
class Divergence:
    kind: str
    op: str
    detail: str = ""
    session: int | None = None
    sessions: dict[str, int | None] = field(default_factory=dict)
    xid: int | None = None
    answered: str = ""
    request: Any = None
    candidate: Answer | None = None
    oracle: Answer | None = None
    diff: tuple[FieldDiff, ...] = ()
    ts: float = 0.0


def jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        try:
            return {"$utf8": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"$hex": raw.hex()}
    if isinstance(obj, tuple | list):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"$type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = jsonable(getattr(obj, f.name))
        return out
    return repr(obj)


def _normalized(norm: Normalized | None) -> Any:
    if norm is None:
        return None
    out: dict[str, Any] = {}
    for key, v in norm.items():
        if v.rule.value == "exact":
            out[key] = jsonable(v.value)
        else:
            out[key] = {"rule": v.rule.value, "value": jsonable(v.value)}
            if v.zxid_kind is not None:
                out[key]["zxid_kind"] = v.zxid_kind.value
            if v.anchor is not None:
                out[key]["anchor"] = v.anchor
    return out


def _hex(sid: int | None) -> str | None:
    return None if sid is None else f"0x{sid:x}"


def to_dict(d: Divergence) -> dict[str, Any]:
    when = datetime.datetime.fromtimestamp(d.ts, datetime.UTC)
    return {
        "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "ts": round(d.ts, 6),
        "kind": d.kind,
        "op": d.op,
        "session": _hex(d.session),
        "sessions": {side: _hex(sid) for side, sid in d.sessions.items()},
        "xid": d.xid,
        "answered": d.answered,
        "request": jsonable(d.request),
        "candidate": _answer(d.candidate),
        "oracle": _answer(d.oracle),
        "diff": [
            {
                "field": f.field,
                "rule": f.rule,
                "candidate": jsonable(f.candidate),
                "oracle": jsonable(f.oracle),
                "note": f.note,
            }
            for f in d.diff
        ],
        "detail": d.detail,
    }


def _answer(a: Answer | None) -> Any:
    if a is None:
        return None
    return {"raw": jsonable(a.raw), "normalized": _normalized(a.normalized)}


class DivergenceLog:
    """Appends one JSON line per divergence, flushed at once so a crash loses nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")

    def write(self, d: Divergence) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(to_dict(d), sort_keys=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def load(path: Path) -> list[dict[str, Any]]:
    """Every record of a divergence log (blank lines skipped); a line that is not a JSON
    object raises ValueError naming the file and the line."""
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}, line {number}: not a divergence record ({e})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: not a divergence record")
            records.append(record)
    return records

"""Normalization: what may legitimately differ between the candidate and ZooKeeper, as a table.

Theory of operation. An answer (a reply, a connect response) is flattened into an ordered map
from a field path (``err``, ``body.stat.mzxid``, ``body.results[1].err``) to a :class:`Value`
that carries the rule it is compared by. The rule comes from :data:`RULES`, keyed by
``RecordName.field``; every field the table does not name is compared exactly. Pure rules are
applied here (a password becomes its length; a string becomes what a client reads off the
wire, see :func:`as_read`; children keep their order, which must match); the
rules that need what was seen before (zxids, times, session ids) keep the raw value and are
decided in :mod:`oracle.diff` against the zxid mapping and the session table.

docs/normalization.md documents each rule: the field, why it may differ, how it is compared.
Nothing outside the table is ignored.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zetcd.proto.constants import OpCode
from zetcd.proto.jute import decode_ustring
from zetcd.proto.records import ConnectResponse


class Rule(enum.Enum):
    EXACT = "exact"
    ZXID = "zxid"  # through the monotone zxid mapping (oracle.zxidmap)
    TIME = "time"  # zero-ness, tolerance, one time per transaction
    SESSION = "session"  # through the session mapping (oracle.sessionmap)
    PASSWORD = "password"  # length and all-zero-ness only


class ZxidKind(enum.Enum):
    TXN = "txn"  # names one transaction: equal on one side iff equal on the other
    READ = "read"  # the server's last processed zxid when it answered: order only


# RecordName.field -> rule; everything else is Rule.EXACT.
RULES: Mapping[str, Rule] = {
    "ReplyHeader.zxid": Rule.ZXID,
    "Stat.czxid": Rule.ZXID,
    "Stat.mzxid": Rule.ZXID,
    "Stat.pzxid": Rule.ZXID,
    "Stat.ctime": Rule.TIME,
    "Stat.mtime": Rule.TIME,
    "Stat.ephemeralOwner": Rule.SESSION,
    "ConnectResponse.sessionId": Rule.SESSION,
    "ConnectResponse.passwd": Rule.PASSWORD,
}

# A time belongs to the transaction named by the zxid beside it.
TIME_ANCHORS: Mapping[str, str] = {"Stat.ctime": "czxid", "Stat.mtime": "mzxid"}

# Opcodes whose reply zxid is the request's own transaction (ZooKeeper spends a zxid on them
# whether they succeed or fail); every other reply carries the last processed zxid.
TXN_OPCODES: frozenset[int] = frozenset(
    {
        OpCode.CREATE,
        OpCode.DELETE,
        OpCode.SET_DATA,
        OpCode.SET_ACL,
        OpCode.CHECK,
        OpCode.MULTI,
        OpCode.CREATE2,
        OpCode.RECONFIG,
        OpCode.CREATE_CONTAINER,
        OpCode.DELETE_CONTAINER,
        OpCode.CREATE_TTL,
        OpCode.CLOSE_SESSION,
    }
)


@dataclass(frozen=True, slots=True)
class Value:
    """One normalized field: the value to compare and the rule to compare it by."""

    rule: Rule
    value: Any
    zxid_kind: ZxidKind | None = None  # Rule.ZXID
    anchor: int | None = None  # Rule.TIME: the zxid of the transaction the time belongs to


Normalized = dict[str, Value]


def reply_zxid_kind(opcode: int) -> ZxidKind:
    return ZxidKind.TXN if opcode in TXN_OPCODES else ZxidKind.READ


def normalize_reply(opcode: int, xid: int, zxid: int, err: int, body: object | None) -> Normalized:
    out: Normalized = {}
    # the answer to a createSession inside a session is a bare ConnectResponse frame, with no
    # reply header: no xid, err or zxid on the wire to compare
    if type(body) is not ConnectResponse:
        out["xid"] = Value(Rule.EXACT, xid)
        out["err"] = Value(Rule.EXACT, err)
        out["zxid"] = Value(Rule.ZXID, zxid, reply_zxid_kind(opcode))
    _flatten(body, "body", out)
    return out


def normalize_connect(response: ConnectResponse | None) -> Normalized:
    """A connect outcome; ``None`` is a connection closed without a response."""
    out: Normalized = {}
    _flatten(response, "response", out)
    return out


def normalize_event(event_type: int, path: str | None) -> tuple[int, str | None]:
    """Watch events are paired by (type, path), both exact (the path as a client reads it)."""
    return (event_type, None if path is None else as_read(path))


def _password(passwd: bytes | None) -> str | None:
    if passwd is None:
        return None
    return f"{len(passwd)} bytes" + ("" if any(passwd) else ", all zero")


def _is_record(obj: object) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _flatten(obj: object, path: str, out: Normalized) -> None:
    if _is_record(obj):
        name = type(obj).__name__
        out[path] = Value(Rule.EXACT, name)
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
        for field, v in values.items():
            key = f"{name}.{field}"
            sub = f"{path}.{field}"
            rule = RULES.get(key, Rule.EXACT)
            if rule is Rule.EXACT:
                _flatten(v, sub, out)
            elif rule is Rule.PASSWORD:
                out[sub] = Value(rule, _password(v))
            elif rule is Rule.ZXID:
                out[sub] = Value(rule, v, ZxidKind.TXN)
            elif rule is Rule.TIME:
                out[sub] = Value(rule, v, anchor=values[TIME_ANCHORS[key]])
            else:
                out[sub] = Value(rule, v)
    elif isinstance(obj, tuple) and any(_is_record(item) for item in obj):
        out[path] = Value(Rule.EXACT, f"{len(obj)} items")
        for i, item in enumerate(obj):
            _flatten(item, f"{path}[{i}]", out)
    elif isinstance(obj, str):
        out[path] = Value(Rule.EXACT, as_read(obj))
    elif isinstance(obj, tuple) and any(isinstance(item, str) for item in obj):
        out[path] = Value(Rule.EXACT, tuple(as_read(s) if isinstance(s, str) else s for s in obj))
    else:
        out[path] = Value(Rule.EXACT, obj)


def as_read(s: str) -> str:
    """A string as a client reads it off the wire: jute writes each UTF-16 unit on its own
    (a character outside the BMP as two encoded surrogates) and a Java reader decodes each
    of those as U+FFFD. The candidate's answers are compared before they are written, the
    oracle's after it has written and the bridge has read them."""
    if s.isascii():
        return s
    return decode_ustring(s.encode("utf-8", "surrogatepass"))

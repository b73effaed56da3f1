"""Steps as data: what one fuzz step asks of both servers.

A :class:`Step` is a fuzz session (a slot number) and an op. Ops are frozen dataclasses whose
reprs are valid Python (``Create(path='/a', data=b'x', ...)``), so a failing sequence prints
as code that replays, and they round-trip through JSON (:func:`step_to_json`,
:func:`step_from_json`) for replay files.

Paths are relative to the example's tree: ``/`` is the tree's root and ``/a/b`` a node below
it; a path that does not start with ``/`` (``a``, ``""``) is sent verbatim, to reach the
servers' path validation. ``request_body`` turns an op into the record the codec encodes,
given the function that makes a relative path absolute.

Request ops (one request to the session's connection on each side) carry an ``opcode``;
life-cycle ops (open, close, drop, resume, expire) are handled by :mod:`fuzz.driver`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from zetcd.proto.codec import encode
from zetcd.proto.constants import AUTH_XID, PING_XID, TTL_MODES, OpCode
from zetcd.proto.opcodes import OPS
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    AuthPacket,
    CheckVersionRequest,
    CheckWatchesRequest,
    CreateRequest,
    CreateSessionTxn,
    CreateTTLRequest,
    DeleteContainerRequest,
    DeleteRequest,
    ExistsRequest,
    GetACLRequest,
    GetAllChildrenNumberRequest,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetEphemeralsRequest,
    Id,
    MultiOp,
    MultiRequest,
    ReconfigRequest,
    RemoveWatchesRequest,
    SetACLRequest,
    SetDataRequest,
    SyncRequest,
)

Resolve = Callable[[str], str]
_MULTI_HEADER: Final = struct.Struct(">i?i")
AclSpec = tuple[tuple[int, str | None, str | None], ...]  # (perms, scheme, id) triples
WORLD: AclSpec = ((31, "world", "anyone"),)  # ZooDefs.Ids.OPEN_ACL_UNSAFE


def digest_id(user: str, password: str) -> str:
    """The id a digest ACL names for ``user:password``: ``user:base64(sha1(user:password))``."""
    hashed = base64.b64encode(hashlib.sha1(f"{user}:{password}".encode()).digest()).decode()
    return f"{user}:{hashed}"


def acl_records(spec: AclSpec | None) -> tuple[ACL, ...] | None:
    if spec is None:
        return None
    return tuple(ACL(perms, Id(scheme, ident)) for perms, scheme, ident in spec)


# --- life-cycle ops ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """A new session on both sides (ConnectRequest with sessionId 0)."""

    timeout: int = 30000
    read_only: bool | None = False


@dataclass(frozen=True, slots=True)
class Close:
    """closeSession (-11): the server replies, deletes the session's ephemerals and closes."""


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the TCP connection without closeSession; the session lives on."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Reconnect a session with its id and password (each side its own) and lastZxidSeen;
    ``set_watches`` then re-registers the watches the session had (xid -8): 1 with setWatches
    (101), 2 with setWatches2 (105); ``wrong_password`` flips the password's first byte."""

    timeout: int = 30000
    set_watches: int = 0
    wrong_password: bool = False


@dataclass(frozen=True, slots=True)
class Expire:
    """Renegotiate a 4000 ms timeout, drop the connection and wait until both sides have
    expired the session (bounded)."""


# --- request ops ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    path: str
    data: bytes | None = b""
    acl: AclSpec | None = WORLD
    flags: int = 0
    opcode: int = OpCode.CREATE  # create, create2, createContainer or createTTL
    ttl: int = -1  # sent only by createTTL

    def request_body(self, full: Resolve) -> object:
        if self.opcode == OpCode.CREATE_TTL:
            return CreateTTLRequest(
                full(self.path), self.data, acl_records(self.acl), self.flags, self.ttl
            )
        return CreateRequest(full(self.path), self.data, acl_records(self.acl), self.flags)


@dataclass(frozen=True, slots=True)
class Delete:
    path: str
    version: int = -1
    opcode: ClassVar[int] = OpCode.DELETE

    def request_body(self, full: Resolve) -> object:
        return DeleteRequest(full(self.path), self.version)


@dataclass(frozen=True, slots=True)
class SetData:
    path: str
    data: bytes | None = b""
    version: int = -1
    opcode: ClassVar[int] = OpCode.SET_DATA

    def request_body(self, full: Resolve) -> object:
        return SetDataRequest(full(self.path), self.data, self.version)


@dataclass(frozen=True, slots=True)
class Check:
    """check (13). Standalone, only with a version that never matches: ZooKeeper 3.8 sends no
    reply at all to a standalone check that succeeds (docs/differences.md)."""

    path: str
    version: int = -2
    opcode: ClassVar[int] = OpCode.CHECK

    def request_body(self, full: Resolve) -> object:
        return CheckVersionRequest(full(self.path), self.version)


@dataclass(frozen=True, slots=True)
class Exists:
    path: str
    watch: bool = False
    opcode: ClassVar[int] = OpCode.EXISTS

    def request_body(self, full: Resolve) -> object:
        return ExistsRequest(full(self.path), self.watch)


@dataclass(frozen=True, slots=True)
class GetData:
    path: str
    watch: bool = False
    opcode: ClassVar[int] = OpCode.GET_DATA

    def request_body(self, full: Resolve) -> object:
        return GetDataRequest(full(self.path), self.watch)


@dataclass(frozen=True, slots=True)
class GetChildren:
    path: str
    watch: bool = False
    v2: bool = False  # getChildren2 (12): also the node's Stat

    @property
    def opcode(self) -> int:
        return OpCode.GET_CHILDREN2 if self.v2 else OpCode.GET_CHILDREN

    def request_body(self, full: Resolve) -> object:
        if self.v2:
            return GetChildren2Request(full(self.path), self.watch)
        return GetChildrenRequest(full(self.path), self.watch)


@dataclass(frozen=True, slots=True)
class Sync:
    path: str
    opcode: ClassVar[int] = OpCode.SYNC

    def request_body(self, full: Resolve) -> object:
        return SyncRequest(full(self.path))


@dataclass(frozen=True, slots=True)
class GetACL:
    path: str
    opcode: ClassVar[int] = OpCode.GET_ACL

    def request_body(self, full: Resolve) -> object:
        return GetACLRequest(full(self.path))


@dataclass(frozen=True, slots=True)
class SetACL:
    path: str
    acl: AclSpec | None = WORLD
    version: int = -1
    opcode: ClassVar[int] = OpCode.SET_ACL

    def request_body(self, full: Resolve) -> object:
        return SetACLRequest(full(self.path), acl_records(self.acl), self.version)


@dataclass(frozen=True, slots=True)
class Multi:
    """multi (14) or, with ``read``, multiRead (22). ``ops`` may be any mix the codec can
    encode: writes in a multiRead, reads in a multi (both refused by the server)."""

    ops: tuple[Any, ...] = ()
    read: bool = False

    @property
    def opcode(self) -> int:
        return OpCode.MULTI_READ if self.read else OpCode.MULTI

    def request_body(self, full: Resolve) -> object:
        """For display and records only: the wire body is :func:`multi_body`'s."""
        return MultiRequest(tuple(MultiOp(*_multi_item(op, full)) for op in self.ops))


def _multi_item(op: Any, full: Resolve) -> tuple[int, object]:
    if isinstance(op, GetChildren):  # inside a multi: always a GetChildrenRequest
        return OpCode.GET_CHILDREN, GetChildrenRequest(full(op.path), op.watch)
    return int(op.opcode), op.request_body(full)


def multi_body(ops: tuple[Any, ...], full: Resolve) -> bytes:
    """A MultiOperationRecord written by hand, so that any mix of ops can be sent (the codec
    refuses to mix reads and writes, which is what the server is asked to refuse)."""
    out = bytearray()
    for op in ops:
        opcode, record = _multi_item(op, full)
        out += _MULTI_HEADER.pack(opcode, False, -1) + encode(record)
    out += _MULTI_HEADER.pack(-1, True, -1)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Auth:
    """auth (100, xid -4): ``digest`` with ``user:password``, or another scheme."""

    scheme: str = "digest"
    credentials: bytes = b"u1:p1"
    opcode: ClassVar[int] = OpCode.AUTH
    xid: ClassVar[int] = AUTH_XID

    def request_body(self, full: Resolve) -> object:
        return AuthPacket(0, self.scheme, self.credentials)


@dataclass(frozen=True, slots=True)
class AddWatch:
    path: str
    mode: int = 0  # AddWatchMode: 0 persistent, 1 persistent recursive
    opcode: ClassVar[int] = OpCode.ADD_WATCH

    def request_body(self, full: Resolve) -> object:
        return AddWatchRequest(full(self.path), self.mode)


@dataclass(frozen=True, slots=True)
class RemoveWatches:
    path: str
    type: int = 3  # WatcherType
    check_only: bool = False  # checkWatches (17) instead of removeWatches (18)

    @property
    def opcode(self) -> int:
        return OpCode.CHECK_WATCHES if self.check_only else OpCode.REMOVE_WATCHES

    def request_body(self, full: Resolve) -> object:
        if self.check_only:
            return CheckWatchesRequest(full(self.path), self.type)
        return RemoveWatchesRequest(full(self.path), self.type)


@dataclass(frozen=True, slots=True)
class GetEphemerals:
    prefix: str
    opcode: ClassVar[int] = OpCode.GET_EPHEMERALS

    def request_body(self, full: Resolve) -> object:
        return GetEphemeralsRequest(full(self.prefix))


@dataclass(frozen=True, slots=True)
class QuotaStats:
    """getData of the stats node of the quota every example's tree has (fuzz.driver): what
    the server counted for everything the example did."""

    opcode: ClassVar[int] = OpCode.GET_DATA

    def request_body(self, full: Resolve) -> object:
        return GetDataRequest(quota_node(full("/"), "zookeeper_stats"), False)


def quota_path(path: str) -> str:
    """Where the quota on ``path`` keeps its nodes."""
    return "/zookeeper/quota" + path


def quota_node(path: str, name: str) -> str:
    """A node of the quota on ``path``: ``zookeeper_limits`` or ``zookeeper_stats``."""
    return f"{quota_path(path)}/{name}"


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumber:
    path: str
    opcode: ClassVar[int] = OpCode.GET_ALL_CHILDREN_NUMBER

    def request_body(self, full: Resolve) -> object:
        return GetAllChildrenNumberRequest(full(self.path))


@dataclass(frozen=True, slots=True)
class WhoAmI:
    opcode: ClassVar[int] = OpCode.WHO_AM_I

    def request_body(self, full: Resolve) -> object:
        return None


@dataclass(frozen=True, slots=True)
class Ping:
    opcode: ClassVar[int] = OpCode.PING
    xid: ClassVar[int] = PING_XID

    def request_body(self, full: Resolve) -> object:
        return None


@dataclass(frozen=True, slots=True)
class Reconfig:
    """reconfig (16): a standalone 3.8 answers ReconfigDisabled."""

    opcode: ClassVar[int] = OpCode.RECONFIG

    def request_body(self, full: Resolve) -> object:
        return ReconfigRequest(None, None, None, -1)


@dataclass(frozen=True, slots=True)
class DeleteContainer:
    """deleteContainer (20), server-internal but sendable."""

    path: str
    opcode: ClassVar[int] = OpCode.DELETE_CONTAINER

    def request_body(self, full: Resolve) -> object:
        return DeleteContainerRequest(full(self.path))


@dataclass(frozen=True, slots=True)
class Recreate:
    """createSession (-10) sent inside the session: the ConnectResponse again (a bare frame), a
    zxid spent, and the session's expiry moved to now + ``timeout`` until its next request.
    (A timeout shorter than the session's makes the moment it expires differ by up to a tick
    between the servers, which a fuzz step cannot wait out: the strategies draw longer ones.)"""

    timeout: int = 30000
    opcode: ClassVar[int] = OpCode.CREATE_SESSION

    def request_body(self, full: Resolve) -> object:
        return CreateSessionTxn(self.timeout)


@dataclass(frozen=True, slots=True)
class Unknown:
    """An opcode outside the table, without a body: Unimplemented, then the server closes."""

    code: int = 999

    @property
    def opcode(self) -> int:
        return self.code

    def request_body(self, full: Resolve) -> object:
        return None


@dataclass(frozen=True, slots=True)
class Mangled:
    """``op`` with its encoded body cut by ``cut`` bytes (or extended by ``-cut`` zero bytes)."""

    op: Any
    cut: int = 1

    @property
    def opcode(self) -> int:
        return int(self.op.opcode)

    def request_body(self, full: Resolve) -> object:
        return self.op.request_body(full)


def fails_prep_unchecked(op: Any) -> bool:
    """A multi that may fail in ZooKeeper's PrepRequestProcessor with an exception other than a
    KeeperException (a create, create2 or createContainer op with TTL flags, which 3.8 builds
    as a createTTL op and then casts): the whole multi answers MarshallingError, but the change
    records of its ops before that one are not rolled back, so a write pipelined behind it sees
    them until the multi's error transaction is applied (docs/differences.md)."""
    return (
        isinstance(op, Multi)
        and not op.read
        and any(
            isinstance(sub, Create) and sub.opcode != OpCode.CREATE_TTL and sub.flags in TTL_MODES
            for sub in op.ops
        )
    )


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Requests one session sends back to back before it reads any reply, as a pipelining
    client does: zetcd commits the writes among them in one etcd transaction (group commit),
    ZooKeeper applies them one by one. Each is compared as a request of its own."""

    ops: tuple[Any, ...] = ()


LIFECYCLE_OPS: tuple[type, ...] = (Open, Close, Drop, Resume, Expire)
REQUEST_OPS: tuple[type, ...] = (
    Create,
    Delete,
    SetData,
    Check,
    Exists,
    GetData,
    GetChildren,
    Sync,
    GetACL,
    SetACL,
    Multi,
    Auth,
    AddWatch,
    RemoveWatches,
    GetEphemerals,
    GetAllChildrenNumber,
    QuotaStats,
    WhoAmI,
    Ping,
    Reconfig,
    DeleteContainer,
    Recreate,
    Unknown,
    Mangled,
)
OP_TYPES: dict[str, type] = {cls.__name__: cls for cls in (*LIFECYCLE_OPS, *REQUEST_OPS, Pipeline)}


@dataclass(frozen=True, slots=True)
class Step:
    """One step: ``op`` on fuzz session ``session`` (a slot number, the same on both sides)."""

    session: int
    op: Any


# --- JSON -------------------------------------------------------------------------------


def _value_to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return {"$utf8": value.decode("utf-8")}
        except UnicodeDecodeError:
            return {"$hex": value.hex()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return op_to_json(value)
    if isinstance(value, tuple | list):
        return [_value_to_json(v) for v in value]
    return value


def op_to_json(op: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"$type": type(op).__name__}
    for f in dataclasses.fields(op):
        out[f.name] = _value_to_json(getattr(op, f.name))
    return out


def _value_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "$utf8" in value:
            return value["$utf8"].encode("utf-8")
        if "$hex" in value:
            return bytes.fromhex(value["$hex"])
        return op_from_json(value)
    if isinstance(value, list):
        return tuple(_value_from_json(v) for v in value)
    return value


def op_from_json(obj: dict[str, Any]) -> Any:
    cls = OP_TYPES.get(obj.get("$type", ""))
    if cls is None:
        raise ValueError(f"unknown op type {obj.get('$type')!r}")
    kwargs = {k: _value_from_json(v) for k, v in obj.items() if k != "$type"}
    return cls(**kwargs)


def step_to_json(step: Step) -> dict[str, Any]:
    return {"session": step.session, "op": op_to_json(step.op)}


def step_from_json(obj: dict[str, Any]) -> Step:
    return Step(int(obj["session"]), op_from_json(obj["op"]))


def op_name(op: Any) -> str:
    """ZooKeeper's name for what ``op`` sends (``create2``, ``multiRead``), or the life-cycle
    op's own (``open``, ``expire``)."""
    if isinstance(op, (*LIFECYCLE_OPS, Pipeline)):
        return type(op).__name__.lower()
    if isinstance(op, Mangled):
        return f"{op_name(op.op)}(mangled)"
    spec = OPS.get(op.opcode)
    return spec.name if spec is not None else f"opcode{op.opcode}"


def wire(op: Any, full: Resolve) -> tuple[object | None, bytes | None]:
    """What to hand :meth:`fuzz.client.Connection.send` for a request op: the record the
    codec encodes (or a placeholder valid for the opcode) and, when the codec's encoding is
    not what goes out, the raw body."""
    if isinstance(op, Multi):
        return MultiRequest(()), multi_body(op.ops, full)
    if isinstance(op, Mangled):
        record, raw = wire(op.op, full)
        body = raw if raw is not None else encode(record) if record is not None else b""
        body = body[: max(0, len(body) - op.cut)] if op.cut >= 0 else body + bytes(-op.cut)
        return record, body
    return op.request_body(full), None

"""One frozen, slotted dataclass per jute record of the client protocol.

Integer fields are plain ``int`` (the :mod:`constants` NewTypes ``Xid``, ``Zxid`` and
``SessionId`` name what a value means in the layers above, but records stay easy to
build from plain ints).

Fields are in ``zookeeper.jute`` order and keep their jute names (camelCase). Each record
carries ``SCHEMA``, its fields with their jute types, which drives the generic codec in
:mod:`zetcd.proto.jute`. Python types: ``bytes | None`` for a buffer, ``str | None`` for a
ustring, ``tuple[...] | None`` for a vector; ``None`` is the wire's null (length -1),
distinct from empty.

The multi wrappers at the end (:class:`MultiOp`, :class:`MultiRequest`,
:class:`MultiResult`, :class:`MultiResponse`) are not jute records: ZooKeeper writes them by
hand (``MultiOperationRecord.java``, ``MultiResponse.java``); their codec is in
:mod:`zetcd.proto.multi`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .jute import (
    BOOL_T,
    BUFFER_T,
    INT_T,
    LONG_T,
    OPTIONAL_BOOL_T,
    USTRING_T,
    Schema,
    Vector,
    compile_record,
)


class Record:
    """Base of everything the codec encodes: jute records and the multi wrappers."""

    __slots__ = ()


class JuteRecord(Record):
    """A record declared in ``zookeeper.jute`` (or written like one)."""

    __slots__ = ()
    SCHEMA: ClassVar[Schema]


# --- module org.apache.zookeeper.data ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Id(JuteRecord):
    """jute ``data.Id``."""

    scheme: str | None
    id: str | None
    SCHEMA = (("scheme", USTRING_T), ("id", USTRING_T))


@dataclass(frozen=True, slots=True)
class ACL(JuteRecord):
    """jute ``data.ACL``."""

    perms: int
    id: Id
    SCHEMA = (("perms", INT_T), ("id", Id))


# ZooDefs.Ids.ANYONE_ID_UNSAFE and OPEN_ACL_UNSAFE: the ACL most nodes have. One shared instance,
# so that the common case compares by identity.
ANYONE_ID_UNSAFE = Id("world", "anyone")
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (ACL(31, ANYONE_ID_UNSAFE),)


@dataclass(frozen=True, slots=True)
class Stat(JuteRecord):
    """jute ``data.Stat``: the node metadata a client sees."""

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int
    SCHEMA = (
        ("czxid", LONG_T),
        ("mzxid", LONG_T),
        ("ctime", LONG_T),
        ("mtime", LONG_T),
        ("version", INT_T),
        ("cversion", INT_T),
        ("aversion", INT_T),
        ("ephemeralOwner", LONG_T),
        ("dataLength", INT_T),
        ("numChildren", INT_T),
        ("pzxid", LONG_T),
    )


@dataclass(frozen=True, slots=True)
class ClientInfo(JuteRecord):
    """jute ``data.ClientInfo`` (3.7+)."""

    authScheme: str | None
    user: str | None
    SCHEMA = (("authScheme", USTRING_T), ("user", USTRING_T))


# --- module org.apache.zookeeper.proto: session and headers -----------------------------


@dataclass(frozen=True, slots=True)
class ConnectRequest(JuteRecord):
    """jute ``proto.ConnectRequest`` plus the optional trailing ``readOnly`` boolean.

    ``readOnly is None`` is the 44-byte form (with a 16-byte passwd) that has no readOnly
    byte; 3.4+ clients send the byte (45 bytes).
    """

    protocolVersion: int
    lastZxidSeen: int
    timeOut: int
    sessionId: int
    passwd: bytes | None
    readOnly: bool | None = None
    SCHEMA = (
        ("protocolVersion", INT_T),
        ("lastZxidSeen", LONG_T),
        ("timeOut", INT_T),
        ("sessionId", LONG_T),
        ("passwd", BUFFER_T),
        ("readOnly", OPTIONAL_BOOL_T),
    )


@dataclass(frozen=True, slots=True)
class CreateSessionTxn(JuteRecord):
    """jute ``txn.CreateSessionTxn``: what ZooKeeper reads of a createSession (-10) request
    sent inside an established session (PrepRequestProcessor reads one int and ignores the
    rest of the body). The answer is a bare ConnectResponse frame, not a reply."""

    timeOut: int
    SCHEMA = (("timeOut", INT_T),)


@dataclass(frozen=True, slots=True)
class ConnectResponse(JuteRecord):
    """jute ``proto.ConnectResponse`` plus the optional trailing ``readOnly`` boolean
    (a 3.8 server sends it only when the client's ConnectRequest had it)."""

    protocolVersion: int
    timeOut: int
    sessionId: int
    passwd: bytes | None
    readOnly: bool | None = None
    SCHEMA = (
        ("protocolVersion", INT_T),
        ("timeOut", INT_T),
        ("sessionId", LONG_T),
        ("passwd", BUFFER_T),
        ("readOnly", OPTIONAL_BOOL_T),
    )


@dataclass(frozen=True, slots=True)
class SetWatches(JuteRecord):
    """jute ``proto.SetWatches`` (sent with xid -8 on reconnect)."""

    relativeZxid: int
    dataWatches: tuple[str | None, ...] | None
    existWatches: tuple[str | None, ...] | None
    childWatches: tuple[str | None, ...] | None
    SCHEMA = (
        ("relativeZxid", LONG_T),
        ("dataWatches", Vector(USTRING_T)),
        ("existWatches", Vector(USTRING_T)),
        ("childWatches", Vector(USTRING_T)),
    )


@dataclass(frozen=True, slots=True)
class SetWatches2(JuteRecord):
    """jute ``proto.SetWatches2`` (3.6+, adds persistent watches)."""

    relativeZxid: int
    dataWatches: tuple[str | None, ...] | None
    existWatches: tuple[str | None, ...] | None
    childWatches: tuple[str | None, ...] | None
    persistentWatches: tuple[str | None, ...] | None
    persistentRecursiveWatches: tuple[str | None, ...] | None
    SCHEMA = (
        ("relativeZxid", LONG_T),
        ("dataWatches", Vector(USTRING_T)),
        ("existWatches", Vector(USTRING_T)),
        ("childWatches", Vector(USTRING_T)),
        ("persistentWatches", Vector(USTRING_T)),
        ("persistentRecursiveWatches", Vector(USTRING_T)),
    )


@dataclass(frozen=True, slots=True)
class RequestHeader(JuteRecord):
    """jute ``proto.RequestHeader``."""

    xid: int
    type: int
    SCHEMA = (("xid", INT_T), ("type", INT_T))


@dataclass(frozen=True, slots=True)
class MultiHeader(JuteRecord):
    """jute ``proto.MultiHeader``: precedes each op/result of a multi; ``done`` ends it."""

    type: int
    done: bool
    err: int
    SCHEMA = (("type", INT_T), ("done", BOOL_T), ("err", INT_T))


@dataclass(frozen=True, slots=True)
class AuthPacket(JuteRecord):
    """jute ``proto.AuthPacket`` (opcode 100, xid -4)."""

    type: int
    scheme: str | None
    auth: bytes | None
    SCHEMA = (("type", INT_T), ("scheme", USTRING_T), ("auth", BUFFER_T))


@dataclass(frozen=True, slots=True)
class ReplyHeader(JuteRecord):
    """jute ``proto.ReplyHeader``."""

    xid: int
    zxid: int
    err: int
    SCHEMA = (("xid", INT_T), ("zxid", LONG_T), ("err", INT_T))


# --- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetDataRequest(JuteRecord):
    """jute ``proto.GetDataRequest``."""

    path: str | None
    watch: bool
    SCHEMA = (("path", USTRING_T), ("watch", BOOL_T))


@dataclass(frozen=True, slots=True)
class SetDataRequest(JuteRecord):
    """jute ``proto.SetDataRequest``."""

    path: str | None
    data: bytes | None
    version: int
    SCHEMA = (("path", USTRING_T), ("data", BUFFER_T), ("version", INT_T))


@dataclass(frozen=True, slots=True)
class ReconfigRequest(JuteRecord):
    """jute ``proto.ReconfigRequest``."""

    joiningServers: str | None
    leavingServers: str | None
    newMembers: str | None
    curConfigId: int
    SCHEMA = (
        ("joiningServers", USTRING_T),
        ("leavingServers", USTRING_T),
        ("newMembers", USTRING_T),
        ("curConfigId", LONG_T),
    )


@dataclass(frozen=True, slots=True)
class GetSASLRequest(JuteRecord):
    """jute ``proto.GetSASLRequest`` (opcode 102 request)."""

    token: bytes | None
    SCHEMA = (("token", BUFFER_T),)


@dataclass(frozen=True, slots=True)
class SetSASLRequest(JuteRecord):
    """jute ``proto.SetSASLRequest`` (declared in zookeeper.jute; unused on the wire)."""

    token: bytes | None
    SCHEMA = (("token", BUFFER_T),)


@dataclass(frozen=True, slots=True)
class CreateRequest(JuteRecord):
    """jute ``proto.CreateRequest`` (create 1, create2 15, createContainer 19)."""

    path: str | None
    data: bytes | None
    acl: tuple[ACL, ...] | None
    flags: int
    SCHEMA = (
        ("path", USTRING_T),
        ("data", BUFFER_T),
        ("acl", Vector(ACL)),
        ("flags", INT_T),
    )


@dataclass(frozen=True, slots=True)
class CreateTTLRequest(JuteRecord):
    """jute ``proto.CreateTTLRequest`` (createTTL 21)."""

    path: str | None
    data: bytes | None
    acl: tuple[ACL, ...] | None
    flags: int
    ttl: int
    SCHEMA = (
        ("path", USTRING_T),
        ("data", BUFFER_T),
        ("acl", Vector(ACL)),
        ("flags", INT_T),
        ("ttl", LONG_T),
    )


@dataclass(frozen=True, slots=True)
class DeleteRequest(JuteRecord):
    """jute ``proto.DeleteRequest``."""

    path: str | None
    version: int
    SCHEMA = (("path", USTRING_T), ("version", INT_T))


@dataclass(frozen=True, slots=True)
class DeleteContainerRequest(JuteRecord):
    """``DeleteContainerRequest.java`` (opcode 20, server-internal): not in zookeeper.jute;
    it writes the path as a buffer, which is the same bytes as a ustring."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class GetChildrenRequest(JuteRecord):
    """jute ``proto.GetChildrenRequest``."""

    path: str | None
    watch: bool
    SCHEMA = (("path", USTRING_T), ("watch", BOOL_T))


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberRequest(JuteRecord):
    """jute ``proto.GetAllChildrenNumberRequest``."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class GetChildren2Request(JuteRecord):
    """jute ``proto.GetChildren2Request``."""

    path: str | None
    watch: bool
    SCHEMA = (("path", USTRING_T), ("watch", BOOL_T))


@dataclass(frozen=True, slots=True)
class CheckVersionRequest(JuteRecord):
    """jute ``proto.CheckVersionRequest`` (check 13, mostly inside a multi)."""

    path: str | None
    version: int
    SCHEMA = (("path", USTRING_T), ("version", INT_T))


@dataclass(frozen=True, slots=True)
class SyncRequest(JuteRecord):
    """jute ``proto.SyncRequest``."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class GetACLRequest(JuteRecord):
    """jute ``proto.GetACLRequest``."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class SetACLRequest(JuteRecord):
    """jute ``proto.SetACLRequest``."""

    path: str | None
    acl: tuple[ACL, ...] | None
    version: int
    SCHEMA = (("path", USTRING_T), ("acl", Vector(ACL)), ("version", INT_T))


@dataclass(frozen=True, slots=True)
class AddWatchRequest(JuteRecord):
    """jute ``proto.AddWatchRequest`` (3.6+); ``mode`` is an :class:`AddWatchMode`."""

    path: str | None
    mode: int
    SCHEMA = (("path", USTRING_T), ("mode", INT_T))


@dataclass(frozen=True, slots=True)
class ExistsRequest(JuteRecord):
    """jute ``proto.ExistsRequest``."""

    path: str | None
    watch: bool
    SCHEMA = (("path", USTRING_T), ("watch", BOOL_T))


@dataclass(frozen=True, slots=True)
class CheckWatchesRequest(JuteRecord):
    """jute ``proto.CheckWatchesRequest``; ``type`` is a :class:`WatcherType`."""

    path: str | None
    type: int
    SCHEMA = (("path", USTRING_T), ("type", INT_T))


@dataclass(frozen=True, slots=True)
class RemoveWatchesRequest(JuteRecord):
    """jute ``proto.RemoveWatchesRequest``; ``type`` is a :class:`WatcherType`."""

    path: str | None
    type: int
    SCHEMA = (("path", USTRING_T), ("type", INT_T))


@dataclass(frozen=True, slots=True)
class GetEphemeralsRequest(JuteRecord):
    """jute ``proto.GetEphemeralsRequest``."""

    prefixPath: str | None
    SCHEMA = (("prefixPath", USTRING_T),)


# --- responses and events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetDataResponse(JuteRecord):
    """jute ``proto.SetDataResponse``."""

    stat: Stat
    SCHEMA = (("stat", Stat),)


@dataclass(frozen=True, slots=True)
class SetSASLResponse(JuteRecord):
    """jute ``proto.SetSASLResponse`` (opcode 102 response)."""

    token: bytes | None
    SCHEMA = (("token", BUFFER_T),)


@dataclass(frozen=True, slots=True)
class SyncResponse(JuteRecord):
    """jute ``proto.SyncResponse``."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class SetACLResponse(JuteRecord):
    """jute ``proto.SetACLResponse``."""

    stat: Stat
    SCHEMA = (("stat", Stat),)


@dataclass(frozen=True, slots=True)
class WatcherEvent(JuteRecord):
    """jute ``proto.WatcherEvent``: the body of a notification (reply xid -1)."""

    type: int
    state: int
    path: str | None
    SCHEMA = (("type", INT_T), ("state", INT_T), ("path", USTRING_T))


@dataclass(frozen=True, slots=True)
class ErrorResponse(JuteRecord):
    """jute ``proto.ErrorResponse``: an error result inside a multi response."""

    err: int
    SCHEMA = (("err", INT_T),)


@dataclass(frozen=True, slots=True)
class CreateResponse(JuteRecord):
    """jute ``proto.CreateResponse`` (create 1)."""

    path: str | None
    SCHEMA = (("path", USTRING_T),)


@dataclass(frozen=True, slots=True)
class Create2Response(JuteRecord):
    """jute ``proto.Create2Response`` (create2, createContainer, createTTL)."""

    path: str | None
    stat: Stat
    SCHEMA = (("path", USTRING_T), ("stat", Stat))


@dataclass(frozen=True, slots=True)
class ExistsResponse(JuteRecord):
    """jute ``proto.ExistsResponse`` (a missing node is err NoNode, without a body)."""

    stat: Stat
    SCHEMA = (("stat", Stat),)


@dataclass(frozen=True, slots=True)
class GetDataResponse(JuteRecord):
    """jute ``proto.GetDataResponse`` (also the reconfig response)."""

    data: bytes | None
    stat: Stat
    SCHEMA = (("data", BUFFER_T), ("stat", Stat))


@dataclass(frozen=True, slots=True)
class GetChildrenResponse(JuteRecord):
    """jute ``proto.GetChildrenResponse``."""

    children: tuple[str | None, ...] | None
    SCHEMA = (("children", Vector(USTRING_T)),)


@dataclass(frozen=True, slots=True)
class GetAllChildrenNumberResponse(JuteRecord):
    """jute ``proto.GetAllChildrenNumberResponse``."""

    totalNumber: int
    SCHEMA = (("totalNumber", INT_T),)


@dataclass(frozen=True, slots=True)
class GetChildren2Response(JuteRecord):
    """jute ``proto.GetChildren2Response``."""

    children: tuple[str | None, ...] | None
    stat: Stat
    SCHEMA = (("children", Vector(USTRING_T)), ("stat", Stat))


@dataclass(frozen=True, slots=True)
class GetACLResponse(JuteRecord):
    """jute ``proto.GetACLResponse``."""

    acl: tuple[ACL, ...] | None
    stat: Stat
    SCHEMA = (("acl", Vector(ACL)), ("stat", Stat))


@dataclass(frozen=True, slots=True)
class GetEphemeralsResponse(JuteRecord):
    """jute ``proto.GetEphemeralsResponse``."""

    ephemerals: tuple[str | None, ...] | None
    SCHEMA = (("ephemerals", Vector(USTRING_T)),)


@dataclass(frozen=True, slots=True)
class WhoAmIResponse(JuteRecord):
    """jute ``proto.WhoAmIResponse`` (3.7+)."""

    clientInfo: tuple[ClientInfo, ...] | None
    SCHEMA = (("clientInfo", Vector(ClientInfo)),)


# Every jute record, in definition order, which puts a nested record before its users.
JUTE_RECORDS: tuple[type[JuteRecord], ...] = tuple(
    v
    for v in list(globals().values())
    if isinstance(v, type) and issubclass(v, JuteRecord) and v is not JuteRecord
)

for _cls in JUTE_RECORDS:
    compile_record(_cls, _cls.SCHEMA)
del _cls


# --- multi (not jute: hand-written in ZooKeeper) ----------------------------------------


@dataclass(frozen=True, slots=True)
class MultiOp(Record):
    """One op of a multi (14) or multiRead (22): ``MultiHeader(type, False, -1)`` + request.

    ``type`` is the op's opcode: create/create2/createContainer carry a CreateRequest,
    createTTL a CreateTTLRequest, delete/setData/check/getChildren/getData their own
    (``MULTI_OP_REQUESTS``). Typed ``object`` for easy construction; encoding checks it.
    """

    type: int
    request: object


@dataclass(frozen=True, slots=True)
class MultiRequest(Record):
    """``MultiOperationRecord``: the body of multi (14) and multiRead (22)."""

    ops: tuple[MultiOp, ...]


@dataclass(frozen=True, slots=True)
class MultiResult(Record):
    """One result of a multi response: ``MultiHeader(type, False, err)`` + response.

    ``type`` is 1 (CreateResponse), 15 (Create2Response), 2 and 13 (no body), 5
    (SetDataResponse), 8 (GetChildrenResponse), 4 (GetDataResponse), or -1 for an error,
    whose ``response`` is an ``ErrorResponse``; ``err`` is the MultiHeader's err (0 except
    for error results).
    """

    type: int
    err: int
    response: object | None

    @classmethod
    def error(cls, err: int) -> MultiResult:
        """An error result as ZooKeeper writes it: type -1, err, ErrorResponse(err)."""
        return cls(-1, err, ErrorResponse(err))


@dataclass(frozen=True, slots=True)
class MultiResponse(Record):
    """``MultiResponse``: the body of a multi/multiRead reply."""

    results: tuple[MultiResult, ...]

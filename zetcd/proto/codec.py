"""Bodies in, records out; records in, bodies out. A body is a frame without its 4-byte
length prefix (see :mod:`zetcd.proto.framing`).

Requests: ``RequestHeader`` then the opcode's request record (none for ping, whoAmI,
closeSession). Replies: ``ReplyHeader`` then, when err is 0, the opcode's response
record; a reply with xid -1 is a notification carrying a ``WatcherEvent``. The opcode
table in :mod:`zetcd.proto.opcodes` decides every body. The connect handshake has no
header: a ``ConnectRequest``/``ConnectResponse`` with an optional trailing readOnly byte.

Strictness: every decoder consumes the whole body; any byte left over is an error (ZooKeeper
itself ignores trailing bytes after a record: the server layer answers as it does), except
the ConnectRequest's, which are ignored here.
"""

from __future__ import annotations

import struct
from typing import Final, TypeVar

from . import fastpaths as _fastpaths  # noqa: F401 - installs the hot-record codecs
from . import multi as _multi  # noqa: F401 - registers the multi codecs
from .constants import WATCH_XID, OpCode
from .errors import EncodeError, MalformedRequest, ProtocolError, UnknownOpcode
from .jute import DECODERS, Reader, constructor, encode_record
from .opcodes import OPS
from .records import (
    ConnectRequest,
    ConnectResponse,
    DeleteContainerRequest,
    MultiResponse,
    Record,
    ReplyHeader,
    RequestHeader,
    WatcherEvent,
)

T = TypeVar("T")
Body = bytes | bytearray | memoryview

REQUEST_HEADER: Final = struct.Struct(">ii")
REPLY_HEADER: Final = struct.Struct(">iqi")
_REQUEST_HEADER_SIZE: Final = REQUEST_HEADER.size
_REPLY_HEADER_SIZE: Final = REPLY_HEADER.size
_NOTIFICATION_HEADER: Final = REPLY_HEADER.pack(WATCH_XID, -1, 0)
_RequestHeader: Final = constructor(RequestHeader)
_ReplyHeader: Final = constructor(ReplyHeader)
_HEADER_FAILURES: Final = (struct.error, TypeError, AttributeError)
_NULL_DELETE_CONTAINER: Final = DeleteContainerRequest(None)


def _as_bytes(body: Body) -> bytes:
    return body if type(body) is bytes else bytes(body)


# --- whole records ------------------------------------------------------------------


def decode(cls: type[T], body: Body) -> T:
    """Decode a body that holds exactly one ``cls`` record."""
    r = Reader(body)
    record: T = DECODERS[cls](r)
    r.expect_end()
    return record


def encode(record: object) -> bytes:
    """Encode one record (jute record or multi wrapper)."""
    out = bytearray()
    encode_record(out, record)
    return bytes(out)


# --- connect handshake ----------------------------------------------------------------


def decode_connect_request(body: Body) -> ConnectRequest:
    """The form without the readOnly byte (3.3 clients) and the form with it. Bytes after the
    readOnly byte are ignored, as ZooKeeper's NIO/Netty connection reads the record and one
    boolean and never looks further."""
    request: ConnectRequest = DECODERS[ConnectRequest](Reader(body))
    return request


def _encode_as(cls: type, record: object) -> bytes:
    if type(record) is not cls:
        raise EncodeError(f"expected a {cls.__name__}, not {record!r}")
    return encode(record)


def encode_connect_request(request: ConnectRequest) -> bytes:
    """The readOnly byte is written only when ``request.readOnly`` is not None."""
    return _encode_as(ConnectRequest, request)


def decode_connect_response(body: Body) -> ConnectResponse:
    return decode(ConnectResponse, body)


def encode_connect_response(response: ConnectResponse) -> bytes:
    """The readOnly byte is written only when ``response.readOnly`` is not None."""
    return _encode_as(ConnectResponse, response)


# a ConnectResponse's size with ZooKeeper's 16-byte password, without and with readOnly
_CONNECT_RESPONSE_SIZES: Final = (36, 37)


def is_bare_connect_response(body: Body) -> bool:
    """Could this frame, received after the handshake, be the bare ConnectResponse that answers
    a createSession (-10) sent inside the session? Its size, and protocolVersion 0 where a
    reply's xid would be (a reply with xid 0 of that size is told apart by what is
    outstanding, which only the caller knows)."""
    return len(body) in _CONNECT_RESPONSE_SIZES and body[:4] == b"\0\0\0\0"


# --- requests -------------------------------------------------------------------------


def decode_request(body: Body) -> tuple[RequestHeader, Record | None]:
    """Decode a request body into its header and record (None for a bodiless opcode).

    Raises :class:`ProtocolError` when even the header is truncated,
    :class:`UnknownOpcode` for an opcode outside the table and :class:`MalformedRequest`
    when the body does not match the opcode's record exactly.
    """
    buf = body if type(body) is bytes else bytes(body)
    try:
        xid, opcode = REQUEST_HEADER.unpack_from(buf)
    except struct.error:
        raise ProtocolError(f"request of {len(buf)} bytes is shorter than its header") from None
    spec = OPS.get(opcode)
    if spec is None:
        raise UnknownOpcode(xid, opcode)
    header = _RequestHeader(xid, opcode)
    cls = spec.request
    if cls is None:
        if len(buf) != _REQUEST_HEADER_SIZE:
            extra = len(buf) - _REQUEST_HEADER_SIZE
            raise MalformedRequest(
                xid, opcode, f"{extra} bytes after a bodiless request", decoded=(header, None)
            )
        return header, None
    r = Reader(buf, _REQUEST_HEADER_SIZE)
    try:
        record = DECODERS[cls](r)
    except ProtocolError as e:
        # deleteContainer's body is never read as a record: ZooKeeper takes its path from
        # the whole request (so any body is BadArguments, opcodes.py), here a null path
        decoded = (header, _NULL_DELETE_CONTAINER) if opcode == OpCode.DELETE_CONTAINER else None
        raise MalformedRequest(xid, opcode, str(e), decoded=decoded) from None
    if r.pos != len(buf):
        extra = len(buf) - r.pos
        raise MalformedRequest(
            xid, opcode, f"{extra} trailing bytes after the record", decoded=(header, record)
        )
    return header, record


def encode_request(header: RequestHeader, record: object | None = None) -> bytes:
    """Encode a request. ``record`` must be the opcode's request record (or None for a
    bodiless opcode); an opcode outside the table may be sent without a body, to exercise
    a server's Unimplemented path."""
    spec = OPS.get(header.type)
    expected = None if spec is None else spec.request
    if (record is not None) if expected is None else (type(record) is not expected):
        wanted = "no body" if expected is None else f"a {expected.__name__}"
        raise EncodeError(f"opcode {header.type} takes {wanted}, not {record!r}")
    try:
        out = bytearray(REQUEST_HEADER.pack(header.xid, header.type))
    except _HEADER_FAILURES as e:
        raise EncodeError(f"cannot encode {header!r}: {e}") from e
    if record is not None:
        encode_record(out, record)
    return bytes(out)


# --- replies --------------------------------------------------------------------------


def decode_reply_header(body: Body) -> ReplyHeader:
    """Decode only the header of a reply, e.g. to look at the xid first."""
    try:
        xid, zxid, err = REPLY_HEADER.unpack_from(body)
    except struct.error:
        raise ProtocolError(f"reply of {len(body)} bytes is shorter than its header") from None
    return _ReplyHeader(xid, zxid, err)


def decode_response(opcode: int, body: Body) -> tuple[ReplyHeader, Record | None]:
    """Decode a reply to a request of ``opcode`` (client side).

    A notification (xid -1) decodes to a ``WatcherEvent`` whatever ``opcode`` is. A reply
    whose err is not 0 has no body (a failed multi has err 0 and per-op results), but for a
    multi's, which may carry an empty result list (ZooKeeper's answer to a multi that fails
    before it has a txn, such as one with a null path). A
    body is ``None`` for opcodes without a response record (and for opcodes outside the
    table, whose only reply is an error).
    """
    buf = _as_bytes(body)
    header = decode_reply_header(buf)
    if header.xid == WATCH_XID:
        cls: type[Record] | None = WatcherEvent
    elif header.err != 0:
        multi = opcode == OpCode.MULTI and len(buf) > _REPLY_HEADER_SIZE
        cls = MultiResponse if multi else None
    else:
        spec = OPS.get(opcode)
        cls = None if spec is None else spec.response
    if cls is None:
        if len(buf) != _REPLY_HEADER_SIZE:
            raise ProtocolError(f"{len(buf) - _REPLY_HEADER_SIZE} bytes after a bodiless reply")
        return header, None
    r = Reader(buf, _REPLY_HEADER_SIZE)
    record = DECODERS[cls](r)
    r.expect_end()
    return header, record


def encode_reply(header: ReplyHeader, record: object | None = None) -> bytes:
    """Encode a reply: the header, then ``record`` if given."""
    try:
        head = REPLY_HEADER.pack(header.xid, header.zxid, header.err)
    except _HEADER_FAILURES as e:
        raise EncodeError(f"cannot encode {header!r}: {e}") from e
    if record is None:
        return head
    out = bytearray(head)
    encode_record(out, record)
    return bytes(out)


def frame_reply_into(
    out: bytearray, xid: int, zxid: int, err: int, record: object | None = None
) -> None:
    """Append a framed reply to ``out`` (the server's hot path: no header record, no copy)."""
    start = len(out)
    try:
        out += _LENGTH_PLACEHOLDER
        out += REPLY_HEADER.pack(xid, zxid, err)
        if record is not None:
            encode_record(out, record)
    except _HEADER_FAILURES as e:
        del out[start:]
        raise EncodeError(f"cannot encode a reply header ({xid}, {zxid}, {err}): {e}") from e
    except BaseException:
        del out[start:]
        raise
    _LENGTH.pack_into(out, start, len(out) - start - 4)


_LENGTH: Final = struct.Struct(">i")
_LENGTH_PLACEHOLDER: Final = b"\0\0\0\0"


def encode_notification(event: WatcherEvent) -> bytes:
    """A watch notification: ``ReplyHeader(-1, -1, 0)`` then the event."""
    if type(event) is not WatcherEvent:
        raise EncodeError(f"expected a WatcherEvent, not {event!r}")
    out = bytearray(_NOTIFICATION_HEADER)
    encode_record(out, event)
    return bytes(out)

"""Hand-tuned codecs for the records on the server's hot path.

They replace the compiled, schema-driven codecs in the jute registries at import time;
the generic ones stay in :data:`GENERIC_DECODERS`/:data:`GENERIC_ENCODERS` so that the
tests can prove each fast path byte-for-byte equivalent to its schema. A fast decoder
handles only the well-formed common case inline and hands anything else (null path,
truncation, bad UTF-8) to the generic decoder, which produces the precise error.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable
from typing import Any, Final, TypeVar

from .jute import (
    DECODERS,
    ENCODERS,
    INT,
    NULL_LENGTH,
    Decoder,
    Encoder,
    Reader,
    constructor,
    decode_ustring,
)
from .records import (
    ACL,
    OPEN_ACL_UNSAFE,
    Create2Response,
    CreateRequest,
    CreateResponse,
    ExistsRequest,
    ExistsResponse,
    GetChildren2Request,
    GetChildrenRequest,
    GetDataRequest,
    GetDataResponse,
    Id,
    SetDataRequest,
    SetDataResponse,
    Stat,
)

R = TypeVar("R")

STAT: Final = struct.Struct(">qqqqiiiqiiq")
STAT_FIELDS: Final = operator.attrgetter(*(name for name, _ in Stat.SCHEMA))
_STAT_SIZE: Final = STAT.size
_stat_unpack = STAT.unpack_from
_stat_pack = STAT.pack
_int_unpack = INT.unpack_from
_int_pack = INT.pack

HOT_RECORDS: Final = (
    Stat,
    ACL,
    GetDataRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetChildren2Request,
    SetDataRequest,
    CreateRequest,
    GetDataResponse,
    ExistsResponse,
    SetDataResponse,
    CreateResponse,
    Create2Response,
)
# Positional constructors that skip the frozen dataclass __init__ (see fast_constructor).
_Stat: Final = constructor(Stat)
_ACL: Final = constructor(ACL)
_Id: Final = constructor(Id)
_SetDataRequest: Final = constructor(SetDataRequest)
_CreateRequest: Final = constructor(CreateRequest)
_GetDataResponse: Final = constructor(GetDataResponse)
_ExistsResponse: Final = constructor(ExistsResponse)
_SetDataResponse: Final = constructor(SetDataResponse)
_CreateResponse: Final = constructor(CreateResponse)
_Create2Response: Final = constructor(Create2Response)

GENERIC_DECODERS: Final[dict[type, Decoder]] = {cls: DECODERS[cls] for cls in HOT_RECORDS}
GENERIC_ENCODERS: Final[dict[type, Encoder]] = {cls: ENCODERS[cls] for cls in HOT_RECORDS}


def _write_ustring(out: bytearray, value: str | None) -> None:
    if value is None:
        out += NULL_LENGTH
    else:
        raw = value.encode("utf-8", "surrogatepass")
        out += _int_pack(len(raw))
        out += raw


def _write_buffer(out: bytearray, value: bytes | None) -> None:
    if value is None:
        out += NULL_LENGTH
    else:
        out += _int_pack(len(value))
        out += value


# --- Stat and ACL ---------------------------------------------------------------------


def _dec_stat(r: Reader) -> Stat:
    return _Stat(*r.read_struct(STAT))


def _enc_stat(out: bytearray, stat: Stat) -> None:
    out += _stat_pack(*STAT_FIELDS(stat))


def _dec_acl(r: Reader) -> ACL:
    perms = r.read_int()
    return _ACL(perms, _Id(r.read_ustring(), r.read_ustring()))


def _enc_acl(out: bytearray, acl: ACL) -> None:
    out += _int_pack(acl.perms)
    ident = acl.id
    _write_ustring(out, ident.scheme)
    _write_ustring(out, ident.id)


# --- path + watch requests (getData, exists, getChildren, getChildren2) ---------------


def _path_watch(cls: type[R]) -> tuple[Callable[[Reader], R], Encoder]:
    generic = GENERIC_DECODERS[cls]
    make = constructor(cls)

    def dec(r: Reader) -> R:
        buf = r.buf
        pos = r.pos
        if pos + 4 <= len(buf):
            (n,) = _int_unpack(buf, pos)
            end = pos + 4 + n
            if n >= 0 and end < len(buf):
                path = decode_ustring(buf[pos + 4 : end])
                r.pos = end + 1
                return make(path, buf[end] != 0)
        return generic(r)  # type: ignore[no-any-return]

    def enc(out: bytearray, rec: Any) -> None:
        _write_ustring(out, rec.path)
        out.append(1 if rec.watch else 0)

    return dec, enc


# --- data requests ------------------------------------------------------------------


def _dec_set_data_request(r: Reader) -> SetDataRequest:
    buf = r.buf
    pos = r.pos
    end = len(buf)
    # the common case inline: a path and data that are not null and fit
    if pos + 4 <= end:
        (n,) = _int_unpack(buf, pos)
        data_at = pos + 4 + n
        if n >= 0 and data_at + 4 <= end:
            (m,) = _int_unpack(buf, data_at)
            version_at = data_at + 4 + m
            if m >= 0 and version_at + 4 <= end:
                r.pos = version_at + 4
                return _SetDataRequest(
                    decode_ustring(buf[pos + 4 : data_at]),
                    buf[data_at + 4 : version_at],
                    _int_unpack(buf, version_at)[0],
                )
    path = r.read_ustring()
    data = r.read_buffer()
    return _SetDataRequest(path, data, r.read_int())


def _enc_set_data_request(out: bytearray, rec: SetDataRequest) -> None:
    _write_ustring(out, rec.path)
    _write_buffer(out, rec.data)
    out += _int_pack(rec.version)


# the ACL most creates carry (world:anyone, all permissions), decoded once: records are
# immutable, so every request that sends exactly these bytes can share one tuple
_OPEN_ACL_BYTES: Final = b"\0\0\0\x01\0\0\0\x1f\0\0\0\x05world\0\0\0\x06anyone"


def _dec_create_request(r: Reader) -> CreateRequest:
    path = r.read_ustring()
    data = r.read_buffer()
    if r.buf.startswith(_OPEN_ACL_BYTES, r.pos):
        r.pos += len(_OPEN_ACL_BYTES)
        acl: tuple[ACL, ...] | None = OPEN_ACL_UNSAFE
    else:
        acl = r.read_vector(_dec_acl, 12)
    return _CreateRequest(path, data, acl, r.read_int())


def _enc_create_request(out: bytearray, rec: CreateRequest) -> None:
    _write_ustring(out, rec.path)
    _write_buffer(out, rec.data)
    acl = rec.acl
    if acl is None:
        out += NULL_LENGTH
    else:
        out += _int_pack(len(acl))
        for item in acl:
            _enc_acl(out, item)
    out += _int_pack(rec.flags)


# --- responses carrying a Stat --------------------------------------------------------


def _dec_get_data_response(r: Reader) -> GetDataResponse:
    buf = r.buf
    pos = r.pos
    if pos + 4 <= len(buf):
        (n,) = _int_unpack(buf, pos)
        end = pos + 4 + n
        if n >= 0 and end + _STAT_SIZE <= len(buf):
            r.pos = end + _STAT_SIZE
            return _GetDataResponse(buf[pos + 4 : end], _Stat(*_stat_unpack(buf, end)))
    return GENERIC_DECODERS[GetDataResponse](r)  # type: ignore[no-any-return]


def _enc_get_data_response(out: bytearray, rec: GetDataResponse) -> None:
    data = rec.data
    if data is None:
        out += NULL_LENGTH
    else:
        out += _int_pack(len(data))
        out += data
    out += _stat_pack(*STAT_FIELDS(rec.stat))


def _dec_exists_response(r: Reader) -> ExistsResponse:
    return _ExistsResponse(_Stat(*r.read_struct(STAT)))


def _dec_set_data_response(r: Reader) -> SetDataResponse:
    return _SetDataResponse(_Stat(*r.read_struct(STAT)))


def _enc_stat_response(out: bytearray, rec: Any) -> None:
    out += _stat_pack(*STAT_FIELDS(rec.stat))


def _dec_create_response(r: Reader) -> CreateResponse:
    return _CreateResponse(r.read_ustring())


def _enc_create_response(out: bytearray, rec: CreateResponse) -> None:
    _write_ustring(out, rec.path)


def _dec_create2_response(r: Reader) -> Create2Response:
    path = r.read_ustring()
    return _Create2Response(path, _Stat(*r.read_struct(STAT)))


def _enc_create2_response(out: bytearray, rec: Create2Response) -> None:
    _write_ustring(out, rec.path)
    out += _stat_pack(*STAT_FIELDS(rec.stat))


def install() -> None:
    """Put the fast paths in the jute registries (idempotent)."""
    table: dict[type, tuple[Decoder, Encoder]] = {
        Stat: (_dec_stat, _enc_stat),
        ACL: (_dec_acl, _enc_acl),
        GetDataRequest: _path_watch(GetDataRequest),
        ExistsRequest: _path_watch(ExistsRequest),
        GetChildrenRequest: _path_watch(GetChildrenRequest),
        GetChildren2Request: _path_watch(GetChildren2Request),
        SetDataRequest: (_dec_set_data_request, _enc_set_data_request),
        CreateRequest: (_dec_create_request, _enc_create_request),
        GetDataResponse: (_dec_get_data_response, _enc_get_data_response),
        ExistsResponse: (_dec_exists_response, _enc_stat_response),
        SetDataResponse: (_dec_set_data_response, _enc_stat_response),
        CreateResponse: (_dec_create_response, _enc_create_response),
        Create2Response: (_dec_create2_response, _enc_create2_response),
    }
    assert set(table) == set(HOT_RECORDS)
    for cls, (dec, enc) in table.items():
        DECODERS[cls] = dec
        ENCODERS[cls] = enc


install()

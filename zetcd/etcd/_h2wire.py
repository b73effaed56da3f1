"""HTTP/2 and gRPC on the wire, as far as zetcd's etcd client needs them: frame types, flags,
settings and error codes (RFC 9113), framing, the HPACK encoding of a request's header block
(RFC 7541 literals only), and how gRPC reports a call's outcome (grpc-status, RST_STREAM codes,
HTTP statuses; gRPC's PROTOCOL-HTTP2.md). No I/O: see _http2.py."""

from __future__ import annotations

import struct
from typing import Any
from urllib.parse import unquote_to_bytes

import grpc

# frame types (RFC 9113 section 6)
DATA = 0x0
HEADERS = 0x1
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
# flags
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY = 0x20
# settings
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
# error codes
NO_ERROR = 0x0
REFUSED_STREAM = 0x7
CANCEL = 0x8

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384  # what we accept (we never raise it) and the server's default

_HEAD = struct.Struct(">HBBBI")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}
# gRPC's mapping of an RST_STREAM error code to a status (PROTOCOL-HTTP2.md)
RST_STATUS = {
    REFUSED_STREAM: grpc.StatusCode.UNAVAILABLE,
    CANCEL: grpc.StatusCode.CANCELLED,
    0xB: grpc.StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    0xC: grpc.StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
}
# and of an HTTP status when a response carries no grpc-status
_HTTP_STATUS = {
    b"400": grpc.StatusCode.INTERNAL,
    b"401": grpc.StatusCode.UNAUTHENTICATED,
    b"403": grpc.StatusCode.PERMISSION_DENIED,
    b"404": grpc.StatusCode.UNIMPLEMENTED,
    b"429": grpc.StatusCode.UNAVAILABLE,
    b"502": grpc.StatusCode.UNAVAILABLE,
    b"503": grpc.StatusCode.UNAVAILABLE,
    b"504": grpc.StatusCode.UNAVAILABLE,
}


def frame(ftype: int, flags: int, stream_id: int, payload: bytes | memoryview = b"") -> bytes:
    n = len(payload)
    return _HEAD.pack(n >> 8, n & 0xFF, ftype, flags, stream_id) + payload


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 section 5.1) in a field whose first byte starts with ``first``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_string(s: bytes) -> bytes:
    return _hpack_int(len(s), 7, 0) + s  # not Huffman-coded


def _literal(static_index: int, value: bytes) -> bytes:
    """A literal field without indexing whose name is entry ``static_index`` of the static
    table (section 6.2.2): the server's dynamic table is never touched."""
    return _hpack_int(static_index, 4, 0) + _hpack_string(value)


def _literal_new(name: bytes, value: bytes) -> bytes:
    return b"\x00" + _hpack_string(name) + _hpack_string(value)


def request_headers(
    path: bytes, authority: bytes, metadata: tuple[tuple[str, str], ...], https: bool = False
) -> bytes:
    """The header block of a gRPC request: POST, then http or https (static entries 3, and 6
    or 7), :path (4), :authority (1), content-type (31), te and the metadata as literals."""
    return (
        (b"\x83\x87" if https else b"\x83\x86")
        + _literal(4, path)
        + _literal(1, authority)
        + _literal(31, b"application/grpc")
        + _literal_new(b"te", b"trailers")
        + b"".join(_literal_new(k.encode(), v.encode()) for k, v in metadata)
    )


def grpc_timeout(seconds: float) -> bytes:
    """A grpc-timeout header value: at most 8 digits and a unit."""
    ms = max(1, int(seconds * 1000))
    return b"%dm" % ms if ms < 10**8 else b"%dS" % min(seconds, 10**8 - 1)


class CallError(grpc.RpcError):  # type: ignore[misc]
    """A call failed: ``code()`` and ``details()`` as on a ``grpc.RpcError``; ``never_sent``
    when the request certainly did not reach the server."""

    def __init__(self, code: grpc.StatusCode, details: str, never_sent: bool = False) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details
        self.never_sent = never_sent

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class StreamEnded(Exception):
    """The stream is over. ``error`` is the ``CallError`` that ended it, or None when it ended
    cleanly or was closed locally (``closed`` is then True)."""

    def __init__(self, error: Any, closed: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.closed = closed


def status_error(
    headers: list[tuple[bytes, bytes]] | None, trailers: list[tuple[bytes, bytes]] | None
) -> CallError | None:
    """The error a finished call's trailers (or, without grpc-status, its HTTP status) report."""
    fields = dict(trailers or ())
    status = fields.get(b"grpc-status")
    if status is None:
        http = dict(headers or ()).get(b":status", b"")
        code = _HTTP_STATUS.get(http, grpc.StatusCode.UNKNOWN)
        if http == b"200":
            code = grpc.StatusCode.INTERNAL
        return CallError(code, f"no grpc-status in the response (HTTP status {http.decode()})")
    if status == b"0":
        return None
    code = _STATUS_BY_VALUE.get(int(status) if status.isdigit() else -1, grpc.StatusCode.UNKNOWN)
    message = unquote_to_bytes(fields.get(b"grpc-message", b"")).decode(errors="replace")
    return CallError(code, message)


def unpad(payload: bytes) -> bytes:
    pad = payload[0] if payload else 0
    return payload[1 : len(payload) - pad]

"""Codec of multi (14) and multiRead (22) bodies, written by hand as ZooKeeper does.

Request (``MultiOperationRecord``): for each op ``MultiHeader(type, False, -1)`` and the
op's request record, then ``MultiHeader(-1, True, -1)``. Response (``MultiResponse``): for
each result ``MultiHeader(type, False, err)`` (err is 0 except for an error result) and the
result's record (nothing for delete and check), then ``MultiHeader(-1, True, -1)``.

Like ZooKeeper's readers, decoding stops at the first header whose ``done`` is true
whatever its type and err, and ignores the err of request op headers; encoding always
writes the canonical values above. Each iteration consumes at least a 9-byte header, so
a hostile body cannot make decoding loop or recurse beyond its length.
"""

from __future__ import annotations

import struct
from typing import Final

from .errors import EncodeError, ProtocolError
from .jute import DECODERS, ENCODERS, MIN_SIZES, Reader, fast_constructor
from .opcodes import MULTI_OP_REQUESTS, MULTI_READ_OPS, MULTI_RESULT_RESPONSES
from .records import MultiOp, MultiRequest, MultiResponse, MultiResult

MULTI_HEADER: Final = struct.Struct(">i?i")
MULTI_END: Final = MULTI_HEADER.pack(-1, True, -1)
_MultiOp: Final = fast_constructor(MultiOp)
_MultiResult: Final = fast_constructor(MultiResult)


def decode_multi_request(r: Reader) -> MultiRequest:
    ops: list[MultiOp] = []
    read_kind: bool | None = None
    while True:
        op_type, done, _err = r.read_struct(MULTI_HEADER)
        if done:
            return MultiRequest(tuple(ops))
        cls = MULTI_OP_REQUESTS.get(op_type)
        if cls is None:
            raise ProtocolError(f"invalid op type {op_type} in a multi request")
        is_read = op_type in MULTI_READ_OPS
        if read_kind is None:
            read_kind = is_read
        elif read_kind != is_read:
            raise ProtocolError("a multi request mixes read and write ops")
        ops.append(_MultiOp(op_type, DECODERS[cls](r)))


def encode_multi_request(out: bytearray, req: MultiRequest) -> None:
    read_kind: bool | None = None
    for op in req.ops:
        cls = MULTI_OP_REQUESTS.get(op.type)
        if cls is None:
            raise EncodeError(f"op type {op.type} cannot be part of a multi")
        if type(op.request) is not cls:
            raise EncodeError(f"op type {op.type} needs a {cls.__name__}, not {op.request!r}")
        is_read = op.type in MULTI_READ_OPS
        if read_kind is None:
            read_kind = is_read
        elif read_kind != is_read:
            raise EncodeError("a multi request cannot mix read and write ops")
        out += MULTI_HEADER.pack(op.type, False, -1)
        ENCODERS[cls](out, op.request)
    out += MULTI_END


def decode_multi_response(r: Reader) -> MultiResponse:
    results: list[MultiResult] = []
    while True:
        result_type, done, err = r.read_struct(MULTI_HEADER)
        if done:
            return MultiResponse(tuple(results))
        try:
            cls = MULTI_RESULT_RESPONSES[result_type]
        except KeyError:
            raise ProtocolError(f"invalid result type {result_type} in a multi response") from None
        body = None if cls is None else DECODERS[cls](r)
        results.append(_MultiResult(result_type, err, body))


def encode_multi_response(out: bytearray, resp: MultiResponse) -> None:
    for result in resp.results:
        try:
            cls = MULTI_RESULT_RESPONSES[result.type]
        except KeyError:
            raise EncodeError(f"result type {result.type} cannot be part of a multi") from None
        body = result.response
        if (body is not None) if cls is None else (type(body) is not cls):
            expected = "no body" if cls is None else f"a {cls.__name__}"
            raise EncodeError(f"result type {result.type} needs {expected}, not {body!r}")
        out += MULTI_HEADER.pack(result.type, False, result.err)
        if cls is not None:
            ENCODERS[cls](out, body)
    out += MULTI_END


DECODERS[MultiRequest] = decode_multi_request
ENCODERS[MultiRequest] = encode_multi_request
MIN_SIZES[MultiRequest] = MULTI_HEADER.size
DECODERS[MultiResponse] = decode_multi_response
ENCODERS[MultiResponse] = encode_multi_response
MIN_SIZES[MultiResponse] = MULTI_HEADER.size

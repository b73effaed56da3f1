"""Malformed input fails one way: every decoder either returns records or raises
ProtocolError, whatever the bytes (no IndexError, struct.error, UnicodeDecodeError,
RecursionError, hang). Inputs are bounded so that each example is cheap."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_proto_strategies import ALL_RECORD_TYPES, INT32, records, request_for
from zetcd.proto import (
    NEED_DATA,
    OPS,
    ConnectRequest,
    ConnectResponse,
    MalformedRequest,
    ProtocolError,
    RequestHeader,
    ServerProtocol,
    decode,
    decode_connect_request,
    decode_connect_response,
    decode_request,
    decode_response,
    encode,
    encode_connect_request,
    encode_request,
    frame,
)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OPCODES = st.sampled_from(sorted(OPS))


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` truncated, with bytes flipped, inserted, or a length field enlarged."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "insert", "int"]))
        at = draw(st.integers(0, len(data)))
        if kind == "cut":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "int" and at + 4 <= len(data):
            data[at : at + 4] = struct.pack(
                ">i", draw(INT32 | st.sampled_from([-1, -2, 0x7FFFFFFF]))
            )
    return bytes(data)


def only_protocol_errors(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(ProtocolError):
        fn()


@st.composite
def valid_request(draw: st.DrawFn) -> bytes:
    opcode = draw(OPCODES)
    return encode_request(RequestHeader(draw(INT32), opcode), draw(request_for(opcode)))


@SETTINGS
@given(body=st.binary(max_size=96) | valid_request().flatmap(mutated))
def test_decode_request_raises_only_protocol_errors(body: bytes) -> None:
    only_protocol_errors(lambda: decode_request(body))


@SETTINGS
@given(body=st.binary(max_size=64) | records(ConnectRequest).map(encode).flatmap(mutated))
def test_decode_connect_raises_only_protocol_errors(body: bytes) -> None:
    only_protocol_errors(lambda: decode_connect_request(body))
    only_protocol_errors(lambda: decode_connect_response(body))


@st.composite
def reply_bodies(draw: st.DrawFn) -> tuple[int, bytes]:
    opcode = draw(OPCODES)
    cls = OPS[opcode].response
    body = struct.pack(">iqi", draw(INT32), 1, 0)
    if cls is not None:
        body += encode(draw(records(cls)))
    return opcode, draw(st.just(body) | mutated(body))


@SETTINGS
@given(case=reply_bodies() | st.tuples(OPCODES, st.binary(max_size=96)))
def test_decode_response_raises_only_protocol_errors(case: tuple[int, bytes]) -> None:
    opcode, body = case
    only_protocol_errors(lambda: decode_response(opcode, body))


@pytest.mark.parametrize("cls", ALL_RECORD_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_every_record_decoder_raises_only_protocol_errors(cls: type, data: st.DataObject) -> None:
    record = data.draw(records(cls))
    body = encode(record)
    only_protocol_errors(lambda: decode(cls, data.draw(st.binary(max_size=40))))
    only_protocol_errors(lambda: decode(cls, data.draw(mutated(body))))
    # Trailing bytes are garbage, except one byte after a record whose optional readOnly
    # flag is absent: that byte is the flag.
    extra = data.draw(st.binary(min_size=1, max_size=4))
    optional_flag = cls in (ConnectRequest, ConnectResponse) and record.readOnly is None
    if not (optional_flag and len(extra) == 1):
        with pytest.raises(ProtocolError):
            decode(cls, body + extra)


@SETTINGS
@given(case=valid_request(), extra=st.binary(min_size=1, max_size=4))
def test_trailing_bytes_in_a_request_are_malformed(case: bytes, extra: bytes) -> None:
    try:
        header, _ = decode_request(case)
    except ProtocolError:
        return
    with pytest.raises(MalformedRequest) as info:
        decode_request(case + extra)
    assert (info.value.xid, info.value.opcode) == (header.xid, header.type)


CONNECT = frame(encode_connect_request(ConnectRequest(0, 0, 30000, 0, bytes(16), False)))


@st.composite
def server_streams(draw: st.DrawFn) -> bytes:
    """A byte stream a client could send: raw garbage, or a connect then frames whose
    bodies are valid, mutated or random requests."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=64))
    frames = [CONNECT if draw(st.booleans()) else frame(draw(st.binary(max_size=48)))]
    for _ in range(draw(st.integers(0, 4))):
        body = draw(valid_request() | valid_request().flatmap(mutated) | st.binary(max_size=32))
        frames.append(frame(body))
    stream = b"".join(frames)
    return draw(st.just(stream) | mutated(stream))


@SETTINGS
@given(stream=server_streams(), chunk=st.integers(1, 64))
def test_server_protocol_raises_only_protocol_errors(stream: bytes, chunk: int) -> None:
    server = ServerProtocol(max_packet=4096)
    for start in range(0, len(stream), chunk):
        server.receive_data(stream[start : start + chunk])
        for _ in range(len(stream) + 2):  # each event consumes bytes: bounded
            try:
                event = server.next_event()
            except MalformedRequest:
                continue  # the frame was consumed; the connection goes on
            except ProtocolError:
                return
            if event is NEED_DATA:
                break

"""Round-trip properties: every record, every opcode, both directions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zetcd.proto as proto
from tests.test_proto_strategies import (
    ALL_RECORD_TYPES,
    INT32,
    INT64,
    REPLY_HEADERS,
    REQUEST_HEADERS,
    records,
    request_for,
    response_for,
)
from zetcd.proto import (
    OPS,
    ConnectRequest,
    ConnectResponse,
    ProtocolError,
    ReplyHeader,
    RequestHeader,
    WatcherEvent,
    decode,
    decode_connect_request,
    decode_connect_response,
    decode_request,
    decode_response,
    encode,
    encode_connect_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    encode_request,
    fastpaths,
    jute,
)

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Every opcode's records are already covered per class; these check the header plumbing.
PER_OPCODE = settings(max_examples=8, deadline=None)


def _name(cls: type) -> str:
    return cls.__name__


@pytest.mark.parametrize("cls", ALL_RECORD_TYPES, ids=_name)
@FAST
@given(data=st.data())
def test_record_round_trip(cls: type, data: st.DataObject) -> None:
    record = data.draw(records(cls))
    body = encode(record)
    decoded: Any = decode(cls, body)
    assert decoded == record
    assert type(decoded) is cls
    assert encode(decoded) == body
    assert eval(repr(decoded), vars(proto)) == record  # reprs replay


@pytest.mark.parametrize("cls", fastpaths.HOT_RECORDS, ids=_name)
@FAST
@given(data=st.data())
def test_fast_paths_match_the_schema(cls: type, data: st.DataObject) -> None:
    record = data.draw(records(cls))
    generic = bytearray()
    fastpaths.GENERIC_ENCODERS[cls](generic, record)
    assert encode(record) == bytes(generic)
    # Decode the same bytes, cut anywhere, with both decoders: same value or both fail.
    cut = data.draw(st.integers(0, len(generic)))
    body = bytes(generic[:cut]) + data.draw(st.binary(max_size=3))

    def run(decoder: Any) -> Any:
        reader = jute.Reader(body)
        try:
            return decoder(reader), reader.pos
        except ProtocolError:
            return "error"

    assert run(jute.DECODERS[cls]) == run(fastpaths.GENERIC_DECODERS[cls])


@pytest.mark.parametrize("opcode", sorted(OPS), ids=lambda op: OPS[op].name)
@PER_OPCODE
@given(data=st.data())
def test_request_round_trip(opcode: int, data: st.DataObject) -> None:
    header = RequestHeader(data.draw(INT32), opcode)
    record = data.draw(request_for(opcode))
    assert decode_request(encode_request(header, record)) == (header, record)


@pytest.mark.parametrize("opcode", sorted(OPS), ids=lambda op: OPS[op].name)
@PER_OPCODE
@given(data=st.data())
def test_response_round_trip(opcode: int, data: st.DataObject) -> None:
    header = ReplyHeader(data.draw(INT32.filter(lambda x: x != -1)), data.draw(INT64), 0)
    record = data.draw(response_for(opcode))
    assert decode_response(opcode, encode_reply(header, record)) == (header, record)


@FAST
@given(header=REPLY_HEADERS, opcode=st.sampled_from(sorted(OPS)))
def test_error_replies_have_no_body(header: ReplyHeader, opcode: int) -> None:
    if header.err == 0 or header.xid == -1:
        return
    assert decode_response(opcode, encode_reply(header)) == (header, None)


@FAST
@given(event=records(WatcherEvent), opcode=st.sampled_from([0, *OPS]))
def test_notifications_decode_whatever_the_opcode(event: WatcherEvent, opcode: int) -> None:
    assert decode_response(opcode, encode_notification(event)) == (
        ReplyHeader(-1, -1, 0),
        event,
    )


@FAST
@given(request=records(ConnectRequest))
def test_connect_request_round_trip(request: ConnectRequest) -> None:
    body = encode_connect_request(request)
    assert decode_connect_request(body) == request
    with_byte = len(body) - (0 if request.readOnly is None else 1)
    assert len(body) == with_byte + (request.readOnly is not None)


@FAST
@given(response=records(ConnectResponse))
def test_connect_response_round_trip(response: ConnectResponse) -> None:
    assert decode_connect_response(encode_connect_response(response)) == response


def _bodiless(opcode: int) -> bool:
    return opcode not in OPS or OPS[opcode].request is None


@FAST
@given(header=REQUEST_HEADERS.filter(lambda h: _bodiless(h.type)))
def test_bodiless_and_unknown_requests_carry_only_a_header(header: RequestHeader) -> None:
    body = encode_request(header)
    assert len(body) == 8
    if header.type in OPS:
        assert decode_request(body) == (header, None)
    else:
        with pytest.raises(proto.UnknownOpcode) as info:
            decode_request(body)
        assert (info.value.xid, info.value.opcode) == (header.xid, header.type)


@pytest.mark.parametrize("opcode", sorted(op for op in OPS if OPS[op].request), ids=str)
def test_encode_request_refuses_the_wrong_record(opcode: int) -> None:
    with pytest.raises(proto.EncodeError):
        encode_request(RequestHeader(1, opcode), None)
    wrong = WatcherEvent(1, 3, "/a")
    with pytest.raises(proto.EncodeError):
        encode_request(RequestHeader(1, opcode), wrong)


# Strings are Java strings (UTF-16). Facts from ZooKeeper 3.8.0's jute (BinaryOutputArchive writes
# each UTF-16 unit on its own; readString is new String(bytes, UTF_8)) and Java's String.getBytes.
@pytest.mark.parametrize(
    ("wire", "java"),
    [
        (b"/a/\xc3\xa9", "/a/\u00e9"),  # BMP: plain UTF-8 both ways
        (b"/\xf0\x9f\x98\x80", "/\ud83d\ude00"),  # 4-byte UTF-8: a surrogate pair
        (b"/\xed\xa0\xbd\xed\xb8\x80", "/\ufffd\ufffd"),  # CESU-8 in: one U+FFFD per surrogate
        (b"\xff/", "\ufffd/"),
    ],
)
def test_strings_decode_as_java_does(wire: bytes, java: str) -> None:
    assert proto.jute.decode_ustring(wire) == java


def test_strings_outside_the_bmp_are_written_back_in_cesu8() -> None:
    out = bytearray()
    proto.jute.write_ustring(out, proto.jute.decode_ustring(b"/\xf0\x9f\x98\x80"))
    assert bytes(out) == b"\x00\x00\x00\x07/\xed\xa0\xbd\xed\xb8\x80"
    out = bytearray()
    proto.jute.write_ustring(out, "/\U0001f600")  # what a UTF-8 client program sends
    assert bytes(out) == b"\x00\x00\x00\x05/\xf0\x9f\x98\x80"


def test_java_utf8_joins_pairs_and_replaces_lone_surrogates() -> None:
    assert proto.jute.java_utf8("/\ud83d\ude00") == "/\U0001f600".encode()
    assert proto.jute.java_utf8("a\ud83d b\ude00") == b"a? b?"
    assert proto.jute.java_utf8("caf\u00e9") == "caf\u00e9".encode()


def test_a_lone_surrogate_is_written_as_jute_writes_it() -> None:
    out = bytearray()
    proto.jute.write_ustring(out, "\ud800")
    assert bytes(out) == b"\x00\x00\x00\x03\xed\xa0\x80"

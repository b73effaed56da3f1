"""Known bytes, computed by hand from zookeeper.jute and ZooKeeper's hand-written
serializers; each is decoded and re-encoded to the identical bytes."""

from __future__ import annotations

from typing import Any

import pytest

from zetcd.proto import (
    ACL,
    DEFAULT_MAX_PACKET,
    CheckVersionRequest,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    EncodeError,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    Id,
    MalformedRequest,
    MultiOp,
    MultiRequest,
    MultiResponse,
    MultiResult,
    ProtocolError,
    ReplyHeader,
    RequestHeader,
    Stat,
    SyncResponse,
    UnknownOpcode,
    WatcherEvent,
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
    frame,
)


def h(text: str) -> bytes:
    """Hex with spaces and | separators for readability."""
    return bytes.fromhex(text.replace("|", ""))


STAT = Stat(1, 2, 3, 4, 5, 6, 7, 0, 9, 10, 11)
STAT_BYTES = h(
    "0000000000000001 0000000000000002 0000000000000003 0000000000000004"
    " 00000005 00000006 00000007 0000000000000000 00000009 0000000a 000000000000000b"
)
PASSWD = bytes(range(16))

REQUESTS: list[tuple[str, RequestHeader, Any, bytes]] = [
    ("ping", RequestHeader(-2, 11), None, h("fffffffe 0000000b")),
    ("closeSession", RequestHeader(7, -11), None, h("00000007 fffffff5")),
    (
        "getData watch",
        RequestHeader(1, 4),
        GetDataRequest("/a", True),
        h("00000001 00000004 | 00000002 2f61 | 01"),
    ),
    (
        "multi create+check+delete",
        RequestHeader(3, 14),
        MultiRequest(
            (
                MultiOp(1, CreateRequest("/a", b"", (ACL(31, Id("world", "anyone")),), 0)),
                MultiOp(13, CheckVersionRequest("/a", 5)),
                MultiOp(2, DeleteRequest("/a", -1)),
            )
        ),
        h(
            "00000003 0000000e"
            # MultiHeader(create, false, -1) CreateRequest
            " | 00000001 00 ffffffff | 00000002 2f61 | 00000000 | 00000001"
            " 0000001f 00000005 776f726c64 00000006 616e796f6e65 | 00000000"
            # MultiHeader(check, false, -1) CheckVersionRequest
            " | 0000000d 00 ffffffff | 00000002 2f61 | 00000005"
            # MultiHeader(delete, false, -1) DeleteRequest
            " | 00000002 00 ffffffff | 00000002 2f61 | ffffffff"
            # MultiHeader(-1, true, -1)
            " | ffffffff 01 ffffffff"
        ),
    ),
]


@pytest.mark.parametrize(
    ("name", "header", "record", "body"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
def test_known_requests(name: str, header: RequestHeader, record: Any, body: bytes) -> None:
    assert encode_request(header, record) == body
    assert decode_request(body) == (header, record)


def test_ping_frame() -> None:
    assert frame(encode_request(RequestHeader(-2, 11))) == h("00000008 fffffffe 0000000b")


# opcode, header, record, body
REPLIES: list[tuple[str, int, ReplyHeader, Any, bytes]] = [
    ("ping", 11, ReplyHeader(-2, 0x10, 0), None, h("fffffffe 0000000000000010 00000000")),
    ("exists NoNode", 3, ReplyHeader(4, 9, -101), None, h("00000004 0000000000000009 ffffff9b")),
    (
        "getData",
        4,
        ReplyHeader(5, 9, 0),
        GetDataResponse(b"hi", STAT),
        h("00000005 0000000000000009 00000000 | 00000002 6869") + STAT_BYTES,
    ),
    (
        "getData null data",
        4,
        ReplyHeader(5, 9, 0),
        GetDataResponse(None, STAT),
        h("00000005 0000000000000009 00000000 | ffffffff") + STAT_BYTES,
    ),
    (
        "getData empty data",
        4,
        ReplyHeader(5, 9, 0),
        GetDataResponse(b"", STAT),
        h("00000005 0000000000000009 00000000 | 00000000") + STAT_BYTES,
    ),
    (
        "getChildren null vector",
        8,
        ReplyHeader(6, 9, 0),
        GetChildrenResponse(None),
        h("00000006 0000000000000009 00000000 | ffffffff"),
    ),
    (
        "getChildren empty vector",
        8,
        ReplyHeader(6, 9, 0),
        GetChildrenResponse(()),
        h("00000006 0000000000000009 00000000 | 00000000"),
    ),
    (
        "getChildren null and empty names",
        8,
        ReplyHeader(6, 9, 0),
        GetChildrenResponse((None, "", "b")),
        h("00000006 0000000000000009 00000000 | 00000003 ffffffff 00000000 00000001 62"),
    ),
    (
        "sync null vs empty path",
        9,
        ReplyHeader(7, 9, 0),
        SyncResponse(""),
        h("00000007 0000000000000009 00000000 | 00000000"),
    ),
    (
        # Probed on 3.8.0: create ok, check BadVersion, delete after it: header err 0,
        # every result an error result: ops before the failure 0, after it -2.
        "multi failure create/check/delete",
        14,
        ReplyHeader(8, 0x20, 0),
        MultiResponse((MultiResult.error(0), MultiResult.error(-103), MultiResult.error(-2))),
        h(
            "00000008 0000000000000020 00000000"
            " | ffffffff 00 00000000 | 00000000"
            " | ffffffff 00 ffffff99 | ffffff99"
            " | ffffffff 00 fffffffe | fffffffe"
            " | ffffffff 01 ffffffff"
        ),
    ),
    (
        "multi success create/check/delete",
        14,
        ReplyHeader(8, 0x21, 0),
        MultiResponse(
            (
                MultiResult(1, 0, CreateResponse("/a")),
                MultiResult(13, 0, None),
                MultiResult(2, 0, None),
            )
        ),
        h(
            "00000008 0000000000000021 00000000"
            " | 00000001 00 00000000 | 00000002 2f61"
            " | 0000000d 00 00000000 | 00000002 00 00000000 | ffffffff 01 ffffffff"
        ),
    ),
    (
        # a multi that fails before it has a txn (a null path): MarshallingError in the
        # header, and the result list's end marker all the same (a live 3.8 server)
        "multi-marshalling-error",
        14,
        ReplyHeader(9, 0x21, -14),
        MultiResponse(()),
        h("00000009 0000000000000021 fffffff2 | ffffffff 01 ffffffff"),
    ),
]


@pytest.mark.parametrize(
    ("name", "opcode", "header", "record", "body"), REPLIES, ids=[r[0] for r in REPLIES]
)
def test_known_replies(
    name: str, opcode: int, header: ReplyHeader, record: Any, body: bytes
) -> None:
    assert encode_reply(header, record) == body
    assert decode_response(opcode, body) == (header, record)


def test_known_notification() -> None:
    body = encode_notification(WatcherEvent(3, 3, "/a"))
    assert body == h("ffffffff ffffffffffffffff 00000000 | 00000003 00000003 00000002 2f61")


CONNECT_44 = h("00000000 0000000000000000 00007530 0000000000000000 00000010") + PASSWD
CONNECT_45 = CONNECT_44 + b"\x00"


def test_connect_request_44_and_45_bytes() -> None:
    assert len(CONNECT_44) == 44
    old = ConnectRequest(0, 0, 30000, 0, PASSWD)
    new = ConnectRequest(0, 0, 30000, 0, PASSWD, False)
    assert decode_connect_request(CONNECT_44) == old
    assert decode_connect_request(CONNECT_45) == new
    assert encode_connect_request(old) == CONNECT_44
    assert encode_connect_request(new) == CONNECT_45
    assert decode_connect_request(CONNECT_44 + b"\x01").readOnly is True
    # bytes after the readOnly byte are ignored, as ZooKeeper does
    assert decode_connect_request(CONNECT_45 + b"\x00\x07") == new
    with pytest.raises(ProtocolError):
        decode_connect_request(CONNECT_44[:-1])


def test_connect_response_with_and_without_read_only() -> None:
    base = h("00000000 00009c40 0000000000000abc 00000010") + PASSWD
    assert decode_connect_response(base) == ConnectResponse(0, 40000, 0xABC, PASSWD)
    assert decode_connect_response(base + b"\x00") == ConnectResponse(
        0, 40000, 0xABC, PASSWD, False
    )
    assert encode_connect_response(ConnectResponse(0, 40000, 0xABC, PASSWD)) == base
    expired = ConnectResponse(0, 0, 0, bytes(16), False)
    assert encode_connect_response(expired) == bytes(16) + h("00000010") + bytes(16) + b"\x00"


def test_nonzero_boolean_is_true_like_java() -> None:
    body = h("00000001 00000004 | 00000002 2f61 | 07")
    assert decode_request(body)[1] == GetDataRequest("/a", True)
    assert encode_request(RequestHeader(1, 4), GetDataRequest("/a", True))[-1] == 1


def test_malformed_utf8_decodes_as_java_does() -> None:
    """Java's new String(bytes, UTF_8) replaces bad bytes with U+FFFD; so does the codec, and
    ZooKeeper's path rules then reject the path (BadArguments / NoNode), not the frame."""
    _header, record = decode_request(h("00000001 00000004 | 00000003 2fc328 01"))
    assert record == GetDataRequest("/\ufffd(", True)
    cesu8_emoji = "2f eda0bd edb880"  # "/" + U+1F600 as a Java client writes it
    body = h(f"00000001 00000004 | 00000007 {cesu8_emoji} 00")
    _, record = decode_request(body)
    assert isinstance(record, GetDataRequest) and "\ufffd" in (record.path or "")


def test_unknown_opcode_carries_xid_and_opcode() -> None:
    with pytest.raises(UnknownOpcode) as info:
        decode_request(h("0000002a 000003e7"))
    assert (info.value.xid, info.value.opcode) == (42, 999)
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (h("00000001 00000004 | 00000002 2f61"), "truncated"),
        (h("00000001 00000004 | 00000002 2f61 01 00"), "trailing"),
        (h("00000001 00000004 | fffffffe 01"), "negative"),
        (h("00000001 00000004 | 7fffffff 01"), "exceeds"),
        (h("00000001 0000000b | 00"), "bodiless"),
        (h("00000001 00000008 | 00000002 2f61"), "truncated"),
        (h("00000001 0000000e | 00000003 00 ffffffff"), "invalid op"),
        (h("00000001 0000000e | 00000001 00 ffffffff"), "truncated"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_bodies_name_xid_and_opcode(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedRequest) as info:
        decode_request(body)
    assert info.value.xid == 1
    assert reason in str(info.value)


def test_mixed_multi_is_malformed() -> None:
    body = encode_request(
        RequestHeader(1, 22), MultiRequest((MultiOp(4, GetDataRequest("/a", False)),))
    )
    check = h("0000000d 00 ffffffff 00000002 2f61 00000001")
    end = h("ffffffff 01 ffffffff")
    mixed = body[: -len(end)] + check + end
    with pytest.raises(MalformedRequest, match="mixes"):
        decode_request(mixed)


def test_huge_vector_count_fails_before_reading_items() -> None:
    with pytest.raises(ProtocolError, match="cannot fit"):
        decode_response(8, h("00000001 0000000000000009 00000000 7fffffff 00000001 61"))


def test_default_max_packet_is_the_servers_frame_limit() -> None:
    # NIOServerCnxn.readLength: len < 0 || len > jute.maxbuffer (0xfffff) closes.
    assert DEFAULT_MAX_PACKET == 0xFFFFF


def test_negative_vector_count_other_than_null_is_empty() -> None:
    # BinaryInputArchive: -1 is null, any other negative count an index that is done at once
    for count in ("fffffffe", "80000000"):
        _, body = decode_response(8, h(f"00000001 0000000000000009 00000000 {count}"))
        assert body == GetChildrenResponse(())


@pytest.mark.parametrize(
    "record",
    [
        DeleteRequest("/a", 2**31),  # int out of range
        MultiRequest((MultiOp(4, CreateRequest("/a", b"", None, 0)),)),  # wrong op record
        MultiRequest(
            (MultiOp(4, GetDataRequest("/a", False)), MultiOp(2, DeleteRequest("/a", -1)))
        ),  # mixes read and write ops
        MultiResponse((MultiResult(2, 0, GetDataResponse(b"", STAT)),)),  # delete has no body
        MultiResponse((MultiResult(99, 0, None),)),  # no such result type
        GetDataResponse(b"", None),  # type: ignore[arg-type]  # a Stat is never null
    ],
    ids=["int-range", "wrong-op", "mixed", "body", "type", "null-stat"],
)
def test_unencodable_records_raise_encode_error(record: Any) -> None:
    with pytest.raises(EncodeError):
        encode(record)


def test_encode_error_is_not_a_protocol_error() -> None:
    assert not issubclass(EncodeError, ProtocolError)
    with pytest.raises(EncodeError):
        encode_reply(ReplyHeader(1, 2**63, 0))
    with pytest.raises(EncodeError):
        encode_notification(GetDataRequest("/a", True))  # type: ignore[arg-type]

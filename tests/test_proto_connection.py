"""Framing and the sans-I/O connection state machines, fed whole, one byte at a time and
with trailing bytes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_proto_strategies import INT32, records, request_for, response_for
from zetcd.proto import (
    DEFAULT_MAX_PACKET,
    FOUR_LETTER_WORDS,
    NEED_DATA,
    OPS,
    ClientProtocol,
    Connect,
    ConnectRequest,
    ConnectResponse,
    CreateSessionTxn,
    ExistsRequest,
    FourLetterWord,
    FrameReader,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    MalformedRequest,
    Notification,
    ProtocolError,
    Reply,
    ReplyHeader,
    Request,
    RequestHeader,
    ServerProtocol,
    ServerState,
    Stat,
    UnknownOpcode,
    WatcherEvent,
    encode_connect_request,
    encode_request,
    frame,
)

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONNECT_REQUEST = ConnectRequest(0, 0, 30000, 0, bytes(16), False)
STAT = Stat(1, 2, 3, 4, 0, 0, 0, 0, 2, 0, 1)


def drain(proto: Any) -> list[Any]:
    events = []
    while (event := proto.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def feed_whole(proto: Any, data: bytes) -> list[Any]:
    proto.receive_data(data)
    return drain(proto)


def feed_bytewise(proto: Any, data: bytes) -> list[Any]:
    events = []
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
        events += drain(proto)
    return events


# --- FrameReader ----------------------------------------------------------------------


@SETTINGS
@given(bodies=st.lists(st.binary(max_size=40), max_size=5), bytewise=st.booleans())
def test_frame_reader_returns_the_bodies(bodies: list[bytes], bytewise: bool) -> None:
    stream = b"".join(frame(b) for b in bodies)
    reader = FrameReader()
    out: list[bytes] = []
    chunks = [stream[i : i + 1] for i in range(len(stream))] if bytewise else [stream]
    for chunk in chunks:
        reader.feed(chunk)
        while (body := reader.next_frame()) is not None:
            out.append(body)
    assert out == bodies
    assert reader.buffered == 0


def test_frame_reader_checks_the_length_before_the_body() -> None:
    reader = FrameReader()
    reader.feed(struct.pack(">i", DEFAULT_MAX_PACKET))
    assert reader.next_frame() is None  # the largest body ZooKeeper accepts: wait for it
    for bad in (DEFAULT_MAX_PACKET + 1, -1, -(2**31)):
        reader = FrameReader()
        reader.feed(struct.pack(">i", bad))
        with pytest.raises(ProtocolError):
            reader.next_frame()


def test_frame_reader_honours_its_max_packet() -> None:
    reader = FrameReader(max_packet=10)
    reader.feed(frame(b"x" * 10) + struct.pack(">i", 11))
    assert reader.next_frame() == b"x" * 10
    with pytest.raises(ProtocolError):
        reader.next_frame()


def test_frame_reader_compacts_a_long_stream() -> None:
    reader = FrameReader()
    body = b"y" * 1000
    for _ in range(200):
        reader.feed(frame(body) + frame(body)[:3])
        assert reader.next_frame() == body
        reader.feed(frame(body)[3:])
        assert reader.next_frame() == body
    assert reader.buffered == 0


@pytest.mark.parametrize("word", sorted(FOUR_LETTER_WORDS))
def test_sniff_every_four_letter_word(word: str) -> None:
    reader = FrameReader()
    reader.feed(word[:2].encode())
    assert reader.sniff_four_letter_word() is NEED_DATA
    reader.feed(word[2:].encode() + b"\n")
    assert reader.sniff_four_letter_word() == word
    assert reader.sniff_four_letter_word() is None  # decided once
    assert reader.take(1) == b"\n"


def test_sniff_a_normal_frame_or_an_unknown_word() -> None:
    reader = FrameReader()
    reader.feed(frame(b"abc"))
    assert reader.sniff_four_letter_word() is None
    assert reader.next_frame() == b"abc"
    reader = FrameReader()
    reader.feed(b"abcd")
    assert reader.sniff_four_letter_word() is None
    with pytest.raises(ProtocolError):  # read as a length, far too large: ZooKeeper closes
        reader.next_frame()


# --- ServerProtocol -------------------------------------------------------------------


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """A connect and some requests, with the events the server must produce."""
    connect = draw(records(ConnectRequest))
    stream = [frame(encode_connect_request(connect))]
    expected: list[Any] = [Connect(connect)]
    for _ in range(draw(st.integers(0, 4))):
        opcode = draw(st.sampled_from(sorted(OPS)))
        header = RequestHeader(draw(INT32), opcode)
        record = draw(request_for(opcode))
        stream.append(frame(encode_request(header, record)))
        expected.append(Request(header, record))
    return b"".join(stream), expected


@SETTINGS
@given(case=client_streams())
def test_server_events_whole_and_bytewise(case: tuple[bytes, list[Any]]) -> None:
    stream, expected = case
    assert feed_whole(ServerProtocol(), stream) == expected
    assert feed_bytewise(ServerProtocol(), stream) == expected


@pytest.mark.parametrize("word", ["ruok", "srvr", "envi", "mntr", "isro"])
def test_server_four_letter_word(word: str) -> None:
    server = ServerProtocol()
    assert feed_bytewise(server, word.encode()) == [FourLetterWord(word)]
    assert server.state is ServerState.FOUR_LETTER_WORD
    assert feed_whole(server, b"\n" + CONNECT_FRAME) == []  # ignored: the server will close


def test_server_stmk_takes_only_the_trace_mask_that_came_with_it() -> None:
    """As ZooKeeper, which reads the mask once, right after the word: a mask that comes later
    is not waited for."""
    mask = struct.pack(">q", 0x1F2)
    assert feed_whole(ServerProtocol(), b"stmk" + mask) == [FourLetterWord("stmk", 0x1F2)]
    assert feed_bytewise(ServerProtocol(), b"stmk" + mask) == [FourLetterWord("stmk", None)]
    assert feed_whole(ServerProtocol(), b"stmk" + mask[:3]) == [FourLetterWord("stmk", None)]


CONNECT_FRAME = frame(encode_connect_request(CONNECT_REQUEST))


def test_server_connect_then_requests_with_trailing_bytes_in_a_frame() -> None:
    server = ServerProtocol()
    good = frame(encode_request(RequestHeader(1, 4), GetDataRequest("/a", True)))
    trailing = frame(encode_request(RequestHeader(2, 4), GetDataRequest("/a", True)) + b"\x00")
    server.receive_data(CONNECT_FRAME + good + trailing + good)
    assert server.next_event() == Connect(CONNECT_REQUEST)
    assert server.next_event() == Request(RequestHeader(1, 4), GetDataRequest("/a", True))
    with pytest.raises(MalformedRequest) as info:
        server.next_event()
    assert (info.value.xid, info.value.opcode) == (2, 4)
    assert server.state is ServerState.CONNECTED  # a malformed body is not fatal
    assert server.next_event() == Request(RequestHeader(1, 4), GetDataRequest("/a", True))
    assert server.next_event() is NEED_DATA


def test_server_closes_after_an_unknown_opcode() -> None:
    server = ServerProtocol()
    server.receive_data(CONNECT_FRAME + frame(struct.pack(">ii", 9, 999)) + frame(b"\0" * 8))
    assert isinstance(server.next_event(), Connect)
    with pytest.raises(UnknownOpcode) as info:
        server.next_event()
    assert (info.value.xid, info.value.opcode) == (9, 999)
    assert server.state is ServerState.CLOSED
    with pytest.raises(ProtocolError):
        server.next_event()


@pytest.mark.parametrize(
    "stream",
    [
        frame(b"\0" * 10),  # truncated connect
        struct.pack(">i", DEFAULT_MAX_PACKET + 1),  # oversized first frame
        b"abcd",  # not a four-letter word ZooKeeper knows: a huge length
    ],
    ids=["connect-truncated", "oversized", "unknown-word"],
)
def test_server_bad_openings_close(stream: bytes) -> None:
    server = ServerProtocol()
    server.receive_data(stream)
    with pytest.raises(ProtocolError):
        server.next_event()
    assert server.state is ServerState.CLOSED


def test_server_ignores_bytes_after_the_connect_requests_read_only_byte() -> None:
    server = ServerProtocol()
    server.receive_data(frame(encode_connect_request(CONNECT_REQUEST) + b"\0\7"))
    assert server.next_event() == Connect(CONNECT_REQUEST)


def test_server_send_helpers_frame_their_bytes() -> None:
    server = ServerProtocol()
    response = ConnectResponse(0, 30000, 0x1234, bytes(16), False)
    client = ClientProtocol()
    client.send_connect(CONNECT_REQUEST)
    client.send_request(RequestHeader(1, 4), GetDataRequest("/a", True))
    stream = (
        server.send_connect_response(response)
        + server.send_notification(WatcherEvent(3, 3, "/a"))
        + server.send_reply(ReplyHeader(1, 7, 0), GetDataResponse(b"x", STAT))
    )
    assert feed_bytewise(client, stream) == [
        response,
        Notification(WatcherEvent(3, 3, "/a")),
        Reply(ReplyHeader(1, 7, 0), GetDataResponse(b"x", STAT)),
    ]


# --- ClientProtocol -------------------------------------------------------------------


@st.composite
def server_streams(draw: st.DrawFn) -> tuple[ClientProtocol, bytes, list[Any]]:
    """A client with outstanding requests, the server's replies and the client events."""
    client = ClientProtocol()
    client.send_connect(CONNECT_REQUEST)
    response = draw(records(ConnectResponse))
    server = ServerProtocol()
    stream = [server.send_connect_response(response)]
    expected: list[Any] = [response]
    for xid in range(1, draw(st.integers(1, 5))):
        opcode = draw(st.sampled_from(sorted(OPS)))
        client.send_request(RequestHeader(xid, opcode), draw(request_for(opcode)))
        if draw(st.booleans()):
            event = draw(records(WatcherEvent))
            stream.append(server.send_notification(event))
            expected.append(Notification(event))
        err = draw(st.sampled_from([0, 0, -101]))
        header = ReplyHeader(xid, draw(INT32), err)
        body = draw(response_for(opcode)) if err == 0 else None
        stream.append(server.send_reply(header, body))
        expected.append(Reply(header, body))
    return client, b"".join(stream), expected


@SETTINGS
@given(case=server_streams(), bytewise=st.booleans())
def test_client_events_whole_and_bytewise(
    case: tuple[ClientProtocol, bytes, list[Any]], bytewise: bool
) -> None:
    client, stream, expected = case
    feed = feed_bytewise if bytewise else feed_whole
    assert feed(client, stream) == expected


def test_client_pings_and_duplicate_xids_match_in_order() -> None:
    client = ClientProtocol()
    client.send_connect(CONNECT_REQUEST)
    client.send_request(RequestHeader(-2, 11))
    client.send_request(RequestHeader(-2, 11))
    client.send_request(RequestHeader(5, 3), ExistsRequest("/a", False))
    server = ServerProtocol()
    stream = (
        server.send_connect_response(ConnectResponse(0, 30000, 1, bytes(16)))
        + server.send_reply(ReplyHeader(-2, 9, 0))
        + server.send_reply(ReplyHeader(-2, 9, 0))
        + server.send_reply(ReplyHeader(5, 9, -101))
    )
    events = feed_whole(client, stream)
    assert events[1:] == [
        Reply(ReplyHeader(-2, 9, 0), None),
        Reply(ReplyHeader(-2, 9, 0), None),
        Reply(ReplyHeader(5, 9, -101), None),
    ]
    client.receive_data(server.send_reply(ReplyHeader(-2, 9, 0)))
    with pytest.raises(ProtocolError, match="no outstanding"):
        client.next_event()


def test_client_takes_a_bare_connect_response_as_a_create_sessions_reply() -> None:
    """ZooKeeper answers createSession (-10) inside a session with a bare ConnectResponse frame;
    a 36-byte reply with xid 0 to an earlier request stays that request's, and a createSession
    answered MarshallingError (a header with its xid) is no longer waiting for one."""
    client = ClientProtocol()
    client.send_connect(CONNECT_REQUEST)
    again = ConnectResponse(0, 30000, 7, bytes(16), False)
    client.send_request(RequestHeader(0, 8), GetChildrenRequest("/a", False))
    client.send_request(RequestHeader(5, -10), CreateSessionTxn(1000))
    client.send_request(RequestHeader(6, -10), CreateSessionTxn(1000))
    server = ServerProtocol()
    twelve = GetChildrenResponse(("c" * 12,))
    stream = (
        server.send_connect_response(ConnectResponse(0, 30000, 7, bytes(16), False))
        + server.send_reply(ReplyHeader(0, 9, 0), twelve)
        + server.send_connect_response(again)
        + server.send_reply(ReplyHeader(6, 10, -5))
    )
    assert len(server.send_reply(ReplyHeader(0, 9, 0), twelve)) == 4 + 36  # looks like one
    events = feed_whole(client, stream)
    assert events[1:] == [
        Reply(ReplyHeader(0, 9, 0), twelve),
        Reply(ReplyHeader(5, -1, 0), again),
        Reply(ReplyHeader(6, 10, -5), None),
    ]
    client.receive_data(server.send_connect_response(again))
    with pytest.raises(ProtocolError, match="no outstanding"):
        client.next_event()


def test_client_misuse_and_trailing_bytes() -> None:
    client = ClientProtocol()
    with pytest.raises(ProtocolError):
        client.send_request(RequestHeader(1, 11))
    client.receive_data(frame(b"\0" * 36))
    with pytest.raises(ProtocolError):
        client.next_event()
    client = ClientProtocol()
    client.send_connect(CONNECT_REQUEST)
    client.send_request(RequestHeader(1, 11))
    server = ServerProtocol()
    client.receive_data(server.send_connect_response(ConnectResponse(0, 1, 1, bytes(16))))
    client.receive_data(frame(struct.pack(">iqi", 1, 9, 0) + b"\x00"))
    assert isinstance(client.next_event(), ConnectResponse)
    with pytest.raises(ProtocolError):
        client.next_event()

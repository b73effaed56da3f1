"""Real clients against a real ZooKeeper 3.8, replayed through the connection state
machines one byte at a time.

``tests/golden/*.json`` (recorded by ``tools/record_relay.py``) hold the frame bodies of one
connection each way. The client's bytes go through :class:`ServerProtocol`, the server's
through :class:`ClientProtocol` (primed with the client's requests), and every event must
re-encode to the recorded bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zetcd.proto import (
    NEED_DATA,
    ClientProtocol,
    Connect,
    ConnectResponse,
    FourLetterWord,
    Notification,
    Reply,
    Request,
    ServerProtocol,
    encode_connect_request,
    encode_connect_response,
    encode_notification,
    encode_reply,
    encode_request,
    frame,
)

RECORDINGS = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _bytewise(proto: Any, data: bytes) -> list[Any]:
    events = []
    for i in range(len(data)):
        proto.receive_data(data[i : i + 1])
        while (event := proto.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def _server_bytes(event: Any) -> bytes:
    if isinstance(event, Connect):
        return encode_connect_request(event.request)
    assert isinstance(event, Request)
    return encode_request(event.header, event.body)


def _client_bytes(event: Any) -> bytes:
    if isinstance(event, ConnectResponse):
        return encode_connect_response(event)
    if isinstance(event, Notification):
        return encode_notification(event.event)
    assert isinstance(event, Reply)
    return encode_reply(event.header, event.body)


@pytest.mark.skipif(not RECORDINGS, reason="no recordings in tests/golden")
@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_recording_replays_through_both_ends(path: Path) -> None:
    frames = json.loads(path.read_text())["frames"]
    raw = [bytes.fromhex(f["hex"]) for f in frames if f["dir"] == "c2s-raw"]
    if raw:  # a four-letter-word connection
        server = ServerProtocol()
        events = _bytewise(server, b"".join(raw))
        assert events == [FourLetterWord(raw[0][:4].decode())]
        return
    sent = [bytes.fromhex(f["hex"]) for f in frames if f["dir"] == "c2s"]
    received = [bytes.fromhex(f["hex"]) for f in frames if f["dir"] == "s2c"]

    server_events = _bytewise(ServerProtocol(), b"".join(frame(b) for b in sent))
    assert [_server_bytes(e) for e in server_events] == sent

    client = ClientProtocol()
    for event in server_events:
        if isinstance(event, Connect):
            assert client.send_connect(event.request) == frame(sent[0])
        else:
            client.send_request(event.header, event.body)
    client_events = _bytewise(client, b"".join(frame(b) for b in received))
    assert [_client_bytes(e) for e in client_events] == received

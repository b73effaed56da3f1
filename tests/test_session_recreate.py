"""createSession (op -10) sent inside an established session, on ZooKeeper 3.8 and on zetcd
with the same assertions (docs/zk-facts.md §7): a body of 4 bytes or more is answered with the
session's ConnectResponse again as a bare frame, spends a zxid, keeps the connection, and moves
the session's expiry to now + the timeout it carries (sooner or later than its own), until the
client is next heard from; a shorter body is a MarshallingError that spends a zxid too."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from kazoo.client import KazooClient

from tests.differential import Diff
from tests.rawclient import RawClient
from zetcd.proto.codec import decode_reply_header, encode_connect_response
from zetcd.proto.constants import Err, OpCode
from zetcd.proto.framing import frame
from zetcd.proto.records import (
    ACL,
    CreateRequest,
    CreateSessionTxn,
    ExistsRequest,
    Id,
    RequestHeader,
)

OPEN = (ACL(31, Id("world", "anyone")),)
Transcript = list[tuple[str, object]]


def _create_session(c: RawClient, body: bytes) -> int:
    """Send a createSession with ``body`` after its header; returns the xid used."""
    c.xid += 1
    c.send_raw(frame(struct.pack(">ii", c.xid, OpCode.CREATE_SESSION) + body))
    return c.xid


def _both(diff: Diff, transcript: Callable[[str], Transcript]) -> None:
    """Run ``transcript`` on both servers at once (each waits out timeouts of its own)."""
    with ThreadPoolExecutor(2) as pool:
        zk = pool.submit(transcript, diff.zookeeper)
        z = pool.submit(transcript, diff.zetcd)
        assert z.result() == zk.result()


def _wire_transcript(address: str, read_only: bool | None) -> Transcript:
    root = f"/recreate-{uuid.uuid4().hex[:10]}"
    out: Transcript = []
    with RawClient(address) as c:
        hello = c.connect(timeout=10000, read_only=read_only)
        created = c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        # the timeout, then bytes ZooKeeper never reads
        _create_session(c, struct.pack(">i", 30000) + b"ignored")
        again = c.raw_reply()
        out.append(("bare ConnectResponse, as at connect", again == encode_connect_response(hello)))
        out.append(("its size", len(again)))
        _create_session(c, b"\x00\x01")
        short = decode_reply_header(c.raw_reply())
        out.append(("short body", short.err))
        after = c.call(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0))
        out.append(("create after", after.header.err))
        z0, z1, z2 = created.header.zxid, short.zxid, after.header.zxid
        # the -10 and the -5 each spent one (zetcd: at least one, others may write meanwhile)
        out.append(("zxids spent", z1 - z0 >= 2 and z2 > z1))
        # pipelined with a read: the bare frame leaves in request order (and our client
        # takes it as the createSession's reply)
        c.request(OpCode.CREATE_SESSION, CreateSessionTxn(30000))
        c.request(OpCode.EXISTS, ExistsRequest(root, False))
        first = c.reply()
        out.append(("first, the ConnectResponse", (first.header.err, first.body == hello)))
        out.append(("then the read", c.reply().header.err))
    return out


@pytest.mark.parametrize("read_only", [None, False, True], ids=["no-ro-byte", "rw", "ro"])
def test_a_create_session_inside_a_session_is_answered_as_zookeeper_does(
    diff: Diff, read_only: bool | None
) -> None:
    expected = _wire_transcript(diff.zookeeper, read_only)
    assert ("short body", Err.MARSHALLING_ERROR) in expected
    assert _wire_transcript(diff.zetcd, read_only) == expected


@contextlib.contextmanager
def _told(address: str, timeout: int, told: int) -> Iterator[tuple[RawClient, threading.Event]]:
    """A session of ``timeout`` ms that holds an ephemeral a kazoo client watches, then told
    ``told`` ms by a createSession: its raw client, and the event set when the ephemeral goes."""
    path = f"/recreate-{uuid.uuid4().hex[:10]}"
    owner = RawClient(address)
    obs = KazooClient(hosts=address, timeout=10)
    try:
        owner.connect(timeout=timeout)
        owner.call(OpCode.CREATE, CreateRequest(path, b"", OPEN, 1))
        obs.start(timeout=15)
        gone = threading.Event()
        obs.exists(path, watch=lambda ev: gone.set())
        _create_session(owner, struct.pack(">i", told))
        owner.raw_reply()
        yield owner, gone
    finally:
        obs.stop()
        obs.close()
        owner.close()


def _shortened_transcript(address: str) -> Transcript:
    """A 20 s session told a timeout of 0.5 s, then silent with its connection open: it expires
    within a few seconds (ZooKeeper: at the tick after), its connection is closed. (With 0,
    ZooKeeper may expire it before its answer leaves.)"""
    with _told(address, 20000, 500) as (owner, gone):
        started = time.monotonic()
        deleted = gone.wait(12)
        took = time.monotonic() - started
        closed = owner.is_closed(5.0)
    return [("ephemeral deleted", deleted), ("well before 20 s", took < 12), ("closed", closed)]


def test_a_create_session_inside_a_session_can_shorten_its_expiry(diff: Diff) -> None:
    _both(diff, _shortened_transcript)


def _lengthened_transcript(address: str) -> Transcript:
    """A 4 s session told a timeout of 12 s, then its connection dropped without closeSession:
    it lives past its own timeout and expires about 12 s after the request."""
    with _told(address, 4000, 12000) as (owner, gone):
        started = time.monotonic()
        owner.close()
        alive_at_8s = not gone.wait(8)
        deleted = gone.wait(15)
        took = time.monotonic() - started
    return [("alive 8 s after", alive_at_8s), ("deleted", deleted), ("by 20 s", took < 20)]


@pytest.mark.timeout(120)
def test_a_create_session_inside_a_session_can_lengthen_its_expiry(diff: Diff) -> None:
    _both(diff, _lengthened_transcript)


def test_a_client_heard_after_the_create_session_keeps_its_own_timeout(diff: Diff) -> None:
    """After a createSession with a timeout of 1 s, the client's next request (a ping is
    enough) puts the session back on its own timeout."""

    def transcript(address: str) -> Transcript:
        with RawClient(address) as c:
            c.connect(timeout=20000)
            _create_session(c, struct.pack(">i", 1000))
            c.raw_reply()
            c.send_raw(c.proto.send_request(RequestHeader(-2, OpCode.PING), None))
            ping = c.reply().header.err
            time.sleep(5)  # past a tick and past zetcd's check of its deadline
            c.send_raw(c.proto.send_request(RequestHeader(-2, OpCode.PING), None))
            return [("ping", ping), ("alive after 5 s", c.reply().header.err)]

    _both(diff, transcript)

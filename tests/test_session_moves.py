"""A session moved to another server, against a live three-server ZooKeeper ensemble.

A client resumes its session on a second server while its connection to the first stays open
(docs/zk-facts.md, "Session moves"). On ZooKeeper the first server, a follower, leaves that old
connection open: it serves reads, sync and pings and gets its watches' events; a write on it
closes it without a reply; a closeSession on it ends the session. zetcd behaves as a follower
does on every zetcd: the same story, told by two ZooKeeper followers and by two zetcds sharing
one etcd prefix, must read the same.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.rawclient import Closed, RawClient
from tests.servers import ZooKeeperEnsemble
from tests.test_sessions import twin_zetcds  # noqa: F401 (a fixture, used by name)
from tests.zetcd_server import ZetcdServer
from zetcd.proto.connection import Notification
from zetcd.proto.constants import OpCode
from zetcd.proto.records import (
    ACL,
    ConnectResponse,
    CreateRequest,
    ExistsRequest,
    GetDataRequest,
    Id,
    SetDataRequest,
    SyncRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)
SESSION_TIMEOUT = 4000
# A follower that has not applied the client's lastZxidSeen yet closes the connection without
# a response (ZooKeeper); the client tries again.
RESUME_ATTEMPTS = 20
RESUME_RETRY_DELAY = 0.05


@pytest.fixture(scope="module")
def ensemble() -> Iterator[ZooKeeperEnsemble]:
    with ZooKeeperEnsemble() as servers:
        yield servers


def _resume(address: str, session: ConnectResponse, last_zxid: int) -> RawClient:
    """The session resumed on ``address``, retried while the server refuses it unanswered."""
    for _ in range(RESUME_ATTEMPTS):
        client = RawClient(address, timeout=30)
        try:
            resumed = client.connect(
                timeout=SESSION_TIMEOUT,
                session_id=session.sessionId,
                passwd=session.passwd or b"",
                last_zxid=last_zxid,
            )
        except (Closed, ConnectionError):
            client.close()
            time.sleep(RESUME_RETRY_DELAY)
            continue
        assert resumed.sessionId == session.sessionId, resumed
        assert resumed.timeOut == SESSION_TIMEOUT, resumed
        return client
    raise AssertionError(f"{address} refused the session {RESUME_ATTEMPTS} times")


def _moved(first: str, second: str, root: str) -> tuple[RawClient, RawClient, ConnectResponse]:
    """A session on ``first`` with a persistent ``root``, an ephemeral ``root/e`` and a data
    watch on ``root``, resumed on ``second`` while its connection to ``first`` stays open:
    (the old connection, the new one, the session)."""
    old = RawClient(first, timeout=30)
    session = old.connect(timeout=SESSION_TIMEOUT)
    assert old.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)).header.err == 0
    assert old.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1)).header.err == 0
    watched = old.call(OpCode.GET_DATA, GetDataRequest(root, True))
    assert watched.header.err == 0
    try:
        return old, _resume(second, session, watched.header.zxid), session
    except BaseException:
        old.close()
        raise


def _closed_silently(client: RawClient, within: float) -> tuple[bool, bytes]:
    """Whether the server closes ``client``'s connection within ``within`` s, and the bytes it
    sent before (or meanwhile)."""
    received = b""
    deadline = time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            client.sock.settimeout(left)
            data = client.sock.recv(65536)
            if not data:
                return True, received
            received += data
    except TimeoutError:
        pass
    except OSError:
        return True, received
    return False, received


def _gone(address: str, path: str, within: float) -> bool:
    """Whether ``path`` is (or comes to be) absent on ``address`` within ``within`` s."""
    deadline = time.monotonic() + within
    with RawClient(address) as check:
        check.connect()
        while check.call(OpCode.EXISTS, ExistsRequest(path, False)).header.err == 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
    return True


def _story(first: str, second: str) -> list[tuple[str, object]]:
    """Two sessions moved from server ``first`` to server ``second``, what the old connections
    and the new ones see; paths relative to a random root, so that stories compare."""
    root = f"/moves-{uuid.uuid4().hex[:8]}"

    def relative(path: str) -> str:
        return "root" + path.removeprefix(root)

    story: list[tuple[str, object]] = []
    old, new, session = _moved(first, second, root)
    try:
        story.append(("old connection closed within 1 s of the move", old.is_closed(1.0)))
        old.sock.settimeout(10.0)  # is_closed left it at 1 s
        exists = old.call(OpCode.EXISTS, ExistsRequest(root + "/e", False))
        story.append(("exists(root/e) on the old connection: err", exists.header.err))
        story.append(
            ("sync on the old connection: err", old.call(OpCode.SYNC, SyncRequest(root)).header.err)
        )
        old.request(OpCode.PING, None, xid=-2)
        story.append(("ping on the old connection: err", old.reply().header.err))
        with RawClient(second) as other:
            other.connect()
            changed = other.call(OpCode.SET_DATA, SetDataRequest(root, b"changed", -1))
            assert changed.header.err == 0, changed
        event = old.next()
        assert isinstance(event, Notification), event
        story.append(
            ("event on the old connection", (event.event.type, relative(event.event.path)))
        )
        old.request(OpCode.SET_DATA, SetDataRequest(root, b"from the old connection", -1))
        closed, received = _closed_silently(old, 5.0)
        story.append(("setData on the old connection: closed within 5 s", closed))
        story.append(("setData on the old connection: bytes before the close", received.hex()))
        got = new.call(OpCode.GET_DATA, GetDataRequest(root, False))
        story.append(("data of root on the new connection", (got.header.err, got.body.data)))
        owner = new.call(OpCode.EXISTS, ExistsRequest(root + "/e", False)).body.stat.ephemeralOwner
        story.append(("root/e's owner is the session", owner == session.sessionId))
        story.append(
            ("closeSession on the new connection: err", new.call(OpCode.CLOSE_SESSION).header.err)
        )
    finally:
        new.close()
        old.close()

    second_root = root + "-2"
    old, new, _ = _moved(first, second, second_root)
    try:
        closing = old.call(OpCode.CLOSE_SESSION)
        story.append(("closeSession on the old connection: err", closing.header.err))
        story.append(("old connection closed within 5 s of it", old.is_closed(5.0)))
        story.append(("new connection closed within 5 s of it", new.is_closed(5.0)))
        story.append(("the ephemeral gone within 5 s", _gone(second, second_root + "/e", 5.0)))
    finally:
        new.close()
        old.close()
    return story


def test_a_moved_sessions_old_connection_on_zetcd_is_a_zookeeper_followers(
    ensemble: ZooKeeperEnsemble,
    twin_zetcds: tuple[ZetcdServer, ZetcdServer],  # noqa: F811 (the fixture imported above)
) -> None:
    """A session moved between two followers of a live ensemble and between two zetcds: the
    old connection stays open with its watch, answers exists, sync and ping, is closed without a
    reply by a write; a closeSession on it ends the session, here and there alike."""
    zookeeper = _story(ensemble.followers[0], ensemble.followers[1])
    zetcd_a, zetcd_b = twin_zetcds
    zetcd = _story(zetcd_a.address, zetcd_b.address)
    assert zookeeper == zetcd
    facts = dict(zookeeper)
    assert facts["old connection closed within 1 s of the move"] is False
    assert facts["event on the old connection"] == (3, "root")  # NodeDataChanged
    assert facts["setData on the old connection: closed within 5 s"] is True
    assert facts["setData on the old connection: bytes before the close"] == ""
    assert facts["data of root on the new connection"] == (0, b"changed")
    assert facts["root/e's owner is the session"] is True
    assert facts["closeSession on the old connection: err"] == 0
    assert facts["new connection closed within 5 s of it"] is True
    assert facts["the ephemeral gone within 5 s"] is True


def _moved_back_story(first: str, second: str) -> list[tuple[str, object]]:
    """A session moved from ``first`` to ``second``, then back to ``first`` while both its
    connections are open: which of them are closed, and whether the one on ``second`` still
    answers a read."""
    root = f"/moves-back-{uuid.uuid4().hex[:8]}"
    old, new, session = _moved(first, second, root)
    back: RawClient | None = None
    try:
        back = _resume(first, session, 0)
        story: list[tuple[str, object]] = [
            ("first connection closed within 5 s", old.is_closed(5.0)),
            ("second connection closed within 1 s", new.is_closed(1.0)),
        ]
        new.sock.settimeout(10.0)
        exists = new.call(OpCode.EXISTS, ExistsRequest(root + "/e", False))
        story.append(("exists(root/e) on the second connection: err", exists.header.err))
        written = back.call(OpCode.SET_DATA, SetDataRequest(root, b"back", -1))
        story.append(("setData on the third connection: err", written.header.err))
        back.call(OpCode.CLOSE_SESSION)
        return story
    finally:
        for client in (back, new, old):
            if client is not None:
                client.close()


def test_a_session_moved_back_closes_its_connection_there_only(
    ensemble: ZooKeeperEnsemble,
    twin_zetcds: tuple[ZetcdServer, ZetcdServer],  # noqa: F811 (the fixture imported above)
) -> None:
    """Moved back to the first server while its connections to both are open, a session's
    connection there is closed (a claim on the same server) and the one on the second server is
    left open, answering reads, as by a ZooKeeper follower."""
    zookeeper = _moved_back_story(ensemble.followers[0], ensemble.followers[1])
    zetcd_a, zetcd_b = twin_zetcds
    assert _moved_back_story(zetcd_a.address, zetcd_b.address) == zookeeper
    assert zookeeper == [
        ("first connection closed within 5 s", True),
        ("second connection closed within 1 s", False),
        ("exists(root/e) on the second connection: err", 0),
        ("setData on the third connection: err", 0),
    ]


def test_an_idle_old_connection_closes_at_its_connection_expiry(
    twin_zetcds: tuple[ZetcdServer, ZetcdServer],  # noqa: F811 (the fixture imported above)
) -> None:
    """The old connection of a moved session, left idle, is closed when its bucket in the
    connection expiry queue comes (the session's 4 s, rounded up to the 10 s buckets: on
    ZooKeeper 10-20 s after the last packet for a 10 s session), while the session lives on
    where it moved (its new connection pings it). Only zetcd: an ensemble takes as long."""
    a, b = twin_zetcds
    root = f"/moves-idle-{uuid.uuid4().hex[:8]}"
    old, new, _ = _moved(a.address, b.address, root)
    try:
        started = time.monotonic()
        closed = threading.Event()
        watcher = threading.Thread(target=lambda: closed.set() if old.is_closed(25.0) else None)
        watcher.start()
        while watcher.is_alive():
            new.request(OpCode.PING, None, xid=-2)
            assert new.reply().header.err == 0
            watcher.join(1.0)
        assert closed.is_set(), "the idle old connection was never closed"
        assert 3.0 < time.monotonic() - started < 25.0
        assert new.call(OpCode.EXISTS, ExistsRequest(root + "/e", False)).header.err == 0
        new.call(OpCode.CLOSE_SESSION)
    finally:
        new.close()
        old.close()

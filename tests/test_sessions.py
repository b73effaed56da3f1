"""Sessions: expiry after a lost connection, resumption on another zetcd, zetcd restarts."""

from __future__ import annotations

import itertools
import os
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient

from tests.backends import running_backend
from tests.differential import Diff
from tests.rawclient import Closed, RawClient
from tests.servers import EtcdServer, wait_until
from tests.zetcd_server import ZetcdServer
from zetcd.emulation import plans
from zetcd.emulation.backend import EtcdBackend, Options
from zetcd.emulation.layout import Layout, revision_of
from zetcd.emulation.sessions import (
    SessionKeeper,
    SessionLimits,
    expiry_bucket,
    lease_ttl,
    renew_interval,
)
from zetcd.etcd import EtcdClient
from zetcd.expiry import ExpiryQueue
from zetcd.proto.connection import Notification
from zetcd.proto.constants import Err, OpCode
from zetcd.proto.records import (
    ACL,
    AuthPacket,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    GetSASLRequest,
    Id,
    RequestHeader,
    SetDataRequest,
    SyncRequest,
)
from zetcd.server import MAX_PENDING

OPEN = (ACL(31, Id("world", "anyone")),)


def _kazoo(address: str) -> KazooClient:
    zk = KazooClient(hosts=address, timeout=10)
    zk.start(timeout=15)
    return zk


def _expiry_transcript(address: str) -> list[object]:
    """An ephemeral's owner drops its TCP connection without closeSession; after the session
    timeout the ephemeral goes, its watchers hear it, and the session cannot be resumed."""
    root = f"/exp-{uuid.uuid4().hex[:10]}"
    obs = _kazoo(address)
    obs.create(root)
    owner = RawClient(address)
    conn = owner.connect(timeout=4000)
    owner.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1))
    events: list[tuple[str, str]] = []
    done = threading.Event()

    def watch(ev: object) -> None:
        events.append((ev.type, ev.path))  # type: ignore[attr-defined]
        if len(events) >= 2:
            done.set()

    obs.exists(root + "/e", watch=watch)
    obs.get_children(root, watch=watch)
    before = obs.exists(root)
    owner.close()  # no closeSession: the session lives until it times out
    alive_after_1s = obs.exists(root + "/e") is not None if not done.wait(1.0) else False
    done.wait(20)
    after = obs.exists(root)
    resumed = RawClient(address)
    answer = resumed.connect(session_id=conn.sessionId, passwd=conn.passwd)
    obs.stop()
    obs.close()
    resumed.close()
    return [
        ("alive 1s after the drop", alive_after_1s),
        ("events", sorted((kind, path.removeprefix(root)) for kind, path in events)),
        ("parent cversion +1", after.cversion - before.cversion),
        ("parent pzxid moved", after.pzxid > before.pzxid),
        ("resume", answer.timeOut, answer.sessionId),
    ]


def test_session_expiry_deletes_ephemerals_and_fires_watches(diff: Diff) -> None:
    assert _expiry_transcript(diff.zetcd) == _expiry_transcript(diff.zookeeper)


def _session_record_count(etcd: EtcdServer, z: ZetcdServer, sid: int, at: int = 0) -> int:
    """How many records etcd holds for session ``sid`` (at revision ``at``; 0: now)."""

    async def count() -> int:
        key = Layout(z.prefix.encode()).session(sid)
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            return (await client.range(key, revision=at)).count

    return trio.run(count)


def _wait_gone(address: str, path: str, within: float, why: str) -> None:
    with RawClient(address) as check:
        check.connect()
        exists = ExistsRequest(path, False)
        wait_until(lambda: check.call(OpCode.EXISTS, exists).header.err != 0, within, why)


@pytest.fixture
def own_etcd() -> Iterator[tuple[EtcdServer, ZetcdServer]]:
    """An etcd of the test's own (it may be stopped with SIGSTOP) and a zetcd on it."""
    etcd = EtcdServer().start()
    try:
        z = ZetcdServer(etcd.endpoint).start()
        try:
            yield etcd, z
        finally:
            z.stop()
    finally:
        etcd.stop()


@pytest.fixture
def twin_zetcds(etcd: EtcdServer) -> Iterator[tuple[ZetcdServer, ZetcdServer]]:
    prefix = f"/zetcd-twin-{uuid.uuid4().hex[:8]}/"
    a = ZetcdServer(etcd.endpoint, prefix=prefix).start()
    try:
        b = ZetcdServer(etcd.endpoint, prefix=prefix).start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def test_session_resumes_on_another_zetcd(twin_zetcds: tuple[ZetcdServer, ZetcdServer]) -> None:
    a, b = twin_zetcds
    ca = RawClient(a.address)
    conn = ca.connect(timeout=10000)
    r = ca.call(OpCode.CREATE, CreateRequest("/eph", b"mine", OPEN, 1))
    assert r.header.err == 0
    last_zxid = r.header.zxid
    ca.close()
    cb = RawClient(b.address)
    resumed = cb.connect(session_id=conn.sessionId, passwd=conn.passwd, last_zxid=last_zxid)
    assert resumed.sessionId == conn.sessionId and resumed.timeOut == 10000
    got = cb.call(OpCode.GET_DATA, GetDataRequest("/eph", False))
    assert got.header.err == 0 and got.body.data == b"mine"
    assert got.body.stat.ephemeralOwner == conn.sessionId
    # the session is alive on b: the ephemeral outlives twice the timeout
    time.sleep(2.5)
    assert cb.call(OpCode.EXISTS, ExistsRequest("/eph", False)).header.err == 0
    cb.call(OpCode.CLOSE_SESSION)
    cb.close()
    _wait_gone(a.address, "/eph", 5, "the other zetcd never saw the close")


def test_restart_loses_no_session(etcd: EtcdServer) -> None:
    prefix = f"/zetcd-restart-{uuid.uuid4().hex[:8]}/"
    first = ZetcdServer(etcd.endpoint, prefix=prefix).start()
    c = RawClient(first.address)
    conn = c.connect(timeout=20000)
    r = c.call(OpCode.CREATE, CreateRequest("/kept", b"", OPEN, 1))
    assert r.header.err == 0
    c.close()
    first.stop()
    second = ZetcdServer(etcd.endpoint, prefix=prefix).start()
    try:
        c2 = RawClient(second.address)
        resumed = c2.connect(session_id=conn.sessionId, passwd=conn.passwd, last_zxid=r.header.zxid)
        assert resumed.sessionId == conn.sessionId
        assert c2.call(OpCode.EXISTS, ExistsRequest("/kept", False)).header.err == 0
        c2.close()
    finally:
        second.stop()


def test_pipelined_replies_leave_in_request_order(diff: Diff) -> None:
    def transcript(address: str) -> list[tuple[int, int]]:
        root = f"/pipe-{uuid.uuid4().hex[:8]}"
        c = RawClient(address)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        xids = []
        for i in range(60):
            if i % 3 == 0:
                xids.append(c.request(OpCode.CREATE, CreateRequest(f"{root}/n{i}", b"", OPEN, 0)))
            elif i % 3 == 1:
                xids.append(c.request(OpCode.GET_DATA, GetDataRequest(f"{root}/n{i - 1}", False)))
            else:
                xids.append(c.request(OpCode.EXISTS, ExistsRequest(f"{root}/n{i + 1}", False)))
        out = []
        for xid in xids:
            rep = c.reply()
            assert rep.header.xid == xid
            out.append((rep.header.xid - xids[0], rep.header.err))
        c.close()
        return out

    assert transcript(diff.zetcd) == transcript(diff.zookeeper)


def test_more_pipelined_writes_than_a_connection_may_have_outstanding(diff: Diff) -> None:
    """A client sends more writes in one burst than zetcd lets a connection have outstanding
    (server.MAX_PENDING): its reader pauses, and the writes it has queued must still go to etcd
    (they are queued held until the reader's end of input, which comes before the pause), or
    the connection stalls for good. Every reply comes, in order, as on ZooKeeper."""
    count = MAX_PENDING + 200

    def transcript(address: str) -> list[tuple[int, int]]:
        path = f"/burst-{uuid.uuid4().hex[:8]}"
        c = RawClient(address, timeout=30)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(path, b"", OPEN, 0))
        burst = bytearray()
        for i in range(count):
            c.xid += 1
            burst += c.proto.send_request(
                RequestHeader(c.xid, OpCode.SET_DATA), SetDataRequest(path, b"%d" % i, -1)
            )
        first = c.xid - count + 1
        c.send_raw(bytes(burst))
        out = []
        for i in range(count):
            rep = c.reply()
            assert rep.header.xid == first + i
            body: Any = rep.body
            out.append((rep.header.err, body.stat.version if body is not None else -1))
        c.close()
        return out

    ours = transcript(diff.zetcd)
    assert ours == [(0, i + 1) for i in range(count)]
    assert ours == transcript(diff.zookeeper)


def test_pipelined_sessions_keep_their_order_with_notifications_before_replies(
    diff: Diff,
) -> None:
    """Several sessions pipeline writes, syncs and watching reads at once, so that their
    writes share etcd transactions: each session's replies leave in its request order, and
    a notification its own write triggers arrives before that write's reply."""

    def transcript(address: str) -> list[list[tuple[object, ...]]]:
        root = f"/pipes-{uuid.uuid4().hex[:8]}"
        setup = RawClient(address)
        setup.connect()
        setup.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        clients = []
        for k in range(4):
            setup.call(OpCode.CREATE, CreateRequest(f"{root}/s{k}", b"", OPEN, 0))
            c = RawClient(address)
            c.connect()
            clients.append(c)
        sent: list[list[int]] = [[] for _ in clients]
        for i in range(12):  # interleaved: each round reaches every session
            for k, c in enumerate(clients):
                node = f"{root}/s{k}"
                sent[k].append(c.request(OpCode.GET_DATA, GetDataRequest(node, True)))
                sent[k].append(c.request(OpCode.SET_DATA, SetDataRequest(node, b"%d" % i, -1)))
                if i % 4 == 1:
                    sent[k].append(c.request(OpCode.SYNC, SyncRequest(node)))
                if i % 4 == 2:
                    sent[k].append(c.request(OpCode.SET_DATA, SetDataRequest(node, b"", 99)))
        out = []
        for k, c in enumerate(clients):
            events: list[tuple[object, ...]] = []
            for xid in sent[k]:
                while True:
                    ev = c.next()
                    if isinstance(ev, Notification):
                        events.append(("event", ev.event.type, ev.event.path[len(root) :]))
                        continue
                    assert ev.header.xid == xid
                    events.append(("reply", xid - sent[k][0], ev.header.err))
                    break
            out.append(events)
            c.close()
        setup.close()
        return out

    assert transcript(diff.zetcd) == transcript(diff.zookeeper)


def test_a_session_resumed_on_another_zetcd_authenticates_again(
    twin_zetcds: tuple[ZetcdServer, ZetcdServer],
) -> None:
    """Auth ids belong to the connection, as in ZooKeeper (the fuzzer found the difference): a
    session resumed elsewhere without its auth is only its ip, and gets its access back by
    sending the auth again."""
    a, b = twin_zetcds
    ca = RawClient(a.address)
    conn = ca.connect(timeout=10000)
    ca.request(OpCode.AUTH, AuthPacket(0, "digest", b"alice:secret"), xid=-4)
    assert ca.reply().header.err == 0
    mine = (ACL(31, Id("auth", "")),)
    r = ca.call(OpCode.CREATE, CreateRequest("/private", b"hers", mine, 0))
    assert r.header.err == 0
    ca.close()
    cb = RawClient(b.address)
    cb.connect(session_id=conn.sessionId, passwd=conn.passwd, last_zxid=r.header.zxid)
    assert cb.call(OpCode.GET_DATA, GetDataRequest("/private", False)).header.err == -102
    cb.request(OpCode.AUTH, AuthPacket(0, "digest", b"alice:secret"), xid=-4)
    assert cb.reply().header.err == 0
    got = cb.call(OpCode.GET_DATA, GetDataRequest("/private", False))
    assert got.header.err == 0 and got.body.data == b"hers"
    cb.close()


def test_two_zetcds_writing_the_same_nodes(twin_zetcds: tuple[ZetcdServer, ZetcdServer]) -> None:
    """Writers on two zetcds that share a tree conflict in etcd; the loser replans on the
    winner's result, so ZooKeeper's invariants still hold: every setData counted once, every
    sequential name unique and contiguous, every zxid distinct."""
    a, b = twin_zetcds
    setup = RawClient(a.address)
    setup.connect()
    setup.call(OpCode.CREATE, CreateRequest("/shared", b"", OPEN, 0))
    replies: list[tuple[int, int, str | None]] = []
    lock = threading.Lock()

    def work(address: str) -> None:
        c = RawClient(address, timeout=30)
        c.connect()
        for _ in range(30):
            r = c.call(OpCode.CREATE, CreateRequest("/shared/s-", b"", OPEN, 2))
            s = c.call(OpCode.SET_DATA, SetDataRequest("/shared", b"x", -1))
            with lock:
                replies.append((r.header.err, r.header.zxid, r.body.path if r.body else None))
                replies.append((s.header.err, s.header.zxid, None))
        c.close()

    threads = [threading.Thread(target=work, args=(z.address,)) for z in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(err == 0 for err, _, _ in replies)
    assert len({z for _, z, _ in replies}) == len(replies)
    names = sorted(int(p.rsplit("-", 1)[1]) for _, _, p in replies if p)
    assert names == list(range(120))
    for z in (a, b):
        c = RawClient(z.address)
        c.connect()
        c.call(OpCode.SYNC, SyncRequest("/"))
        stat = c.call(OpCode.EXISTS, ExistsRequest("/shared", False)).body.stat
        assert (stat.version, stat.cversion, stat.numChildren) == (120, 120, 120)
        c.close()
    setup.close()


def test_times_never_go_back_in_zxid_order_across_zetcds(
    twin_zetcds: tuple[ZetcdServer, ZetcdServer],
) -> None:
    """ZooKeeper's leader stamps each transaction's time as it orders it, so times never go
    back in zxid order. Two zetcds each stamp their own transactions, and one planned earlier
    may commit later: a transaction pins the fence's time (the last one committed), so it
    commits only if no later-timed one committed first."""
    a, b = twin_zetcds
    samples: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop = time.monotonic() + 3.0

    def work(address: str, node: str) -> None:
        c = RawClient(address, timeout=30)
        c.connect()
        c.call(OpCode.CREATE, CreateRequest(node, b"", OPEN, 0))
        while time.monotonic() < stop:
            stat = c.call(OpCode.SET_DATA, SetDataRequest(node, b"x", -1)).body.stat
            with lock:
                samples.append((stat.mzxid, stat.mtime))
        c.close()

    nodes = [f"/t-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    threads = [
        threading.Thread(target=work, args=(z.address, n))
        for z, n in zip((a, b, a, b), nodes, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    samples.sort()
    back = [(x, y) for x, y in itertools.pairwise(samples) if y[1] < x[1]]
    assert len(samples) > 100
    assert back == [], f"{len(back)} of {len(samples)} times went back, e.g. {back[:3]}"


def test_a_timeout_renegotiated_after_expiry_does_not_revive_the_session(
    etcd: EtcdServer,
) -> None:
    """A resuming client with a new timeout moves its session record to a new lease. If the old
    lease expired in between (its clean-up may already be deleting the ephemerals), the move
    must fail rather than bring the record back; while the session lives it succeeds."""

    async def main() -> None:
        async with running_backend(etcd) as (client, backend):
            tree = backend.mirror.tree
            key = backend.mirror.layout.session
            sid, _ = await backend.store.create(30000)
            lease = await backend.store.move(sid, tree.sessions[sid], 20000)
            assert lease is not None and lease != sid
            assert tree.sessions[sid].lease == lease
            assert tree.sessions[sid].value.timeout == 20000
            entry = tree.sessions[sid]
            await client.lease_revoke(lease)  # as when it expires
            await backend.mirror.catch_up()
            assert sid not in tree.sessions
            assert await backend.store.move(sid, entry, 40000) is None
            assert (await client.range(key(sid))).kvs == []
            await backend.mirror.catch_up()
            assert sid not in tree.sessions

    trio.run(main)


def _silent_client_transcript(address: str) -> list[object]:
    """A client that stops sending (a frozen process) while its connection stays open: the
    server expires its session after the timeout, deletes its ephemeral and closes the
    connection."""
    root = f"/silent-{uuid.uuid4().hex[:10]}"
    obs = _kazoo(address)
    obs.create(root)
    owner = RawClient(address)
    owner.connect(timeout=4000)
    owner.call(OpCode.CREATE, CreateRequest(root + "/e", b"", OPEN, 1))
    gone = threading.Event()
    obs.exists(root + "/e", watch=lambda ev: gone.set())
    started = time.monotonic()
    deleted = gone.wait(15)
    took = time.monotonic() - started
    closed = owner.is_closed(5.0)
    owner.close()
    obs.stop()
    obs.close()
    return [("deleted", deleted), ("not before 3 s", took > 3.0), ("connection closed", closed)]


def test_a_silent_client_with_an_open_connection_expires(diff: Diff) -> None:
    assert _silent_client_transcript(diff.zetcd) == _silent_client_transcript(diff.zookeeper)


def _wrong_password(session: ConnectResponse) -> bytes:
    """The session's password with every bit 0 flipped."""
    return bytes(x ^ 1 for x in session.passwd or bytes(16))


def _claimed_connections(address: str) -> list[tuple[str, object]]:
    """A session's connection when another connects with the session's id: with a wrong
    password, then the right one. Whether the first connection has been closed (the end of
    its stream readable at once) by the time the newcomer has its answer."""

    def closed(c: RawClient) -> str:
        c.sock.setblocking(False)
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return "open"
        finally:
            c.sock.setblocking(True)
        return "closed" if data == b"" else f"sent {data.hex()}"

    out: list[tuple[str, object]] = []
    a = RawClient(address)
    first = a.connect(timeout=10000)
    wrong = _wrong_password(first)
    b = RawClient(address)
    refused = b.connect(timeout=10000, session_id=first.sessionId, passwd=wrong)
    out.append(("a wrong password", (refused.sessionId, refused.timeOut), closed(a)))
    c = RawClient(address)
    resumed = c.connect(timeout=10000, session_id=first.sessionId, passwd=first.passwd or b"")
    d = RawClient(address)
    again = d.connect(timeout=10000, session_id=first.sessionId, passwd=first.passwd or b"")
    same = resumed.sessionId == again.sessionId == first.sessionId
    out.append(("the right password", same, closed(c)))
    d.call(OpCode.CLOSE_SESSION)
    for client in (a, b, c, d):
        client.close()
    return out


def test_a_connection_claiming_a_session_closes_its_connection_before_it_is_answered(
    diff: Diff,
) -> None:
    """ZooKeeper closes a session's connection as soon as another connects with the session's
    id, before it checks the newcomer's password and answers it: the first client reads the
    end of its stream before the second has its answer (the C client's handle then reports
    its disconnection before the newcomer's expiry)."""
    expected = _claimed_connections(diff.zookeeper)
    assert expected == [
        ("a wrong password", (0, 0), "closed"),
        ("the right password", True, "closed"),
    ]
    assert _claimed_connections(diff.zetcd) == expected


def replies_before_the_claim(
    address: str,
    root: str,
    claimed: str | None = None,
    context: ssl.SSLContext | None = None,
    unread: float = 0.0,
) -> tuple[int, str]:
    """A client (on ``claimed`` over TLS with ``context``, else on ``address``) pipelines 24
    reads of a 1 MB node and reads nothing until another connection claims its session (with a
    wrong password), nor for ``unread`` seconds after: how many replies it then reads before
    the end of its stream, and how the stream ended (over TLS, with the server's close_notify
    or without)."""
    a = RawClient(claimed or address, timeout=10, context=context)
    first = a.connect(timeout=10000)
    a.call(OpCode.CREATE, CreateRequest(root, bytes(1_000_000), OPEN, 0))
    for _ in range(24):
        a.request(OpCode.GET_DATA, GetDataRequest(root, False))
    time.sleep(0.5)  # the replies fill the socket's buffers
    b = RawClient(address)
    wrong = _wrong_password(first)
    assert b.connect(timeout=10000, session_id=first.sessionId, passwd=wrong).timeOut == 0
    time.sleep(unread)
    try:
        return _replies_to_the_end(a)
    finally:
        a.close()
        b.close()


def _replies_to_the_end(client: RawClient) -> tuple[int, str]:
    """How many replies the client reads before its stream ends, and how it ended (over TLS,
    with the server's close_notify or without)."""
    replies = 0
    try:
        while True:
            client.reply()
            replies += 1
    except Closed:
        return replies, "ended"
    except ssl.SSLEOFError:
        return replies, "ended without close_notify"


def test_a_claimed_connection_ends_without_the_replies_it_has_not_sent(diff: Diff) -> None:
    """ZooKeeper closes the connection a newcomer claims at once: the replies not yet written to
    its socket are dropped, and the client reads what was in flight, then the end."""
    for address in (diff.zookeeper, diff.zetcd):
        root = f"/claimed-{uuid.uuid4().hex[:8]}"
        replies, ended = replies_before_the_claim(address, root)
        assert ended == "ended" and replies < 24, (address, replies, ended)
        with RawClient(address) as c:
            c.connect()
            assert c.call(OpCode.DELETE, DeleteRequest(root, -1)).header.err == 0


def _unread_until_expired(address: str, root: str) -> tuple[bool, str, int]:
    """A client pipelines 24 reads of a 1 MB node, then neither reads nor sends until its
    session (timeout 4 s) has expired: whether it then reads fewer than the 24 replies before
    the end of its stream, how the stream ended, and the timeout a resumption of the session
    gets."""
    a = RawClient(address, timeout=20)
    first = a.connect(timeout=4000)
    a.call(OpCode.CREATE, CreateRequest(root, bytes(1_000_000), OPEN, 0))
    for _ in range(24):
        a.request(OpCode.GET_DATA, GetDataRequest(root, False))
    time.sleep(9)  # the timeout, and up to a tick to the expiry's bucket, and some
    try:
        replies, ended = _replies_to_the_end(a)
    finally:
        a.close()
    with RawClient(address) as again:
        resumed = again.connect(session_id=first.sessionId, passwd=first.passwd or b"")
    with RawClient(address) as c:
        c.connect()
        c.call(OpCode.DELETE, DeleteRequest(root, -1))
    return replies < 24, ended, resumed.timeOut


def test_an_expired_connection_ends_without_the_replies_it_has_not_sent(diff: Diff) -> None:
    """ZooKeeper closes an expired session's connection there and then: replies queued and not
    yet written to its socket are dropped (the client reads what was in flight, then the end
    of its stream), as for a connection whose session another one claims."""
    outcomes: dict[str, tuple[bool, str, int]] = {}

    def run(name: str, address: str) -> None:
        outcomes[name] = _unread_until_expired(address, f"/unread-{uuid.uuid4().hex[:8]}")

    threads = [
        threading.Thread(target=run, args=("zookeeper", diff.zookeeper)),
        threading.Thread(target=run, args=("zetcd", diff.zetcd)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes["zookeeper"] == (True, "ended", 0)
    assert outcomes["zetcd"] == outcomes["zookeeper"]


def _kept_alive_by(address: str) -> list[object]:
    """Four sessions (timeout 4000) with an ephemeral each, whose clients send, every 0.5 s for
    9 s: one byte of a request frame never finished, an auth packet, a SASL packet, a ping.
    ZooKeeper touches a session only as it takes in a whole request its request processors
    serve, which auth and SASL packets (answered by its network thread) are not."""
    root = f"/alive-{uuid.uuid4().hex[:10]}"
    obs = RawClient(address)
    obs.connect()
    obs.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
    kinds = ("partial frame", "auth", "sasl", "ping")
    clients = {}
    for kind in kinds:
        c = RawClient(address)
        c.connect(timeout=4000)
        c.call(OpCode.CREATE, CreateRequest(f"{root}/{kind}", b"", OPEN, 1))
        clients[kind] = c
    frame = obs.proto.send_request(RequestHeader(99, OpCode.EXISTS), ExistsRequest(root, False))
    alive = {kind: True for kind in kinds}
    for k in range(18):
        for kind, c in clients.items():
            if not alive[kind]:
                continue
            try:
                if kind == "partial frame":
                    c.send_raw(frame[k : k + 1])
                elif kind == "auth":
                    c.request(OpCode.AUTH, AuthPacket(0, "digest", b"u:p"), xid=-4)
                    c.reply()
                elif kind == "sasl":
                    c.call(OpCode.SASL, GetSASLRequest(b"abc"))
                else:
                    c.request(OpCode.PING, None, xid=-2)
                    c.reply()
            except (Closed, OSError):
                alive[kind] = False
        obs.request(OpCode.PING, None, xid=-2)
        obs.reply()
        time.sleep(0.5)
    left = obs.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False)).body.children
    for c in clients.values():
        c.close()
    obs.close()
    return [("connections still open", alive), ("ephemerals left", sorted(left))]


def test_only_whole_requests_served_by_the_request_processors_keep_a_session_alive(
    diff: Diff,
) -> None:
    expected = _kept_alive_by(diff.zookeeper)
    assert _kept_alive_by(diff.zetcd) == expected
    assert expected[-1] == ("ephemerals left", ["ping"])


@pytest.mark.parametrize("connection", ["closed", "left open"])
def test_a_session_expires_at_zookeepers_tick(diff: Diff, connection: str) -> None:
    """ZooKeeper expires a session at its timeout after the client was last heard from,
    rounded up to the next multiple of tickTime on the monotonic clock (its session tracker's
    ExpiryQueue), whether the connection closed or stayed open without a word; zetcd at that
    same moment. The last request is sent a quarter into a tick, so that the rounding moves the
    expiry about 1.5 s past the timeout."""
    tick, timeout = 2.0, 4000
    servers = {"zookeeper": diff.zookeeper, "zetcd": diff.zetcd}
    observers = {kind: _kazoo(address) for kind, address in servers.items()}
    deleted: dict[str, float] = {}
    done = threading.Event()
    owners = []
    try:
        for address in servers.values():
            owner = RawClient(address)
            owner.connect(timeout=timeout)
            owners.append(owner)
        time.sleep(0.3)
        while not 400 <= time.monotonic() * 1000 % (tick * 1000) <= 600:
            time.sleep(0.005)
        start = time.monotonic()
        for (kind, observer), owner in zip(observers.items(), owners, strict=True):
            path = f"/tick-{uuid.uuid4().hex[:10]}"
            assert owner.call(OpCode.CREATE, CreateRequest(path, b"", OPEN, 1)).header.err == 0

            def gone(event: Any, kind: str = kind) -> None:
                deleted[kind] = time.monotonic()
                if len(deleted) == len(servers):
                    done.set()

            assert observer.exists(path, watch=gone) is not None
            if connection == "closed":
                owner.close()
        heard = time.monotonic()  # both servers heard their owner between start and here
        assert heard - start < 0.4, "too slow to keep both requests within one tick"
        assert done.wait(20), f"no expiry within 20 s: {deleted}"
    finally:
        for owner in owners:
            owner.close()
        for observer in observers.values():
            observer.stop()
            observer.close()
    bucket = (int((start + timeout / 1000) / tick) + 1) * tick
    # each expiry at the moment its tick comes (plus the time to carry it out), both alike
    assert {kind: bucket - 0.01 <= at < bucket + 0.75 for kind, at in deleted.items()} == {
        kind: True for kind in servers
    }, {kind: round(at - bucket, 3) for kind, at in deleted.items()}


def test_connections_without_a_connect_request_are_closed(diff: Diff) -> None:
    """ZooKeeper closes a connection that has not sent its ConnectRequest when its bucket in
    the NIO factory's connection expiry queue comes: 10 s (zookeeper.nio.sessionlessCnxnTimeout)
    after the client last sent anything, rounded up to the next multiple of 10 s on the
    monotonic clock; zetcd at the same moment. A connection that sent nothing, one that sent
    part of a frame, and one that sends another byte of it once the next 10 s have begun (its
    bucket moves 10 s on)."""
    period = 10.0
    while not 0.5 <= time.monotonic() % period <= 8.5:  # away from a bucket's edge
        time.sleep(0.05)
    socks: dict[tuple[str, str], RawClient] = {}
    for kind, address in (("zookeeper", diff.zookeeper), ("zetcd", diff.zetcd)):
        socks[kind, "silent"] = RawClient(address)
        for name in ("half", "trickle"):
            socks[kind, name] = RawClient(address)
            socks[kind, name].send_raw(b"\x00\x00\x00\x2d\x00")  # 5 bytes of a 49-byte frame
    start = time.monotonic()
    bucket = (int(start / period) + 2) * period  # start + 10 s, rounded up
    trickled = False
    closed: dict[tuple[str, str], float] = {}
    try:
        while len(closed) < len(socks) and time.monotonic() < bucket + period + 3:
            if not trickled and time.monotonic() >= bucket - period + 0.5:
                for (_, name), sock in socks.items():
                    if name == "trickle":
                        sock.send_raw(b"\x00")
                trickled = True
            for key, sock in socks.items():
                if key not in closed and sock.is_closed(0.02):
                    closed[key] = time.monotonic()
    finally:
        for sock in socks.values():
            sock.close()
    due = {key: bucket + period if key[1] == "trickle" else bucket for key in socks}
    late = {key: round(closed[key] - due[key], 3) if key in closed else None for key in socks}
    assert all(v is not None and -0.01 <= v < 0.75 for v in late.values()), late
    with RawClient(diff.zetcd) as c:  # the server still serves
        c.connect()
        assert c.call(OpCode.EXISTS, ExistsRequest("/", False)).header.err == 0


@pytest.mark.timeout(120)
def test_ephemerals_of_a_session_that_expired_while_etcd_stalled_are_deleted_later(
    own_etcd: tuple[EtcdServer, ZetcdServer],
) -> None:
    """The clean-up of a session whose lease ran out is tried again until etcd takes it (it
    was tried once: the ephemeral stayed until a zetcd restarted). The zetcd is stopped before
    the session's timeout (4 s after the close) until its lease (timeout + 2 s, renewed last
    at the close at the latest) has certainly run out, so that it is the lease, not the zetcd,
    that ends the session; etcd is stalled when the zetcd learns of it."""
    etcd, z = own_etcd
    owner = RawClient(z.address)
    sid = owner.connect(timeout=4000).sessionId
    assert owner.call(OpCode.CREATE, CreateRequest("/orphan", b"", OPEN, 1)).header.err == 0
    owner.close()  # no closeSession
    time.sleep(1.0)
    os.kill(z.pid, signal.SIGSTOP)  # the lease's expiry event waits in its socket
    try:
        time.sleep(8.0)
        assert _session_record_count(etcd, z, sid) == 0, "the record outlived its lease"
        os.kill(etcd.pid, signal.SIGSTOP)
    finally:
        os.kill(z.pid, signal.SIGCONT)
    try:
        # zetcd's expiry of the session and its clean-up meet a stalled etcd: the clean-up
        # goes with the expiry's transaction or after it fails (5 s, the etcd client's
        # deadline), and fails itself at least once
        time.sleep(12.0)
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    _wait_gone(z.address, "/orphan", 40, "the expired session's ephemeral stayed")
    assert "are deleted again" in z.log_tail(200)


def test_a_zetcd_cut_off_from_etcd_closes_its_clients_connections(
    own_etcd: tuple[EtcdServer, ZetcdServer],
) -> None:
    """While etcd does not answer, zetcd cannot renew the sessions' leases: rather than keep
    answering pings from its mirror while the sessions run out in etcd, it closes each client's
    connection once its lease has gone unrenewed for two thirds of its timeout, as a ZooKeeper
    server without a quorum drops its clients: here 4 s, so between 1.3 and 2.7 s after etcd
    stops (the lease is renewed every 1.33 s), not after the etcd client's own deadlines
    (5 s for each of two tries)."""
    etcd, z = own_etcd
    c = RawClient(z.address)
    c.connect(timeout=4000)
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 20 and not closed:
            try:  # a live client's pings, answered from the mirror
                c.request(OpCode.PING, xid=-2)
                c.reply()
            except (Closed, OSError):
                closed = True
            time.sleep(0.25)
        took = time.monotonic() - started
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    assert closed, "zetcd kept the client's connection for 20 s without etcd"
    assert 0.5 < took < 6.0, f"closed {took:.1f} s after etcd stopped"
    assert "not renewed" in z.log_tail(200)
    c.close()


def test_writes_from_a_moved_sessions_old_connection_never_commit_after_the_resumption(
    twin_zetcds: tuple[ZetcdServer, ZetcdServer], etcd: EtcdServer
) -> None:
    """ZooKeeper checks a write's session owner: once a session is resumed on another
    connection, a write that its old connection sent changes nothing, and the connection is
    closed without a reply (SessionMoved never reaches the client). Here the old connection (on
    the first zetcd) has a stream of creates in flight when the session resumes on the second
    zetcd: no create commits after the resumption does."""
    import pyetcd

    a, b = twin_zetcds
    parent = f"/moved-{uuid.uuid4().hex[:8]}"
    ca = RawClient(a.address, timeout=20)
    conn = ca.connect(timeout=10000)
    assert ca.call(OpCode.CREATE, CreateRequest(parent, b"", OPEN, 0)).header.err == 0
    total = 3000
    for _ in range(total):  # sequential creates, pipelined
        ca.request(OpCode.CREATE, CreateRequest(parent + "/n-", b"", OPEN, 2))
    answers: list[tuple[int, int]] = []  # (err, zxid) of the old connection's creates
    resumed = threading.Event()

    def resume() -> None:
        cb = RawClient(b.address)
        try:
            cb.connect(session_id=conn.sessionId, passwd=conn.passwd, timeout=10000)
        finally:
            resumed.set()
        cb.close()  # the session lives on (10 s); the ZetcdServer's stop ends it

    resumer: threading.Thread | None = None
    try:
        while len(answers) < total:
            reply = ca.reply()
            answers.append((reply.header.err, reply.header.zxid))
            if len(answers) == 100:  # 2,900 creates still queued or in flight
                resumer = threading.Thread(target=resume)
                resumer.start()
    except (Closed, OSError):
        pass  # the first create refused closes the old connection
    finally:
        ca.close()
    if resumer is not None:
        resumer.join(20)
    assert resumed.is_set() and len(answers) >= 100
    kv = pyetcd.client(host=etcd.host, port=etcd.port, timeout=10)
    _, meta = kv.get(a.prefix.encode() + b"s/%016x" % conn.sessionId)
    claimed = meta.mod_revision  # the resumption's revision
    kv.close()
    check = RawClient(b.address)
    check.connect()
    children = check.call(OpCode.GET_CHILDREN, GetChildrenRequest(parent, False)).body.children
    czxids = [
        check.call(OpCode.EXISTS, ExistsRequest(f"{parent}/{name}", False)).body.stat.czxid
        for name in children
    ]
    check.close()
    late = [z for z in czxids if z >> 8 >= claimed]
    assert not late, f"{len(late)} of {len(czxids)} creates committed after the resumption"
    ok = [z for err, z in answers if err == 0]
    assert ok and all(z >> 8 < claimed for z in ok)
    assert not [err for err, _ in answers if err]  # the refused ones are never answered


class _Renewals:
    """The real etcd client, noting when each keep-alive round was sent."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self.sent: list[float] = []

    async def keepalive(self, leases: list[int]) -> dict[int, int]:
        self.sent.append(time.monotonic())
        return await self.client.keepalive(leases)


async def _gone_after(client: EtcdClient, lease: int, since: float) -> float:
    """Seconds from ``since`` until etcd has expired ``lease``."""
    while await client.lease_ttl(lease) != -1:
        await trio.sleep(0.05)
    return time.monotonic() - since


def test_an_expiry_falls_in_the_bucket_dump_lists() -> None:
    """expiry_bucket (when the keeper expires a session) and the ExpiryQueue that answers
    `dump` (checked against ZooKeeper's in test_observability) round alike; tick 0: none."""
    for now_ms, timeout in itertools.product((0, 1, 1999, 2000, 2001, 987_654_321), (4000, 4001)):
        queue = ExpiryQueue(2000)
        queue.touch("s", now_ms, timeout)
        at = (now_ms + 0.5) / 1000  # time.monotonic() between two milliseconds
        assert expiry_bucket(at, timeout, 2000) == queue.where["s"] / 1000
    assert expiry_bucket(10.25, 4000, 0) == 14.25


@pytest.mark.parametrize("end", ["process dies", "connection closes", "renewal came late"])
def test_a_session_lasts_its_timeout_from_when_its_client_was_last_heard(
    etcd: EtcdServer, end: str
) -> None:
    """ZooKeeper counts a session's timeout from when it last heard from the client, and so
    does zetcd whatever ends the renewals of its lease. Its connection closing: the keeper
    expires it when that timeout has run, not before. The zetcd dying (no goodbye; another
    zetcd may resume the session until then): the lease, renewed on schedule, lasts that long.
    A close after the keeper fell behind: detach renews the lease once, so it lasts too."""
    timeout = 4000

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            renewals = _Renewals(client)
            keeper = SessionKeeper(renewals)  # type: ignore[arg-type]
            ttl = lease_ttl(timeout)
            lease, _ = await client.lease_grant(ttl)
            heard = time.monotonic()
            expired: list[float] = []
            before = 0

            async def expire() -> None:
                expired.append(time.monotonic())
                nursery.cancel_scope.cancel()  # then the process dies

            def attach() -> None:
                keeper.attach(
                    lease, ttl, lambda: None, timeout=timeout, expire=expire, heard=lambda: heard
                )

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    if end == "renewal came late":
                        attach()  # and no keeper running
                        # so late that the lease would end before the timeout from now
                        await trio.sleep(renew_interval(ttl, timeout) + 1.5)
                        heard = time.monotonic()
                        keeper.detach(lease)
                        nursery.start_soon(keeper.run)  # renews it once more, as it is short
                        while not renewals.sent:
                            await trio.sleep(0.01)
                        await trio.sleep(0.5)
                        assert len(renewals.sent) == 1, "renewed more than once"
                        nursery.cancel_scope.cancel()  # the keeper stops, as if killed
                    else:
                        nursery.start_soon(keeper.run)
                        await trio.sleep(0.1)
                        attach()
                        while len(renewals.sent) < 2:
                            await trio.sleep(0.01)
                        # heard from well after the last renewal, when the next is not yet due
                        every = renew_interval(ttl, timeout)
                        await trio.sleep(renewals.sent[-1] + every * 0.9 - time.monotonic())
                        heard = time.monotonic()
                        if end == "connection closes":
                            before = len(renewals.sent)
                            keeper.detach(lease)
                            await trio.sleep_forever()  # until expire
                        nursery.cancel_scope.cancel()  # the keeper stops, as if killed
                waited = await _gone_after(client, lease, heard)
            assert waited >= timeout / 1000, f"the lease ran out {waited:.2f} s after"
            if end == "connection closes":
                assert len(renewals.sent) == before, "a renewal nothing needed"
                (at,) = expired
                assert at - heard >= timeout / 1000, f"expired {at - heard:.2f} s after"
            else:
                assert expired == []

    trio.run(main)


@pytest.mark.parametrize("end", ["connection closes", "wrong password takes it over"])
def test_a_closed_connections_session_expires_in_one_transaction(
    etcd: EtcdServer, zetcd: ZetcdServer, end: str
) -> None:
    """A session whose connection closed (no closeSession) expires as on ZooKeeper, where the
    expiry is one closeSession transaction: its ephemerals and its record go in one etcd
    revision, once the timeout has run from when the client was last heard from. Also when
    it was a reconnect with a wrong password that closed the connection (ZooKeeper closes it
    before it checks the password): that zetcd expires the session too (it was left to the
    lease: the record went first, the ephemerals a revision later)."""
    root = f"/one-{uuid.uuid4().hex[:10]}"
    obs = _kazoo(zetcd.address)
    obs.create(root)
    owner = RawClient(zetcd.address)
    conn = owner.connect(timeout=4000)
    for i in range(3):
        heard = time.monotonic()  # zetcd hears the last of these after this
        owner.call(OpCode.CREATE, CreateRequest(f"{root}/e{i}", b"", OPEN, 1))
    if end == "connection closes":
        owner.close()
    else:
        with RawClient(zetcd.address) as intruder:
            refused = intruder.connect(timeout=4000, session_id=conn.sessionId)
        assert refused.sessionId == 0
        assert owner.is_closed(5.0)
        owner.close()
    wait_until(lambda: not obs.get_children(root), 15, "the ephemerals never went")
    gone = time.monotonic() - heard
    revision = revision_of(obs.exists(root).pzxid)  # type: ignore[union-attr]
    obs.stop()
    obs.close()
    assert gone >= 4.0, f"expired {gone:.2f} s after the client was last heard from"

    assert _session_record_count(etcd, zetcd, conn.sessionId, revision - 1) == 1
    assert _session_record_count(etcd, zetcd, conn.sessionId, revision) == 0


def test_an_expiry_held_off_by_a_resumption_runs_if_the_resumption_fails(
    etcd: EtcdServer,
) -> None:
    """A closed connection's session expires when its timeout has run, unless a client resumes
    it first. Its zetcd holds the expiry off while a resumption is under way (take_expiry), so
    a resumption that began before that moment does not lose the session to it; should the
    resumption fail, the expiry comes back (put_back_expiry) and runs at once if it is due."""
    timeout = 1000

    async def main() -> None:
        async with await EtcdClient.connect([etcd.endpoint]) as client:
            keeper = SessionKeeper(client)
            ttl = lease_ttl(timeout)
            lease, _ = await client.lease_grant(ttl)
            expired: list[float] = []

            async def expire() -> None:
                expired.append(time.monotonic())

            with trio.fail_after(20):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(keeper.run)
                    await trio.sleep(0.1)
                    keeper.attach(lease, ttl, lambda: None, timeout=timeout, expire=expire)
                    keeper.detach(lease)
                    pending = keeper.take_expiry(lease)
                    assert pending is not None
                    await trio.sleep(timeout / 1000 + 0.5)
                    assert expired == [], "expired while being resumed"
                    keeper.put_back_expiry(lease, pending)
                    back = time.monotonic()
                    while not expired:
                        await trio.sleep(0.01)
                    assert expired[0] - back < 0.5
                    # two resumptions at once: one is accepted (attached again), the other
                    # fails and puts back what it took, which must not expire the session
                    keeper.attach(lease, ttl, lambda: None, timeout=timeout, expire=expire)
                    keeper.detach(lease)
                    pending = keeper.take_expiry(lease)
                    keeper.attach(lease, ttl, lambda: None, timeout=timeout, expire=expire)
                    keeper.put_back_expiry(lease, pending)
                    await trio.sleep(timeout / 1000 + 0.5)
                    assert len(expired) == 1, "the resumed session expired"
                    nursery.cancel_scope.cancel()
            await client.lease_revoke(lease)

    trio.run(main)


def test_an_expiry_that_fails_unexpectedly_leaves_the_session_to_its_lease(
    etcd: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An expiry runs in the session keeper's nursery: an unexpected error in it (a bug) is
    logged and leaves the session to its lease, instead of taking the keeper, and with it
    every session's renewals and the process, down."""

    async def main() -> None:
        async with running_backend(etcd) as (client, backend):

            async def broken(*args: object) -> tuple[int, int]:
                raise RuntimeError("a bug")

            backend.end_session = broken  # type: ignore[method-assign]
            sid, _ = await backend.store.create(4000)
            await backend._expire(sid, sid, "")
            assert await client.lease_ttl(sid) > 0  # left to its lease

    trio.run(main)
    assert any("its expiry failed" in r.getMessage() for r in caplog.records)


def test_an_expiry_of_a_session_resumed_elsewhere_sends_nothing(etcd: EtcdServer) -> None:
    """The expiry of a closed connection's session finds the session resumed on another
    connection (its record names another owner) or already ended: it commits nothing, where a
    transaction would answer SessionMoved or delete nothing and spend a zxid all the same."""

    async def main() -> None:
        async with running_backend(etcd) as (client, backend):
            sid, _ = await backend.store.create(4000, "new-owner")
            gone, _ = await backend.store.create(4000, "old-owner")
            await client.lease_revoke(gone)
            await backend.mirror.catch_up()
            before = backend.mirror.tree.fence  # every zetcd transaction puts the fence
            await backend._expire(sid, sid, "old-owner")
            await backend._expire(gone, gone, "old-owner")
            await backend.mirror.catch_up()
            assert backend.mirror.tree.fence == before
            assert sid in backend.mirror.tree.sessions

    trio.run(main)


class _Outbox:
    """A connection as the backend sees it, without a socket; its client is heard from all
    the time."""

    peer_host = "127.0.0.1"
    certificate = None

    def __init__(self) -> None:
        self.closed = False

    @property
    def heard(self) -> float:
        return time.monotonic()

    def notify(self, event_type: int, path: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_resumption_under_way_when_the_timeout_runs_out_keeps_the_session(
    etcd: EtcdServer,
) -> None:
    """A client reconnects to the zetcd that holds its closed connection's session just before
    the session's timeout runs out, and the resumption takes a while (etcd slow to answer):
    as ZooKeeper, which touches the session when it reads the ConnectRequest, the session is
    resumed, not expired under the reconnecting client's feet."""

    async def main() -> None:
        limits = SessionLimits(tick_time=500)  # timeouts from 1 s
        async with running_backend(etcd, limits=limits) as (_, backend):
            first = await backend.connect(ConnectRequest(0, 0, 1000, 0, bytes(16)), _Outbox())
            assert first.response is not None and first.session is not None
            sid, passwd = first.response.sessionId, first.response.passwd
            await first.session.detach()  # the connection closed: expiry in 1 s
            claim = backend.store.claim

            async def slow_claim(*args: Any) -> bool:
                await trio.sleep(1.5)  # past the expiry's moment
                return await claim(*args)

            backend.store.claim = slow_claim  # type: ignore[method-assign]
            again = await backend.connect(ConnectRequest(0, 0, 1000, sid, passwd), _Outbox())
            assert again.response is not None
            assert again.response.sessionId == sid, "the session expired meanwhile"
            await trio.sleep(0.5)
            assert sid in backend.mirror.tree.sessions
            assert sid in backend.keeper.attached

    trio.run(main)


def test_a_lease_is_renewed_on_time_from_its_grant_when_the_connect_was_slow(
    etcd: EtcdServer,
) -> None:
    """The keeper counts a new session's renewals from when its lease was granted, not from
    when the connect finished: when etcd took 2 s over the session record, the first renewal
    goes out at once (it was due 1 s after the grant), so the lease never runs shorter than
    the keeper believes."""

    async def main() -> None:
        async with running_backend(etcd, limits=SessionLimits(500)) as (client, backend):
            renewals = _Renewals(client)
            backend.keeper.client = renewals  # type: ignore[assignment]
            granted: list[float] = []
            grant, put = client.lease_grant, client.put

            async def timed_grant(*args: Any) -> Any:
                granted.append(time.monotonic())
                return await grant(*args)

            async def slow_put(*args: Any, **kwargs: Any) -> Any:
                await trio.sleep(2.0)
                return await put(*args, **kwargs)

            client.lease_grant = timed_grant  # type: ignore[method-assign]
            client.put = slow_put  # type: ignore[method-assign]
            accepted = await backend.connect(ConnectRequest(0, 0, 3000, 0, bytes(16)), _Outbox())
            assert accepted.response is not None and accepted.response.timeOut == 3000
            every = renew_interval(lease_ttl(3000), 3000)
            assert every == 1.0
            # the keeper has not run since: when it renews next is as attach set it
            due = backend.keeper._due[accepted.response.sessionId]
            assert due <= granted[0] + every < time.monotonic()
            with trio.fail_after(5):
                while not renewals.sent:
                    await trio.sleep(0.01)

    trio.run(main)


async def _session_with_ephemerals(backend: Any, count: int) -> tuple[int, bytes, str]:
    """A session connected to ``backend`` holding ``count`` ephemerals /e00...: its id,
    password and owner token."""
    first = await backend.connect(ConnectRequest(0, 0, 4000, 0, bytes(16)), _Outbox())
    sid, passwd = first.response.sessionId, first.response.passwd
    owner = backend.local[sid].owner
    for i in range(count):
        create = CreateRequest(f"/e{i:02d}", b"", OPEN, 1)
        write = plans.write(plans.Ctx(sid, owner=owner), OpCode.CREATE, create)
        assert (await backend.batcher.submit(write))[1] == 0
    return sid, passwd, owner


def test_a_session_ending_in_several_transactions_cannot_be_resumed_meanwhile(
    etcd: EtcdServer,
) -> None:
    """ZooKeeper ends a session (closeSession, expiry) in one transaction: nothing of the
    session's can land half-way. zetcd deletes the ephemerals of a session with more than one
    etcd transaction takes in several; the first marks the record as closing, and between
    them a resumption is refused as expired (it was accepted, and then lost its record and
    its ephemerals to the rest of the close), as is a claim or a timeout move planned on the
    record as it was (etcd compares the value), and the session's writes are SessionExpired."""

    async def main() -> None:
        async with running_backend(etcd, etcd_max_txn_ops=40) as (_, backend):
            sid, passwd, owner = await _session_with_ephemerals(backend, 30)
            before = backend.mirror.tree.sessions[sid]
            submit = backend.batcher.submit
            seen: list[object] = []

            async def meanwhile(apply: Any, exclusive: bool = False) -> Any:
                result = await submit(apply, exclusive)
                if result[2] is plans.MORE_EPHEMERALS and not seen:
                    again = await backend.connect(
                        ConnectRequest(0, 0, 4000, sid, passwd), _Outbox()
                    )
                    seen.append(again.response.sessionId)  # type: ignore[union-attr]
                    seen.append(await backend.store.claim(sid, before, "intruder"))
                    seen.append(await backend.store.move(sid, before, 6000, "intruder"))
                    write = plans.write(
                        plans.Ctx(sid, owner=owner),
                        OpCode.CREATE,
                        CreateRequest("/late", b"", OPEN, 0),
                    )
                    seen.append((await submit(write))[1])
                return result

            backend.batcher.submit = meanwhile  # type: ignore[method-assign]
            _, err, _ = await backend.end_session(sid, True, owner)
            backend.batcher.submit = submit  # type: ignore[method-assign]
            assert err == 0
            assert seen == [0, False, None, Err.SESSION_EXPIRED]
            tree = backend.mirror.tree
            assert sid not in tree.sessions and sid not in tree.ephemerals
            assert not [p for p in tree.nodes if p.startswith(("/e", "/late"))]

    trio.run(main)


def test_a_session_left_half_way_through_its_end_is_finished_by_the_next_zetcd(
    etcd: EtcdServer,
) -> None:
    """The zetcd ending a session in several transactions dies after the first (here its close
    stops there): the record says the session is closing, and no one renews its lease any
    more. The next zetcd to load the tree revokes that lease, so the rest of the ephemerals go
    at once, not when the lease runs out."""

    class Died(Exception):
        pass

    async def main() -> None:
        async with running_backend(etcd, etcd_max_txn_ops=40) as (client, first):
            sid, _, owner = await _session_with_ephemerals(first, 30)
            first.keeper.forget(sid)  # as closeSession and an expiry do first
            submit = first.batcher.submit

            async def dies(apply: Any, exclusive: bool = False) -> Any:
                result = await submit(apply, exclusive)
                if result[2] is plans.MORE_EPHEMERALS:
                    raise Died()
                return result

            first.batcher.submit = dies  # type: ignore[method-assign]
            with pytest.raises(Died):
                await first.end_session(sid, True, owner)
            assert await client.lease_ttl(sid) > 0
            second = EtcdBackend(client, Options(prefix=first.options.prefix))
            async with trio.open_nursery() as nursery:
                await nursery.start(second.run)
                with trio.fail_after(3):  # the lease (6 s) would take longer
                    while [p for p in second.mirror.tree.nodes if p.startswith("/e")]:
                        await trio.sleep(0.05)
                assert sid not in second.mirror.tree.sessions
                nursery.cancel_scope.cancel()

    trio.run(main)

"""Planted divergences: a candidate that answers one thing wrong must produce exactly the matching
divergence record, and no normalization rule may hide it.

The candidate is the real etcd emulation behind a small fault injector; the oracle is the real
ZooKeeper; the cross-checker runs in-process (oracle.inprocess) and a raw client drives one fixed
scenario through it. Without a fault the scenario records nothing.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

from oracle.crosscheck import CrossChecker, Options
from oracle.inprocess import ThreadedCrossCheck
from oracle.records import Divergence
from oracle.sides import Side
from tests.rawclient import RawClient
from tests.servers import EtcdServer, ZooKeeperServer, wait_until
from zetcd.backend import Accepted, Backend, Outbox, Reply, Session
from zetcd.proto.connection import Notification
from zetcd.proto.constants import Err, EventType, OpCode
from zetcd.proto.records import (
    ACL,
    ConnectRequest,
    ConnectResponse,
    CreateRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    Id,
    RequestHeader,
    SetDataRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)
DEADLINE = 0.6

Rewrite = Callable[[RequestHeader, Any, Reply], Reply]


@dataclasses.dataclass
class Fault:
    """What the faulty candidate does wrong: rewrite a reply, filter a session's events, close
    a connection, refuse a connect, hold a reply back (``hold``: until what, by request)."""

    rewrite: Rewrite | None = None
    hold: Callable[[RequestHeader, Any], Awaitable[None]] | None = None
    events: Callable[[Outbox], Outbox] | None = None
    close_after_connect: bool = False
    refuse: bool = False


class FaultySession:
    def __init__(self, inner: Session, fault: Fault) -> None:
        self.inner = inner
        self.fault = fault
        self.session_id = inner.session_id

    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        reply = await self.inner.handle(header, body)
        if self.fault.hold is not None:
            await self.fault.hold(header, body)
        rewrite = self.fault.rewrite
        return reply if rewrite is None else rewrite(header, body, reply)

    async def malformed(self, xid: int, opcode: int) -> Reply:
        return await self.inner.malformed(xid, opcode)

    async def detach(self) -> None:
        await self.inner.detach()


class FaultyBackend:
    def __init__(self, inner: Backend, fault: Fault) -> None:
        self.inner = inner
        self.fault = fault
        self.connects = 0

    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        self.connects += 1
        if self.fault.refuse and self.connects == 3:
            return Accepted(ConnectResponse(0, 0, 0, bytes(16), request.readOnly), None)
        wrapped = outbox if self.fault.events is None else self.fault.events(outbox)
        accepted = await self.inner.connect(request, wrapped)
        if accepted.session is None:
            return accepted
        if self.fault.close_after_connect and self.connects == 3:
            outbox.close()
        return Accepted(accepted.response, FaultySession(accepted.session, self.fault))


class EventFilter:
    """An outbox that passes events through ``on_event``."""

    def __init__(self, outbox: Outbox, on_event: Callable[[Outbox, int, str], None]) -> None:
        self.outbox = outbox
        self.on_event = on_event
        self.peer_host = outbox.peer_host
        self.certificate = outbox.certificate

    @property
    def heard(self) -> float:
        return self.outbox.heard

    def notify(self, event_type: int, path: str) -> None:
        self.on_event(self.outbox, event_type, path)

    def close(self) -> None:
        self.outbox.close()


def scenario(address: str, root: str, linger: float = 0.0) -> None:
    """Two sessions: data, children, an ephemeral, two watch events for the first session; a
    third session idles for ``linger`` seconds."""
    a = RawClient(address)
    a.connect(timeout=10000)
    b = RawClient(address)
    b.connect(timeout=10000)
    a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
    a.call(OpCode.CREATE, CreateRequest(f"{root}/target", b"v0", OPEN, 0))
    a.call(OpCode.CREATE, CreateRequest(f"{root}/other", b"", OPEN, 0))
    a.call(OpCode.GET_DATA, GetDataRequest(f"{root}/target", True))
    a.call(OpCode.EXISTS, ExistsRequest(f"{root}/other", True))
    b.call(OpCode.SET_DATA, SetDataRequest(f"{root}/target", b"v1", -1))
    b.call(OpCode.SET_DATA, SetDataRequest(f"{root}/other", b"v1", -1))
    a.call(OpCode.EXISTS, ExistsRequest(f"{root}/target", False))
    a.call(OpCode.GET_DATA, GetDataRequest(f"{root}/target", False))
    a.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, False))
    b.call(OpCode.CREATE, CreateRequest(f"{root}/eph", b"", OPEN, 1))
    a.call(OpCode.GET_DATA, GetDataRequest(f"{root}/eph", False))
    c = RawClient(address)  # a third session, idle until the end
    c.connect(timeout=10000)
    a.call(OpCode.EXISTS, ExistsRequest(f"{root}/eph", False))
    time.sleep(linger)
    for client in (a, b, c):
        client.call(OpCode.CLOSE_SESSION)
        client.close()


@pytest.fixture(scope="module")
def servers(etcd: EtcdServer, zookeeper: ZooKeeperServer) -> tuple[str, str]:
    return etcd.endpoint, zookeeper.address


def run(
    servers: tuple[str, str], fault: Fault | None, answer: Side = Side.ORACLE
) -> list[Divergence]:
    endpoint, zk = servers
    wrap = None if fault is None else (lambda inner: FaultyBackend(inner, fault))
    options = Options(answer=answer, deadline=DEADLINE)
    linger = 2 * DEADLINE if fault is not None and fault.close_after_connect else 0.0
    with ThreadedCrossCheck(endpoint, zk, options=options, wrap=wrap) as xc:
        scenario(xc.address, f"/planted-{uuid.uuid4().hex[:10]}", linger)
        return xc.settle()


def _is(header: RequestHeader, body: Any, opcode: int, suffix: str) -> bool:
    path = getattr(body, "path", None) or ""
    return header.type == opcode and path.endswith(suffix)


def _stat(reply: Reply, **changes: int) -> Reply:
    body = reply.body
    assert isinstance(body, GetDataResponse)
    stat = dataclasses.replace(body.stat, **changes)
    return dataclasses.replace(reply, body=dataclasses.replace(body, stat=stat))


def wrong_version(h: RequestHeader, body: Any, r: Reply) -> Reply:
    if _is(h, body, OpCode.GET_DATA, "/target") and r.body.stat.version == 1:  # type: ignore[attr-defined]
        return _stat(r, version=7)
    return r


def wrong_error(h: RequestHeader, body: Any, r: Reply) -> Reply:
    if _is(h, body, OpCode.EXISTS, "/target"):
        return dataclasses.replace(r, err=Err.NO_NODE, body=None)
    return r


def extra_child(h: RequestHeader, body: Any, r: Reply) -> Reply:
    if h.type == OpCode.GET_CHILDREN and isinstance(r.body, GetChildrenResponse):
        return dataclasses.replace(r, body=GetChildrenResponse((*(r.body.children or ()), "ghost")))
    return r


def wrong_ctime(h: RequestHeader, body: Any, r: Reply) -> Reply:
    if _is(h, body, OpCode.GET_DATA, "/target") and r.body.stat.version == 1:  # type: ignore[attr-defined]
        return _stat(r, ctime=r.body.stat.ctime - 60_000)  # type: ignore[attr-defined]
    return r


def wrong_owner(h: RequestHeader, body: Any, r: Reply) -> Reply:
    if _is(h, body, OpCode.GET_DATA, "/eph"):
        return _stat(r, ephemeralOwner=r.body.stat.ephemeralOwner + 1)  # type: ignore[attr-defined]
    return r


class StaleWriteZxid:
    """The second setData answers with the zxid of the write before it, as if it spent none."""

    def __init__(self) -> None:
        self.last_write = 0

    def __call__(self, h: RequestHeader, body: Any, r: Reply) -> Reply:
        if h.type in (OpCode.CREATE, OpCode.SET_DATA):
            previous, self.last_write = self.last_write, r.zxid
            if _is(h, body, OpCode.SET_DATA, "/other"):
                return dataclasses.replace(r, zxid=previous)
        return r


def drop_target_event(outbox: Outbox, event_type: int, path: str) -> None:
    if not path.endswith("/target"):
        outbox.notify(event_type, path)


def double_target_event(outbox: Outbox, event_type: int, path: str) -> None:
    outbox.notify(event_type, path)
    if path.endswith("/target"):
        outbox.notify(event_type, path)


class SwapEvents:
    """Holds the event on /target back until the next one has gone."""

    def __init__(self) -> None:
        self.held: tuple[int, str] | None = None

    def __call__(self, outbox: Outbox, event_type: int, path: str) -> None:
        if path.endswith("/target") and self.held is None:
            self.held = (event_type, path)
            return
        outbox.notify(event_type, path)
        if self.held is not None:
            outbox.notify(*self.held)
            self.held = None


def filtered(on_event: Callable[[Outbox, int, str], None]) -> Callable[[Outbox], Outbox]:
    return lambda outbox: EventFilter(outbox, on_event)


# a refused connect differs from an accepted one in these fields
REFUSED = ["response.timeOut", "response.sessionId", "response.passwd"]

# (name, fault, expected kind, expected op, the diff's fields or the event's path suffix)
PLANTED: list[tuple[str, Callable[[], Fault], str, str, list[str]]] = [
    ("stat field", lambda: Fault(rewrite=wrong_version), "field", "getData", ["body.stat.version"]),
    ("error code", lambda: Fault(rewrite=wrong_error), "error", "exists", ["err", "body", "..."]),
    ("extra child", lambda: Fault(rewrite=extra_child), "field", "getChildren", ["body.children"]),
    ("time", lambda: Fault(rewrite=wrong_ctime), "field", "getData", ["body.stat.ctime"]),
    ("owner", lambda: Fault(rewrite=wrong_owner), "field", "getData", ["body.stat.ephemeralOwner"]),
    ("zxid", lambda: Fault(rewrite=StaleWriteZxid()), "zxid", "setData", ["zxid"]),
    (
        "missing event",
        lambda: Fault(events=filtered(drop_target_event)),
        "watch.missing",
        "watch",
        [],
    ),
    (
        "extra event",
        lambda: Fault(events=filtered(double_target_event)),
        "watch.extra",
        "watch",
        [],
    ),
    ("event order", lambda: Fault(events=filtered(SwapEvents())), "watch.order", "watch", []),
    ("closed alone", lambda: Fault(close_after_connect=True), "lifecycle", "session", []),
    ("refused alone", lambda: Fault(refuse=True), "lifecycle", "connect", REFUSED),
]


@pytest.fixture(params=[Side.ORACLE, Side.CANDIDATE], ids=["answer-zk", "answer-etcd"])
def answer(request: pytest.FixtureRequest) -> Iterator[Side]:
    yield request.param


def test_the_scenario_alone_records_nothing(servers: tuple[str, str], answer: Side) -> None:
    assert run(servers, None, answer) == []


@pytest.mark.parametrize(
    ("fault", "kind", "op", "fields"),
    [pytest.param(f, k, o, fs, id=name) for name, f, k, o, fs in PLANTED],
)
def test_a_planted_fault_is_one_matching_record(
    servers: tuple[str, str],
    fault: Callable[[], Fault],
    kind: str,
    op: str,
    fields: list[str],
) -> None:
    records = run(servers, fault())
    assert [(d.kind, d.op) for d in records] == [(kind, op)], records
    (d,) = records
    got = [f.field for f in d.diff]
    if fields[-1:] == ["..."]:  # and then the body fields that only one side has
        assert got[: len(fields) - 1] == fields[:-1], d.diff
        assert all(f.note == "present on one side only" for f in d.diff[len(fields) - 1 :])
    else:
        assert got == fields, d.diff
    if kind.startswith("watch."):
        assert d.request["type"] == EventType.NODE_DATA_CHANGED
        assert d.request["path"].rpartition("/")[2] in ("target", "other")
        if kind != "watch.order":
            assert d.request["path"].endswith("/target")


def test_the_client_gets_the_faulty_answer_when_etcd_answers(servers: tuple[str, str]) -> None:
    records = run(servers, Fault(rewrite=wrong_error), Side.CANDIDATE)
    assert [(d.kind, d.op, d.answered) for d in records] == [("error", "exists", "candidate")]


class LateEvents:
    """A candidate that delivers each watch event ``delay`` seconds late, as a slow side does,
    and logs in what order its events and its answers happen."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.log: list[tuple[str, str]] = []

    def __call__(self, outbox: Outbox, event_type: int, path: str) -> None:
        async def later() -> None:
            await trio.sleep(self.delay)
            self.log.append(("event", path.rpartition("/")[2]))
            outbox.notify(event_type, path)

        trio.lowlevel.spawn_system_task(later)

    def answered(self, h: RequestHeader, body: Any, r: Reply) -> Reply:
        self.log.append(
            (OpCode(h.type).name, (getattr(body, "path", None) or "").rpartition("/")[2])
        )
        return r


def test_a_request_after_an_event_waits_for_the_other_side_to_deliver_it(
    servers: tuple[str, str],
) -> None:
    """The client hears ZooKeeper's event at once and asks again; the candidate's event comes
    later (within the deadline): the cross-checker holds the request until it has, so both sides
    answer it having fired the watch (oracle.crosscheck, CrossChecker.settle)."""
    endpoint, zk = servers
    late = LateEvents(DEADLINE / 2)
    fault = Fault(rewrite=late.answered, events=filtered(late))
    root = f"/late-{uuid.uuid4().hex[:10]}"
    options = Options(deadline=DEADLINE)
    with ThreadedCrossCheck(
        endpoint, zk, options=options, wrap=lambda b: FaultyBackend(b, fault)
    ) as xc:
        a, b = RawClient(xc.address), RawClient(xc.address)
        a.connect()
        b.connect()
        a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        a.call(OpCode.EXISTS, ExistsRequest(root, True))
        b.call(OpCode.SET_DATA, SetDataRequest(root, b"v1", -1))
        assert isinstance(a.next(), Notification)  # ZooKeeper's event, relayed at once
        assert a.call(OpCode.GET_DATA, GetDataRequest(root, False)).header.err == 0
        for client in (a, b):
            client.close()
        records = xc.settle()
    assert records == []
    name = root.rpartition("/")[2]
    assert late.log.index(("event", name)) < late.log.index(("GET_DATA", name)), late.log


def _until(xc: ThreadedCrossCheck, what: Callable[[CrossChecker], bool], why: str) -> None:
    """Wait (a few seconds at most) until ``what`` holds of the cross-checker, read in its
    own trio thread."""
    checker, token = xc.checker, xc._token
    assert checker is not None and token is not None
    wait_until(lambda: trio.from_thread.run_sync(what, checker, trio_token=token), 6.0, why)


def _watching(address: str, root: str, sessions: int) -> list[RawClient]:
    """``sessions`` clients of ``address``; the first has created ``root`` and ``root``/target
    and watches the latter (exists)."""
    clients = [RawClient(address, timeout=10) for _ in range(sessions)]
    for client in clients:
        client.connect()
    a = clients[0]
    a.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
    a.call(OpCode.CREATE, CreateRequest(f"{root}/target", b"", OPEN, 0))
    a.call(OpCode.EXISTS, ExistsRequest(f"{root}/target", True))
    return clients


def _settling(checker: CrossChecker) -> bool:
    """Does a request wait for arrivals to pair?"""
    return checker._arrival.statistics().tasks_waiting == 1


def test_a_ping_is_not_held_behind_a_request_waiting_for_an_event(
    servers: tuple[str, str],
) -> None:
    """ZooKeeper delivers an event the candidate never does (a real divergence, its deadline
    long here). A request that comes after it waits for the candidate's event; a ping of
    another session meanwhile is answered at once, as on the servers, since it bears on
    nothing the client was told (held, a session's pings could make it expire). When the
    event is recorded unpaired, the waiting request goes on at once."""
    endpoint, zk = servers
    fault = Fault(events=filtered(drop_target_event))
    root = f"/held-{uuid.uuid4().hex[:10]}"
    options = Options(deadline=60.0)
    with ThreadedCrossCheck(
        endpoint, zk, options=options, wrap=lambda b: FaultyBackend(b, fault)
    ) as xc:
        a, b = _watching(xc.address, root, 2)
        b.call(OpCode.SET_DATA, SetDataRequest(f"{root}/target", b"v1", -1))
        assert isinstance(a.next(), Notification)  # ZooKeeper's; the candidate's never comes
        a.request(OpCode.GET_DATA, GetDataRequest(f"{root}/target", False))
        _until(xc, _settling, "the request did not wait for the candidate's event")
        b.request(OpCode.PING, None, xid=-2)
        assert b.reply().header.xid == -2
        assert xc.records == [], "the ping waited for the event's deadline"
        records = xc.settle(timeout=0.2)  # the event is recorded unpaired
        got = a.reply()
        assert (got.header.xid, got.header.err) == (a.xid, 0)
        for client in (a, b):
            client.close()
    assert [(d.kind, d.request["path"]) for d in records] == [("watch.missing", f"{root}/target")]


class Gates:
    """Events a test opens from its own thread: the candidate holds its reply to a setData of
    /target until ``reply`` opens, and delivers the event on /target once at once and once
    more (an extra event ZooKeeper never sends) when ``echo`` opens."""

    def __init__(self) -> None:
        self.reply = trio.Event()
        self.echo = trio.Event()

    async def hold(self, h: RequestHeader, body: Any) -> None:
        if _is(h, body, OpCode.SET_DATA, "/target"):
            await self.reply.wait()

    def __call__(self, outbox: Outbox, event_type: int, path: str) -> None:
        outbox.notify(event_type, path)
        if path.endswith("/target"):

            async def again() -> None:
                await self.echo.wait()
                outbox.notify(event_type, path)

            trio.lowlevel.spawn_system_task(again)

    def open(self, xc: ThreadedCrossCheck, gate: trio.Event) -> None:
        trio.from_thread.run_sync(gate.set, trio_token=xc._token)


def test_a_request_that_finds_a_new_arrival_once_it_has_the_lock_waits_without_it(
    servers: tuple[str, str],
) -> None:
    """A read queued behind a write (whose reply the candidate holds back) finds, when its
    turn comes, an event the candidate delivered meanwhile and ZooKeeper never does: it lets
    the lock go and waits for the event's pair, so a ping of another session is answered
    meanwhile; when the event is recorded unpaired, the read goes on."""
    endpoint, zk = servers
    gates = Gates()
    fault = Fault(events=filtered(gates), hold=gates.hold)
    root = f"/queued-{uuid.uuid4().hex[:10]}"
    with ThreadedCrossCheck(
        endpoint, zk, options=Options(deadline=60.0), wrap=lambda b: FaultyBackend(b, fault)
    ) as xc:
        a, b, c = _watching(xc.address, root, 3)
        b.request(OpCode.SET_DATA, SetDataRequest(f"{root}/target", b"v1", -1))
        assert isinstance(a.next(), Notification)  # both sides' events, paired
        _until(xc, lambda x: x._unsettled_for() == 0, "the first events did not pair")
        a.request(OpCode.GET_DATA, GetDataRequest(f"{root}/target", False))
        _until(xc, lambda x: x.lock.statistics().tasks_waiting == 1, "the read did not queue")
        gates.open(xc, gates.echo)
        _until(xc, lambda x: x._unsettled_for() > 0, "the extra event did not come")
        gates.open(xc, gates.reply)
        assert b.reply().header.err == 0  # the write's turn ends; the read's begins
        _until(xc, _settling, "the read did not wait for the extra event's pair")
        c.request(OpCode.PING, None, xid=-2)
        assert c.reply().header.xid == -2
        assert xc.records == [], "the ping waited for the event's deadline"
        records = xc.settle(timeout=0.2)  # the extra event is recorded unpaired
        got = a.reply()
        assert (got.header.xid, got.header.err) == (a.xid, 0)
        for client in (a, b, c):
            client.close()
    assert [(d.kind, d.request["path"]) for d in records] == [("watch.extra", f"{root}/target")]


def test_a_ping_waits_while_one_sides_close_of_its_session_waits_for_the_other(
    servers: tuple[str, str],
) -> None:
    """The candidate closes a session's connection and ZooKeeper does not (yet). The session's
    ping then waits for ZooKeeper's close, as its other requests do, instead of going to
    ZooKeeper alone, where it would keep alive a session ZooKeeper may be about to expire;
    once the close is recorded unpaired, the ping goes to ZooKeeper, which answers it."""
    endpoint, zk = servers
    fault = Fault(close_after_connect=True)  # the third session's candidate side
    with ThreadedCrossCheck(
        endpoint, zk, options=Options(deadline=60.0), wrap=lambda b: FaultyBackend(b, fault)
    ) as xc:
        clients = [RawClient(xc.address, timeout=10) for _ in range(3)]
        for client in clients:
            client.connect()
        closed = clients[2]
        _until(xc, lambda x: x._unsettled_for() > 0, "the candidate's close did not come")
        closed.request(OpCode.PING, None, xid=-2)
        closed.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            closed.reply()
        assert xc.records == []
        records = xc.settle(timeout=0.2)  # the close is recorded unpaired
        closed.sock.settimeout(10)
        assert closed.reply().header.xid == -2
        for client in clients:
            client.close()
    assert [(d.kind, d.op) for d in records] == [("lifecycle", "session")]


class Stream:
    """After the event on /target, delivers it again every ``every`` seconds until ``stop``:
    a stream of extra events ZooKeeper never sends."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.stop = False

    def __call__(self, outbox: Outbox, event_type: int, path: str) -> None:
        outbox.notify(event_type, path)
        if path.endswith("/target"):

            async def again() -> None:
                while not self.stop:
                    await trio.sleep(self.every)
                    outbox.notify(event_type, path)

            trio.lowlevel.spawn_system_task(again)


def test_a_request_is_not_starved_by_a_stream_of_new_arrivals(servers: tuple[str, str]) -> None:
    """The candidate keeps delivering new events ZooKeeper never sends, each recorded unpaired
    in its turn: a request waits for those that came before it, never for the whole stream,
    and gets its answer."""
    endpoint, zk = servers
    stream = Stream(0.1)
    root = f"/stream-{uuid.uuid4().hex[:10]}"
    options = Options(deadline=1.0)
    with ThreadedCrossCheck(
        endpoint,
        zk,
        options=options,
        wrap=lambda b: FaultyBackend(b, Fault(events=filtered(stream))),
    ) as xc:
        a, b = _watching(xc.address, root, 2)
        b.call(OpCode.SET_DATA, SetDataRequest(f"{root}/target", b"v1", -1))
        assert isinstance(a.next(), Notification)
        _until(xc, lambda x: x._unsettled_for() > 0, "the stream did not start")
        try:
            for client in (a, b):
                got = client.call(OpCode.GET_DATA, GetDataRequest(f"{root}/target", False))
                assert got.header.err == 0
        finally:
            stream.stop = True
        records = xc.settle(timeout=0.5)
        for client in (a, b):
            client.close()
    assert records and {(d.kind, d.request["path"]) for d in records} == {
        ("watch.extra", f"{root}/target")
    }

"""Replies that leave before the mirror has applied their write (zetcd/emulation/batcher.py):
only for sessions with no watches, and every session's next request then waits for the mirror,
so read-your-writes and "the notification before the reply" hold as before. Driven in-process on
a real etcd, with the mirror's application of etcd's watch events held back by the test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tests.backends import never_at_once, running_backend
from tests.servers import EtcdServer
from zetcd.backend import Reply
from zetcd.emulation import plans
from zetcd.emulation.backend import EtcdBackend, EtcdSession
from zetcd.emulation.batcher import Batcher
from zetcd.emulation.mirror import Mirror
from zetcd.proto.constants import AddWatchMode, EventType, OpCode
from zetcd.proto.records import (
    ACL,
    AddWatchRequest,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiOp,
    MultiRequest,
    RequestHeader,
    SetDataRequest,
)

OPEN = (ACL(31, Id("world", "anyone")),)


class _Outbox:
    """What a connection would send, in order: ("event", type, path) entries; the test adds
    ("reply", name) ones as replies are taken."""

    peer_host = "127.0.0.1"
    certificate = None
    heard = 0.0

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log

    def notify(self, event_type: int, path: str) -> None:
        self.log.append(("event", event_type, path))

    def close(self) -> None:
        self.log.append(("closed",))


class _HeldMirror:
    """Holds back the mirror's application of etcd's watch responses until ``release``; the
    mirror's task still reads the connection (and so etcd's answers to transactions)."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.held: list[list[object]] = []
        self._apply = mirror._apply_batch
        mirror._apply_batch = self.held.append  # type: ignore[method-assign,assignment]

    def release(self) -> None:
        mirror = self.mirror
        mirror._apply_batch = self._apply  # type: ignore[method-assign]
        for events in self.held:
            self._apply(events)
        self.held.clear()
        for listener in mirror.batch_listeners:
            listener()


async def _hold(mirror: Mirror) -> _HeldMirror:
    """Hold the mirror back once every task is blocked (the batcher's task parked: a write
    queued now is sent at once by send_queued, not planned by that task)."""
    await trio.testing.wait_all_tasks_blocked()
    return _HeldMirror(mirror)


@asynccontextmanager
async def _sessions(
    etcd: EtcdServer, n: int, log: list[tuple[Any, ...]], **options: Any
) -> AsyncIterator[tuple[EtcdBackend, list[EtcdSession]]]:
    async with running_backend(etcd, **options) as (_, backend):
        sessions = []
        for _ in range(n):
            accepted = await backend.connect(
                ConnectRequest(0, 0, 30000, 0, bytes(16), None), _Outbox(log)
            )
            assert isinstance(accepted.session, EtcdSession)
            sessions.append(accepted.session)
        yield backend, sessions


def _begin(session: EtcdSession, xid: int, op: int, body: object) -> Any:
    answer = session.begin(RequestHeader(xid, op), body)
    session.end_of_input()
    return answer


async def _reply(answer: Any) -> Reply:
    if isinstance(answer, Reply):
        return answer
    with trio.fail_after(10):
        reply: Reply = await answer()
    return reply


def _answered_and_waiting(batcher: Batcher) -> bool:
    """Has etcd answered the batch in flight, which now waits for the mirror?"""
    flight = batcher._flight
    return flight is not None and flight.behind_since is not None


async def _until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.01)


@pytest.mark.parametrize("sent_by", ["reader", "batcher"])
def test_a_reply_may_leave_first_and_every_next_request_waits_for_the_mirror(
    etcd: EtcdServer, sent_by: str
) -> None:
    """Sent by the connection's reader (send_queued), the answer read by the mirror's task, or
    sent and answered in the batcher's own task."""

    async def main() -> None:
        log: list[tuple[Any, ...]] = []
        async with _sessions(etcd, 2, log) as (backend, (a, b)):
            mirror = backend.mirror
            if sent_by == "batcher":
                backend.client.start_txn = never_at_once  # type: ignore[method-assign]
            create = CreateRequest("/a", b"v0", OPEN, 0)
            assert (await _reply(_begin(a, 1, OpCode.CREATE, create))).err == 0
            await _until(lambda: "/a" in mirror.tree.nodes)
            held = await _hold(mirror)
            # no watches: the reply comes while the mirror has not applied the write
            reply = await _reply(_begin(a, 2, OpCode.SET_DATA, SetDataRequest("/a", b"v1", 0)))
            assert reply.err == 0 and reply.body.stat.version == 1  # type: ignore[attr-defined]
            assert mirror.tree.nodes["/a"].data == b"v0" and mirror.behind
            await _until(lambda: bool(held.held))  # the watch event is in, held back
            assert mirror.tree.nodes["/a"].data == b"v0" and mirror.behind
            # reads of the writer and of anyone else, and a write planned on the tree, wait
            own = _begin(a, 3, OpCode.GET_DATA, GetDataRequest("/a", False))
            other = _begin(b, 1, OpCode.GET_DATA, GetDataRequest("/a", False))
            # version 1 is a BadVersion on the tree the mirror has not updated yet
            write = _begin(b, 2, OpCode.SET_DATA, SetDataRequest("/a", b"v2", 1))
            assert not isinstance(own, Reply) and not isinstance(other, Reply)
            results: dict[str, Reply] = {}

            async def take(name: str, answer: Any) -> None:
                results[name] = await _reply(answer)

            async with trio.open_nursery() as nursery:
                for name, answer in (("own", own), ("other", other), ("write", write)):
                    nursery.start_soon(take, name, answer)
                await trio.sleep(0.3)  # etcd has long answered anything sent
                assert results == {}
                held.release()
                # caught up (B's write, planned only now, may be answered early in turn)
                assert not mirror.behind
            for name in ("own", "other"):
                assert results[name].err == 0
                assert results[name].body.data == b"v1"
                assert results[name].zxid >= reply.zxid
            assert results["write"].err == 0
            assert results["write"].body.stat.version == 2
            await _until(lambda: mirror.tree.nodes["/a"].data == b"v2")
            assert log == []

    trio.run(main)


def test_a_session_with_a_watch_has_its_notification_before_its_reply(
    etcd: EtcdServer,
) -> None:
    async def main() -> None:
        log: list[tuple[Any, ...]] = []
        async with _sessions(etcd, 2, log) as (backend, (a, b)):
            mirror, batcher = backend.mirror, backend.batcher
            create = CreateRequest("/w", b"", OPEN, 0)
            assert (await _reply(_begin(a, 1, OpCode.CREATE, create))).err == 0
            await _until(lambda: "/w" in mirror.tree.nodes)
            watch = await _reply(_begin(a, 2, OpCode.GET_DATA, GetDataRequest("/w", True)))
            assert watch.err == 0
            held = await _hold(mirror)
            queued = _begin(a, 3, OpCode.SET_DATA, SetDataRequest("/w", b"x", -1))
            queued.when_ready(lambda: log.append(("reply", 3)))
            # etcd has answered (the batch waits for the mirror), the reply has not left
            await _until(lambda: _answered_and_waiting(batcher))
            assert queued.poll() is None and not mirror.behind
            held.release()
            assert log == [("event", EventType.NODE_DATA_CHANGED, "/w"), ("reply", 3)]
            assert (await _reply(queued)).err == 0
            # a batch with one watching session among others waits for the mirror as a whole
            watch = await _reply(_begin(a, 4, OpCode.EXISTS, ExistsRequest("/w", True)))
            assert watch.err == 0
            log.clear()
            held = await _hold(mirror)
            mine: Any = a.begin(RequestHeader(5, OpCode.SET_DATA), SetDataRequest("/w", b"y", -1))
            theirs: Any = b.begin(
                RequestHeader(1, OpCode.CREATE), CreateRequest("/o", b"", OPEN, 0)
            )
            a.end_of_input()  # both in one transaction
            await _until(lambda: _answered_and_waiting(batcher))
            assert mine.poll() is None and theirs.poll() is None
            held.release()
            assert (await _reply(mine)).err == 0 and (await _reply(theirs)).err == 0
            assert log == [("event", EventType.NODE_DATA_CHANGED, "/w")]
            # with its watch used up, the session's replies may leave first again
            held = await _hold(mirror)
            reply = await _reply(_begin(a, 6, OpCode.SET_DATA, SetDataRequest("/w", b"z", -1)))
            assert reply.err == 0 and mirror.behind
            await _until(lambda: bool(held.held))  # the watch event is in, held back
            held.release()
            assert not mirror.behind and log == [("event", EventType.NODE_DATA_CHANGED, "/w")]

    trio.run(main)


def test_the_servers_own_writes_wait_for_the_mirror(etcd: EtcdServer) -> None:
    """Writes that are not a client's request (a session's clean-up, a container's deletion)
    have no watcher: their callers read the tree afterwards."""

    def create(path: str) -> plans.Apply:
        return plans.write(plans.Ctx(0), OpCode.CREATE, CreateRequest(path, b"", OPEN, 0))

    async def main() -> None:
        async with running_backend(etcd) as (client, backend):
            batcher, mirror = backend.batcher, backend.mirror
            # sent at once by send_queued, its answer read by the mirror's task
            held = await _hold(mirror)
            w = batcher.enqueue(create("/s"), hold=True)
            batcher.send_queued()
            await _until(lambda: _answered_and_waiting(batcher))
            assert not w.finished and not mirror.behind
            held.release()
            await _until(lambda: w.finished)
            assert w.error is None and "/s" in mirror.tree.nodes
            # sent and answered in the batcher's own task
            client.start_txn = never_at_once  # type: ignore[method-assign]
            held = await _hold(mirror)
            w = batcher.enqueue(create("/t"))
            await _until(lambda: bool(held.held))  # committed: etcd's watch has it
            await trio.sleep(0.2)
            assert not w.finished and not mirror.behind
            held.release()
            await _until(lambda: w.finished)
            assert w.error is None and "/t" in mirror.tree.nodes

    trio.run(main)


def test_a_watching_session_is_answered_first_when_no_change_can_reach_its_watches(
    etcd: EtcdServer,
) -> None:
    """A fenced transaction proves no other zetcd changed a znode since its plan: when none of
    its own changes can reach a session's watches, that session is owed nothing first. Not
    with per-key guards, not with a watch on a changed node's parent, not with a recursive
    watch anywhere."""

    async def main() -> None:
        log: list[tuple[Any, ...]] = []
        async with _sessions(etcd, 1, log) as (backend, (a,)):
            mirror, batcher = backend.mirror, backend.batcher
            for i, path in enumerate(("/x", "/d", "/d/c")):
                create = CreateRequest(path, b"", OPEN, 0)
                assert (await _reply(_begin(a, i + 1, OpCode.CREATE, create))).err == 0
            await _until(lambda: "/d/c" in mirror.tree.nodes)
            watch = _begin(a, 10, OpCode.GET_DATA, GetDataRequest("/x", True))
            assert (await _reply(watch)).err == 0
            xid = itertools.count(11)

            async def set_data(path: str, early: bool) -> None:
                held = await _hold(mirror)
                queued = _begin(a, next(xid), OpCode.SET_DATA, SetDataRequest(path, b"", -1))
                if early:
                    assert (await _reply(queued)).err == 0 and mirror.behind
                    await _until(lambda: bool(held.held))  # the watch event, held back
                else:
                    await _until(lambda: _answered_and_waiting(batcher))
                    assert queued.poll() is None
                held.release()
                assert (await _reply(queued)).err == 0 and not mirror.behind

            await set_data("/d", early=True)  # its watch is on /x
            batcher.use_fence = False
            await set_data("/d", early=False)
            batcher.use_fence = True
            # a child watch on /d: a change to /d/c may reach it (a create or delete would)
            children = _begin(a, 20, OpCode.GET_CHILDREN, GetChildrenRequest("/d", True))
            assert (await _reply(children)).err == 0
            await set_data("/d/c", early=False)
            await set_data("/", early=True)
            recursive = AddWatchRequest("/x", AddWatchMode.PERSISTENT_RECURSIVE)
            assert (await _reply(_begin(a, 21, OpCode.ADD_WATCH, recursive))).err == 0
            await set_data("/", early=False)
            assert log == []  # none of these writes fired a watch

    trio.run(main)


def test_what_else_reads_the_tree_waits_for_an_early_reply(
    etcd: EtcdServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers taken from the tree outside a session's reads wait too: a multi refused for a
    null path (its zxid is never below the write answered before it), the four-letter words
    (EtcdBackend.caught_up, which the server awaits before answering one) and the container
    manager's scan (a TTL node just touched is not a candidate)."""
    scans: list[bool] = []  # was the mirror behind when the container manager scanned?
    candidates = plans.container_candidates

    def recording(tree: Any, now: int) -> list[str]:
        scans.append(mirror.behind)
        return candidates(tree, now)

    monkeypatch.setattr(plans, "container_candidates", recording)

    async def main() -> None:
        nonlocal mirror
        log: list[tuple[Any, ...]] = []
        async with _sessions(etcd, 1, log, container_check_interval=50) as (backend, (a,)):
            mirror = backend.mirror
            create = CreateRequest("/n", b"", OPEN, 0)
            assert (await _reply(_begin(a, 1, OpCode.CREATE, create))).err == 0
            await _until(lambda: "/n" in mirror.tree.nodes)
            held = await _hold(mirror)
            write = await _reply(_begin(a, 2, OpCode.SET_DATA, SetDataRequest("/n", b"1", -1)))
            assert write.err == 0 and mirror.behind
            scanned = len(scans)
            null_path = MultiRequest((MultiOp(OpCode.DELETE, DeleteRequest(None, -1)),))
            refused = _begin(a, 3, OpCode.MULTI, null_path)
            done: dict[str, Any] = {}

            async def take_refused() -> None:
                done["multi"] = await _reply(refused)

            async def four_letter_word() -> None:
                await backend.caught_up()
                done["4lw"] = mirror.last_zxid

            async with trio.open_nursery() as nursery:
                nursery.start_soon(take_refused)
                nursery.start_soon(four_letter_word)
                await trio.sleep(0.3)  # the manager's interval (50 ms) passed several times
                assert done == {} and len(scans) == scanned
                held.release()
                await _until(lambda: len(done) == 2 and len(scans) > scanned)
            assert done["multi"].err != 0 and done["multi"].zxid >= write.zxid
            assert done["4lw"] >= write.zxid
            assert not any(scans)

    mirror: Mirror
    trio.run(main)

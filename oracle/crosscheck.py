"""The cross-checker: a backend that composes the candidate (the etcd emulation) and the oracle
(a real ZooKeeper behind the bridge) and records every difference between them.

Theory of operation.
- Order: one global lock is held while a request (or a connect) goes to both sides and both
  answers are compared, as Go zetcd's global mutex. So both sides see every session's requests
  in one order, and the zxid mapping grows in that order. A request takes the lock only once
  every event and close one side has delivered has come from the other side too, or the
  oldest of them is past its deadline (it waits without the lock, unless new arrivals keep
  coming for longer than a deadline): a client acting on an event reaches two servers that
  have both caused it. A ping waits only for one side's close of its own session to pair.
- Answering: the client gets the answer of the side ``--debug-oracle`` names (``zk``: the
  oracle, ``etcd``: the candidate), and that side's notifications as they arrive, so its
  per-connection order (an event before the reply of the write that caused it) is kept.
- Comparing: both answers are normalized (oracle.normalize) and compared field by field
  (oracle.diff); any difference is one divergence record. Watch events and connection closes
  arrive on their own schedule: they are paired per session (oracle.pairing), and whatever has
  no partner within the deadline, or crosses an earlier pair, is a divergence too.
- Sessions: a new session is a pair of sessions, one per side; a resume sent with the answering
  side's id and password goes to the other side with its own (oracle.sessionmap). When one side
  loses a session alone (refused, dropped, closed, unanswered), that is one ``lifecycle``
  divergence and the client session goes on with the answering side only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import trio

from oracle.diff import Checks, compare, primary_kind
from oracle.normalize import normalize_connect, normalize_reply
from oracle.pairing import Arrival, Pairing
from oracle.records import LIFECYCLE, WATCH_EXTRA, WATCH_MISSING, WATCH_ORDER, Answer, Divergence
from oracle.sessionmap import SessionMap, SessionPair
from oracle.sides import Side
from oracle.zxidmap import ZxidMap
from zetcd.backend import Accepted, Backend, DropConnection, Outbox, Reply, Session
from zetcd.proto.constants import EventType, OpCode
from zetcd.proto.opcodes import OPS
from zetcd.proto.records import ConnectRequest, RequestHeader, SetWatches, SetWatches2

log = logging.getLogger(__name__)

CLOSE = "close"


@dataclass(frozen=True, slots=True)
class Options:
    answer: Side = Side.ORACLE  # whose answers the client gets (--debug-oracle)
    deadline: float = 3.0  # seconds to wait for the other side's event or close
    request_timeout: float = 5.0  # seconds a side may take to answer one request
    time_tolerance_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one side did with a request: an answer, or why there is none."""

    value: Any = None
    failure: str | None = None


def op_name(opcode: int) -> str:
    spec = OPS.get(opcode)
    return spec.name if spec is not None else str(opcode)


def _event_name(event_type: int) -> str:
    try:
        return EventType(event_type).name
    except ValueError:
        return str(event_type)


class CrossChecker:
    def __init__(
        self,
        candidate: Backend,
        oracle: Backend,
        options: Options = Options(),
        sinks: Iterable[Callable[[Divergence], None]] = (),
    ) -> None:
        self.backends: dict[Side, Backend] = {Side.CANDIDATE: candidate, Side.ORACLE: oracle}
        self.options = options
        self.sinks = list(sinks)
        self.lock = trio.Lock()
        self.zxids = ZxidMap()
        self.sessions = SessionMap()
        self.checks = Checks(self.zxids, self.sessions, options.time_tolerance_ms)
        self.count = 0
        self.live: set[CrossSession] = set()
        self._nursery: trio.Nursery | None = None
        self._lingering = 0
        self._arrival = trio.Event()

    def record(self, d: Divergence) -> None:
        self.count += 1
        fields = ", ".join(f.field for f in d.diff[:4])
        log.warning(
            "divergence %s on %s (session 0x%x, xid %s): %s%s",
            d.kind,
            d.op,
            d.session or 0,
            d.xid,
            d.detail,
            f" [{fields}]" if fields else "",
        )
        for sink in self.sinks:
            try:
                sink(d)
            except Exception:
                log.exception("a divergence sink failed")

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Expire unpaired events and closes; runs until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            interval = min(0.25, max(0.02, self.options.deadline / 5))
            while True:
                await trio.sleep(interval)
                self.expire(trio.current_time())

    def expire(self, now: float) -> None:
        gone = False
        for xs in list(self.live):
            gone = xs.expire(now) or gone
            if xs.detached and not xs.pending:
                self.live.discard(xs)
        if gone:  # a request settling on what just expired goes now
            self.arrived()

    def arrived(self) -> None:
        """An event or a close came from a side, or pending ones were dropped: wake whoever
        waits in :meth:`settle`."""
        self._arrival.set()
        self._arrival = trio.Event()

    def _left(self, oldest: float | None, came_by: float) -> float:
        """How much longer the arrival that came at ``oldest`` may wait for its pair (0: none
        waits, it came after ``came_by``, or it is past its deadline and will be recorded
        unpaired)."""
        if oldest is None or oldest > came_by:
            return 0.0
        return max(0.0, oldest + self.options.deadline - trio.current_time())

    def _unsettled_for(self, came_by: float = math.inf) -> float:
        """How much longer the oldest arrival of any session (that came by ``came_by``) may
        wait for its pair."""
        return self._left(
            min((t for xs in self.live if (t := xs.oldest()) is not None), default=None), came_by
        )

    async def settle(self, unsettled: Callable[[float], float] | None = None) -> None:
        """Wait until what one side had delivered when this began (a watch event, a close)
        the other has delivered too, or the oldest such arrival is past its deadline: at most
        a deadline. So a client that acts on what it was told (an expiry's events, say)
        reaches two servers that have both done it, although each does it on its own
        schedule. ``unsettled`` narrows what is waited for (by default every session's
        arrivals: :meth:`_unsettled_for`)."""
        unsettled = unsettled or self._unsettled_for
        began = trio.current_time()
        while (left := unsettled(began)) > 0:
            with trio.move_on_after(left):
                await self._arrival.wait()

    @asynccontextmanager
    async def turn(self, unsettled: Callable[[float], float] | None = None) -> AsyncIterator[None]:
        """Hold the lock for one request or connect, settled first (:meth:`settle`, on
        ``unsettled``). The waiting is not done holding the lock: a request that finds new
        arrivals once it has the lock (set off by the requests that went first) lets it go
        and settles again, so the requests that need not wait (pings) are not held behind one
        that does. Once a deadline has passed so (new arrivals keep coming), it settles on
        what it finds holding the lock: a request settles for three deadlines at most, and
        the lock is held waiting for one at most."""
        unsettled = unsettled or self._unsettled_for
        give_up = trio.current_time() + self.options.deadline
        while True:
            await self.settle(unsettled)
            await self.lock.acquire()
            if unsettled(math.inf) <= 0:
                break
            if trio.current_time() >= give_up:
                try:
                    await self.settle(unsettled)
                except BaseException:
                    self.lock.release()
                    raise
                break
            self.lock.release()
        try:
            yield
        finally:
            self.lock.release()

    async def drain(self, timeout: float) -> None:
        """At shutdown: let pending events and closes pair up (at most ``timeout``), then
        record whatever is still unpaired."""
        with trio.move_on_after(timeout):
            while self._lingering or any(xs.pending for xs in self.live):
                await trio.sleep(0.02)
        self.expire(trio.current_time() + self.options.deadline + timeout + 1)

    def spawn(self, fn: Callable[[], Awaitable[None]]) -> None:
        if self._nursery is None:
            raise RuntimeError("CrossChecker.run must be started first")
        self._nursery.start_soon(fn)

    async def both(self, calls: dict[Side, Callable[[], Awaitable[Any]]]) -> dict[Side, Outcome]:
        """Run each side's call concurrently, each bounded by the request timeout."""
        out: dict[Side, Outcome] = {}
        timeout = self.options.request_timeout

        async def one(side: Side, call: Callable[[], Awaitable[Any]]) -> None:
            try:
                with trio.move_on_after(timeout):
                    out[side] = Outcome(await call())
                    return
                out[side] = Outcome(failure=f"no answer within {timeout:g} s")
            except DropConnection:
                out[side] = Outcome(failure="connection dropped")
            except Exception as e:
                log.exception("the %s side failed a request", side.value)
                out[side] = Outcome(failure=f"{type(e).__name__}: {e}")

        async with trio.open_nursery() as nursery:
            for side, call in calls.items():
                nursery.start_soon(one, side, call)
        return out

    async def caught_up(self) -> None:
        """The candidate's mirror has every write already answered (the four-letter words,
        which zetcd answers from it, wait for this: zetcd/server.py)."""
        caught_up = getattr(self.backends[Side.CANDIDATE], "caught_up", None)
        if caught_up is not None:
            await caught_up()

    async def connect(self, request: ConnectRequest, outbox: Outbox) -> Accepted:
        xs = CrossSession(self, outbox)
        answer = self.options.answer
        async with self.turn():
            other_request = self.sessions.translate(request, answer)
            other_request = dataclasses.replace(
                other_request, lastZxidSeen=self.zxids.translate(request.lastZxidSeen, answer)
            )
            requests = {answer: request, answer.other: other_request}
            outcomes = await self.both(
                {
                    side: partial(self.backends[side].connect, requests[side], xs.outboxes[side])
                    for side in Side
                }
            )
            xs.connected(request, outcomes)
        chosen = outcomes[answer]
        accepted = chosen.value
        if not isinstance(accepted, Accepted):
            await xs.detach()
            raise DropConnection()
        if accepted.session is None:
            await xs.detach()
            return accepted
        self.live.add(xs)
        return Accepted(accepted.response, xs, accepted.zxid)


class SideOutbox:
    """What one side's session sends to the client, intercepted."""

    def __init__(self, xs: CrossSession, side: Side) -> None:
        self.xs = xs
        self.side = side
        self.peer_host = xs.outbox.peer_host
        self.certificate = xs.outbox.certificate

    @property
    def heard(self) -> float:
        return self.xs.outbox.heard

    def notify(self, event_type: int, path: str) -> None:
        self.xs.on_event(self.side, event_type, path)

    def close(self) -> None:
        self.xs.on_close(self.side)


class CrossSession:
    def __init__(self, checker: CrossChecker, outbox: Outbox) -> None:
        self.checker = checker
        self.outbox = outbox
        self.answer = checker.options.answer
        self.session_id = 0
        self.ids: dict[Side, int | None] = {Side.CANDIDATE: None, Side.ORACLE: None}
        self.sides: dict[Side, Session | None] = {Side.CANDIDATE: None, Side.ORACLE: None}
        self.closed = {Side.CANDIDATE: False, Side.ORACLE: False}
        self._closed_events = {side: trio.Event() for side in Side}
        self.outboxes = {side: SideOutbox(self, side) for side in Side}
        deadline = checker.options.deadline
        self.events = Pairing(deadline)
        self.closes = Pairing(deadline)
        self.one_sided = False  # a side was lost alone: nothing more to compare
        self.detached = False
        self._in_flight = False
        self._close_after_reply = False

    # ------------------------------------------------------------------ records
    def divergence(self, kind: str, op: str, **fields: Any) -> None:
        self.checker.record(
            Divergence(
                kind=kind,
                op=op,
                session=self.session_id or None,
                sessions={side.value: sid for side, sid in self.ids.items()},
                answered=self.answer.value,
                ts=time.time(),
                **fields,
            )
        )

    def lose(self, side: Side) -> None:
        """``side`` lost this session alone: stop comparing, keep serving the client."""
        self.one_sided = True
        self.events = Pairing(self.events.deadline)  # what is pending can no longer pair
        self.checker.arrived()
        session = self.sides[side]
        if session is not None and side is not self.answer:
            self.sides[side] = None
            self.checker.spawn(session.detach)

    # ------------------------------------------------------------------ connect
    def connected(self, request: ConnectRequest, outcomes: dict[Side, Outcome]) -> None:
        cand, orac = outcomes[Side.CANDIDATE], outcomes[Side.ORACLE]
        responses = {}
        for side, outcome in outcomes.items():
            accepted = outcome.value
            if isinstance(accepted, Accepted):
                responses[side] = accepted.response
                self.sides[side] = accepted.session
                if accepted.session is not None:
                    self.ids[side] = accepted.session.session_id
        if request.sessionId == 0 and all(s is not None for s in self.sides.values()):
            c, o = responses[Side.CANDIDATE], responses[Side.ORACLE]
            assert c is not None and o is not None
            self.checker.sessions.add(
                SessionPair(c.sessionId, o.sessionId, c.passwd or b"", o.passwd or b"")
            )
        self.session_id = self.ids[self.answer] or 0
        norm = {side: normalize_connect(responses.get(side)) for side in Side}
        diffs = compare(norm[Side.CANDIDATE], norm[Side.ORACLE], self.checker.checks)
        fates = {side: self._fate(outcomes[side]) for side in Side}
        if fates[Side.CANDIDATE] != fates[Side.ORACLE]:
            kind = LIFECYCLE
            detail = f"connect: candidate {fates[Side.CANDIDATE]}, oracle {fates[Side.ORACLE]}"
        elif diffs:
            kind, detail = primary_kind(diffs), "connect responses differ"
        else:
            kind = ""
        if kind:
            self.divergence(
                kind,
                "connect",
                detail=detail,
                request=request,
                candidate=Answer(
                    cand.value.response if cand.failure is None else cand.failure,
                    norm[Side.CANDIDATE],
                ),
                oracle=Answer(
                    orac.value.response if orac.failure is None else orac.failure, norm[Side.ORACLE]
                ),
                diff=tuple(diffs),
            )
        if any(s is None for s in self.sides.values()):
            self.one_sided = True

    @staticmethod
    def _fate(outcome: Outcome) -> str:
        accepted = outcome.value
        if not isinstance(accepted, Accepted) or accepted.response is None:
            return "closed the connection without a response"
        return "accepted" if accepted.session is not None else "refused the session"

    # ------------------------------------------------------------------ requests
    async def handle(self, header: RequestHeader, body: object | None) -> Reply:
        return await self._request(
            header.xid,
            header.type,
            {"header": header, "body": body},
            lambda side, s: s.handle(
                header, body if side is self.answer else self._translate(body)
            ),
        )

    async def malformed(self, xid: int, opcode: int) -> Reply:
        return await self._request(
            xid, opcode, {"malformed": True, "xid": xid, "opcode": opcode},
            lambda side, s: s.malformed(xid, opcode),
        )  # fmt: skip

    def _translate(self, body: object | None) -> object | None:
        """A request for the other side: zxids it names in its own numbering."""
        if isinstance(body, SetWatches | SetWatches2):
            rel = self.checker.zxids.translate(body.relativeZxid, self.answer)
            return dataclasses.replace(body, relativeZxid=rel)
        return body

    async def _request(
        self,
        xid: int,
        opcode: int,
        request: dict[str, Any],
        call: Callable[[Side, Session], Awaitable[Reply]],
    ) -> Reply:
        checker = self.checker
        self._in_flight = True
        try:
            # a ping bears on nothing the client was told, so it does not wait for the other
            # side's events (held for the deadline, a session's pings could make it expire on
            # both servers); but while one side's close of this session waits for the other's,
            # it waits, so that it cannot keep the session alive on the side yet to close it
            ping = opcode == OpCode.PING
            async with checker.turn(self._close_unsettled_for if ping else None):
                live = {
                    side: s
                    for side, s in self.sides.items()
                    if s is not None and not self.closed[side]
                }
                if self.answer not in live:
                    raise DropConnection()
                outcomes = await checker.both(
                    {side: partial(call, side, s) for side, s in live.items()}
                )
                if len(outcomes) == 2 and not self.one_sided:
                    self._compare(xid, opcode, request, outcomes)
        except BaseException:
            self._in_flight = False
            raise
        # no checkpoint from here on: the server queues the reply as soon as this returns, and
        # a close of the answering side that came meanwhile must not overtake it
        self._in_flight = False
        for side, outcome in outcomes.items():
            if isinstance(outcome.value, Reply) and outcome.value.close:
                self.on_close(side, by_reply=True)
        chosen = outcomes[self.answer].value
        if not isinstance(chosen, Reply):
            raise DropConnection()
        if self._close_after_reply and not chosen.close:
            chosen = dataclasses.replace(chosen, close=True)
        return chosen

    def _compare(
        self, xid: int, opcode: int, request: dict[str, Any], outcomes: dict[Side, Outcome]
    ) -> None:
        cand, orac = outcomes[Side.CANDIDATE], outcomes[Side.ORACLE]
        op = op_name(opcode)
        if cand.failure is not None or orac.failure is not None:
            if cand.failure == orac.failure:
                return
            lost = Side.CANDIDATE if cand.failure is not None else Side.ORACLE
            detail = (
                f"{op}: candidate {cand.failure or 'answered'}, oracle {orac.failure or 'answered'}"
            )
            self.divergence(
                LIFECYCLE, op, detail=detail, xid=xid, request=request,
                candidate=Answer(cand.value or cand.failure), oracle=Answer(orac.value or orac.failure),
            )  # fmt: skip
            self.lose(lost)
            return
        c, o = cand.value, orac.value
        nc = normalize_reply(opcode, c.xid, c.zxid, c.err, c.body)
        no = normalize_reply(opcode, o.xid, o.zxid, o.err, o.body)
        diffs = compare(nc, no, self.checker.checks)
        if diffs:
            self.divergence(
                primary_kind(diffs), op, detail=f"{op} answers differ", xid=xid, request=request,
                candidate=Answer(c, nc), oracle=Answer(o, no), diff=tuple(diffs),
            )  # fmt: skip

    # ------------------------------------------------------------------ async arrivals
    def on_event(self, side: Side, event_type: int, path: str) -> None:
        if side is self.answer and not self.detached:
            self.outbox.notify(event_type, path)
        if self.one_sided:
            return
        now = trio.current_time()
        crossed = self.events.add(side, (event_type, path), now, match_only=self.detached)
        self.checker.arrived()
        if crossed is not None:
            name = f"{_event_name(event_type)} {path}"
            self.divergence(
                WATCH_ORDER,
                "watch",
                detail=f"{name} is #{crossed.candidate_seq} of the candidate's events and "
                f"#{crossed.oracle_seq} of the oracle's, crossing an earlier pair",
                request={"type": event_type, "path": path},
            )

    def on_close(self, side: Side, *, by_reply: bool = False) -> None:
        """``side`` closed the connection; a reply with close=True closes it once sent."""
        if self.closed[side]:
            return
        self.closed[side] = True
        self._closed_events[side].set()
        if side is self.answer and not by_reply:
            if self._in_flight:
                self._close_after_reply = True
            else:
                self.outbox.close()
        if not self.one_sided:
            self.closes.add(side, CLOSE, trio.current_time())
            self.checker.arrived()

    @property
    def pending(self) -> bool:
        return self.events.pending or self.closes.pending

    def _close_unsettled_for(self, came_by: float) -> float:
        """How much longer one side's close of this session (if it came by ``came_by``) may
        wait for the other's."""
        return self.checker._left(self.closes.oldest(), came_by)

    def oldest(self) -> float | None:
        """When the oldest arrival still waiting for its pair came (None: none waits)."""
        times = [t for t in (self.events.oldest(), self.closes.oldest()) if t is not None]
        return min(times, default=None)

    def expire(self, now: float) -> bool:
        """Record the arrivals past their deadline as unpaired; were there any?"""
        events, closes = self.events.expired(now), self.closes.expired(now)
        for a in events:
            self._unpaired_event(a)
        for a in closes:
            if not self.one_sided:
                self.divergence(
                    LIFECYCLE,
                    "session",
                    detail=f"the {a.side.value} closed the connection, the "
                    f"{a.side.other.value} did not within {self.events.deadline:g} s",
                )
                self.lose(self.answer.other)
        return bool(events or closes)

    def _unpaired_event(self, a: Arrival) -> None:
        event_type, path = cast(tuple[int, str], a.key)
        kind = WATCH_MISSING if a.side is Side.ORACLE else WATCH_EXTRA
        event = {"type": event_type, "path": path}
        self.divergence(
            kind,
            "watch",
            detail=f"{_event_name(event_type)} {path}: delivered by the {a.side.value}, not by "
            f"the {a.side.other.value} within {self.events.deadline:g} s",
            request=event,
            candidate=Answer(event if a.side is Side.CANDIDATE else None),
            oracle=Answer(event if a.side is Side.ORACLE else None),
        )

    # ------------------------------------------------------------------ detach
    async def detach(self) -> None:
        """The client connection is gone. A side whose partner closed the connection first
        gets the deadline to close too before it is detached."""
        self.detached = True
        for side in Side:
            session = self.sides[side]
            if session is None:
                continue
            if not self.closed[side] and self.closes.waiting(side.other, CLOSE):
                self.checker._lingering += 1
                self.checker.spawn(partial(self._linger, side))
            else:
                self.sides[side] = None
                await self._detach(session)

    async def _linger(self, side: Side) -> None:
        try:
            with trio.move_on_after(self.checker.options.deadline):
                await self._closed_events[side].wait()
            session, self.sides[side] = self.sides[side], None
            if session is not None:
                await self._detach(session)
        finally:
            self.checker._lingering -= 1

    @staticmethod
    async def _detach(session: Session) -> None:
        try:
            await session.detach()
        except Exception:
            log.exception("detaching a session failed")

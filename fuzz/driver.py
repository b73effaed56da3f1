"""Driving the candidate (zetcd) and the oracle (ZooKeeper) through one example, step by step.

Theory of operation. An example owns a fresh base node ``/fz-<run>-<n>`` on both servers with
two children: ``t``, the tree every relative path of the example lives under, and ``m``, where
expiry markers go. Each fuzz session (a slot number) has one connection on each side, opened
with the same ConnectRequest; its id and password differ per side and are paired in the
example's :class:`oracle.sessionmap.SessionMap`, and every later request is sent identically to
both (same xid, same absolute path). Steps run one at a time: the request goes to both
servers, both replies are read, then every live session of both sides is pinged so that the
watch events the step triggered have arrived (a ping reply follows the notifications queued
before it); if a session's events differ, the driver waits ``settle`` seconds and pings once
more before it compares, so a late delivery is not mistaken for a missing event.

After every step the driver does what ZooKeeper's container manager would do sometime in the
next minute, at once and on both sides alike: it deletes every container that has had children
and has none left. The servers' own clean-up runs on independent timers, so without this a
campaign would see one server delete an empty container a moment before the other. TTL nodes
are only created with TTLs far longer than a campaign, for the same reason.

A side's helper session (:class:`Probe`) creates the base nodes, watches for expiry markers and
removes containers; what it sees is never compared.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzz.client import CLOSED, REPLY, Connection, Outcome, open_connection
from fuzz.compare import (
    CANDIDATE,
    ORACLE,
    SIDES,
    EventKey,
    compare_connects,
    compare_events,
    compare_replies,
    lifecycle,
)
from fuzz.ops import AddWatch as AddWatchOp
from fuzz.ops import (
    Close,
    Create,
    Drop,
    Expire,
    GetChildren,
    GetData,
    Mangled,
    Multi,
    Open,
    Pipeline,
    Resume,
    Step,
    op_name,
    quota_node,
    quota_path,
    wire,
)
from fuzz.ops import Exists as ExistsOp
from fuzz.sessions import DROPPED, GONE, LIVE, FuzzSession, Probe, ServerLost
from oracle.diff import Checks
from oracle.records import Divergence
from oracle.sessionmap import SessionMap, SessionPair
from oracle.sides import Side
from oracle.zxidmap import ZxidMap
from zetcd.proto.constants import SET_WATCHES_XID, CreateMode, Err, OpCode
from zetcd.proto.opcodes import OPS
from zetcd.proto.records import (
    ACL,
    ConnectRequest,
    ConnectResponse,
    Create2Response,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    ExistsRequest,
    Id,
    MultiResponse,
    SetWatches,
    SetWatches2,
)

OPEN_ACL = (ACL(31, Id("world", "anyone")),)
EXPIRY_SESSION_TIMEOUT = 4000  # ms: ZooKeeper's smallest with tickTime 2000
KEEPALIVE_AFTER = 10.0  # s: a dropped session is touched again after this long
CLOSE_WAIT = 1.0  # s: how long a server may take to close a connection it should close


@dataclass
class Exchange:
    """One compared exchange of a step: what was sent and what each side answered."""

    op: str
    request: Any
    answers: dict[Side, Any]


@dataclass
class StepResult:
    step: Step
    exchanges: list[Exchange] = field(default_factory=list)
    events: dict[int, dict[Side, list[EventKey]]] = field(default_factory=dict)
    divergences: list[Divergence] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    skipped: str = ""
    # the session whose requests the step sent, and the replies each side had had before them
    acting: tuple[int, dict[Side, int]] | None = None
    requests: int = 1  # how many it sent (a Pipeline's several)

    def add(self, d: Divergence | None) -> None:
        if d is not None:
            self.divergences.append(d)


def _raw(out: Outcome) -> Any:
    if out.kind == REPLY and out.reply is not None:
        return {"header": out.reply.header, "body": out.reply.body}
    return {"outcome": out.kind, "detail": out.detail}


def _creates_ttl_crash(op: Any) -> bool:
    """createTTL with a non-TTL mode and ttl < 0 crashes ZooKeeper 3.8 (zk-facts.md §1)."""
    if isinstance(op, Mangled):
        return _creates_ttl_crash(op.op)
    if isinstance(op, Multi | Pipeline):
        return any(_creates_ttl_crash(sub) for sub in op.ops)
    return (
        isinstance(op, Create)
        and op.opcode == OpCode.CREATE_TTL
        and 0 <= op.flags <= CreateMode.CONTAINER
        and op.ttl < 0
    )


class Driver:
    """One example against both sides. ``run(step)`` returns what happened and what diverged."""

    def __init__(
        self,
        addresses: Mapping[Side, str],
        base: str,
        *,
        probes: Mapping[Side, Probe] | None = None,
        request_timeout: float = 5.0,
        expiry_timeout: float = 15.0,
        settle: float = 0.3,
    ) -> None:
        self.addresses = dict(addresses)
        self.base = base
        self.tree = base + "/t"
        self.markers = base + "/m"
        self.request_timeout = request_timeout
        self.expiry_timeout = expiry_timeout
        self.settle = settle
        self._own_probes = probes is None
        self.probes = (
            dict(probes)
            if probes is not None
            else {side: Probe(side, self.addresses[side], request_timeout) for side in SIDES}
        )
        self.checks = Checks(ZxidMap(), SessionMap())
        self.sessions: dict[int, FuzzSession] = {}
        self.containers: set[str] = set()
        self._markers = 0
        self._handlers: dict[type, Callable[[int, Any, StepResult], None]] = {
            Open: self._open,
            Close: self._close,
            Drop: self._drop,
            Resume: self._resume_step,
            Expire: self._expire,
            Pipeline: self._pipeline,
        }

    # --- paths ------------------------------------------------------------------------

    def full(self, rel: str) -> str:
        if not rel.startswith("/"):
            return rel
        return self.tree if rel == "/" else self.tree + rel

    def relative(self, path: str | None) -> str | None:
        if path == self.tree:
            return "/"
        if path is not None and path.startswith(self.tree + "/"):
            return path[len(self.tree) :]
        return None

    # --- example life cycle ---------------------------------------------------------------

    def setup(self) -> None:
        """The example's nodes, and a quota on its tree (limits, then stats: counted from
        then on, every step's writes move it; QuotaStats reads it)."""
        for side in SIDES:
            for path, data in (
                (self.base, b""),
                (self.tree, b""),
                (self.markers, b""),
                (quota_path(self.base), b""),
                (quota_path(self.tree), b""),
                (quota_node(self.tree, "zookeeper_limits"), b"count=100,bytes=1000"),
                (quota_node(self.tree, "zookeeper_stats"), b"count=0,bytes=0"),
            ):
                err = self.probes[side].err(OpCode.CREATE, CreateRequest(path, data, OPEN_ACL, 0))
                if err != Err.OK:
                    raise ServerLost(f"cannot create {path} on the {side.value}: err {err}")

    def teardown(self) -> None:
        for st in self.sessions.values():
            if st.status == DROPPED:
                for side in SIDES:
                    st.conns[side] = self._connect(side, st, st.timeout, right=True)[0]
                st.status = LIVE
            if st.status == LIVE:
                for side in SIDES:
                    conn = st.conns.get(side)
                    if conn is not None and not conn.closed:
                        conn.call(st.next_xid(), OpCode.CLOSE_SESSION)
            st.drop()
            st.status = GONE
        # the quota goes, so that the servers' sets of quota'd paths do not grow with every
        # example (its nodes stay, as the example's tree does)
        limits = DeleteRequest(quota_node(self.tree, "zookeeper_limits"), -1)
        for probe in self.probes.values():
            # a lost server: the step that met it reports it
            with contextlib.suppress(ServerLost):
                probe.call(OpCode.DELETE, limits)
        if self._own_probes:
            for probe in self.probes.values():
                probe.close()

    def run(self, step: Step) -> StepResult:
        res = StepResult(step)
        self._keep_dropped_alive(res)
        if _creates_ttl_crash(step.op):
            res.skipped = "createTTL with a non-TTL mode and ttl < 0 crashes ZooKeeper 3.8"
            return res
        handler = self._handlers.get(type(step.op), self._request)
        handler(step.session, step.op, res)
        self._reap()
        self._flush(res)
        return res

    # --- requests ---------------------------------------------------------------------

    def _live(self, slot: int, res: StepResult) -> FuzzSession | None:
        st = self.sessions.get(slot)
        if st is None or st.status != LIVE:
            res.skipped = f"session s{slot} is not connected"
            return None
        return st

    def _request(self, slot: int, op: Any, res: StepResult) -> None:
        st = self._live(slot, res)
        if st is None:
            return
        before = {side: st.conns[side].replies for side in SIDES}  # type: ignore[union-attr]
        sent = self._send(st, op)
        res.acting = (slot, before)
        self._answered(st, op, *sent, res)

    def _pipeline(self, slot: int, op: Pipeline, res: StepResult) -> None:
        """Every request sent on both sides before any reply is read; then each compared."""
        st = self._live(slot, res)
        if st is None:
            return
        before = {side: st.conns[side].replies for side in SIDES}  # type: ignore[union-attr]
        sent = [(sub, *self._send(st, sub)) for sub in op.ops]
        res.acting = (slot, before)
        res.requests = len(op.ops)
        for sub, xid, ok in sent:
            self._answered(st, sub, xid, ok, res)

    def _send(self, st: FuzzSession, op: Any) -> tuple[int, dict[Side, bool]]:
        """Send ``op`` on both sides: its xid, and on which side it went out."""
        xid = getattr(op, "xid", None)
        if xid is None:
            xid = st.next_xid()
        record, raw = wire(op, self.full)
        sent: dict[Side, bool] = {}
        for side in SIDES:
            conn = st.conns[side]
            assert conn is not None
            sent[side] = conn.send(xid, op.opcode, record, raw)
        return xid, sent

    def _answered(
        self, st: FuzzSession, op: Any, xid: int, sent: Mapping[Side, bool], res: StepResult
    ) -> None:
        """Wait for the reply to ``op`` on both sides and compare the two."""
        slot = st.slot
        opcode = op.opcode
        body = op.request_body(self.full)
        outs: dict[Side, Outcome] = {}
        for side in SIDES:
            conn = st.conns[side]
            assert conn is not None
            outs[side] = conn.wait_reply(xid) if sent[side] else Outcome(CLOSED)
        self._note_watches(st, op)
        name = op_name(op)
        res.exchanges.append(Exchange(name, body, {s: _raw(outs[s]) for s in SIDES}))
        res.add(
            compare_replies(
                self.checks,
                slot=slot,
                op=name,
                opcode=opcode,
                xid=xid,
                request=body,
                outcomes=outs,
                sids=st.sid,
            )
        )
        self._learn(op, outs, res)

    def _note_watches(self, st: FuzzSession, op: Any) -> None:
        kinds = {ExistsOp: "exist", GetData: "data", GetChildren: "child"}
        kind = kinds.get(type(op))
        if kind is not None and op.watch:
            st.watches[kind].add(self.full(op.path))
        elif isinstance(op, AddWatchOp):
            st.watches["rec" if op.mode else "pers"].add(self.full(op.path))

    def _learn(self, op: Any, outs: Mapping[Side, Outcome], res: StepResult) -> None:
        """Created paths (for the machine), containers (for the reaper), errors (coverage)."""
        for side in SIDES:
            out = outs[side]
            if out.kind != REPLY or out.reply is None:
                continue
            reply = out.reply
            created = []
            if reply.header.err == Err.OK and isinstance(op, Create):
                assert isinstance(reply.body, CreateResponse | Create2Response)
                created.append((reply.body.path, op.opcode == OpCode.CREATE_CONTAINER))
            if isinstance(reply.body, MultiResponse) and isinstance(op, Multi) and not op.read:
                for sub, result in zip(op.ops, reply.body.results, strict=False):
                    if isinstance(sub, Create) and result.type != -1:
                        path = getattr(result.response, "path", None)
                        created.append((path, sub.flags == CreateMode.CONTAINER))
            for path, container in created:
                if container and path is not None:
                    self.containers.add(path)
                rel = self.relative(path)
                if side is ORACLE and rel is not None:
                    res.created.append(rel)
            if side is ORACLE:
                res.errors.append(reply.header.err)
                if isinstance(reply.body, MultiResponse):
                    res.errors.extend(r.err for r in reply.body.results if r.type == -1)

    # --- sessions -------------------------------------------------------------------------

    def _connect_request(
        self, side: Side, st: FuzzSession | None, timeout: int, *, right: bool, ro: Any
    ) -> ConnectRequest:
        if st is None or side not in st.sid:
            return ConnectRequest(0, 0, timeout, 0, bytes(16), ro)
        passwd = st.passwd[side]
        if not right:
            passwd = bytes([passwd[0] ^ 0xFF]) + passwd[1:]
        return ConnectRequest(0, st.last_zxid[side], timeout, st.sid[side], passwd, ro)

    def _connect(
        self,
        side: Side,
        st: FuzzSession | None,
        timeout: int,
        *,
        right: bool = True,
        ro: Any = False,
    ) -> tuple[Connection | None, ConnectResponse | None]:
        req = self._connect_request(side, st, timeout, right=right, ro=ro)
        conn = open_connection(self.addresses[side], self.request_timeout)
        if conn is None:
            raise ServerLost(f"the {side.value} at {self.addresses[side]} refuses connections")
        resp = conn.connect(req)
        if resp is None or not resp.sessionId:
            conn.drop()
        elif st is not None:
            conn.last_zxid = st.last_zxid[side]
        return conn, resp

    def _open(self, slot: int, op: Open, res: StepResult) -> None:
        old = self.sessions.get(slot)
        if old is not None and old.status != GONE:
            res.skipped = f"session s{slot} is in use"
            return
        st = FuzzSession(slot, timeout=op.timeout)
        responses: dict[Side, ConnectResponse | None] = {}
        for side in SIDES:
            st.conns[side], responses[side] = self._connect(side, None, op.timeout, ro=op.read_only)
        rc, ro = responses[CANDIDATE], responses[ORACLE]
        if rc is not None and ro is not None and rc.sessionId and ro.sessionId:
            self.checks.sessions.add(
                SessionPair(rc.sessionId, ro.sessionId, rc.passwd or b"", ro.passwd or b"")
            )
        for side in SIDES:
            resp = responses[side]
            if resp is not None and resp.sessionId:
                st.sid[side] = resp.sessionId
                st.passwd[side] = resp.passwd or b""
        self.sessions[slot] = st
        request = ConnectRequest(0, 0, op.timeout, 0, bytes(16), op.read_only)
        self._connect_exchange(st, "open", request, responses, res)
        st.status = LIVE if st.sid else GONE

    def _connect_exchange(
        self,
        st: FuzzSession,
        name: str,
        request: Any,
        responses: Mapping[Side, ConnectResponse | None],
        res: StepResult,
    ) -> None:
        res.exchanges.append(Exchange(name, request, dict(responses)))
        res.add(
            compare_connects(
                self.checks,
                slot=st.slot,
                op=name,
                request=request,
                responses=responses,
                sids=st.sid,
            )
        )

    def _close(self, slot: int, op: Close, res: StepResult) -> None:
        st = self._live(slot, res)
        if st is None:
            return
        xid = st.next_xid()
        outs: dict[Side, Outcome] = {}
        for side in SIDES:
            conn = st.conns[side]
            assert conn is not None
            outs[side] = conn.call(xid, OpCode.CLOSE_SESSION)
        closed = {side: st.conns[side].wait_closed(CLOSE_WAIT) for side in SIDES}  # type: ignore[union-attr]
        res.exchanges.append(Exchange("closeSession", None, {s: _raw(outs[s]) for s in SIDES}))
        res.add(
            compare_replies(
                self.checks,
                slot=slot,
                op="closeSession",
                opcode=OpCode.CLOSE_SESSION,
                xid=xid,
                request=None,
                outcomes=outs,
                sids=st.sid,
            )
        )
        if closed[CANDIDATE] != closed[ORACLE]:
            res.add(self._closed_by_one(st, "closeSession", closed))
        st.drop()
        st.status = GONE

    def _closed_by_one(self, st: FuzzSession, op: str, closed: Mapping[Side, bool]) -> Divergence:
        which = next(side for side in SIDES if closed[side])
        return lifecycle(
            slot=st.slot,
            op=op,
            detail=f"the connection was closed by the {which.value} only",
            sids=st.sid,
            candidate={"closed": closed[CANDIDATE]},
            oracle={"closed": closed[ORACLE]},
        )

    def _drop(self, slot: int, op: Drop, res: StepResult) -> None:
        st = self._live(slot, res)
        if st is None:
            return
        st.drop()
        st.status = DROPPED
        st.dropped_at = time.monotonic()

    def _resume_step(self, slot: int, op: Resume, res: StepResult) -> None:
        st = self.sessions.get(slot)
        if st is None or not st.sid:
            res.skipped = f"session s{slot} was never opened"
            return
        self._resume(st, op, "resume", res)

    def _resume(self, st: FuzzSession, op: Resume, name: str, res: StepResult) -> bool:
        """Reconnect ``st`` on both sides; True when both accepted."""
        old = dict(st.conns)
        if st.status != LIVE:
            st.drop()
        responses: dict[Side, ConnectResponse | None] = {}
        conns: dict[Side, Connection | None] = {}
        for side in SIDES:
            conns[side], responses[side] = self._connect(
                side, st, op.timeout, right=not op.wrong_password
            )
        request = self._connect_request(
            ORACLE, st, op.timeout, right=not op.wrong_password, ro=False
        )
        self._connect_exchange(st, name, request, responses, res)
        accepted = {side: bool(responses[side] and responses[side].sessionId) for side in SIDES}  # type: ignore[union-attr]
        if st.status == LIVE:  # a takeover: the server closes the session's old connection
            closed = {}
            for side in SIDES:
                conn = old.get(side)
                closed[side] = (conn is None or conn.wait_closed(CLOSE_WAIT)) or not accepted[side]
                if accepted[side] and conn is not None:
                    if conn.last_zxid > 0:
                        st.last_zxid[side] = conn.last_zxid
                    conn.drop()
            if closed[CANDIDATE] != closed[ORACLE]:
                res.add(self._closed_by_one(st, name, closed))
        if not any(accepted.values()):
            for conn in conns.values():
                if conn is not None:
                    conn.drop()
            if not op.wrong_password and st.status != LIVE:
                st.status = GONE
            return False
        for side in SIDES:
            st.conns[side] = conns[side]
        st.status = LIVE
        st.timeout = op.timeout
        if op.set_watches:
            self._set_watches(st, op.set_watches, res)
        return all(accepted.values())

    def _set_watches(self, st: FuzzSession, version: int, res: StepResult) -> None:
        w = {k: tuple(sorted(v)) for k, v in st.watches.items()}
        opcode = OpCode.SET_WATCHES2 if version == 2 else OpCode.SET_WATCHES
        name = OPS[opcode].name
        outs: dict[Side, Outcome] = {}
        bodies: dict[Side, SetWatches | SetWatches2] = {}
        for side in SIDES:
            zxid = st.last_zxid[side]
            if version == 2:
                body: SetWatches | SetWatches2 = SetWatches2(
                    zxid, w["data"], w["exist"], w["child"], w["pers"], w["rec"]
                )
            else:
                body = SetWatches(zxid, w["data"], w["exist"], w["child"])
            bodies[side] = body
            conn = st.conns[side]
            outs[side] = conn.call(SET_WATCHES_XID, opcode, body) if conn else Outcome(CLOSED)
        res.exchanges.append(Exchange(name, bodies[ORACLE], {s: _raw(outs[s]) for s in SIDES}))
        res.add(
            compare_replies(
                self.checks,
                slot=st.slot,
                op=name,
                opcode=opcode,
                xid=SET_WATCHES_XID,
                request=bodies[ORACLE],
                outcomes=outs,
                sids=st.sid,
            )
        )

    def _keep_dropped_alive(self, res: StepResult) -> None:
        """Touch sessions dropped long ago, so none expires at a moment of a server's choosing."""
        now = time.monotonic()
        for st in self.sessions.values():
            if st.status == DROPPED and now - st.dropped_at > KEEPALIVE_AFTER:
                self._resume(st, Resume(st.timeout), "resume(keepalive)", res)
                st.drop()
                st.status = DROPPED
                st.dropped_at = time.monotonic()

    def _expire(self, slot: int, op: Expire, res: StepResult) -> None:
        st = self._live(slot, res)
        if st is None:
            return
        st.drop()
        st.status = DROPPED
        if not self._resume(st, Resume(EXPIRY_SESSION_TIMEOUT), "resume(4000ms)", res):
            return
        self._markers += 1
        marker = f"{self.markers}/s{slot}-{self._markers}"
        body = CreateRequest(marker, b"", OPEN_ACL, CreateMode.EPHEMERAL)
        xid = st.next_xid()
        outs = {side: st.conns[side].call(xid, OpCode.CREATE, body) for side in SIDES}  # type: ignore[union-attr]
        res.add(
            compare_replies(
                self.checks,
                slot=slot,
                op="create(marker)",
                opcode=OpCode.CREATE,
                xid=xid,
                request=body,
                outcomes=outs,
                sids=st.sid,
            )
        )
        st.drop()
        st.status = GONE
        gone = self._wait_expired(marker)
        res.exchanges.append(Exchange("expire", marker, {s: {"expired": gone[s]} for s in SIDES}))
        if gone[CANDIDATE] != gone[ORACLE]:
            which = next(side for side in SIDES if not gone[side])
            res.add(
                lifecycle(
                    slot=slot,
                    op="expire",
                    detail=f"the session did not expire on the {which.value} "
                    f"within {self.expiry_timeout:g} s",
                    sids=st.sid,
                    candidate={"expired": gone[CANDIDATE]},
                    oracle={"expired": gone[ORACLE]},
                )
            )

    def _wait_expired(self, marker: str) -> dict[Side, bool]:
        gone = {side: False for side in SIDES}
        deadline = time.monotonic() + self.expiry_timeout
        next_ping = time.monotonic() + 1.0
        while not all(gone.values()) and time.monotonic() < deadline:
            for side in SIDES:
                if not gone[side]:
                    err = self.probes[side].err(OpCode.EXISTS, ExistsRequest(marker, False))
                    gone[side] = err == Err.NO_NODE
            if time.monotonic() > next_ping:
                self._ping_live()
                next_ping = time.monotonic() + 1.0
            time.sleep(0.1)
        return gone

    # --- after each step ----------------------------------------------------------------

    def _reap(self) -> None:
        """Delete containers that had children and have none left, deepest first."""
        for path in sorted(self.containers, key=lambda p: -p.count("/")):
            left = False
            for side in SIDES:
                probe = self.probes[side]
                stat = probe.stat(path)
                if stat is None:
                    continue
                if stat.numChildren == 0 and stat.cversion > 0:
                    probe.call(OpCode.DELETE, DeleteRequest(path, -1))
                else:
                    left = True
            if not left:
                self.containers.discard(path)

    def _ping_live(self) -> list[tuple[FuzzSession, Side, Connection]]:
        conns = [
            (st, side, conn)
            for st in self.sessions.values()
            if st.status == LIVE
            for side in SIDES
            if (conn := st.conns.get(side)) is not None and not conn.closed
        ]
        sent = [(st, side, conn) for st, side, conn in conns if conn.send(-2, OpCode.PING)]
        for _, _, conn in sent:
            conn.wait_reply(-2)
        return conns

    def _flush(self, res: StepResult) -> None:
        self._ping_live()
        live = [st for st in self.sessions.values() if st.status == LIVE]
        keys = {st.slot: {side: self._take(st, side, res) for side in SIDES} for st in live}
        if any(k[CANDIDATE] != k[ORACLE] for k in keys.values()):
            time.sleep(self.settle)
            self._ping_live()
            for st in live:
                for side in SIDES:
                    keys[st.slot][side] += self._take(st, side, res)
        for st in live:
            if keys[st.slot][CANDIDATE] or keys[st.slot][ORACLE]:
                res.events[st.slot] = keys[st.slot]
            res.add(
                compare_events(slot=st.slot, events=keys[st.slot], sids=st.sid, strip=self.tree)
            )
        for st in live:
            closed = {side: st.conns[side] is None or st.conns[side].closed for side in SIDES}  # type: ignore[union-attr]
            if closed[CANDIDATE] != closed[ORACLE]:
                # A server may close a connection a moment after its last reply: ZooKeeper
                # sometimes answers the flush's ping after Unimplemented, then closes. Only a
                # connection still open after CLOSE_WAIT counts as left open.
                for side in SIDES:
                    conn = st.conns[side]
                    if not closed[side] and conn is not None:
                        closed[side] = conn.wait_closed(CLOSE_WAIT)
            if closed[CANDIDATE] != closed[ORACLE]:
                res.add(self._closed_by_one(st, op_name(res.step.op), closed))
            elif all(closed.values()):  # e.g. after an unknown opcode: resume, as a client would
                st.drop()
                st.status = DROPPED
                self._resume(st, Resume(st.timeout), "resume(auto)", res)

    def _take(self, st: FuzzSession, side: Side, res: StepResult) -> list[EventKey]:
        conn = st.conns.get(side)
        if conn is None:
            return []
        acting = res.acting
        out: list[EventKey] = []
        for ev in conn.take_events():
            phase = ""
            if acting is not None and acting[0] == st.slot:
                # a Pipeline's: after how many of its replies
                k = ev.replies_before - acting[1][side]
                phase = "before reply" if k <= 0 else "after reply"
                if res.requests > 1 and k > 0:
                    phase = f"after reply {min(k, res.requests)}"
            out.append((phase, ev.event.type, ev.event.state, ev.event.path))
        return out

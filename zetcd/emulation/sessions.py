"""ZooKeeper sessions kept in etcd: a lease plus a session record (design.md, "Sessions").

Theory of operation: a session id is its etcd lease id, and ``P s/<id>`` (attached to the lease)
holds the password and negotiated timeout, so any zetcd sharing the cluster can resume it (auth
ids are not kept: as in ZooKeeper they belong to the connection, and clients send them again).
A lease outlives its session's timeout by LEASE_SLACK seconds (rounded up to whole seconds, etcd's
unit), and while a client is connected to this process the keeper task renews it before that slack
is used up. So, as ZooKeeper counts a session's timeout from when it last heard from the client,
the lease runs out no sooner than the timeout after the client was last heard from, whether the
connection closes or this process dies, and at most about LEASE_SLACK later (ZooKeeper: at most one
tick later). While this process lives, the keeper expires its sessions itself, at the moment
ZooKeeper's session tracker would: their timeout after the client was last heard from, rounded
up to the next multiple of the tick on the monotonic clock (ZooKeeper's ExpiryQueue buckets;
the backend's expiry: ephemerals and record in one transaction). When
etcd expires a lease the record vanishes; every zetcd's mirror sees that, and the session's
ephemerals are deleted in one transaction that also bumps each parent's cversion and pzxid
(plans.end_session; in several when they do not fit one), guarded so that a live session is
never touched and running it twice is harmless.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from zetcd.emulation.layout import CLOSING, SessionValue, closing_value
from zetcd.emulation.mirror import Mirror
from zetcd.emulation.tree import Applied, SessionEntry
from zetcd.etcd import EtcdClient, EtcdUnavailable, compare_create, compare_value, op_put

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Timeout negotiation as ZooKeeper: clamp to [min, max], by default 2 and 20 ticks."""

    tick_time: int = 2000
    min_timeout: int = 0
    max_timeout: int = 0

    def negotiate(self, requested: int) -> int:
        lo = self.min_timeout or 2 * self.tick_time
        hi = self.max_timeout or 20 * self.tick_time
        return max(lo, min(hi, requested))


# how much longer than its session's timeout a lease lasts (ZooKeeper's default tick)
LEASE_SLACK = 2.0
# how long before that slack is used up a renewal is sent (etcd's answer, the keeper's latency)
RENEW_MARGIN = 0.25


def lease_ttl(timeout_ms: int) -> int:
    """The TTL (whole seconds) of the lease of a session with this negotiated timeout."""
    return max(2, math.ceil(timeout_ms / 1000 + LEASE_SLACK))


def renew_interval(ttl: int, timeout_ms: int) -> float:
    """Seconds between renewals of a lease of ``ttl`` seconds: a renewal before the client
    could have been heard from later than the lease minus the session's timeout, and at
    least three in a timeout, so that a renewal etcd is slow to answer has a third of the
    timeout before its session must be cut off (SessionKeeper)."""
    return max(0.1, min(ttl - timeout_ms / 1000 - RENEW_MARGIN, timeout_ms / 3000))


# the shortest wait for a keep-alive answer (a session already past its cut-off moment)
CUT_OFF_MIN_WAIT = 0.25


def bucket_ms(now_ms: int, timeout_ms: int, interval_ms: int) -> int:
    """ZooKeeper's ExpiryQueue.update: an element touched at ``now_ms`` expires at
    ``now_ms + timeout_ms`` rounded up to the next multiple of the queue's interval (a moment
    that is a multiple already goes one interval further)."""
    return ((now_ms + timeout_ms) // interval_ms + 1) * interval_ms


def expiry_bucket(at: float, timeout_ms: int, tick_ms: int) -> float:
    """When ZooKeeper's session tracker expires a session touched at ``at`` (time.monotonic(),
    the clock of Java's nanoTime) with this timeout: ``bucket_ms`` in whole milliseconds, the
    tick being the interval. ``tick_ms`` 0: exactly ``at + timeout``."""
    if tick_ms <= 0:
        return at + timeout_ms / 1000
    return bucket_ms(int(at * 1000), timeout_ms, tick_ms) / 1000


class _Attached:
    __slots__ = (
        "every",
        "expire",
        "heard",
        "on_cut_off",
        "on_expired",
        "renewed",
        "tick",
        "timeout",
        "touched",
        "ttl",
        "until",
    )

    def __init__(
        self,
        ttl: int,
        timeout: int,
        heard: Callable[[], float],
        on_expired: Callable[[], None],
        on_cut_off: Callable[[], None],
        expire: Callable[[], Awaitable[None]],
        renewed: float,
        tick: int,
    ) -> None:
        self.ttl = ttl
        self.timeout = timeout  # the negotiated session timeout, in ms
        self.tick = tick  # ms, 0: no rounding (expiry_bucket)
        self.every = renew_interval(ttl, timeout)
        self.heard = heard
        self.on_expired = on_expired
        self.on_cut_off = on_cut_off
        self.expire = expire
        self.renewed = renewed  # when the lease was last granted or renewed, at the latest
        # a createSession inside the session (SessionKeeper.touch): when, and the expiry it set
        self.touched = 0.0
        self.until: float | None = None

    def deadline(self) -> float:
        """When the session expires unless its client is heard from first: its timeout after
        the client was last heard from, or the moment a createSession sent inside the session
        set, until the client is heard from after that (either rounded up to the tick)."""
        heard = self.heard()
        if self.until is not None and heard <= self.touched:
            return self.until
        return expiry_bucket(heard, self.timeout, self.tick)

    def next_look(self) -> float:
        """When the keeper looks at the session next: its next renewal, or its deadline if that
        comes first (a client that has gone silent: its session expires at that moment, and
        one heard from since then is only renewed a little early)."""
        return min(self.renewed + self.every, self.deadline())

    def outlives_deadline(self) -> bool:
        """Does the lease (last renewed at ``renewed``) last until the session's deadline?"""
        return self.renewed + self.ttl >= self.deadline() + RENEW_MARGIN


class SessionKeeper:
    """Renews the leases of the sessions connected to this process (keyed by lease id), as
    ZooKeeper's session tracker keeps a session alive while its client is heard from.

    - A session whose client has sent nothing for its whole timeout is expired (its
      ``expire``) at the moment ZooKeeper's tracker would (``expiry_bucket``: that timeout
      rounded up to the tick), whether its connection is still open (a frozen process) or
      closed (``detach``), unless it is attached again (resumed here) first.
    - A session whose lease could not be renewed for two thirds of its timeout (etcd cut off)
      loses its connection, so that its client looks for another server before the session
      can expire in etcd, as a ZooKeeper server without a quorum drops its clients.
    """

    def __init__(self, client: EtcdClient, tick_ms: int = 0) -> None:
        self.client = client
        self.tick = tick_ms  # ZooKeeper's tickTime: expiries round up to it (expiry_bucket)
        self.attached: dict[int, _Attached] = {}
        self._due: dict[int, float] = {}
        # detached sessions: lease -> (when their timeout runs out, their entry)
        self._ending: dict[int, tuple[float, _Attached]] = {}
        self._late: dict[int, _Attached] = {}  # detached leases to renew once more (detach)
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None

    def attach(
        self,
        session_id: int,
        ttl: int,
        on_expired: Callable[[], None],
        *,
        timeout: int,
        expire: Callable[[], Awaitable[None]],
        heard: Callable[[], float] = time.monotonic,
        on_cut_off: Callable[[], None] | None = None,
        renewed: float | None = None,
    ) -> None:
        """Renew ``session_id``'s lease of ``ttl`` seconds (see renew_interval) while
        ``heard()`` (when its client last sent anything) is within ``timeout`` ms; then run
        ``expire``. ``on_expired``: the lease is gone; ``on_cut_off``: the session must lose
        its connection (it timed out, or etcd is out of reach). ``renewed``: when the lease was
        granted or last renewed, or earlier (default: now)."""
        entry = _Attached(
            ttl,
            timeout,
            heard,
            on_expired,
            on_expired if on_cut_off is None else on_cut_off,
            expire,
            time.monotonic() if renewed is None else renewed,
            self.tick,
        )
        self._ending.pop(session_id, None)
        self.attached[session_id] = entry
        self._due[session_id] = entry.next_look()
        self._wake.set()

    def touch(self, session_id: int, timeout_ms: int) -> None:
        """A createSession sent inside the session: it expires at now + ``timeout_ms`` (sooner
        or later than its own timeout would have it) unless its client is heard from first,
        as ZooKeeper's session tracker moves a session's expiry to the timeout that request
        carries. The lease is renewed until then, the connection closed or not."""
        entry = self.attached.get(session_id)
        if entry is None:
            return
        now = time.monotonic()
        entry.touched = now
        entry.until = expiry_bucket(now, timeout_ms, self.tick)
        self._due[session_id] = entry.next_look()  # no later than that moment
        self._wake.set()

    def forget(self, session_id: int) -> bool:
        """Stop renewing, and do not expire it either; True if the session was attached."""
        self._due.pop(session_id, None)
        self._ending.pop(session_id, None)
        return self.attached.pop(session_id, None) is not None

    def take_expiry(self, lease: int) -> tuple[float, _Attached] | None:
        """Hold off the expiry of a detached session (it is being resumed here): what
        ``put_back_expiry`` takes should the resumption fail."""
        return self._ending.pop(lease, None)

    def put_back_expiry(self, lease: int, pending: tuple[float, _Attached] | None) -> None:
        if pending is not None and lease not in self.attached:  # else resumed after all
            self._ending[lease] = pending
            self._wake.set()

    def detach(self, lease: int) -> None:
        """Stop renewing (its connection is gone) and expire the session once its timeout has
        run from when its client was last heard from, as ZooKeeper does. The lease outlives
        that moment, should this process die first; the keeper's task renews it once more
        (it does not wait for that here) only if a late renewal left it shorter."""
        entry = self.attached.get(lease)
        if not self.forget(lease) or entry is None:
            return
        self._ending[lease] = (entry.deadline(), entry)
        if not entry.outlives_deadline():
            self._late[lease] = entry
        self._wake.set()

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._renew()

    async def _renew(self) -> None:
        while True:
            now = time.monotonic()
            self._end_timed_out(now)
            due = [sid for sid, t in self._due.items() if t <= now]
            due = [sid for sid in due if not self._silent(sid, now)]
            for lease, detached in self._late.items():
                self._start(functools.partial(self._renew_late, lease, detached))
            self._late.clear()
            if due:
                sent = time.monotonic()  # etcd counts the new TTL from no sooner than this
                # the etcd client would retry for several of its deadlines (5 s each): give up
                # when a session reaches the moment it must be cut off, not after
                ttls: dict[int, int] | None = None
                try:
                    with trio.move_on_after(self._until_cut_off(due, now)):
                        ttls = await self.client.keepalive(due)
                except EtcdUnavailable:
                    pass
                if ttls is None:
                    log.warning("etcd unavailable: could not renew %d session leases", len(due))
                    self._cut_off(due)
                    await trio.sleep(0.5)
                    continue
                now = time.monotonic()
                for sid, ttl in ttls.items():
                    entry = self.attached.get(sid)
                    if entry is None:
                        continue
                    if ttl <= 0:
                        self.forget(sid)
                        entry.on_expired()
                    else:
                        entry.renewed = sent
                        self._due[sid] = entry.next_look()
            nxt = min(self._due.values(), default=now + 1.0)
            nxt = min(nxt, min((t for t, _ in self._ending.values()), default=nxt))
            self._wake = trio.Event()
            with trio.move_on_after(max(0.05, nxt - time.monotonic())):
                await self._wake.wait()

    def _end_timed_out(self, now: float) -> None:
        """Expire the detached sessions whose timeout has run out."""
        for lease, (deadline, entry) in list(self._ending.items()):
            if deadline <= now:
                del self._ending[lease]
                self._start(entry.expire)

    def _start(self, fn: Callable[[], Awaitable[None]]) -> None:
        assert self._nursery is not None, "the keeper is not running"
        self._nursery.start_soon(fn)

    def _silent(self, sid: int, now: float) -> bool:
        """Expire the session if its client has been silent past its deadline."""
        entry = self.attached.get(sid)
        if entry is None or now <= entry.deadline():
            return False
        log.info(
            "session 0x%x: nothing heard from its client for %.0f ms (its timeout: %.0f ms):"
            " expired",
            sid,
            (now - entry.heard()) * 1000,
            entry.timeout,
        )
        self.forget(sid)
        entry.on_cut_off()
        self._start(entry.expire)
        return True

    async def _renew_late(self, lease: int, entry: _Attached) -> None:
        """Renew a detached lease that would run out before its session's deadline (a late
        renewal left it shorter than the session's timeout from when its client was last heard
        from, or a createSession inside the session moved the deadline further), at once and
        then as often as an attached one, until it lasts that long, unless the session is
        attached again (its renewals take over) or its lease has ended."""
        while await self._renew_detached(lease, entry) and not entry.outlives_deadline():
            await trio.sleep(max(0.0, entry.renewed + entry.every - time.monotonic()))

    async def _renew_detached(self, lease: int, entry: _Attached) -> bool:
        """Renew a detached lease once; try until the lease runs out. False if it could not
        be renewed (gone, run out) or the session is attached again."""
        with trio.move_on_after(entry.renewed + entry.ttl - time.monotonic()):
            while lease not in self.attached:
                sent = time.monotonic()
                try:
                    if (await self.client.keepalive([lease])).get(lease, 0) > 0:
                        entry.renewed = sent
                        return True
                    return False
                except EtcdUnavailable:
                    log.warning("etcd unavailable: a closed session's lease is renewed again")
                await trio.sleep(0.5)
        return False

    def _until_cut_off(self, due: list[int], now: float) -> float:
        """Seconds until the first of ``due`` has gone unrenewed for 2/3 of its timeout."""
        moments = [
            e.renewed + e.timeout * 2 / 3000 for e in map(self.attached.get, due) if e is not None
        ]
        return max(CUT_OFF_MIN_WAIT, min(moments, default=now) - now)

    def _cut_off(self, due: list[int]) -> None:
        now = time.monotonic()
        for sid in due:
            entry = self.attached.get(sid)
            if entry is not None and now - entry.renewed > entry.timeout * 2 / 3000:
                log.warning(
                    "session 0x%x: its lease not renewed for %.1f s: closing its connection so"
                    " that its client finds another server before the session times out",
                    sid,
                    now - entry.renewed,
                )
                self.forget(sid)
                entry.on_cut_off()


class SessionStore:
    """Creating and ending session records in etcd."""

    def __init__(self, client: EtcdClient, mirror: Mirror) -> None:
        self.client = client
        self.mirror = mirror
        self.layout = mirror.layout

    def _resumable(self, session_id: int, entry: SessionEntry) -> list[Any]:
        """The compares under which a resumption may rewrite the record: still the one the
        mirror has, and not ending (its ephemerals going in several transactions)."""
        key = self.layout.session(session_id)
        return [
            compare_create(key, "=", entry.create_revision),
            compare_value(key, "!=", closing_value(entry.value)),
        ]

    async def claim(self, session_id: int, entry: SessionEntry, owner: str) -> bool:
        """Write ``owner`` into the session record (a resumption), while the record is the one
        the mirror has; False if the session expired meanwhile or is ending."""
        value = SessionValue(entry.value.passwd, entry.value.timeout, owner)
        key = self.layout.session(session_id)
        resp = await self.client.txn(
            self._resumable(session_id, entry), [op_put(key, value.encode(), entry.lease)]
        )
        if not resp.succeeded:
            return False
        await self.mirror.wait_for(resp.header.revision)
        return True

    async def move(
        self, session_id: int, entry: SessionEntry, timeout: int, owner: str = ""
    ) -> int | None:
        """Attach the session record to a new lease with the TTL of a renegotiated timeout;
        the session keeps its id. Returns the new lease id, or None if the session expired
        meanwhile: the record is rewritten only while it is the one the mirror has, so an
        expired session (whose clean-up may be under way) never comes back."""
        lease, _ = await self.client.lease_grant(lease_ttl(timeout))
        value = SessionValue(entry.value.passwd, timeout, owner)
        key = self.layout.session(session_id)
        resp = await self.client.txn(
            self._resumable(session_id, entry), [op_put(key, value.encode(), lease)]
        )
        if not resp.succeeded:
            await self.client.lease_revoke(lease)
            return None
        await self.mirror.wait_for(resp.header.revision)
        await self.client.lease_revoke(entry.lease)  # holds nothing any more
        return lease

    async def create(self, timeout: int, owner: str = "") -> tuple[int, bytes]:
        ttl = lease_ttl(timeout)
        session_id, _ = await self.client.lease_grant(ttl)
        passwd = os.urandom(16)
        value = SessionValue(passwd, timeout, owner)
        resp = await self.client.put(
            self.layout.session(session_id), value.encode(), lease=session_id
        )
        await self.mirror.wait_for(resp.header.revision)
        return session_id, passwd


def watch_session_ends(
    mirror: Mirror,
    nursery: trio.Nursery,
    on_end: Callable[[int], None],
    clean_up: Callable[[int], Awaitable[None]],
    on_claimed: Callable[[int], None] | None = None,
    on_closing: Callable[[int, int], Awaitable[None]] | None = None,
) -> None:
    """Call ``on_end`` for every session that ends and clean up its ephemerals; call
    ``on_claimed`` for every session whose record was rewritten (resumed somewhere), and
    ``on_closing`` (session id, lease) for every session found half-way through its end when
    the mirror (re)loads (its closer may be gone)."""

    def listener(applied: Applied) -> None:
        if on_claimed is not None:
            for sid in applied.sessions_claimed:
                on_claimed(sid)
        for sid in applied.sessions_ended:
            on_end(sid)
            if sid in mirror.tree.ephemerals:
                nursery.start_soon(clean_up, sid)

    def orphans() -> None:
        """Clean up the ephemerals of sessions that ended while no one was watching (before
        this process started, or while its mirror had fallen behind)."""
        tree = mirror.tree
        for owner in list(tree.ephemerals):
            if owner not in tree.sessions:
                nursery.start_soon(clean_up, owner)
        if on_closing is not None:
            for sid, entry in list(tree.sessions.items()):
                if entry.value.owner == CLOSING:
                    nursery.start_soon(on_closing, sid, entry.lease)

    mirror.session_listeners.append(listener)
    mirror.reloaded_listeners.append(orphans)
    orphans()

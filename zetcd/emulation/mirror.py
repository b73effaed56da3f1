"""The watch-fed mirror: this process's copy of the ZooKeeper tree (design.md, "Reads").

Theory of operation: at start the whole prefix is read at one revision R, then one etcd watch
from R+1 feeds every change. Each revision is applied to the tree as a unit; then, in this order
and synchronously, the watch manager fires the ZooKeeper events that revision amounts to, session
listeners hear about ended sessions, and tasks waiting for that revision wake. Because all of it
happens in one trio task, a notification always reaches a session's outgoing queue before the
reply of any request that could observe the change.

While etcd does not answer, the watch keeps trying (its etcd client gives up after
``reconnect_timeout``; the mirror then starts it again): zetcd waits for etcd however long it is
away. When the watch cannot go on because etcd has compacted the revisions it still needs (a zetcd cut
off from etcd while other zetcds wrote more than etcd keeps), the mirror is rebuilt in place, as
a ZooKeeper follower resyncs from a snapshot: ``reload_listeners`` close every client connection
(their clients resume their sessions and replay their watches with setWatches, as after a
restart), before a fresh range is read and again before it replaces the tree (for clients that
connected meanwhile), and ``reloaded_listeners`` hear of the new tree (the clean-up of sessions
that ended meanwhile).

A write's reply may leave before the mirror has applied it (Batcher: its session has no watches
to be told of first): the batcher then ``promise``s that revision, and until the mirror has
applied it, ``behind`` is true and every session's next request waits for it (reads answer from
the tree, writes are planned on it), so read-your-writes holds, for every session at once.

``last_zxid`` is the zxid of the last change that ZooKeeper would count as a transaction (its
revision, and the last position in it); the ``!sync`` key that ``sync`` writes to learn how far
etcd has got is not one of them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from functools import partial
from itertools import groupby
from typing import Any

import trio

from zetcd.emulation import layout as L
from zetcd.emulation.tree import Applied, Tree
from zetcd.emulation.watches import WatchManager
from zetcd.etcd import (
    CompactedError,
    EtcdClient,
    EtcdUnavailable,
    compare_create,
    op_put,
    prefix_end,
)
from zetcd.proto.records import ACL, Id

log = logging.getLogger(__name__)

READ_ACL = (ACL(1, Id("world", "anyone")),)

# The nodes a fresh ZooKeeper 3.8 standalone server has: (path, data, acl, aversion, cversion).
# Their children were added without a create txn, so the cversion clients see (2 x stored -
# numChildren) starts negative; /zookeeper/config's ACL was set once at start-up.
BOOTSTRAP: tuple[tuple[str, bytes, tuple[ACL, ...], int, int], ...] = (
    ("/", b"", L.OPEN_ACL, 0, -1),
    ("/zookeeper", b"", L.OPEN_ACL, 0, -2),
    ("/zookeeper/config", b"", READ_ACL, -1, 0),
    ("/zookeeper/quota", b"", L.OPEN_ACL, 0, 0),
)

PAGE = 5000
# after the watch gave up on an unreachable etcd (the etcd client's reconnect_timeout), the
# pause before it tries again: zetcd waits for etcd as long as it takes
WATCH_RETRY_PAUSE = 1.0


class Mirror:
    def __init__(self, client: EtcdClient, layout: L.Layout) -> None:
        self.client = client
        self.layout = layout
        self.tree = Tree(layout)
        self.watches = WatchManager()
        self.last_zxid = 0
        self.sync_key = layout.prefix + b"!sync"
        self._waiters: list[tuple[int, int, trio.Event]] = []
        self._seq = itertools.count()
        self.session_listeners: list[Callable[[Applied], None]] = []
        # called once the events of each watch response are applied, and once if it fails
        self.batch_listeners: list[Callable[[], None]] = []
        # called before and after the tree is rebuilt from a fresh range (see above)
        self.reload_listeners: list[Callable[[], None]] = []
        self.reloaded_listeners: list[Callable[[], None]] = []
        self.ready = trio.Event()
        self.failed: BaseException | None = None
        self.promised = 0  # the newest revision a reply was sent for

    @property
    def revision(self) -> int:
        return self.tree.revision

    @property
    def behind(self) -> bool:
        """Has a reply gone out for a revision the tree has yet to apply?"""
        return self.tree.revision < self.promised

    # ------------------------------------------------------------------ start-up
    async def bootstrap(self) -> None:
        """Create the nodes every ZooKeeper has, once per etcd prefix."""
        lay = self.layout
        ops = []
        for path, data, acl, aversion, cversion in BOOTSTRAP:
            flags = L.FLAG_MZXID_ZERO | L.FLAG_PZXID_ZERO
            value = L.DataValue(0, L.CZXID_ZERO, 0, 0, 0, L.NODE_PLAIN, flags, 0, 0, 0, data)
            ops.append(op_put(lay.data(path), value.encode()))
            ops.append(op_put(lay.children(path), b""))
            ops.append(op_put(lay.acl(path), L.encode_acl_value(aversion, acl)))
            if cversion:
                ops.append(op_put(lay.adjust(path), L.encode_adjust_value(cversion)))
        await self.client.txn([compare_create(lay.data("/"), "=", 0)], ops, [])

    async def load(self) -> None:
        kvs, revision = await self._read_all()
        self.tree.load(kvs, revision)
        # an upper bound of every zxid issued so far (deletions leave no key behind)
        self.last_zxid = L.zxid(revision, L.MAX_POSITIONS - 1)

    async def _read_all(self) -> tuple[list[Any], int]:
        """Every key of the prefix, at one revision."""
        start = self.layout.prefix
        end = prefix_end(start)
        first = await self.client.range(start, end, limit=PAGE)
        revision = first.header.revision
        kvs = list(first.kvs)
        more = first.more
        while more:
            nxt = kvs[-1].key + b"\0"
            page = await self.client.range(nxt, end, revision=revision, limit=PAGE)
            kvs.extend(page.kvs)
            more = page.more
        return kvs, revision

    async def reload(self) -> None:
        """Rebuild the tree from a fresh range (the watch fell behind etcd's compaction)."""
        for listener in self.reload_listeners:
            listener()
        kvs, revision = await self._read_all()
        tree = Tree(self.layout)
        tree.load(kvs, revision)
        # a client that connected during the read saw the old tree: it reconnects too
        for listener in self.reload_listeners:
            listener()
        self.tree = tree
        self.last_zxid = max(self.last_zxid, L.zxid(revision, L.MAX_POSITIONS - 1))
        self._reached(revision)
        for listener in self.batch_listeners:  # a write in flight may land now
            listener()
        for listener in self.reloaded_listeners:
            listener()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bootstrap, load, then follow the watch until cancelled."""
        await self.bootstrap()
        await self.load()
        self.ready.set()
        task_status.started()
        try:
            while True:
                try:
                    await self._follow()
                    return
                except EtcdUnavailable as e:
                    # the clients are dropped meanwhile (SessionKeeper's cut-off) and new ones
                    # refused; the watch resumes where it stopped once etcd answers again
                    log.warning(
                        "etcd unavailable (%s): the mirror stays at revision %d and watches"
                        " again in %.0f s",
                        e,
                        self.tree.revision,
                        WATCH_RETRY_PAUSE,
                    )
                    await trio.sleep(WATCH_RETRY_PAUSE)
                except CompactedError as e:
                    log.warning(
                        "the etcd watch fell behind etcd's compaction (%s; the mirror is at"
                        " revision %d): closing every client connection and reloading the tree",
                        e,
                        self.tree.revision,
                    )
                    await self.reload()
                    log.warning("tree reloaded at revision %d", self.tree.revision)
        except BaseException as exc:
            self.failed = exc
            for listener in self.batch_listeners:
                listener()
            raise

    async def _follow(self) -> None:
        """Apply the watch's changes from the tree's revision on, until the watch ends."""
        start = self.layout.prefix
        # keeps_reading: this task iterates for as long as the watch is open, so the batcher
        # may leave the answers of its transactions to it (Batcher._land)
        async with self.client.watch(
            start, prefix_end(start), start_revision=self.tree.revision + 1, keeps_reading=True
        ) as batches:
            async for batch in batches:
                self._apply_batch(batch.events)
                for listener in self.batch_listeners:
                    listener()

    def _apply_batch(self, events: list[object]) -> None:
        for rev, group in groupby(events, key=lambda e: e.kv.mod_revision):  # type: ignore[attr-defined]
            self.apply_revision(rev, list(group))

    def apply_revision(self, revision: int, events: list[object]) -> None:
        applied = self.tree.apply(revision, events)
        if any(self._is_txn(e) for e in events):
            self.last_zxid = L.zxid(revision, applied.positions - 1)
        if applied.changes:
            self.watches.trigger(applied.changes, partial(applied.acl_of, self.tree))
        if applied.sessions_ended or applied.sessions_started or applied.sessions_claimed:
            for listener in self.session_listeners:
                listener(applied)
        self._reached(revision)

    def _reached(self, revision: int) -> None:
        """The tree is at ``revision``: wake who waits for it."""
        w = self._waiters
        while w and w[0][0] <= revision:
            heapq.heappop(w)[2].set()

    def _is_txn(self, event: Any) -> bool:
        """Would ZooKeeper have spent a zxid on this change? Not on sync, nor on rewriting a
        session's record (version > 1: a timeout renegotiated on reconnect)."""
        kv = event.kv
        if kv.key == self.sync_key:
            return False
        return not (
            kv.key.startswith(self.layout.session_prefix) and event.type == 0 and kv.version > 1
        )

    # ------------------------------------------------------------------ waiting
    async def wait_for(self, revision: int) -> None:
        """Return once the mirror has applied ``revision``."""
        if self.tree.revision >= revision:
            return
        if self.failed is not None:
            raise trio.BrokenResourceError("the mirror's etcd watch has failed") from self.failed
        ev = trio.Event()
        heapq.heappush(self._waiters, (revision, next(self._seq), ev))
        await ev.wait()

    def promise(self, revision: int) -> None:
        """A reply of a transaction at ``revision`` leaves before the tree has applied it."""
        self.promised = max(self.promised, revision)

    async def caught_up(self) -> None:
        """Return once the tree has applied every revision a reply was sent for."""
        if self.behind:
            await self.wait_for(self.promised)

    async def catch_up(self) -> int:
        """Make the mirror at least as new as etcd is now (ZooKeeper's ``sync``)."""
        resp = await self.client.put(self.sync_key, b"")
        await self.wait_for(resp.header.revision)
        return self.last_zxid

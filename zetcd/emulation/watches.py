"""Watches, fired by ZooKeeper 3.8's trigger table and WatchManager rules.

Theory of operation: like ZooKeeper's DataTree there are two tables, data watches (armed by getData
and exists, exists also on a missing node) and child watches (getChildren). Each entry is a
(path, watcher) pair with a mode: STANDARD (one-shot), PERSISTENT or PERSISTENT_RECURSIVE
(addWatch). As in 3.8.0 the mode of a pair is whatever was set last: a getData watch on a path
that has a persistent watch turns it back into a one-shot one.

A ZooKeeper-level change triggers, in this order:

===========  ==================================  =========================================
change       data table                          child table
===========  ==================================  =========================================
create X     NodeCreated on X                    NodeChildrenChanged on parent(X)
delete X     NodeDeleted on X                    NodeDeleted on X (not again to a watcher the
                                                 data table already told), then
                                                 NodeChildrenChanged on parent(X)
setData X    NodeDataChanged on X                nothing
setACL X     nothing                             nothing
===========  ==================================  =========================================

Triggering path P in a table reaches every watcher registered on P, and recursive watchers
registered on any ancestor of P (never for NodeChildrenChanged); a watcher hears an event once
however many of its watches match, and STANDARD entries on P are consumed. A watcher is a
session's connection, as on ZooKeeper. The event is then delivered only to watchers whose
connection may READ the node it is about (NIOServerCnxn.process(event, acl)): the node's ACL for
NodeCreated, NodeDataChanged and NodeDeleted, the parent's for NodeChildrenChanged. A watch whose
event is withheld is consumed all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from zetcd.emulation.acls import allowed
from zetcd.emulation.javahashset import BinWatch, cached_spread, hashset_order, watch_add
from zetcd.emulation.paths import parent_of
from zetcd.emulation.tree import CHANGED, CREATED, DELETED
from zetcd.proto.constants import EventType, Perm
from zetcd.proto.records import ACL

# (index of the change, path) -> the ACL the change's watch events on path are checked against
AclOf = Callable[[int, str], tuple[ACL, ...]]
_READ = int(Perm.READ)  # a plain int: IntFlag's & is slow

STANDARD = 0
PERSISTENT = 1
PERSISTENT_RECURSIVE = 2


class Watcher(Protocol):
    auth_ids: tuple[tuple[str, str], ...]  # the connection's ids, which READ is checked for
    # its connection is closed: a watch it still asks for is not added, as ZooKeeper's
    # WatchManager ignores a closed connection's (isDeadWatcher)
    stale: bool

    def notify(self, event_type: int, path: str) -> None: ...


def ancestors(path: str) -> Iterable[str]:
    """P's parent, grandparent, ..., "/"."""
    while path != "/":
        path = parent_of(path)
        yield path


class Paths(dict[str, None]):
    """A watcher's paths in the order they were added, and the most it has held at once: as
    ZooKeeper's per-watcher HashSet (watch2Paths), whose table never shrinks and which stays,
    empty, once the watcher's watches have all fired or been removed, until its connection
    closes (wchc then lists the session with no paths, and wchs counts it). ``bins`` watches
    for a bucket Java would crowd (javahashset.py)."""

    __slots__ = ("bins", "peak")

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0
        self.bins: BinWatch | None = None

    def add(self, path: str) -> None:
        if path not in self:
            self.bins = watch_add(self.bins, 16, self, self.peak, path, cached_spread)
            self[path] = None
            if len(self) > self.peak:
                self.peak = len(self)

    def discard(self, path: str) -> None:
        del self[path]
        if self.bins is not None:
            self.bins.discard(path)


class WatchTable:
    __slots__ = ("bins", "by_path", "by_watcher", "peak", "recursive")

    def __init__(self) -> None:
        self.by_path: dict[str, dict[Watcher, int]] = {}
        self.by_watcher: dict[Watcher, Paths] = {}
        # the most paths by_path has held (ZooKeeper's watchTable, a HashMap), and its
        # crowded buckets (javahashset.py)
        self.peak = 0
        self.bins: BinWatch | None = None
        self.recursive = 0

    def add(self, path: str, watcher: Watcher, mode: int = STANDARD) -> None:
        if watcher.stale:
            return
        by_path = self.by_path
        entries = by_path.get(path)
        if entries is None:
            self.bins = watch_add(self.bins, 16, by_path, self.peak, path, cached_spread)
            entries = by_path[path] = {}
            if len(by_path) > self.peak:
                self.peak = len(by_path)
        old = entries.get(watcher)
        if old == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if mode == PERSISTENT_RECURSIVE:
            self.recursive += 1
        entries[watcher] = mode
        paths = self.by_watcher.get(watcher)
        if paths is None:
            paths = self.by_watcher[watcher] = Paths()
        paths.add(path)

    def remove(self, path: str, watcher: Watcher) -> bool:
        entries = self.by_path.get(path)
        if entries is None or watcher not in entries:
            return False
        self._drop(path, entries, watcher)
        self.by_watcher[watcher].discard(path)  # an emptied set stays (Paths)
        return True

    def _drop(self, path: str, entries: dict[Watcher, int], watcher: Watcher) -> None:
        if entries.pop(watcher) == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if not entries:
            del self.by_path[path]
            if self.bins is not None:
                self.bins.discard(path)

    def watched(self, path: str) -> bool:
        """ZooKeeper 3.8's containsWatcher: true when ANY watcher watches ``path``."""
        return path in self.by_path

    def may_fire(self, path: str) -> bool:
        """False when no watch can fire for an event on ``path`` (trigger would do nothing)."""
        return path in self.by_path or (self.recursive > 0 and path != "/")

    def trigger(
        self,
        path: str,
        event_type: int,
        acl: tuple[ACL, ...],
        suppress: set[Watcher] | None = None,
    ) -> set[Watcher]:
        fired: set[Watcher] = set()
        entries = self.by_path.get(path)
        if entries:
            for w, mode in list(entries.items()):
                if mode == PERSISTENT_RECURSIVE and event_type == EventType.NODE_CHILDREN_CHANGED:
                    continue
                fired.add(w)
                if mode == STANDARD:
                    self.remove(path, w)
        if self.recursive and path != "/":
            for p in ancestors(path):
                up = self.by_path.get(p)
                if up and event_type != EventType.NODE_CHILDREN_CHANGED:
                    fired.update(w for w, mode in up.items() if mode == PERSISTENT_RECURSIVE)
        for w in fired:
            if (suppress is None or w not in suppress) and allowed(acl, _READ, w.auth_ids):
                w.notify(event_type, path)
        return fired

    def has_recursive(self, watcher: Watcher) -> bool:
        return any(
            self.by_path[path][watcher] == PERSISTENT_RECURSIVE
            for path in self.by_watcher.get(watcher, ())
        )

    def drop_watcher(self, watcher: Watcher) -> None:
        """A watcher's connection closed: its paths leave the table in the order of its
        HashSet (ZooKeeper's removeWatcher), which a crowded bucket of the table can see."""
        paths = self.by_watcher.pop(watcher, None)
        if not paths:
            return
        by_path = self.by_path
        exact = self.bins is not None and self.bins.exact is not None  # else any order will do
        for path in hashset_order(paths, paths.peak, 16, paths.bins) if exact else paths:
            self._drop(path, by_path[path], watcher)

    def __len__(self) -> int:
        return sum(len(ws) for ws in self.by_path.values())

    def summary(self) -> tuple[int, int, int]:
        """wchs's counts: watchers (one whose watches are all gone still counts, see Paths),
        watched paths, watches."""
        return len(self.by_watcher), len(self.by_path), len(self)

    def listed_by_watcher(self) -> dict[Watcher, list[str]]:
        """Each watcher's paths as ZooKeeper's wchc lists them: its HashSet's order (16
        buckets to start with); a watcher whose watches are all gone with no path."""
        return {
            w: hashset_order(paths, paths.peak, 16, paths.bins)
            for w, paths in self.by_watcher.items()
        }

    def listed_by_path(self) -> list[tuple[str, list[Watcher]]]:
        """The watched paths and their watchers as ZooKeeper's wchp lists them: the paths in
        its watchTable's order (a HashMap of 16 buckets to start with). The watchers of a path
        come in the order they were added (ZooKeeper's follow their identity hash codes)."""
        by_path = self.by_path
        order = hashset_order(by_path, self.peak, 16, self.bins)
        return [(p, list(by_path[p])) for p in order]


class WatchManager:
    def __init__(self) -> None:
        self.data = WatchTable()
        self.child = WatchTable()
        # the watchers with a persistent watch on a null path (addWatch, setWatches2), and
        # whether it is recursive: ZooKeeper 3.8 keeps a connection's first one, which no
        # event reaches, and counts a recursive one among its recursive watches
        self.null_paths: dict[Watcher, bool] = {}

    def null_recursive(self) -> bool:
        """Has any connection a recursive watch on a null path (counted in both tables)?"""
        return any(self.null_paths.values())

    def trigger(self, changes: Iterable[tuple[str, str]], acl_of: AclOf) -> None:
        data, child = self.data, self.child
        if not data.by_path and not child.by_path:  # no watches at all: nothing fires
            return
        for i, (kind, path) in enumerate(changes):
            if kind == CHANGED:
                if data.may_fire(path):
                    data.trigger(path, EventType.NODE_DATA_CHANGED, acl_of(i, path))
            elif kind == CREATED:
                if data.may_fire(path):
                    data.trigger(path, EventType.NODE_CREATED, acl_of(i, path))
                if path != "/":
                    parent = parent_of(path)
                    if child.may_fire(parent):
                        child.trigger(parent, EventType.NODE_CHILDREN_CHANGED, acl_of(i, parent))
            elif kind == DELETED:
                acl = acl_of(i, path)
                told = data.trigger(path, EventType.NODE_DELETED, acl)
                child.trigger(path, EventType.NODE_DELETED, acl, told)
                if path != "/":
                    parent = parent_of(path)
                    child.trigger(parent, EventType.NODE_CHILDREN_CHANGED, acl_of(i, parent))

    def add_persistent(self, path: str, watcher: Watcher, recursive: bool) -> None:
        """addWatch and setWatches2: the watch goes in both tables (a recursive one never
        fires from the child table, but checkWatches/removeWatches for children find it)."""
        mode = PERSISTENT_RECURSIVE if recursive else PERSISTENT
        self.data.add(path, watcher, mode)
        self.child.add(path, watcher, mode)

    def drop_watcher(self, watcher: Watcher) -> None:
        self.data.drop_watcher(watcher)
        self.child.drop_watcher(watcher)
        self.null_paths.pop(watcher, None)

    def count(self) -> int:
        """Watches in both tables, as ZooKeeper's mntr counts them (zk_watch_count): a
        persistent watch, recursive or not, is in both."""
        return len(self.data) + len(self.child)

    def watching(self, watcher: Watcher) -> bool:
        """Has ``watcher`` any watch, of any kind?"""
        return bool(self.data.by_watcher.get(watcher) or self.child.by_watcher.get(watcher))

    def may_notify(self, changes: Iterable[tuple[str, str]], watchers: list[Watcher]) -> bool:
        """Could ``changes`` notify one of ``watchers``? Erring on yes: any watch of theirs on
        a changed node or its parent, in either table, or a recursive watch anywhere."""
        data, child = self.data, self.child
        if data.recursive and any(data.has_recursive(w) for w in watchers):
            return True
        for _, path in changes:
            for p in (path, parent_of(path)) if path != "/" else (path,):
                for table in (data, child):
                    entries = table.by_path.get(p)
                    if entries and any(w in entries for w in watchers):
                        return True
        return False

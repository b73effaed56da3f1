"""The in-memory ZooKeeper tree, rebuilt from etcd key-values (see layout.py).

The tree is pure: it applies etcd key changes one revision at a time and reports the
ZooKeeper-level changes they amount to (created / deleted / data set, in order), which the mirror
turns into watch events. It knows nothing of etcd clients or trio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from zetcd.emulation import layout as L
from zetcd.emulation.javaconcurrent import ConcurrentTable
from zetcd.emulation.javahashset import BinWatch, clone_order, hashset_order, watch_add
from zetcd.emulation.javaorder import java_long_hash, java_string_hash
from zetcd.emulation.javatree import long_before, string_before
from zetcd.emulation.paths import name_of, parent_of
from zetcd.proto.jute import constructor
from zetcd.proto.records import ACL, Stat

_make_stat = constructor(Stat)

# ZooKeeper-level change kinds, as written in the !log key and reported by apply()
CREATED = "c"
DELETED = "d"
CHANGED = "s"

Change = tuple[str, str]  # (kind, path)


class Node:
    """One znode: the decoded values of its etcd keys plus its children's names."""

    __slots__ = (
        "a_mod",
        "acl",
        "aversion",
        "bins",
        "c_mod",
        "c_ver",
        "cadj",
        "children",
        "cpos",
        "ctime",
        "czxid_mode",
        "d_create",
        "d_mod",
        "data",
        "flags",
        "kind",
        "max_children",
        "mpos",
        "mtime",
        "order_cache",
        "owner",
        "ppos",
        "stat_cache",
        "ttl",
        "version",
        "x_mod",
    )

    def __init__(self, d_create: int, d_mod: int, head: L.DataHead, data: bytes) -> None:
        self.d_create = d_create
        self.stat_cache: Stat | None = None
        self.order_cache: tuple[str, ...] | None = None  # ordered_children(), until they change
        self.children: dict[str, None] = {}  # insertion order, for ZooKeeper's child order
        self.max_children = 0
        self.bins: BinWatch | None = None  # from nine children on (javahashset.py)
        self.c_mod = 0  # the children key's mod revision (0: no such key, see layout.py)
        self.c_ver = 0  # etcd's version of the children key (0: no such key)
        self.ppos = head[8]  # cpos
        self.cadj = 0
        self.x_mod = 0
        self.a_mod = 0
        self.aversion = 0
        self.acl: tuple[ACL, ...] = L.OPEN_ACL  # until an ``a`` key says otherwise
        self.set_data(d_mod, head, data)

    def add_child(self, name: str) -> None:
        self.stat_cache = None
        self.order_cache = None
        children = self.children
        if name in children:
            return
        self.bins = watch_add(self.bins, 8, children, self.max_children, name)
        children[name] = None
        if len(children) > self.max_children:
            self.max_children = len(children)

    def remove_child(self, name: str) -> None:
        if name in self.children:
            del self.children[name]
            if self.bins is not None:
                self.bins.discard(name)
            self.stat_cache = None
            self.order_cache = None

    def reset_children(self, names: Iterable[str] = ()) -> None:
        """A new child set holding ``names``, added in that order."""
        self.children = {}
        self.max_children = 0
        self.bins = None
        for name in names:
            self.add_child(name)
        self.order_cache = self.stat_cache = None

    def set_data(self, d_mod: int, head: L.DataHead, data: bytes) -> None:
        """Take a data key's value: its head (decode_data_head) and the node's data."""
        self.stat_cache = None
        self.d_mod = d_mod
        (
            self.version,
            self.czxid_mode,
            self.ctime,
            self.mtime,
            self.owner,
            self.kind,
            self.flags,
            self.ttl,
            self.cpos,
            self.mpos,
        ) = head
        self.data = data

    @property
    def czxid(self) -> int:
        m = self.czxid_mode
        if m == L.CZXID_FROM_CREATE:
            return L.zxid(self.d_create, self.cpos)
        if m == L.CZXID_FROM_MOD:
            return L.zxid(self.d_mod, self.cpos)
        if m == L.CZXID_ZERO:
            return 0
        return m

    @property
    def mzxid(self) -> int:
        return 0 if self.flags & L.FLAG_MZXID_ZERO else L.zxid(self.d_mod, self.mpos)

    @property
    def pzxid(self) -> int:
        if self.flags & L.FLAG_PZXID_ZERO and self.c_ver <= 1:
            return 0
        # a node without a children key: its pzxid is its czxid (ppos is then its cpos)
        return L.zxid(self.c_mod or self.d_create, self.ppos)

    @property
    def cversion(self) -> int:
        """The cversion clients see: child creates plus deletes."""
        # the children key is created with the node (version 1 = cversion 0), or, for a node
        # written lazily (layout.py), by its first child change (version 1 = cversion 1)
        lazy = self.flags & L.FLAG_LAZY_CHILDREN
        return self.c_ver + self.cadj - (0 if lazy else 1)

    @property
    def client_data(self) -> bytes | None:
        return None if self.flags & L.FLAG_NULL_DATA else self.data

    def stat(self) -> Stat:
        """The client's Stat, cached until the node changes (every change goes through the
        tree, which drops the cache)."""
        st = self.stat_cache
        if st is None:
            st = self.stat_cache = client_stat(self, len(self.data), len(self.children))
        return st

    def ordered_children(self) -> tuple[str, ...]:
        """The children in ZooKeeper's order, cached until the child set changes (every change
        goes through add_child or the tree's delete, which drop the cache)."""
        order = self.order_cache
        if order is None:
            order = self.order_cache = tuple(
                hashset_order(self.children, self.max_children, 8, self.bins)
            )
        return order


class _StatFields(Protocol):
    @property
    def czxid(self) -> int: ...
    @property
    def mzxid(self) -> int: ...
    @property
    def pzxid(self) -> int: ...
    @property
    def cversion(self) -> int: ...

    ctime: int
    mtime: int
    version: int
    aversion: int
    owner: int


def client_stat(n: _StatFields, data_length: int, num_children: int) -> Stat:
    """The Stat a client sees: container and TTL owners read as 0 (DataNode.copyStat)."""
    owner = n.owner
    return _make_stat(
        n.czxid,
        n.mzxid,
        n.ctime,
        n.mtime,
        n.version,
        n.cversion,
        n.aversion,
        owner if L.is_session_owner(owner) else 0,
        data_length,
        num_children,
        n.pzxid,
    )


@dataclass(frozen=True, slots=True)
class SessionEntry:
    session_id: int
    lease: int
    create_revision: int
    mod_revision: int  # moves when a resumption rewrites the record (a claim or a move)
    value: L.SessionValue


@dataclass(slots=True)
class Applied:
    """What one revision changed."""

    changes: list[Change]
    touched: set[str]
    sessions_ended: list[int]
    sessions_started: list[int]
    sessions_claimed: list[int] = field(default_factory=list)  # records rewritten (resumed)
    positions: int = 1  # zxids the revision spent
    deleted_acls: dict[str, tuple[ACL, ...]] = field(default_factory=dict)  # for watch delivery
    # the ACLs the !log names for the events of some changes (layout.encode_log)
    event_acls: L.EventAcls = field(default_factory=dict)

    def acl_of(self, tree: Tree, index: int, path: str) -> tuple[ACL, ...]:
        """The ACL a watch event on ``path`` from change ``index`` is checked against, as
        ZooKeeper checks it at that change: the one the log names, else the node's, or, for a
        node this revision deleted, the one it had."""
        if self.event_acls:
            named = self.event_acls.get((index, path))
            if named is not None:
                return named
        node = tree.nodes.get(path)
        if node is not None:
            return node.acl
        return self.deleted_acls.get(path, ())


_NODE_KINDS = frozenset((L.KIND_DATA, L.KIND_CHILDREN, L.KIND_ACL, L.KIND_ADJUST))


class Tree:
    """All znodes by path, sessions by id, and an index of ephemerals by owner."""

    def __init__(self, layout: L.Layout) -> None:
        self.layout = layout
        self.nodes: dict[str, Node] = {}
        self.sessions: dict[int, SessionEntry] = {}
        # by owner, in creation order (a dict as an ordered set), and the most each owner had
        # at once: ZooKeeper's per-session HashSet never shrinks (javaorder.py)
        self.ephemerals: dict[int, dict[str, None]] = {}
        self.ephemeral_peak: dict[int, int] = {}
        self.ephemeral_bins: dict[int, BinWatch] = {}  # javahashset.py
        # the sessions that have (or had, while they live) ephemerals, in the order of
        # ZooKeeper's ConcurrentHashMap of them (dump)
        self.ephemeral_owners: ConcurrentTable[int] = ConcurrentTable(java_long_hash, long_before)
        # container and TTL nodes in the order of ZooKeeper's two ConcurrentHashMap-backed
        # sets of them, which its container manager reads (plans.container_candidates)
        self.containers: ConcurrentTable[str] = ConcurrentTable(java_string_hash, string_before)
        self.ttls: ConcurrentTable[str] = ConcurrentTable(java_string_hash, string_before)
        # ZooKeeper's approximate data size (mntr): each node's path length plus its data's
        # (a valid path has no surrogate pair, so its Java length is its Python one)
        self.data_size = 0
        self.revision = 0
        self.fence = 0  # the mod revision of the !fence key (layout.py); 0 while it is absent
        self.fence_time = 0  # its value: the time of the last transaction a zetcd committed
        # the first revision that changed a node without putting the fence: a writer that does
        # not know the fence shares the prefix, so the fence cannot guard a transaction
        self.unfenced = 0
        # the quota'd paths (quotas.py) and the mod revision of their key (0: absent), and the
        # stats nodes whose data a ``q`` key stands for, with its mod revision (layout.py)
        self.quotas: frozenset[tuple[str, ...]] = frozenset()
        self.quotas_rev = 0
        self.quota_stats: dict[str, int] = {}

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def _extended(self, owner: int) -> ConcurrentTable[str]:
        """The set that holds a node of this (container or TTL) ephemeralOwner."""
        return self.containers if owner == L.CONTAINER_OWNER else self.ttls

    # ---------------------------------------------------------------- loading and applying
    def load(self, kvs: Iterable[object], revision: int) -> None:
        """Build from a consistent range of the whole prefix at ``revision``."""
        rest = []
        oldest = newest = 0  # the mod revisions of the node keys (d, c, a, x)
        for kv in kvs:
            kind = kv.key[self.layout.plen]  # type: ignore[attr-defined]
            if kind in _NODE_KINDS:
                mod = kv.mod_revision  # type: ignore[attr-defined]
                newest = max(newest, mod)
                oldest = min(oldest, mod) if oldest else mod
                if kind == L.KIND_DATA:
                    self._put(kv, None)
                    continue
            elif kv.key == self.layout.fence:  # type: ignore[attr-defined]
                self.fence = kv.mod_revision  # type: ignore[attr-defined]
                self.fence_time = L.decode_fence(kv.value)  # type: ignore[attr-defined]
                continue
            elif kv.key == self.layout.quotas:  # type: ignore[attr-defined]
                self._set_quotas(kv)
                continue
            rest.append(kv)
        for kv in rest:
            self._put(kv, None)
        self.unfenced = self._unfenced_at_load(oldest, newest)
        # children and ephemerals in creation order, as a zetcd that saw them created has them
        # (what a table once held beyond its current size is not known after a restart)
        nodes = self.nodes
        for path, node in nodes.items():
            if len(node.children) > 1:
                prefix = path if path == "/" else path + "/"
                node.reset_children(
                    sorted(node.children, key=lambda name: nodes[prefix + name].czxid)
                )
        loaded = {
            o: sorted(owned, key=lambda p: nodes[p].czxid) for o, owned in self.ephemerals.items()
        }
        self.ephemerals, self.ephemeral_peak, self.ephemeral_bins = {}, {}, {}
        for owner, paths in loaded.items():
            for path in paths:
                self._index(owner, path)
        self.ephemeral_owners = ConcurrentTable(java_long_hash, long_before)
        first = {owner: nodes[next(iter(owned))].czxid for owner, owned in self.ephemerals.items()}
        for owner in sorted(first, key=first.__getitem__):
            self.ephemeral_owners.add(owner)
        extended = [path for table in (self.containers, self.ttls) for path in table]
        self.containers = ConcurrentTable(java_string_hash, string_before)
        self.ttls = ConcurrentTable(java_string_hash, string_before)
        for path in sorted(extended, key=lambda p: nodes[p].czxid):
            self._extended(nodes[path].owner).add(path)
        self.revision = revision

    def apply(self, revision: int, events: Iterable[object]) -> Applied:
        """Apply the etcd events of one revision (mvccpb.Event: type 0 PUT, 1 DELETE)."""
        out = Applied([], set(), [], [])
        logged: list[Change] | None = None
        owners: dict[int, int] = {}
        later = []
        fenced = False
        nodes_changed = False
        events = list(events)
        log_key = self.layout.log
        # with a !log, the sets of children, ephemerals and containers change in its order,
        # afterwards (_replay); what the nodes gone or created again held until then is kept
        # here (path -> its ephemeralOwner before the transaction)
        gone: dict[str, int] | None = (
            {} if any(ev.kv.key == log_key and ev.type == 0 for ev in events) else None  # type: ignore[attr-defined]
        )
        for ev in events:
            kv = ev.kv  # type: ignore[attr-defined]
            kind = kv.key[self.layout.plen]
            if kind == L.KIND_DATA:
                nodes_changed = True
                if ev.type == 0:  # type: ignore[attr-defined]
                    self._put(kv, out, gone)
                else:
                    self._delete_node(kv, out, gone)
            elif kind == L.KIND_SPECIAL:
                if ev.type != 0:  # type: ignore[attr-defined]
                    if kv.key == self.layout.fence:  # deleted by hand: the next write puts it
                        self.fence = self.fence_time = 0
                    elif kv.key == self.layout.quotas:
                        self.quotas, self.quotas_rev = frozenset(), 0
                    continue
                if kv.key == self.layout.log:
                    logged, out.event_acls, owners = L.decode_log(kv.value)
                elif kv.key == self.layout.positions:
                    out.positions = int(kv.value)
                elif kv.key == self.layout.fence:
                    fenced = True
                    self.fence = kv.mod_revision
                    self.fence_time = L.decode_fence(kv.value)
                elif kv.key == self.layout.quotas:
                    self._set_quotas(kv)
            else:
                if kind in _NODE_KINDS:
                    nodes_changed = True
                later.append(ev)
        if nodes_changed and not fenced and not self.unfenced:
            self.unfenced = revision
        for ev in later:
            kv = ev.kv  # type: ignore[attr-defined]
            if ev.type == 0:  # type: ignore[attr-defined]
                self._put(kv, out)
            else:
                self._delete_other(kv, out)
        if logged is not None:
            out.changes = logged
            if gone is not None:
                self._replay(logged, gone, owners)
        self.revision = revision
        return out

    def _replay(self, logged: list[Change], gone: dict[str, int], owners: dict[int, int]) -> None:
        """The creates and deletes of a transaction's !log, in order, on the sets ZooKeeper
        keeps per node (its children), per session (its ephemerals) and for its container
        manager: their order and their tables' growth follow each change, including nodes that
        came and went within the transaction (what the final keys cannot show: the log names
        their owners), and a node deleted and created again has a new, empty child set.
        ``gone``: the owners before the transaction of the nodes it deleted or wrote again."""
        nodes = self.nodes
        deleted: set[str] = set()
        owner_now: dict[str, int] = {}  # of the nodes created so far in the replay
        for i, (kind, path) in enumerate(logged):
            if kind == CHANGED or path == "/":
                continue
            node = nodes.get(path)
            parent = nodes.get(parent_of(path))
            name = name_of(path)
            if kind == CREATED:
                if path in deleted and node is not None:
                    node.reset_children()
                if parent is not None:
                    parent.add_child(name)
                owner = owners.get(i, node.owner if node is not None else 0)
                owner_now[path] = owner
                self._track(owner, path)
            else:
                deleted.add(path)
                if parent is not None:
                    parent.remove_child(name)
                # created in this transaction, or before it
                self._untrack(owner_now.pop(path) if path in owner_now else gone.get(path, 0), path)

    def _track(self, owner: int, path: str) -> None:
        """A node of ``owner`` is created: in its session's ephemerals, or in the containers'
        or TTL nodes' set."""
        if L.is_session_owner(owner):
            self._index(owner, path)
        elif L.is_extended_owner(owner):
            self._extended(owner).add(path)

    def _untrack(self, owner: int, path: str) -> None:
        self._unindex(owner, path)
        if L.is_extended_owner(owner):
            self._extended(owner).discard(path)

    def _unfenced_at_load(self, oldest: int, newest: int) -> int:
        """The revision of a node key written without the fence, if the loaded range shows one
        (``oldest`` and ``newest``: the node keys' mod revisions): one written after the last
        fence put (every zetcd transaction puts the fence, so its keys are never newer than
        it), or, before any fence put, node keys of more than one revision (the bootstrap writes
        all of its keys in one)."""
        if self.fence:
            return newest if newest > self.fence else 0
        return newest if oldest != newest else 0

    def _set_quotas(self, kv: object) -> None:
        self.quotas = L.decode_quotas(kv.value)  # type: ignore[attr-defined]
        self.quotas_rev = kv.mod_revision  # type: ignore[attr-defined]

    def _put(self, kv: object, out: Applied | None, gone: dict[str, int] | None = None) -> None:
        """A key written. ``gone``: the transaction has a !log, which _replay follows for the
        sets of children, ephemerals and containers (a node's owner before is kept there)."""
        key: bytes = kv.key  # type: ignore[attr-defined]
        kind, name = self.layout.split(key)
        mod: int = kv.mod_revision  # type: ignore[attr-defined]
        if kind == L.KIND_DATA:
            raw: bytes = kv.value  # type: ignore[attr-defined]
            head = L.decode_data_head(raw)
            data = raw[L.DATA_HEAD_SIZE :]
            owner = head[4]
            node = self.nodes.get(name)
            if node is None:
                node = Node(kv.create_revision, mod, head, data)  # type: ignore[attr-defined]
                self.nodes[name] = node
                self.data_size += len(name) + len(data)
                if gone is None:
                    if name != "/":
                        parent = self.nodes.get(parent_of(name))
                        if parent is not None:
                            parent.add_child(name_of(name))
                    self._track(node.owner, name)
                if out is not None:
                    out.changes.append((CREATED, name))
                    out.touched.add(name)
            else:
                if gone is not None:
                    gone[name] = node.owner  # perhaps deleted and created again: the log says
                elif node.owner != owner:
                    self._untrack(node.owner, name)
                    self._track(owner, name)
                self.data_size += len(data) - len(node.data)
                node.set_data(mod, head, data)
                if out is not None:
                    out.changes.append((CHANGED, name))
                    out.touched.add(name)
            return
        if kind == L.KIND_SESSION:
            sid = L.session_id_from_hex(name)
            self.sessions[sid] = SessionEntry(
                sid,
                kv.lease,  # type: ignore[attr-defined]
                kv.create_revision,  # type: ignore[attr-defined]
                kv.mod_revision,  # type: ignore[attr-defined]
                L.decode_session_value(kv.value),  # type: ignore[attr-defined]
            )
            if out is not None:
                if kv.version == 1:  # type: ignore[attr-defined]
                    out.sessions_started.append(sid)
                else:
                    out.sessions_claimed.append(sid)
            return
        if kind == L.KIND_SPECIAL:
            return
        node = self.nodes.get(name)
        if node is None:
            return
        node.stat_cache = None
        if kind == L.KIND_QUOTA_STATS:
            # the stats ZooKeeper wrote in place: no change to report, and its approximate data
            # size (mntr) does not follow either (DataTree.updateQuotaStat leaves it)
            node.data = kv.value  # type: ignore[attr-defined]
            node.flags &= ~L.FLAG_NULL_DATA
            self.quota_stats[name] = mod
            return
        if kind == L.KIND_CHILDREN:
            node.c_mod = mod
            node.c_ver = kv.version  # type: ignore[attr-defined]
            node.ppos = L.decode_children_value(kv.value)  # type: ignore[attr-defined]
        elif kind == L.KIND_ACL:
            node.a_mod = mod
            node.aversion, node.acl = L.decode_acl_value(kv.value)  # type: ignore[attr-defined]
        elif kind == L.KIND_ADJUST:
            node.x_mod = mod
            node.cadj = L.decode_adjust_value(kv.value)  # type: ignore[attr-defined]
        if out is not None:
            out.touched.add(name)

    def _delete_node(self, kv: object, out: Applied, gone: dict[str, int] | None = None) -> None:
        _, path = self.layout.split(kv.key)  # type: ignore[attr-defined]
        node = self.nodes.pop(path, None)
        if node is None:
            return
        self.data_size -= len(path) + len(node.data)
        if gone is not None:
            gone[path] = node.owner  # _replay takes it out of its sets
        else:
            if path != "/":
                parent = self.nodes.get(parent_of(path))
                if parent is not None:
                    parent.remove_child(name_of(path))
            self._untrack(node.owner, path)
        self.quota_stats.pop(path, None)
        out.deleted_acls[path] = node.acl
        out.changes.append((DELETED, path))
        out.touched.add(path)

    def _index(self, owner: int, path: str) -> None:
        owned = self.ephemerals.setdefault(owner, {})
        if path in owned:
            return
        peak = self.ephemeral_peak.get(owner)
        bins = watch_add(self.ephemeral_bins.get(owner), 16, owned, peak or 0, path)
        if bins is not None:
            self.ephemeral_bins[owner] = bins
        owned[path] = None
        if peak is None:
            self.ephemeral_owners.add(owner)
        if len(owned) > (peak or 0):
            self.ephemeral_peak[owner] = len(owned)

    def _unindex(self, owner: int, path: str) -> None:
        owned = self.ephemerals.get(owner) if owner else None
        if owned is not None and path in owned:
            del owned[path]
            bins = self.ephemeral_bins.get(owner)
            if bins is not None:
                bins.discard(path)
            if not owned:
                del self.ephemerals[owner]
                if owner not in self.sessions:
                    self._forget_owner(owner)

    def _forget_owner(self, owner: int) -> None:
        if self.ephemeral_peak.pop(owner, None) is not None:
            self.ephemeral_owners.discard(owner)
        self.ephemeral_bins.pop(owner, None)

    def ephemeral_sets(self) -> list[tuple[int, list[str]]]:
        """Each session's ephemerals as ZooKeeper's dump lists them: every session that has
        had one, while it lives (its set stays, emptied, until it ends), in the order of the
        ConcurrentHashMap that holds them, its paths in its HashSet's order (16 buckets, grown,
        never shrunk)."""
        return [(owner, self._ephemeral_order(owner)) for owner in self.ephemeral_owners]

    def _ephemeral_order(self, owner: int) -> list[str]:
        """The iteration order of a session's HashSet of ephemerals (16 buckets, grown, never
        shrunk)."""
        owned = self.ephemerals.get(owner, {})
        peak = self.ephemeral_peak.get(owner, len(owned))
        return hashset_order(owned, peak, 16, self.ephemeral_bins.get(owner))

    def ephemerals_in_java_order(self, owner: int) -> list[str]:
        """A session's ephemerals as ZooKeeper lists them (getEphemerals, closeSession)."""
        owned = self.ephemerals.get(owner)
        if not owned:
            return []
        return clone_order(self._ephemeral_order(owner))

    def _delete_other(self, kv: object, out: Applied) -> None:
        kind, name = self.layout.split(kv.key)  # type: ignore[attr-defined]
        if kind == L.KIND_SESSION:
            sid = L.session_id_from_hex(name)
            if self.sessions.pop(sid, None) is not None:
                out.sessions_ended.append(sid)
            if sid not in self.ephemerals:
                self._forget_owner(sid)
        elif kind == L.KIND_ADJUST:
            node = self.nodes.get(name)
            if node is not None:
                node.cadj = 0
                node.x_mod = 0
                node.stat_cache = None
        elif kind == L.KIND_QUOTA_STATS:  # its d key was written in the same transaction
            self.quota_stats.pop(name, None)

"""A copy-on-read overlay of the tree that write plans mutate, and its compilation to etcd.

A plan reads nodes through the scratch (each read records the compare that keeps what it saw
true at commit time), applies ZooKeeper's rules to mutable copies, and finally compiles the
copies' differences from the tree into etcd puts and deletes. One code path serves single writes,
multi, and session clean-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zetcd.emulation import layout as L
from zetcd.emulation import quotas as Q
from zetcd.emulation.paths import parent_of
from zetcd.emulation.tree import Node, Tree
from zetcd.proto.jute import constructor
from zetcd.proto.records import ACL, Stat

_make_stat = constructor(Stat)

# compare targets
CREATE = "create"
MOD = "mod"


@dataclass(slots=True)
class EtcdTxn:
    """Plain description of one etcd transaction (encoded by the batcher): equality compares,
    as key -> revision maps (0: the key is absent), and the writes if they all hold."""

    mods: dict[bytes, int] = field(default_factory=dict)  # the key's mod revision
    creates: dict[bytes, int] = field(default_factory=dict)  # the key's create revision
    ops: list[tuple[bytes, bytes | None, int]] = field(
        default_factory=list
    )  # (key, value or None for a delete, lease)
    # session id -> the mod revision of its record that the plan pinned (a compare in mods
    # too): the compares a fenced transaction keeps (batcher.py)
    sessions: dict[int, int] = field(default_factory=dict)
    # with per-key guards, (the fence, a value it must be below): no transaction with a later
    # time committed since the plan (layout.py)
    time_bound: tuple[bytes, bytes] | None = None
    # the ZooKeeper-level changes it makes, in order: (tree.CREATED/CHANGED/DELETED, path)
    changes: list[tuple[str, str]] = field(default_factory=list)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.ops.append((key, value, lease))

    def delete(self, key: bytes) -> None:
        self.ops.append((key, None, 0))

    def compares(self) -> list[tuple[bytes, str, int]]:
        """The compares etcd is sent, as (key, "mod" or "create", revision): a create compare
        on a key whose mod revision is pinned too is redundant and left out."""
        mods = self.mods
        return [(k, MOD, v) for k, v in mods.items()] + [
            (k, CREATE, v) for k, v in self.creates.items() if k not in mods
        ]

    def count_compares(self) -> int:
        """An upper bound of len(compares()), the time bound's included."""
        return len(self.mods) + len(self.creates) + 1


class NodeState:
    """A mutable view of one znode inside a plan. A zxid field that this transaction sets is
    ``-(pos + 1)`` (pos: the op's position in the transaction) until the commit's revision is
    known (see resolve_stat)."""

    __slots__ = (
        "a_dirty",
        "acl",
        "aversion",
        "c_changes",
        "cpos",
        "ctime",
        "cversion",
        "czxid",
        "d_dirty",
        "data",
        "dkey",
        "exists",
        "flags",
        "kind",
        "mpos",
        "mtime",
        "mzxid",
        "nchildren",
        "orig",
        "owner",
        "path",
        "ppos",
        "pzxid",
        "q_data",
        "recreated",
        "ttl",
        "version",
    )

    def __init__(self, path: str, orig: Node | None, dkey: bytes) -> None:
        self.path = path
        self.dkey = dkey  # its data key
        self.orig = orig
        self.d_dirty = False
        self.a_dirty = False
        self.c_changes = 0
        self.recreated = False
        self.q_data: bytes | None = None  # quota stats written in place (layout.py's q key)
        if orig is None:
            self.exists = False
            self.nchildren = 0
            return
        self.exists = True
        self.data = orig.data
        self.version = orig.version
        self.cversion = orig.cversion
        self.aversion = orig.aversion
        self.acl = orig.acl
        self.czxid = orig.czxid
        self.mzxid = orig.mzxid
        self.pzxid = orig.pzxid
        self.cpos = orig.cpos
        self.mpos = orig.mpos
        self.ppos = orig.ppos
        self.ctime = orig.ctime
        self.mtime = orig.mtime
        self.owner = orig.owner
        self.kind = orig.kind
        self.flags = orig.flags
        self.ttl = orig.ttl
        # a count, not a copy of the names: a plan only asks how many (copying a large
        # parent's child set per transaction cost more than the rest of a create's plan)
        self.nchildren = len(orig.children)

    @property
    def visible_data(self) -> bytes:
        """The data a read would return: a quota stats node's in-place counts if any."""
        q = self.q_data
        return self.data if q is None else q

    @property
    def stored_cversion(self) -> int:
        """ZooKeeper's stored cversion, which counts child creates only (it names sequentials)."""
        return (self.cversion + self.nchildren) // 2

    def stat(self, client_data: bool = False) -> StatNow:
        """The Stat's fields now, with placeholders for this transaction's zxids (see
        resolve_stat). ``client_data``: the data length is that of the data the client sent,
        not of the quota counts the server wrote over it since (create2 of a stats node:
        ZooKeeper copies the Stat before its quota steps)."""
        owner = self.owner
        q = self.q_data
        return (
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion,
            self.aversion,
            owner if L.is_session_owner(owner) else 0,  # as client_stat
            len(self.data if client_data or q is None else q),
            self.nchildren,
            self.pzxid,
        )


# a Stat's fields in order, zxids possibly placeholders
StatNow = tuple[int, int, int, int, int, int, int, int, int, int, int]


def resolve_stat(s: StatNow, base: int) -> Stat:
    """The Stat, this transaction's zxids filled in where the plan left placeholders (a zxid
    field set by the op at position p holds -(p + 1) until the commit's base zxid is known)."""
    cz, mz, ctime, mtime, version, cversion, aversion, owner, length, nchildren, pz = s
    return _make_stat(
        base | (-cz - 1) if cz < 0 else cz,
        base | (-mz - 1) if mz < 0 else mz,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        owner,
        length,
        nchildren,
        base | (-pz - 1) if pz < 0 else pz,
    )


class Scratch:
    def __init__(self, tree: Tree, now: int) -> None:
        self.tree = tree
        # the transaction's time (ms since the epoch): as ZooKeeper's, taken when the writes
        # are prepared, and never before the last committed one's (clock.py)
        self.now = now
        self.layout = tree.layout
        self.states: dict[str, NodeState] = {}
        self.order: list[str] = []  # paths in the order they were first written
        self.txn = EtcdTxn()
        self.log: list[tuple[str, str]] = []  # ZooKeeper-level changes, in order
        # beside each change, the ACLs its watch events are checked against: its node's and,
        # for a create or delete, its parent's
        self.log_acls: list[tuple[tuple[ACL, ...], tuple[ACL, ...] | None]] = []
        self.log_owners: list[int] = []  # each logged change's node's owner, for creates
        # an ACL changed after a change may have been logged (setACL, a node deleted or created
        # again): the log may have to name ACLs (_event_acls)
        self.acl_moves = False
        self._acl_log = (0, 0)  # (entries of log_acls counted, their bound) for _log_size
        self._written: set[str] = set()
        self.pos = 0  # position of the op being applied (group commit)
        self.needs_log = False  # a multi: its exact event order goes in the !log key
        self.data_bytes = 0  # data and ACLs written so far (a cheap bound for estimate())
        self.log_bytes = 0  # a bound of the !log value's size
        self.key_bytes = 0  # keys and value headers of the nodes written so far
        # (operations, bytes, fenced): the batcher's room for this transaction, for a write that
        # can stop early and leave the rest of its work to another transaction (at_limit)
        self.limits: tuple[int, int, bool] | None = None
        # the quota'd paths as this plan has them, and whether it changed which quotas exist or
        # are counted (quotas.py); the ``q`` keys it may write and their bytes (estimate())
        self.quotas = tree.quotas
        self.quotas_changed = False
        self.quota_ops = 0
        self.quota_bytes = 0
        # per-key guards: no quota appeared or went since the plan (layout.py, ``!quota``)
        self.txn.mods[tree.layout.quotas] = tree.quotas_rev

    # ------------------------------------------------------------------ reads (record guards)
    def node(self, path: str) -> NodeState:
        st = self.states.get(path)
        if st is None:
            orig = self.tree.nodes.get(path)
            dkey = self.layout.data(path)
            st = self.states[path] = NodeState(path, orig, dkey)
            self.txn.creates.setdefault(dkey, orig.d_create if orig else 0)
        return st

    def guard_data(self, st: NodeState) -> None:
        """What this plan decides depends on the node's data/version: pin its data key."""
        self.txn.mods.setdefault(st.dkey, st.orig.d_mod if st.orig else 0)

    def guard_children(self, st: NodeState) -> None:
        """Depends on the exact child set / cversion: pin the children key. That pins the
        adjust key too: every transaction that writes a node's ``x`` key puts its ``c`` key
        as well (or deletes the node), so an unchanged ``c`` means an unchanged ``x``."""
        o = st.orig
        self.txn.mods.setdefault(self.layout.children(st.path), o.c_mod if o else 0)

    def guard_acl(self, st: NodeState) -> None:
        self.txn.mods.setdefault(self.layout.acl(st.path), st.orig.a_mod if st.orig else 0)

    def guard_session(self, session_id: int) -> None:
        """The session's record must be the one the mirror has at commit: still alive and
        not rewritten by a resumption (or, with no entry, still gone)."""
        entry = self.tree.sessions.get(session_id)
        revision = self.txn.sessions.setdefault(session_id, entry.mod_revision if entry else 0)
        self.txn.mods.setdefault(self.layout.session(session_id), revision)

    # ------------------------------------------------------------------ writes
    def _touch(self, st: NodeState) -> None:
        if st.path not in self._written:
            self._written.add(st.path)
            self.order.append(st.path)
            # a node's four keys, each in an operation and a compare, and a value header
            self.key_bytes += 8 * len(st.dkey) + 96

    def create(
        self,
        st: NodeState,
        parent: NodeState,
        data: bytes | None,
        acl: tuple[ACL, ...],
        owner: int,
        kind: int,
        ttl: int,
        now: int,
    ) -> None:
        if st.orig is not None:
            st.recreated = True
            self.acl_moves = True
        st.exists = True
        st.data = data or b""
        st.acl = acl
        self.data_bytes += len(st.data) + _acl_bytes(acl)
        st.version = 0
        st.cversion = 0
        st.aversion = 0
        here = -self.pos - 1
        st.czxid = st.mzxid = st.pzxid = here
        st.cpos = st.mpos = st.ppos = self.pos
        st.ctime = st.mtime = now
        st.owner = owner
        st.kind = kind
        st.flags = L.FLAG_NULL_DATA if data is None else 0
        st.ttl = ttl
        st.nchildren = 0
        st.c_changes = 0
        st.d_dirty = st.a_dirty = True
        st.q_data = None
        self._touch(st)
        self._child_changed(parent, True)
        self._log("c", st, parent)
        if self.quotas or st.path.startswith("/zookeeper"):
            self._quota_created(st)

    def delete(self, st: NodeState, parent: NodeState) -> None:
        # compile() deletes only the node's keys that exist: pin its children key (which pins
        # its adjust key) and its ACL key, so that one written meanwhile fails the transaction
        self.guard_children(st)
        self.guard_acl(st)
        if st.orig is None or st.recreated:
            self.acl_moves = True  # its ACL after the transaction: its first incarnation's
        st.exists = False
        self._touch(st)
        self._child_changed(parent, False)
        self._log("d", st, parent)
        if self.quotas or st.path.startswith("/zookeeper"):
            self._quota_deleted(st)

    def set_data(self, st: NodeState, data: bytes | None, now: int) -> None:
        quota = self.quotas or st.path.endswith(Q.STATS_NAME)
        before = self._quota_before_set(st) if quota else 0
        st.q_data = None
        st.data = data or b""
        self.data_bytes += len(st.data)
        st.version = _inc(st.version)
        st.mtime = now
        st.mzxid = -self.pos - 1
        st.mpos = self.pos
        st.flags &= ~(L.FLAG_MZXID_ZERO | L.FLAG_NULL_DATA)
        if data is None:
            st.flags |= L.FLAG_NULL_DATA
        st.d_dirty = True
        self._touch(st)
        self._log("s", st)
        if self.quotas:  # DataTree.setData's quota step
            self._count(st.path, 0, len(st.data) - before)

    def set_acl(self, st: NodeState, acl: tuple[ACL, ...]) -> None:
        self.acl_moves = True
        st.acl = acl
        self.data_bytes += _acl_bytes(acl)
        st.aversion = _inc(st.aversion)
        st.a_dirty = True
        self._touch(st)

    # ------------------------------------------------------------------ quotas (quotas.py)
    def _quota_created(self, st: NodeState) -> None:
        """DataTree.createNode's quota steps, after the node is in place."""
        path = st.path
        if Q.touches_quotas(path):
            self.quotas_changed = True
            added = Q.created_limits(path)
            if added is not None:
                self.quotas = self.quotas | {added}
            counted = Q.created_stats(path)
            if counted is not None:
                self.guard_data(st)
                self._guard_quota_stats(st)
                self._set_stats(st, Q.counted(*self._subtree(counted)))
        if self.quotas:
            self._count(path, 1, len(st.data))

    def _quota_before_set(self, st: NodeState) -> int:
        """Before a setData: the data length the quota step's diff starts from."""
        if st.path.endswith(Q.STATS_NAME):  # its q key goes (compile): pin it
            self._guard_quota_stats(st)
        return len(st.visible_data)

    def _quota_deleted(self, st: NodeState) -> None:
        """DataTree.deleteNode's quota steps, after the node is gone."""
        path = st.path
        if Q.touches_quotas(path):
            self.quotas_changed = True
            if path.endswith(Q.STATS_NAME):
                self._guard_quota_stats(st)
            removed = Q.deleted_limits(path)
            if removed is not None:
                self.quotas = self.quotas - {removed}
        if self.quotas:
            self._count(path, -1, -len(st.visible_data))

    def _count(self, path: str, count_diff: int, bytes_diff: int) -> None:
        """DataTree.updateQuotaStat, on the stats of the deepest quota above ``path``."""
        prefix = Q.max_prefix(self.quotas, path)
        if prefix is None:
            return
        st = self.node(Q.stats_path(prefix))
        if not st.exists:
            return  # ZooKeeper logs it
        # what it does depends on the data, even when it writes nothing: pin it
        self.guard_data(st)
        self._guard_quota_stats(st)
        if st.q_data is None and st.flags & L.FLAG_NULL_DATA:
            return  # null data: ZooKeeper throws (docs/differences.md)
        current = st.visible_data
        data = Q.updated(current, count_diff, bytes_diff)
        if data is not None and data != current:  # None: ZooKeeper throws
            self._set_stats(st, data)

    def _set_stats(self, st: NodeState, data: bytes) -> None:
        """Write a stats node's counts in place (its callers pinned its d and q keys: a
        setData meanwhile would replace what was counted on)."""
        st.q_data = data
        self.quota_bytes += len(data) + len(st.dkey) + 32
        self._touch(st)

    def _guard_quota_stats(self, st: NodeState) -> None:
        """Pin a stats node's q key, which compile() may put or delete (one operation)."""
        key = self.layout.quota_stats(st.path)
        mods = self.txn.mods
        if key not in mods:
            self.quota_ops += 1
            mods[key] = self.tree.quota_stats.get(st.path, 0) if st.orig else 0

    def _subtree(self, path: str) -> tuple[int, int]:
        """DataTree.getCounts as this plan sees the tree: the nodes at and under ``path`` and
        their data bytes. ``""`` is the root, so the whole tree; ``"/"`` the root alone (its
        children's paths would start with ``//``)."""
        nodes = self.tree.nodes
        count = size = 0
        stack = [path or "/"]
        while stack:
            p = stack.pop()
            node = nodes.get(p)
            if node is None:
                continue
            count += 1
            size += len(node.data)
            if path != "/":
                base = "" if p == "/" else p
                stack.extend(f"{base}/{name}" for name in node.children)
        inside = path + "/"
        for p, st in self.states.items():
            if path == "" or p == path or (path != "/" and p.startswith(inside)):
                if st.orig is not None:
                    count -= 1
                    size -= len(st.orig.data)
                if st.exists:
                    count += 1
                    size += len(st.visible_data)
        return count, size

    def _log(self, kind: str, st: NodeState, parent: NodeState | None = None) -> None:
        self.log.append((kind, st.path))
        self.log_acls.append((st.acl, parent.acl if parent is not None else None))
        owner = st.owner if kind == "c" else 0
        self.log_owners.append(owner)
        # JSON escapes a non-ASCII character in at most 12 bytes: 3 per byte of UTF-8; an
        # owner named with two null ACLs before it, at most 31 more
        self.log_bytes += 3 * len(st.dkey) + 8 + (31 if owner else 0)

    def _transient_owners(self) -> dict[int, int]:
        """By the index of a logged create, the ephemeralOwner of a node (an ephemeral, a
        container, a TTL node) that the transaction deletes again: the mirror cannot read it
        from the keys, and ZooKeeper's set of them held it meanwhile (tree._replay)."""
        out = {}
        deleted_later: set[str] = set()
        for i in range(len(self.log) - 1, -1, -1):
            kind, path = self.log[i]
            if kind == "d":
                deleted_later.add(path)
            elif kind == "c":
                if self.log_owners[i] and path in deleted_later:
                    out[i] = self.log_owners[i]
                deleted_later.discard(path)
        return out

    def _event_acls(self) -> dict[int, tuple[tuple[ACL, ...] | None, tuple[ACL, ...] | None]]:
        """By the index of a logged change, the ACLs its watch events are checked against
        (ZooKeeper checks each against the node's ACL at that change) where they are not the
        ones a mirror finds once the transaction is applied (tree.Applied.acl_of): the node's
        then or, gone by then, the one it had before (none, for a node the transaction both
        created and deleted). None for one that is."""
        out = {}
        for i, ((_, path), (acl, parent_acl)) in enumerate(
            zip(self.log, self.log_acls, strict=True)
        ):
            mine = acl if acl != self._acl_after(path) else None
            theirs = None
            if parent_acl is not None and parent_acl != self._acl_after(parent_of(path)):
                theirs = parent_acl
            if mine is not None or theirs is not None:
                out[i] = (mine, theirs)
        return out

    def _acl_after(self, path: str) -> tuple[ACL, ...]:
        """The ACL tree.Applied.acl_of finds for ``path`` once the transaction is applied."""
        st = self.states.get(path)
        if st is None:
            node = self.tree.nodes.get(path)
            return node.acl if node is not None else ()
        if st.exists:
            return st.acl
        return st.orig.acl if st.orig is not None else ()

    def _log_size(self) -> int:
        """A bound of the !log value's size: with ACLs named, each change's two, escaped."""
        size = self.log_bytes
        if self.acl_moves:  # counted once per entry: this runs after every write of a batch
            counted, total = self._acl_log
            for acl, parent_acl in self.log_acls[counted:]:
                total += _acl_json_bytes(acl) + _acl_json_bytes(parent_acl or ())
            self._acl_log = (len(self.log_acls), total)
            size += total
        return size

    def _child_changed(self, parent: NodeState, added: bool) -> None:
        # a plan creates only a child that does not exist and deletes only one that does
        parent.nchildren += 1 if added else -1
        parent.cversion = _inc(parent.cversion)
        parent.pzxid = -self.pos - 1
        parent.ppos = self.pos
        parent.c_changes += 1
        self._touch(parent)

    def discard_writes(self) -> None:
        """Forget what was written (a failed multi), keeping the guards of what was read."""
        self.order.clear()
        self._written.clear()
        self.log.clear()
        self.log_acls.clear()
        self.log_owners.clear()
        self._acl_log = (0, 0)
        self.log_bytes = 0
        self.quotas = self.tree.quotas
        self.quotas_changed = False

    # ------------------------------------------------------------------ compile
    def _fenced_compares(self) -> int:
        """Compares of a transaction guarded by the fence: the fence, and one per session record
        (batcher.py)."""
        return 1 + len(self.txn.sessions)

    def rough_estimate(self, fenced: bool = False) -> tuple[int, int]:
        """Cheap upper bounds of (compares or operations, bytes): exact estimate() is needed only
        once these come near a limit. ``fenced``: guarded by the fence, not key by key."""
        n = len(self.order)
        compares = self._fenced_compares() if fenced else self.txn.count_compares()
        count = compares + len(self.txn.ops) + 4 * n + 4 + self.quota_ops + 2 * self.quotas_changed
        size = 256 + self._log_size() + self.key_bytes + self.data_bytes
        return count, size + (self._quota_size() if self.quota_ops or self.quotas_changed else 0)

    def _quota_size(self) -> int:
        """A bound of the bytes the quota keys add (q keys, ``!quota``): quota_ops counts
        every plan that touches them (see _guard_quota_stats, _quota_created)."""
        if not self.quotas_changed:
            return self.quota_bytes
        return self.quota_bytes + len(L.encode_quotas(self.quotas)) + 64

    def measure(self, max_ops: int, max_bytes: int, fenced: bool) -> tuple[int, int]:
        """Bounds of (compares or operations, bytes) of the transaction compiled now: the cheap
        ones when they are within ``max_ops`` and ``max_bytes``, else estimate()'s."""
        count, size = self.rough_estimate(fenced)
        if count <= max_ops and size <= max_bytes:
            return count, size
        compares, ops, size = self.estimate(fenced)
        return max(compares, ops), size

    def full(self, max_ops: int, max_bytes: int, fenced: bool) -> bool:
        """Would the transaction compiled now have more than ``max_ops`` compares or operations,
        or more than ``max_bytes`` bytes?"""
        count, size = self.measure(max_ops, max_bytes, fenced)
        return count > max_ops or size > max_bytes

    def at_limit(self) -> bool:
        """Has the transaction reached the room the batcher gave it (``limits``)?"""
        return self.limits is not None and self.full(*self.limits)

    def estimate(self, fenced: bool = False) -> tuple[int, int, int]:
        """Upper bounds of (compares, operations, bytes) that compile() would produce now, close
        to the exact figures: the batcher keeps a transaction within etcd's --max-txn-ops and
        --max-request-bytes, and refuses a write that alone does not fit.
        ``fenced``: guarded by the fence, not key by key."""
        ops = 1 + self.quota_ops + self.quotas_changed  # !fence, q keys, !quota
        size = 256 + self._quota_size()
        if self.pos:
            ops += 1  # !zx
        if self.pos or self.needs_log:
            ops += 1  # !log
            size += self._log_size()
        guards = 0  # compares compile() may add
        guard_bytes = 0
        for path in self.order:
            st = self.states[path]
            o = st.orig
            key = len(st.dkey) + 16  # a key (the same length for all four) and its framing
            if not st.exists:
                if o is not None:
                    n = 1 + bool(o.c_mod) + bool(o.a_mod) + bool(o.x_mod)
                    ops += n
                    size += n * key
                continue
            value = 0
            if o is None:
                n = 1 + (bool(st.aversion) or st.acl != L.OPEN_ACL)
                value = len(st.data) + 64 + _acl_bytes(st.acl)
                if st.c_changes:
                    adjust = st.cversion != 1
                    n += 1 + adjust
                    guards += adjust
            elif st.recreated:
                adjust = bool(st.cversion - o.c_ver or o.x_mod)
                n = 3 + adjust
                guards += adjust
                value = len(st.data) + 64 + _acl_bytes(st.acl)
            else:
                many = st.c_changes > 1
                n = st.d_dirty + st.a_dirty + bool(st.c_changes) + many
                guards += st.d_dirty + st.a_dirty + many
                value = (len(st.data) + 64 if st.d_dirty else 0) + (
                    _acl_bytes(st.acl) if st.a_dirty else 0
                )
            ops += n
            size += n * (key + 16) + value
            guard_bytes += n * key  # at most one compare per key written
        if fenced:
            compares = self._fenced_compares()
            size += 64 * compares
        else:
            txn = self.txn
            # + the fence's mod revision a quota-changing plan pins (compile)
            compares = txn.count_compares() + guards + self.quotas_changed
            size += (
                guard_bytes
                + sum(len(k) + 16 for k in txn.mods)
                + sum(len(k) + 16 for k in txn.creates)
            )
        return (
            compares,
            ops + len(self.txn.ops),
            size + sum(len(k) + len(v or b"") + 16 for k, v, _ in self.txn.ops),
        )

    def compile(self, with_log: bool, positions: int = 1) -> EtcdTxn:
        """The transaction. ``with_log``: the ZooKeeper-level changes go in the !log key
        too, unless the data-key writes alone say the same, in the same order (``implied``:
        the changes the mirror derives from the data keys' events when there is no log)."""
        lay = self.layout
        txn = self.txn
        implied: list[tuple[str, str]] | None = [] if with_log and not self.needs_log else None
        for path in self.order:
            st = self.states[path]
            o = st.orig
            d = st.dkey
            if not st.exists:
                if o is not None:  # its keys that exist (delete() pinned the absent ones)
                    txn.delete(d)
                    if o.c_mod:
                        txn.delete(lay.children(path))
                    if o.a_mod:
                        txn.delete(lay.acl(path))
                    if o.x_mod:
                        txn.delete(lay.adjust(path))
                    if implied is not None:
                        implied.append(("d", path))
                continue
            if o is None:  # written lazily (see layout.py)
                st.flags |= L.FLAG_LAZY_CHILDREN
                txn.put(d, self._data_value(st, L.CZXID_FROM_CREATE).encode())
                if implied is not None:
                    implied.append(("c", path))
                if st.c_changes:  # children created in the same transaction
                    txn.put(lay.children(path), L.encode_children_value(st.ppos))
                    # the new key's version 1 reads as cversion 1
                    if st.cversion != 1:
                        self.guard_children(st)
                        txn.put(lay.adjust(path), L.encode_adjust_value(st.cversion - 1))
                if st.aversion or st.acl != L.OPEN_ACL:
                    txn.put(lay.acl(path), L.encode_acl_value(st.aversion, st.acl))
                continue
            if st.recreated:
                implied = None  # one put for a delete and a create
                txn.put(d, self._data_value(st, L.CZXID_FROM_MOD).encode())
                txn.put(lay.children(path), L.encode_children_value(st.ppos))
                txn.put(lay.acl(path), L.encode_acl_value(st.aversion, st.acl))
                # the new incarnation is not lazy: after the put etcd's counter gives cversion
                # (o.c_ver + 1) - 1
                cadj = st.cversion - o.c_ver
                if cadj or o.x_mod:
                    self.guard_children(st)
                    txn.put(lay.adjust(path), L.encode_adjust_value(cadj))
                continue
            if st.d_dirty:
                self.guard_data(st)
                czmode = o.czxid_mode
                if czmode == L.CZXID_FROM_MOD:
                    czmode = o.czxid
                txn.put(d, self._data_value(st, czmode).encode())
                if implied is not None:
                    implied.append(("s", path))
            if st.c_changes:
                txn.put(lay.children(path), L.encode_children_value(st.ppos))
                if st.c_changes > 1:
                    self.guard_children(st)
                    txn.put(lay.adjust(path), L.encode_adjust_value(o.cadj + st.c_changes - 1))
            if st.a_dirty:
                self.guard_acl(st)
                txn.put(lay.acl(path), L.encode_acl_value(st.aversion, st.acl))
        if self.quota_ops:
            self._compile_quota_stats()
        if self.quotas_changed:
            txn.put(lay.quotas, L.encode_quotas(self.quotas))
            # it counted or looked up nodes any transaction may have changed: none may have
            # committed since the plan (the fence's mod revision)
            txn.mods[lay.fence] = self.tree.fence
        if with_log:
            acls = self._event_acls() if self.acl_moves else None
            if acls or implied != self.log:
                txn.put(lay.log, L.encode_log(self.log, acls, self._transient_owners()))
        if positions > 1:
            txn.put(lay.positions, b"%d" % positions)
        txn.put(lay.fence, L.encode_fence(self.now))
        return txn

    def _compile_quota_stats(self) -> None:
        """The q keys: put where the plan counted in place, deleted where the node or its d key
        is written over (only keys _guard_quota_stats pinned)."""
        lay = self.layout
        mods = self.txn.mods
        stored = self.tree.quota_stats
        for path in self.order:
            st = self.states[path]
            key = lay.quota_stats(path)
            if key not in mods:
                continue
            if st.exists and st.q_data is not None:
                self.txn.put(key, st.q_data)
            elif path in stored and st.orig is not None and (not st.exists or st.d_dirty):
                self.txn.delete(key)

    @staticmethod
    def _data_value(st: NodeState, czmode: int) -> L.DataValue:
        return L.DataValue(
            st.version,
            czmode,
            st.ctime,
            st.mtime,
            st.owner,
            st.kind,
            st.flags,
            st.ttl,
            st.cpos,
            st.mpos,
            st.data,
        )


def _acl_json_bytes(acl: tuple[ACL, ...]) -> int:
    """A bound of an ACL list's size in the !log's JSON (layout.encode_log): JSON escapes a
    character in at most 12 bytes, 3 per byte of UTF-8."""
    return 8 + sum(
        32 + 3 * (_utf8_bound(a.id.scheme or "") + _utf8_bound(a.id.id or "")) for a in acl
    )


def _acl_bytes(acl: tuple[ACL, ...]) -> int:
    """A bound of an ACL list's encoded size (layout.encode_acl_value)."""
    if acl is L.OPEN_ACL:
        return 64
    return 8 + sum(16 + _utf8_bound(a.id.scheme or "") + _utf8_bound(a.id.id or "") for a in acl)


def _utf8_bound(s: str) -> int:
    return len(s) if s.isascii() else 4 * len(s)


def _inc(v: int) -> int:
    """ZooKeeper's int32 counters wrap."""
    v += 1
    return v - (1 << 32) if v > 0x7FFFFFFF else v

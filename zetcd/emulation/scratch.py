"""A copy-on-read overlay of the tree that write plans mutate, and its compilation to etcd.

A plan reads nodes through the scratch (each read records the compare that keeps what it saw
true at commit time), applies ZooKeeper's rules to mutable copies, and finally compiles the
copies' differences from the tree into etcd puts and deletes. One code path serves single writes,
multi, and session clean-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from zetcd.emulation import layout as L
from zetcd.emulation.tree import Node, Tree, client_stat
from zetcd.proto.jute import constructor
from zetcd.proto.records import ACL, Stat

_make_stat = constructor(Stat)

# compare targets
CREATE = "create"
MOD = "mod"


@dataclass(slots=True)
class EtcdTxn:
    """Plain description of one etcd transaction (converted to protobuf by the backend)."""

    compares: dict[tuple[bytes, str], int] = field(default_factory=dict)
    ops: list[tuple[str, bytes, bytes, int]] = field(
        default_factory=list
    )  # (put|del, key, value, lease)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.ops.append(("put", key, value, lease))

    def delete(self, key: bytes) -> None:
        self.ops.append(("del", key, b"", 0))


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
        "recreated",
        "ttl",
        "version",
    )

    def __init__(self, path: str, orig: Node | None) -> None:
        self.path = path
        self.orig = orig
        self.d_dirty = False
        self.a_dirty = False
        self.c_changes = 0
        self.recreated = False
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
    def stored_cversion(self) -> int:
        """ZooKeeper's stored cversion, which counts child creates only (it names sequentials)."""
        return (self.cversion + self.nchildren) // 2

    def stat(self) -> Stat:
        """The Stat now, with placeholders for this transaction's zxids (see resolve_stat)."""
        return client_stat(self, len(self.data), self.nchildren)


def resolve(z: int, base: int) -> int:
    """A plan's zxid field, given the commit's base zxid (its revision << ZXID_SHIFT)."""
    return base | (-z - 1) if z < 0 else z


def resolve_stat(s: Stat, base: int) -> Stat:
    """Fill in this transaction's zxids where the plan left placeholders."""
    return _make_stat(
        resolve(s.czxid, base),
        resolve(s.mzxid, base),
        s.ctime,
        s.mtime,
        s.version,
        s.cversion,
        s.aversion,
        s.ephemeralOwner,
        s.dataLength,
        s.numChildren,
        resolve(s.pzxid, base),
    )


class Scratch:
    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.layout = tree.layout
        self.states: dict[str, NodeState] = {}
        self.order: list[str] = []  # paths in the order they were first written
        self.txn = EtcdTxn()
        self.log: list[tuple[str, str]] = []  # ZooKeeper-level changes, in order
        self._written: set[str] = set()
        self.pos = 0  # position of the op being applied (group commit)
        self.needs_log = False  # a multi: its exact event order goes in the !log key
        self.data_bytes = 0  # data and ACLs written so far (a cheap bound for estimate())
        self.key_bytes = 0  # keys and value headers of the nodes written so far
        self._bumped = False

    # ------------------------------------------------------------------ reads (record guards)
    def node(self, path: str) -> NodeState:
        st = self.states.get(path)
        if st is None:
            orig = self.tree.nodes.get(path)
            st = NodeState(path, orig)
            self.states[path] = st
            self._guard(self.layout.data(path), CREATE, orig.d_create if orig else 0)
        return st

    def guard_data(self, st: NodeState) -> None:
        """What this plan decides depends on the node's data/version: pin its data key."""
        self._guard(self.layout.data(st.path), MOD, st.orig.d_mod if st.orig else 0)

    def guard_children(self, st: NodeState) -> None:
        """Depends on the exact child set / cversion: pin the children and adjust keys."""
        o = st.orig
        self._guard(self.layout.children(st.path), MOD, o.c_mod if o else 0)
        self._guard(self.layout.adjust(st.path), MOD, o.x_mod if o else 0)

    def guard_acl(self, st: NodeState) -> None:
        self._guard(self.layout.acl(st.path), MOD, st.orig.a_mod if st.orig else 0)

    def guard_session(self, session_id: int) -> None:
        """The session must still be alive (or, with no entry, still gone) at commit."""
        entry = self.tree.sessions.get(session_id)
        self._guard(self.layout.session(session_id), CREATE, entry.create_revision if entry else 0)

    def _guard(self, key: bytes, target: str, value: int) -> None:
        self.txn.compares.setdefault((key, target), value)

    # ------------------------------------------------------------------ writes
    def _touch(self, st: NodeState) -> None:
        if st.path not in self._written:
            self._written.add(st.path)
            self.order.append(st.path)
            self.key_bytes += 4 * (len(st.path) + 96)

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
        st.exists = True
        st.data = data or b""
        st.acl = acl
        self.data_bytes += len(st.data) + 32 * len(acl)
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
        self._touch(st)
        self._child_changed(parent, True)
        self.log.append(("c", st.path))

    def delete(self, st: NodeState, parent: NodeState) -> None:
        st.exists = False
        self._touch(st)
        self._child_changed(parent, False)
        self.log.append(("d", st.path))

    def set_data(self, st: NodeState, data: bytes | None, now: int) -> None:
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
        self.log.append(("s", st.path))

    def set_acl(self, st: NodeState, acl: tuple[ACL, ...]) -> None:
        st.acl = acl
        self.data_bytes += 32 * len(acl)
        st.aversion = _inc(st.aversion)
        st.a_dirty = True
        self._touch(st)

    def _child_changed(self, parent: NodeState, added: bool) -> None:
        # a plan creates only a child that does not exist and deletes only one that does
        parent.nchildren += 1 if added else -1
        parent.cversion = _inc(parent.cversion)
        parent.pzxid = -self.pos - 1
        parent.ppos = self.pos
        parent.c_changes += 1
        self._touch(parent)

    def bump(self) -> None:
        """A plan that changes nothing still consumes a zxid, as a ZooKeeper error txn does."""
        if not self._bumped:
            self._bumped = True
            self.txn.put(self.layout.bump, b"")

    def discard_writes(self) -> None:
        """Forget what was written (a failed multi), keeping the guards of what was read."""
        self.order.clear()
        self._written.clear()
        self.log.clear()

    # ------------------------------------------------------------------ compile
    def rough_estimate(self) -> tuple[int, int]:
        """Cheap upper bounds of (compares or operations, bytes): exact estimate() is needed only
        once these come near a limit."""
        n = len(self.order)
        count = len(self.txn.compares) + len(self.txn.ops) + 4 * n + 3
        return count, 256 + 64 * len(self.log) + self.key_bytes + self.data_bytes

    def estimate(self) -> tuple[int, int, int]:
        """Upper bounds of (compares, operations, bytes) that compile() would produce now: the
        batcher keeps a transaction within etcd's --max-txn-ops and --max-request-bytes."""
        ops = 3  # !log, !zx, !bump
        extra_guards = 0
        size = 256 + 64 * len(self.log)
        for path in self.order:
            st = self.states[path]
            size += 4 * (len(path) + 96)
            if not st.exists:
                ops += 4 if st.orig is not None else 0
            elif st.orig is None or st.recreated:
                ops += 4
                extra_guards += 2
                size += len(st.data) + 32 * len(st.acl)
            else:
                ops += st.d_dirty + st.a_dirty + (2 if st.c_changes else 0)
                extra_guards += st.d_dirty + st.a_dirty + (2 if st.c_changes > 1 else 0)
                size += (len(st.data) if st.d_dirty else 0) + (
                    32 * len(st.acl) if st.a_dirty else 0
                )
        compares = len(self.txn.compares) + extra_guards
        return compares, ops + len(self.txn.ops), size

    def compile(self, with_log: bool, positions: int = 1) -> EtcdTxn:
        lay = self.layout
        txn = self.txn
        for path in self.order:
            st = self.states[path]
            o = st.orig
            d, c, a, x = lay.node_keys(path)
            if not st.exists:
                if o is not None:
                    for k in (d, c, a, x):
                        txn.delete(k)
                continue
            if o is None:  # written lazily (see layout.py)
                st.flags |= L.FLAG_LAZY_CHILDREN
                txn.put(d, self._data_value(st, L.CZXID_FROM_CREATE).encode())
                if st.c_changes:  # children created in the same transaction
                    txn.put(c, L.encode_children_value(st.ppos))
                    # the new key's version 1 reads as cversion 1
                    if st.cversion != 1:
                        self.guard_children(st)
                        txn.put(x, L.encode_adjust_value(st.cversion - 1))
                if st.aversion or st.acl != L.OPEN_ACL:
                    txn.put(a, L.encode_acl_value(st.aversion, st.acl))
                continue
            if st.recreated:
                txn.put(d, self._data_value(st, L.CZXID_FROM_MOD).encode())
                txn.put(c, L.encode_children_value(st.ppos))
                txn.put(a, L.encode_acl_value(st.aversion, st.acl))
                # the new incarnation is not lazy: after the put etcd's counter gives cversion
                # (o.c_ver + 1) - 1
                cadj = st.cversion - o.c_ver
                if cadj or o.x_mod:
                    self.guard_children(st)
                    txn.put(x, L.encode_adjust_value(cadj))
                continue
            if st.d_dirty:
                self.guard_data(st)
                czmode = o.czxid_mode
                if czmode == L.CZXID_FROM_MOD:
                    czmode = o.czxid
                txn.put(d, self._data_value(st, czmode).encode())
            if st.c_changes:
                txn.put(c, L.encode_children_value(st.ppos))
                if st.c_changes > 1:
                    self.guard_children(st)
                    txn.put(x, L.encode_adjust_value(o.cadj + st.c_changes - 1))
            if st.a_dirty:
                self.guard_acl(st)
                txn.put(a, L.encode_acl_value(st.aversion, st.acl))
        if with_log:
            txn.put(lay.log, json.dumps(self.log, separators=(",", ":")).encode())
        if positions > 1:
            txn.put(lay.positions, b"%d" % positions)
        return txn

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


def _inc(v: int) -> int:
    """ZooKeeper's int32 counters wrap."""
    v += 1
    return v - (1 << 32) if v > 0x7FFFFFFF else v

"""An exact model of ``java.util.HashSet<String>`` (a ``java.util.HashMap``'s keys), tree bins
included, for the sets whose iteration order ZooKeeper lets clients see.

javaorder.py computes a HashSet's order from its names' insertion order and the most it has
held: exact while no bucket has held more than eight names. When a ninth name lands in one
bucket, Java's HashMap either doubles a table of under 64 buckets early or turns the bucket
into a red-black tree ordered by hash, then by ``String.compareTo``, whose iteration follows a
linked list that puts the tree's root first and each new name after its tree parent. Only names
built to collide (Java hash codes that share their low bits) get there, but then the order
depends on the whole history of adds and removes, which this class replays as Java does.

``BinWatch`` lets a set stay in the cheap model until the moment Java would act on a ninth
name, and switches to a ``JavaHashSet`` from there on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from zetcd.emulation.javaorder import grown_table, java_hashset_order, string_hash

_TREEIFY = 8  # a bin that already holds this many names is treeified on the next one
_UNTREEIFY = 6  # a tree half of at most this many names goes back to a list when split
_MIN_TREE_TABLE = 64  # smaller tables double instead of treeifying


def spread(name: str) -> int:
    """HashMap.hash(key) as a signed 32-bit int (tree order compares it signed)."""
    h = string_hash(name)
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def _utf16(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


class _Node:
    """A bin entry: a list node, or a tree node (``tree``) with its red-black links (``kids``:
    the left and the right child)."""

    __slots__ = ("hash", "key", "kids", "next", "parent", "prev", "red", "tree")

    def __init__(self, h: int, key: str) -> None:
        self.hash = h
        self.key = key
        self.next: _Node | None = None
        self.tree = False
        self.prev: _Node | None = None
        self.parent: _Node | None = None
        self.kids: list[_Node | None] = [None, None]
        self.red = False

    def side(self) -> int:
        """Which child of its parent it is: 0 left, 1 right."""
        parent = self.parent
        assert parent is not None
        return 0 if parent.kids[0] is self else 1

    def before(self, other: _Node) -> bool:
        """Does this node sort before ``other`` in a tree bin (hash, then compareTo)?"""
        if self.hash != other.hash:
            return self.hash < other.hash
        return _utf16(self.key) < _utf16(other.key)


class JavaHashSet:
    """``new HashSet<String>(initial)``: add, discard and iterate as Java 17 does."""

    __slots__ = ("nodes", "size", "table", "threshold")

    def __init__(self, initial: int = 16) -> None:
        self.table: list[_Node | None] = []
        # HashMap(int) keeps the first table's size in its threshold until it allocates it
        self.threshold = _table_size_for(initial)
        self.size = 0
        self.nodes: dict[str, _Node] = {}

    @classmethod
    def filled(cls, names: Iterable[str], initial: int = 16) -> JavaHashSet:
        s = cls(initial)
        for name in names:
            s.add(name)
        return s

    def __len__(self) -> int:
        return self.size

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __iter__(self) -> Iterator[str]:
        for head in self.table:
            e = head
            while e is not None:
                yield e.key
                e = e.next

    # ------------------------------------------------------------------ adding (putVal)
    def add(self, name: str) -> bool:
        if name in self.nodes:
            return False
        h = spread(name)
        if not self.table:
            self._resize()
        tab = self.table
        i = h & (len(tab) - 1)
        x = self.nodes[name] = _Node(h, name)
        p = tab[i]
        if p is None:
            tab[i] = x
        elif p.tree:
            self._put_tree(tab, p, x)
        else:
            held = 1
            while p.next is not None:
                p = p.next
                held += 1
            p.next = x
            if held >= _TREEIFY:
                self._treeify_bin(h)
        self.size += 1
        if self.size > self.threshold:
            self._resize()
        return True

    def _treeify_bin(self, h: int) -> None:
        tab = self.table
        if len(tab) < _MIN_TREE_TABLE:
            self._resize()
            return
        head = tab[h & (len(tab) - 1)]
        prev = None
        e = head
        while e is not None:
            e.tree = True
            e.prev = prev
            prev = e
            e = e.next
        if head is not None:
            _treeify(tab, head)

    def _put_tree(self, tab: list[_Node | None], first: _Node, x: _Node) -> None:
        root = _root(first)
        p = root
        while True:
            xp = p
            d = 0 if x.before(p) else 1
            child = p.kids[d]
            if child is not None:
                p = child
                continue
            x.tree = True
            xp.kids[d] = x
            x.next = xp.next
            xp.next = x
            x.parent = x.prev = xp
            if x.next is not None:
                x.next.prev = x
            _move_root_to_front(tab, _balance_insertion(root, x))
            return

    # ------------------------------------------------------------------ removing (removeNode)
    def discard(self, name: str) -> bool:
        node = self.nodes.pop(name, None)
        if node is None:
            return False
        tab = self.table
        i = node.hash & (len(tab) - 1)
        if node.tree:
            _remove_tree_node(tab, node)
        else:
            p = tab[i]
            if p is node:
                tab[i] = node.next
            else:
                assert p is not None
                while p.next is not node:
                    p = p.next
                    assert p is not None
                p.next = node.next
        self.size -= 1
        return True

    # ------------------------------------------------------------------ growing (resize)
    def _resize(self) -> None:
        old = self.table
        old_cap = len(old)
        if old_cap:
            cap = old_cap * 2
            threshold = self.threshold * 2 if old_cap >= 16 else 0
        elif self.threshold > 0:
            cap, threshold = self.threshold, 0
        else:
            cap, threshold = 16, 12
        self.threshold = threshold or int(cap * 0.75)
        tab: list[_Node | None] = [None] * cap
        for j, e in enumerate(old):
            if e is None:
                continue
            if e.next is None:
                tab[e.hash & (cap - 1)] = e
            elif e.tree:
                _split(tab, e, j, old_cap)
            else:
                lo: list[_Node] = []
                hi: list[_Node] = []
                while e is not None:
                    (hi if e.hash & old_cap else lo).append(e)
                    e = e.next
                tab[j] = _linked(lo)
                tab[j + old_cap] = _linked(hi)
        self.table = tab


class BinWatch:
    """A HashSet<String> kept elsewhere as its names in insertion order and the most it has
    held (``java_hashset_order``) is exact until Java acts on a ninth name in one bin. This
    keeps the names' spread hashes (in the same order) and counts them per bin of the table
    that model implies; at that moment it builds the set as Java holds it (a table for the
    peak, each bin in insertion order) and keeps it exactly from then on (``exact``)."""

    __slots__ = ("cap", "counts", "exact", "hashes", "initial")

    def __init__(self, initial: int, names: Iterable[str], peak: int) -> None:
        self.initial = initial
        self.exact: JavaHashSet | None = None
        self.hashes = {name: spread(name) for name in names}
        self.cap = 0
        self.counts = bytearray()
        self._count(grown_table(initial, peak))

    def _count(self, cap: int) -> None:
        counts = bytearray(cap)
        mask = cap - 1
        for h in self.hashes.values():
            counts[h & mask] += 1
        self.cap = cap
        self.counts = counts

    def add(self, peak: int, name: str) -> None:
        """Before ``name`` (not in it) joins the set, which once held ``peak``."""
        exact = self.exact
        if exact is not None:
            exact.add(name)
            return
        h = spread(name)
        i = h & (self.cap - 1)
        if self.counts[i] >= _TREEIFY:
            exact = self.exact = JavaHashSet.filled(self.hashes, self.cap)
            exact.add(name)
            self.counts = bytearray()
            self.hashes = {}
            return
        self.counts[i] += 1
        hashes = self.hashes
        hashes[name] = h
        cap = self.cap
        if len(hashes) > max(peak, cap - (cap >> 2)):  # past 3/4 of the table: it doubles
            self._count(cap * 2)

    def discard(self, name: str) -> None:
        """After ``name`` left the set."""
        if self.exact is not None:
            self.exact.discard(name)
        else:
            self.counts[self.hashes.pop(name) & (self.cap - 1)] -= 1

    def order(self) -> list[str]:
        if self.exact is not None:
            return list(self.exact)
        mask = self.cap - 1
        keyed = sorted((h & mask, i, name) for i, (name, h) in enumerate(self.hashes.items()))
        return [k[2] for k in keyed]


def hashset_order(
    names: dict[str, None], peak: int, initial: int, bins: BinWatch | None
) -> list[str]:
    """The iteration order of a HashSet<String> created with ``initial`` buckets, holding
    ``names`` (in insertion order) after it once held ``peak``, watched by ``bins``."""
    if bins is not None:
        return bins.order()
    return java_hashset_order(names, peak, initial)


def fill_order(names: Iterable[str], initial: int) -> list[str]:
    """The iteration order of ``new HashSet<String>(initial)`` after adding ``names`` in turn:
    by bucket of the table they grow it to, unless some bucket of the first table gets nine
    names (then Java's own steps, which may double the table early or make a tree bin)."""
    listed = list(names)
    cap = _table_size_for(initial)
    counts = bytearray(cap)
    mask = cap - 1
    for name in listed:
        i = spread(name) & mask
        if counts[i] == _TREEIFY:
            return list(JavaHashSet.filled(listed, initial))
        counts[i] += 1
    return java_hashset_order(listed, len(listed), cap)


def copy_order(names: Iterable[str]) -> list[str]:
    """The iteration order of ``new HashSet<String>(c)`` filled from ``names`` (``c``'s
    iteration order): its table is sized for them (``max((int) (n / .75f) + 1, 16)``)."""
    listed = list(names)
    return fill_order(listed, max(int(len(listed) / 0.75) + 1, 16))


def clone_order(names: Iterable[str]) -> list[str]:
    """The iteration order of a HashSet<String>'s ``clone()``, given the set's own iteration
    order: Java 17's HashMap.putMapEntries sizes the clone for ``size / 0.75f + 1`` names
    and fills it in that order (ZooKeeper's DataTree getEphemerals, whose result
    closeSession deletes in order)."""
    listed = list(names)
    return fill_order(listed, int(len(listed) / 0.75 + 1.0)) if listed else []


def _table_size_for(n: int) -> int:
    cap = 1
    while cap < n:
        cap *= 2
    return cap


def _linked(nodes: list[_Node]) -> _Node | None:
    for a, b in itertools.pairwise(nodes):
        a.next = b
    if nodes:
        nodes[-1].next = None
        return nodes[0]
    return None


def _root(node: _Node) -> _Node:
    while node.parent is not None:
        node = node.parent
    return node


def _untreeify(head: _Node | None) -> _Node | None:
    e = head
    while e is not None:
        e.tree = e.red = False
        e.prev = e.parent = None
        e.kids = [None, None]
        e = e.next
    return head


def _treeify(tab: list[_Node | None], head: _Node) -> None:
    """TreeNode.treeify: the list's nodes inserted into a new tree in list order."""
    root: _Node | None = None
    x: _Node | None = head
    while x is not None:
        nxt = x.next
        x.kids = [None, None]
        if root is None:
            x.parent = None
            x.red = False
            root = x
        else:
            p = root
            while True:
                d = 0 if x.before(p) else 1
                child = p.kids[d]
                if child is None:
                    x.parent = p
                    p.kids[d] = x
                    root = _balance_insertion(root, x)
                    break
                p = child
        x = nxt
    assert root is not None
    _move_root_to_front(tab, root)


def _move_root_to_front(tab: list[_Node | None], root: _Node) -> None:
    index = root.hash & (len(tab) - 1)
    first = tab[index]
    if root is first:
        return
    tab[index] = root
    rp, rn = root.prev, root.next
    if rn is not None:
        rn.prev = rp
    if rp is not None:
        rp.next = rn
    if first is not None:
        first.prev = root
    root.next = first
    root.prev = None


def _split(tab: list[_Node | None], b: _Node, index: int, bit: int) -> None:
    """TreeNode.split: a tree bin's list halves on ``bit``; a half of six or fewer becomes a
    list again, a bigger one a new tree (unless the other half is empty: the tree stays)."""
    lo: list[_Node] = []
    hi: list[_Node] = []
    e: _Node | None = b
    while e is not None:
        (hi if e.hash & bit else lo).append(e)
        e = e.next
    for half, at, other in ((lo, index, hi), (hi, index + bit, lo)):
        if not half:
            continue
        prev = None
        for node in half:
            node.prev = prev
            prev = node
        head = _linked(half)
        assert head is not None
        if len(half) <= _UNTREEIFY:
            tab[at] = _untreeify(head)
        else:
            tab[at] = head
            if other:
                _treeify(tab, head)


def _remove_tree_node(tab: list[_Node | None], p: _Node) -> None:
    """TreeNode.removeTreeNode (movable): unlink from the list; a tree too small goes back to
    a list, else the red-black removal and the root moved to the front."""
    index = p.hash & (len(tab) - 1)
    first = tab[index]
    succ, pred = p.next, p.prev
    if pred is None:
        tab[index] = first = succ
    else:
        pred.next = succ
    if succ is not None:
        succ.prev = pred
    if first is None:
        return
    root = _root(first)
    left = root.kids[0]
    if root.kids[1] is None or left is None or left.kids[0] is None:
        tab[index] = _untreeify(first)
        return
    pl, pr = p.kids
    replacement: _Node
    if pl is not None and pr is not None:
        # swap p with its successor s (links, not contents: the list order stays)
        s = pr
        while s.kids[0] is not None:
            s = s.kids[0]
        s.red, p.red = p.red, s.red
        sr = s.kids[1]
        pp = p.parent
        if s is pr:
            p.parent = s
            s.kids[1] = p
        else:
            sp = s.parent
            assert sp is not None
            sp.kids[s.side()] = p
            p.parent = sp
            s.kids[1] = pr
            pr.parent = s
        p.kids = [None, sr]
        if sr is not None:
            sr.parent = p
        s.kids[0] = pl
        pl.parent = s
        if pp is None:
            root = s
        else:
            pp.kids[0 if pp.kids[0] is p else 1] = s
        s.parent = pp
        replacement = sr if sr is not None else p
    else:
        replacement = pl or pr or p
    if replacement is not p:
        pp = replacement.parent = p.parent
        if pp is None:
            root = replacement
            root.red = False
        else:
            pp.kids[p.side()] = replacement
        p.kids = [None, None]
        p.parent = None
    r = root if p.red else _balance_deletion(root, replacement)
    if replacement is p and p.parent is not None:  # detach
        kids = p.parent.kids
        p.parent = None
        if kids[0] is p:
            kids[0] = None
        elif kids[1] is p:
            kids[1] = None
    _move_root_to_front(tab, r)


# ---------------------------------------------------------------------- red-black balancing
# Java's rotateLeft and rotateRight, balanceInsertion and balanceDeletion, each pair of mirror
# images written once for a side d (0 left, 1 right) and its other side 1 - d.
def _rotate(root: _Node, p: _Node, d: int) -> _Node:
    """Turn ``p`` down to side ``d``: its child on the other side takes its place."""
    r = p.kids[1 - d]
    if r is None:
        return root
    inner = p.kids[1 - d] = r.kids[d]
    if inner is not None:
        inner.parent = p
    pp = r.parent = p.parent
    if pp is None:
        root = r
        r.red = False
    else:
        pp.kids[0 if pp.kids[0] is p else 1] = r
    r.kids[d] = p
    p.parent = r
    return root


def _red(node: _Node | None) -> bool:
    return node is not None and node.red


def _balance_insertion(root: _Node, x: _Node) -> _Node:
    x.red = True
    while True:
        xp = x.parent
        if xp is None:
            x.red = False
            return x
        xpp = xp.parent
        if not xp.red or xpp is None:
            return root
        d = 0 if xp is xpp.kids[0] else 1
        uncle = xpp.kids[1 - d]
        if uncle is not None and uncle.red:
            uncle.red = xp.red = False
            xpp.red = True
            x = xpp
            continue
        if x is xp.kids[1 - d]:
            x = xp
            root = _rotate(root, x, d)
            xp = x.parent
            xpp = xp.parent if xp is not None else None
        if xp is not None:
            xp.red = False
            if xpp is not None:
                xpp.red = True
                root = _rotate(root, xpp, 1 - d)


def _balance_deletion(root: _Node, x: _Node | None) -> _Node:
    while True:
        if x is None or x is root:
            return root
        xp = x.parent
        if xp is None:
            x.red = False
            return x
        if x.red:
            x.red = False
            return root
        d = 0 if xp.kids[0] is x else 1
        sib = xp.kids[1 - d]
        if sib is not None and sib.red:
            sib.red = False
            xp.red = True
            root = _rotate(root, xp, d)
            xp = x.parent
            sib = xp.kids[1 - d] if xp is not None else None
        if sib is None:
            x = xp
            continue
        if not _red(sib.kids[1 - d]) and not _red(sib.kids[d]):
            sib.red = True
            x = xp
            continue
        if not _red(sib.kids[1 - d]):
            near = sib.kids[d]
            if near is not None:
                near.red = False
            sib.red = True
            root = _rotate(root, sib, 1 - d)
            xp = x.parent
            sib = xp.kids[1 - d] if xp is not None else None
        if sib is not None:
            sib.red = False if xp is None else xp.red
            far = sib.kids[1 - d]
            if far is not None:
                far.red = False
        if xp is not None:
            xp.red = False
            root = _rotate(root, xp, d)
        x = root

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

import functools
import itertools
from collections.abc import Callable, Collection, Iterable, Iterator

from zetcd.emulation import javatree
from zetcd.emulation.javaorder import grown_table, java_hashset_order, string_hash
from zetcd.emulation.javatree import (
    MIN_TREEIFY_CAPACITY,
    TREEIFY_THRESHOLD,
    UNTREEIFY_THRESHOLD,
    TreeNode,
    string_before,
    table_size_for,
)


def spread(name: str) -> int:
    """HashMap.hash(key) as a signed 32-bit int (tree order compares it signed)."""
    h = string_hash(name)
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


# for names added again and again (watched paths: a one-shot watch leaves its tables as it
# fires and comes back when its client sets it again)
cached_spread = functools.lru_cache(maxsize=1 << 16)(spread)


class JavaHashSet:
    """``new HashSet<String>(initial)``: add, discard and iterate as Java 17 does."""

    __slots__ = ("nodes", "size", "table", "threshold")

    def __init__(self, initial: int = 16) -> None:
        self.table: list[TreeNode | None] = []
        # HashMap(int) keeps the first table's size in its threshold until it allocates it
        self.threshold = table_size_for(initial)
        self.size = 0
        self.nodes: dict[str, TreeNode] = {}

    @classmethod
    def filled(cls, names: Iterable[str], initial: int = 16) -> JavaHashSet:
        s = cls(initial)
        for name in names:
            s.add(name)
        return s

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
        x = self.nodes[name] = TreeNode(h, name)
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
            if held >= TREEIFY_THRESHOLD:
                self._treeify_bin(h)
        self.size += 1
        if self.size > self.threshold:
            self._resize()
        return True

    def _treeify_bin(self, h: int) -> None:
        tab = self.table
        if len(tab) < MIN_TREEIFY_CAPACITY:
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

    def _put_tree(self, tab: list[TreeNode | None], first: TreeNode, x: TreeNode) -> None:
        """putTreeVal: the new node goes into the tree, and into the bucket's list right
        after the node it was attached under; then the root to the front."""
        root, xp = javatree.attach(javatree.root_of(first), x, string_before)
        x.next = xp.next
        xp.next = x
        x.prev = xp
        if x.next is not None:
            x.next.prev = x
        _move_root_to_front(tab, root)

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
        tab: list[TreeNode | None] = [None] * cap
        for j, e in enumerate(old):
            if e is None:
                continue
            if e.next is None:
                tab[e.hash & (cap - 1)] = e
            elif e.tree:
                _split(tab, e, j, old_cap)
            else:
                lo: list[TreeNode] = []
                hi: list[TreeNode] = []
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

    __slots__ = ("cap", "counts", "exact", "hasher", "hashes", "initial")

    def __init__(
        self, initial: int, names: Iterable[str], peak: int, hasher: Callable[[str], int] = spread
    ) -> None:
        self.initial = initial
        self.exact: JavaHashSet | None = None
        self.hasher = hasher
        self.hashes = {name: hasher(name) for name in names}
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
        h = self.hasher(name)
        counts, cap = self.counts, self.cap
        i = h & (cap - 1)
        if counts[i] >= TREEIFY_THRESHOLD:
            exact = self.exact = JavaHashSet.filled(self.hashes, cap)
            exact.add(name)
            self.counts = bytearray()
            self.hashes = {}
            return
        counts[i] += 1
        hashes = self.hashes
        hashes[name] = h
        n = len(hashes)
        if n > peak and n > cap - (cap >> 2):  # past 3/4 of the table: it doubles
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


def watch_add(
    bins: BinWatch | None,
    initial: int,
    names: Collection[str],
    peak: int,
    name: str,
    hasher: Callable[[str], int] = spread,
) -> BinWatch | None:
    """Before ``name`` (new) joins ``names``, a set that once held ``peak``: its BinWatch, made
    once it holds eight names (none fewer can fill a bin), told of the name."""
    if bins is None and len(names) >= TREEIFY_THRESHOLD:
        bins = BinWatch(initial, names, peak, hasher)
    if bins is not None:
        bins.add(peak, name)
    return bins


def hashset_order(
    names: Collection[str], peak: int, initial: int, bins: BinWatch | None
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
    cap = table_size_for(initial)
    counts = bytearray(cap)
    mask = cap - 1
    for name in listed:
        i = spread(name) & mask
        if counts[i] == TREEIFY_THRESHOLD:
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


def _linked(nodes: list[TreeNode]) -> TreeNode | None:
    for a, b in itertools.pairwise(nodes):
        a.next = b
    if nodes:
        nodes[-1].next = None
        return nodes[0]
    return None


def _untreeify(head: TreeNode | None) -> TreeNode | None:
    e = head
    while e is not None:
        e.unlink_tree()
        e.prev = None
        e = e.next
    return head


def _treeify(tab: list[TreeNode | None], head: TreeNode) -> None:
    """TreeNode.treeify: the list's nodes inserted into a new tree in list order."""
    nodes = []
    e: TreeNode | None = head
    while e is not None:
        nodes.append(e)
        e = e.next
    _move_root_to_front(tab, javatree.build(nodes, string_before))


def _move_root_to_front(tab: list[TreeNode | None], root: TreeNode) -> None:
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


def _split(tab: list[TreeNode | None], b: TreeNode, index: int, bit: int) -> None:
    """TreeNode.split: a tree bin's list halves on ``bit``; a half of six or fewer becomes a
    list again, a bigger one a new tree (unless the other half is empty: the tree stays)."""
    lo: list[TreeNode] = []
    hi: list[TreeNode] = []
    e: TreeNode | None = b
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
        if len(half) <= UNTREEIFY_THRESHOLD:
            tab[at] = _untreeify(head)
        else:
            tab[at] = head
            if other:
                _treeify(tab, head)


def _remove_tree_node(tab: list[TreeNode | None], p: TreeNode) -> None:
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
    root = javatree.root_of(first)
    if javatree.too_small(root):
        tab[index] = _untreeify(first)
        return
    _move_root_to_front(tab, javatree.remove(root, p))

"""The red-black trees Java's HashMap and ConcurrentHashMap turn a crowded bucket into.

Both maps keep a bucket of nine or more keys (in a table of 64 buckets or more) as a red-black
tree ordered by the keys' spread hash, then by ``compareTo``; both adapt the textbook
algorithms the same way (java.util.HashMap.TreeNode, ConcurrentHashMap.TreeBin). What a tree
changes in a map's iteration order is decided by its shape: HashMap lists its root first,
ConcurrentHashMap turns a bucket back into a list when a removal leaves the root without two
children or a left grandchild. The steps here are Java 17's, so the shapes are Java's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Before = Callable[["TreeNode", "TreeNode"], bool]

TREEIFY_THRESHOLD = 8  # a bucket that already holds this many keys is treeified on the next
UNTREEIFY_THRESHOLD = 6  # a tree bucket's half of at most this many keys becomes a list again
MIN_TREEIFY_CAPACITY = 64  # smaller tables grow instead of treeifying


def table_size_for(n: int) -> int:
    """The smallest power of two at least ``n`` (both maps' tableSizeFor)."""
    cap = 1
    while cap < n:
        cap *= 2
    return cap


class TreeNode:
    """A bucket's entry: ``next``/``prev`` link the bucket's list; a tree node (``tree``) also
    has its parent and ``kids`` (the left and the right child) and its colour."""

    __slots__ = ("hash", "key", "kids", "next", "parent", "prev", "red", "tree")

    def __init__(self, h: int, key: Any) -> None:
        self.hash = h
        self.key = key
        self.next: TreeNode | None = None
        self.prev: TreeNode | None = None
        self.tree = False
        self.parent: TreeNode | None = None
        self.kids: list[TreeNode | None] = [None, None]
        self.red = False

    def side(self) -> int:
        """Which child of its parent it is: 0 left, 1 right."""
        parent = self.parent
        assert parent is not None
        return 0 if parent.kids[0] is self else 1

    def unlink_tree(self) -> None:
        self.tree = self.red = False
        self.parent = None
        self.kids = [None, None]


def _utf16(s: str) -> bytes:
    return s.encode("utf-16-be", "surrogatepass")


def string_before(a: TreeNode, b: TreeNode) -> bool:
    """Does ``a`` sort before ``b`` in a tree of String keys (hash, then String.compareTo,
    which compares UTF-16 code units)?"""
    if a.hash != b.hash:
        return a.hash < b.hash
    return bool(_utf16(a.key) < _utf16(b.key))


def long_before(a: TreeNode, b: TreeNode) -> bool:
    """The same for Long keys (Long.compareTo: signed values)."""
    if a.hash != b.hash:
        return a.hash < b.hash
    return bool(_signed64(a.key) < _signed64(b.key))


def natural_before(a: TreeNode, b: TreeNode) -> bool:
    """For keys Java cannot compare (not Comparable): it breaks ties by identity hash codes,
    which differ from run to run; any fixed order is as good."""
    if a.hash != b.hash:
        return a.hash < b.hash
    return bool(a.key < b.key)


def _signed64(v: int) -> int:
    v &= 0xFFFFFFFFFFFFFFFF
    return v - (1 << 64) if v >> 63 else v


def root_of(node: TreeNode) -> TreeNode:
    while node.parent is not None:
        node = node.parent
    return node


def attach(root: TreeNode, x: TreeNode, before: Before) -> tuple[TreeNode, TreeNode]:
    """Insert ``x`` (a key not in the tree) where the walk from ``root`` leads and rebalance;
    the new root, and the node ``x`` was attached under."""
    p = root
    while True:
        d = 0 if before(x, p) else 1
        child = p.kids[d]
        if child is None:
            x.tree = True
            x.parent = p
            x.kids = [None, None]
            p.kids[d] = x
            return _balance_insertion(root, x), p
        p = child


def build(nodes: Iterable[TreeNode], before: Before) -> TreeNode:
    """A new tree of ``nodes``, inserted in turn (HashMap's treeify, TreeBin's constructor)."""
    root: TreeNode | None = None
    for x in nodes:
        x.tree = True
        x.kids = [None, None]
        if root is None:
            x.parent = None
            x.red = False
            root = x
        else:
            root, _ = attach(root, x, before)
    assert root is not None
    return root


def too_small(root: TreeNode | None) -> bool:
    """The test both maps make before removing a node: a tree whose root lacks a child or a
    left grandchild goes back to a list instead."""
    if root is None:
        return True
    left = root.kids[0]
    return root.kids[1] is None or left is None or left.kids[0] is None


def remove(root: TreeNode, p: TreeNode, *, blacken_new_root: bool = True) -> TreeNode:
    """Take ``p`` out of the tree (its list links are the caller's); the new root.
    ConcurrentHashMap, unlike HashMap, does not blacken a child that replaces the root."""
    pl, pr = p.kids
    replacement: TreeNode
    if pl is not None and pr is not None:
        # swap p with its successor s (links, not contents: the bucket's list stays)
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
            if blacken_new_root:
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
    return r


# ---------------------------------------------------------------------- red-black balancing
# Java's rotateLeft and rotateRight, balanceInsertion and balanceDeletion, each pair of mirror
# images written once for a side d (0 left, 1 right) and its other side 1 - d.
def _rotate(root: TreeNode, p: TreeNode, d: int) -> TreeNode:
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


def _red(node: TreeNode | None) -> bool:
    return node is not None and node.red


def _balance_insertion(root: TreeNode, x: TreeNode) -> TreeNode:
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


def _balance_deletion(root: TreeNode, x: TreeNode | None) -> TreeNode:
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

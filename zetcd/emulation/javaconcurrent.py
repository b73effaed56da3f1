"""The iteration order of a ``java.util.concurrent.ConcurrentHashMap``'s keys, tree bins
included: ZooKeeper's sets of container and TTL nodes, of sessions with ephemerals, and of a
connection's auth ids are such maps."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from zetcd.emulation import javatree
from zetcd.emulation.javatree import (
    MIN_TREEIFY_CAPACITY,
    TREEIFY_THRESHOLD,
    UNTREEIFY_THRESHOLD,
    Before,
    TreeNode,
    natural_before,
    table_size_for,
)

K = TypeVar("K", bound=Hashable)

_ListBin = list[tuple[int, K]]


class _TreeBin(Generic[K]):
    """A bucket turned into a tree: ``order`` is its list (TreeBin.first), to which a new key
    is prepended, whatever the tree's shape."""

    __slots__ = ("nodes", "order", "root")

    def __init__(self, order: list[TreeNode], before: Before) -> None:
        self.order = order
        self.nodes: dict[K, TreeNode] = {n.key: n for n in order}
        self.root: TreeNode = javatree.build(order, before)

    def pairs(self) -> _ListBin[K]:
        return [(n.hash, n.key) for n in self.order]


class ConcurrentTable(Generic[K]):
    """The keys of a ``java.util.concurrent.ConcurrentHashMap`` (default capacity) in its
    iteration order, kept as keys are added and removed.

    The table starts at 16 bins and doubles when the count reaches 3/4 of it. A new key goes to
    the tail of bin ``spread(h) & (n - 1)`` with ``spread(h) = (h ^ (h >>> 16)) & 0x7fffffff``;
    a removed one leaves the others' order alone. A resize splits each bin by the bit ``n`` of
    the spread hash: the longest tail of the bin whose nodes share that bit keeps its order,
    and the nodes before it are prepended one by one to their half (so they end up reversed, in
    front).

    A bin that gets a ninth key makes a table of under 64 bins grow at once (tryPresize: to at
    least 1.5 times twice its size plus one, doubling by transfers, so 16 bins become 128), and
    a bin of a bigger one a tree bin (javatree.py, ordered by ``before``): a new key is put at
    the front of a tree bin's list, and the bin goes back to a list (in that order) when a
    removal finds the tree too small, or a resize leaves six keys or fewer in its half.
    """

    __slots__ = ("before", "bins", "count", "hash")

    def __init__(self, hash_code: Callable[[K], int], before: Before = natural_before) -> None:
        self.hash = hash_code
        self.before = before
        self.bins: list[_ListBin[K] | _TreeBin[K]] = [[] for _ in range(16)]
        self.count = 0

    def _spread(self, key: K) -> int:
        h = self.hash(key)
        return (h ^ (h >> 16)) & 0x7FFFFFFF

    def add(self, key: K) -> None:
        h = self._spread(key)
        i = h & (len(self.bins) - 1)
        b = self.bins[i]
        if isinstance(b, _TreeBin):
            if key in b.nodes:
                return
            x = b.nodes[key] = TreeNode(h, key)
            b.root, _ = javatree.attach(b.root, x, self.before)
            b.order.insert(0, x)
        else:
            for at, (_, k) in enumerate(b):
                if k == key:
                    # putVal counts the nodes it passed (the first one is checked unlocked)
                    if at + 1 >= TREEIFY_THRESHOLD:
                        self._treeify_bin(i)
                    return
            b.append((h, key))
            if len(b) - 1 >= TREEIFY_THRESHOLD:
                self._treeify_bin(i)
        self.count += 1
        while self.count >= len(self.bins) - (len(self.bins) >> 2):
            self._transfer()

    def discard(self, key: K) -> None:
        i = self._spread(key) & (len(self.bins) - 1)
        b = self.bins[i]
        if isinstance(b, _TreeBin):
            p = b.nodes.pop(key, None)
            if p is None:
                return
            b.order.remove(p)
            if not b.order:
                self.bins[i] = []
            elif javatree.too_small(b.root):
                self.bins[i] = b.pairs()
            else:
                b.root = javatree.remove(b.root, p, blacken_new_root=False)
        else:
            for at, (_, k) in enumerate(b):
                if k == key:
                    del b[at]
                    break
            else:
                return
        self.count -= 1

    def __iter__(self) -> Iterator[K]:
        for b in self.bins:
            if isinstance(b, _TreeBin):
                yield from (n.key for n in b.order)
            else:
                yield from (key for _, key in b)

    def _treeify_bin(self, i: int) -> None:
        n = len(self.bins)
        if n < MIN_TREEIFY_CAPACITY:
            # tryPresize(n << 1)
            size = n << 1
            wanted = table_size_for(size + (size >> 1) + 1)
            while wanted > len(self.bins) - (len(self.bins) >> 2):
                self._transfer()
            return
        b = self.bins[i]
        if b and not isinstance(b, _TreeBin):
            self.bins[i] = _TreeBin([TreeNode(h, key) for h, key in b], self.before)

    def _transfer(self) -> None:
        bins = self.bins
        n = len(bins)
        out: list[_ListBin[K] | _TreeBin[K]] = [[] for _ in range(2 * n)]
        for i, b in enumerate(bins):
            if isinstance(b, _TreeBin):
                out[i], out[i + n] = self._split_tree(b, n)
            elif b:
                out[i], out[i + n] = _split_list(b, n)
        self.bins = out

    def _split_tree(
        self, b: _TreeBin[K], bit: int
    ) -> tuple[_ListBin[K] | _TreeBin[K], _ListBin[K] | _TreeBin[K]]:
        lo = [TreeNode(x.hash, x.key) for x in b.order if not x.hash & bit]
        hi = [TreeNode(x.hash, x.key) for x in b.order if x.hash & bit]
        halves: list[_ListBin[K] | _TreeBin[K]] = []
        for half, other in ((lo, hi), (hi, lo)):
            if len(half) <= UNTREEIFY_THRESHOLD:
                halves.append([(x.hash, x.key) for x in half])
            elif other:
                halves.append(_TreeBin(half, self.before))
            else:
                halves.append(b)
        return halves[0], halves[1]


def _split_list(nodes: _ListBin[K], n: int) -> tuple[_ListBin[K], _ListBin[K]]:
    last_run = len(nodes) - 1
    while last_run > 0 and (nodes[last_run - 1][0] & n) == (nodes[-1][0] & n):
        last_run -= 1
    lo: _ListBin[K] = []
    hi: _ListBin[K] = []
    (hi if nodes[-1][0] & n else lo).extend(nodes[last_run:])
    for node in nodes[:last_run]:
        (hi if node[0] & n else lo).insert(0, node)
    return lo, hi
